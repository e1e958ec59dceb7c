/** server/static.ts: content types, caching, conditional requests, and nothing outside its root. */
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises'
import { createServer, get, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Koa from 'koa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { serveStatic } from '../../server/static.js'

let dir: string
let server: Server
let url: string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'y-sse-static-'))
  await mkdir(join(dir, 'app/assets'), { recursive: true })
  await writeFile(join(dir, 'app/index.html'), '<!doctype html><title>editor</title>')
  await writeFile(join(dir, 'app/assets/index-abc123.js'), 'console.log(1)')
  await writeFile(join(dir, 'app/.built'), 'stamp')
  await writeFile(join(dir, 'secret.txt'), 'outside the root')
  const app = new Koa()
  app.use(serveStatic(join(dir, 'app')))
  app.use(ctx => { ctx.status = 404; ctx.body = 'next' })
  server = createServer(app.callback())
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})

afterAll(async () => {
  await new Promise(resolve => server.close(resolve))
  await rm(dir, { recursive: true, force: true })
})

describe('serveStatic', () => {
  it('serves index.html for / (with a query), revalidated on every load', async () => {
    const res = await fetch(`${url}/?doc=my-doc`)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8')
    expect(res.headers.get('cache-control')).toBe('no-cache')
    expect(await res.text()).toContain('<title>editor</title>')

    // node:http, not fetch: fetch adds `Cache-Control: no-cache` to conditional requests, which forbids a 304.
    const status = await new Promise<number | undefined>((resolve, reject) => {
      get(`${url}/`, { headers: { 'if-none-match': res.headers.get('etag') ?? '' } }, answer => {
        answer.resume()
        resolve(answer.statusCode)
      }).once('error', reject)
    })
    expect(status).toBe(304)
  })

  it('caches hashed assets for a year', async () => {
    const res = await fetch(`${url}/assets/index-abc123.js`)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('text/javascript; charset=utf-8')
    expect(res.headers.get('cache-control')).toBe('public, max-age=31536000, immutable')
    expect(await res.text()).toBe('console.log(1)')
    const head = await fetch(`${url}/assets/index-abc123.js`, { method: 'HEAD' })
    expect(head.headers.get('content-length')).toBe('14')
  })

  it('passes on what it does not serve: unknown files, other methods, unknown types, paths outside its root', async () => {
    for (const path of ['/missing.js', '/assets', '/.built', '/..%2Fsecret.txt', '/%2e%2e/secret.txt', '/%E0%A4%A']) {
      const res = await fetch(url + path)
      expect([path, res.status, await res.text()]).toEqual([path, 404, 'next'])
    }
    expect((await fetch(`${url}/`, { method: 'POST' })).status).toBe(404)
  })
})
