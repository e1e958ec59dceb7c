/**
 * A small static-file middleware for the built editor (`dist/app`). Wired only by the entry point
 * (main.ts): `createSyncServer` stays protocol-only, so embedders serve their own front end.
 *
 * Vite names everything under `assets/` after a hash of its content, so those files are cached
 * for a year; every other file (above all `index.html`, which names the current assets) is
 * revalidated on each load with its ETag.
 */
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { extname, resolve, sep } from 'node:path'
import type { Context, Middleware, Next } from 'koa'

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
  '.webmanifest': 'application/manifest+json'
}

const IMMUTABLE = 'public, max-age=31536000, immutable'
const REVALIDATE = 'no-cache'

/** Serves the files under `root` on GET and HEAD; `/` is `index.html`. Anything else passes to `next`. */
export const serveStatic = (root: string): Middleware => {
  const base = resolve(root)
  return async (ctx: Context, next: Next) => {
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return next()
    const file = fileFor(base, ctx.path)
    const type = file === null ? undefined : CONTENT_TYPES[extname(file)]
    if (file === null || type === undefined) return next()
    let info
    try {
      info = await stat(file)
    } catch {
      return next()
    }
    if (!info.isFile()) return next()
    ctx.status = 200
    ctx.type = type
    ctx.lastModified = info.mtime
    ctx.etag = `W/"${info.size.toString(16)}-${Math.trunc(info.mtimeMs).toString(16)}"`
    ctx.set('Cache-Control', ctx.path.startsWith('/assets/') ? IMMUTABLE : REVALIDATE)
    if (ctx.fresh) {
      ctx.status = 304
      return
    }
    ctx.length = info.size
    if (ctx.method === 'GET') ctx.body = createReadStream(file)
  }
}

/** The file a URL path names inside `base`, or null when it names none (or tries to leave `base`). */
const fileFor = (base: string, path: string): string | null => {
  let decoded: string
  try {
    decoded = decodeURIComponent(path)
  } catch {
    return null
  }
  if (decoded.includes('\0')) return null
  const file = resolve(base, '.' + (decoded === '/' ? '/index.html' : decoded))
  return file.startsWith(base + sep) ? file : null
}
