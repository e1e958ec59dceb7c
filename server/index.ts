/**
 * The y-sse server: `createSyncServer` builds a Koa app serving the protocol over any
 * {@link DocumentStore}. Embed it with `app` (mount it in an existing Koa app) or run it with
 * `listen`.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import Koa, { type Context, type Next } from 'koa'
import { ErrorCode, ProtocolError, type ErrorBody } from '../shared/errors.js'
import { MemoryStore } from './store/memory-store.js'
import { protocolRoutes, type RouteContext } from './routes.js'
import { serverDefaults, type SyncServerOptions } from './options.js'
import { silentLogger } from './logger.js'

export { serverDefaults, type SyncServerOptions } from './options.js'
export type { DocumentStore, DocEvent, DocListener, ValidatedUpdate } from './store/types.js'
export type { ResumePoint, SyncResult } from './store/history.js'
export { storeDefaults, type StoreOptions } from './store/log-store.js'
export { MemoryStore } from './store/memory-store.js'
export { RedisStore, type RedisStoreOptions } from './store/redis-store.js'
export { validateUpdate } from './validate.js'
export { createJsonLogger, silentLogger, type Logger, type LogLevel } from './logger.js'

/** A running or embeddable sync server. */
export interface SyncServer {
  /** The Koa app: mount it, or pass `app.callback()` to any Node HTTP(S) server. */
  app: Koa
  options: SyncServerOptions
  /** Listens on `port` (0 picks a free one); resolves with the bound address. */
  listen(port?: number, host?: string): Promise<{ server: Server; port: number; url: string }>
  /**
   * Stops accepting requests, ends event streams (clients reconnect elsewhere), lets in-flight
   * requests finish, then closes the store.
   */
  close(): Promise<void>
}

const isClientGone = (error: unknown): boolean => {
  const code = (error as NodeJS.ErrnoException).code
  return code === 'ECONNRESET' || code === 'EPIPE' || code === 'ERR_STREAM_PREMATURE_CLOSE'
}

/** Creates the server; nothing listens until {@link SyncServer.listen}. */
export const createSyncServer = (options: Partial<SyncServerOptions> = {}): SyncServer => {
  const logger = options.logger ?? silentLogger
  const resolved: SyncServerOptions = { ...serverDefaults, store: options.store ?? new MemoryStore({ logger }), logger, ...options }
  const routes: RouteContext = { options: resolved, streams: new Set(), closing: false }
  const app = new Koa()
  const inFlight = new Set<Promise<unknown>>()
  let server: Server | null = null

  app.on('error', (error: unknown) => {
    if (!isClientGone(error)) logger.error('request failed', { error: String(error) })
  })

  // Errors become the protocol's JSON error body, in this one place.
  app.use(async (ctx: Context, next: Next) => {
    try {
      await next()
    } catch (error) {
      const protocolError = ProtocolError.is(error) ? error : new ProtocolError(ErrorCode.internal, 'internal error', { cause: error })
      if (!ProtocolError.is(error)) logger.error('unexpected error', { method: ctx.method, path: ctx.path, error: String(error), stack: (error as Error).stack })
      else if (protocolError.status >= 500) logger.warn(protocolError.message, { method: ctx.method, path: ctx.path, cause: String(protocolError.cause) })
      const body: ErrorBody = { error: { code: protocolError.code, message: protocolError.message } }
      ctx.status = protocolError.status
      ctx.body = body
    }
  })

  app.use(async (ctx: Context, next: Next) => {
    const origin = resolved.corsOrigin
    if (origin !== null) {
      ctx.set('Access-Control-Allow-Origin', origin)
      ctx.set('Access-Control-Expose-Headers', 'ETag')
      if (origin !== '*') ctx.vary('Origin')
    }
    if (ctx.method === 'OPTIONS' && origin !== null) {
      ctx.set('Access-Control-Allow-Methods', 'GET, HEAD, POST, OPTIONS')
      ctx.set('Access-Control-Allow-Headers', 'Content-Type, Last-Event-ID, Authorization')
      ctx.set('Access-Control-Max-Age', '86400')
      ctx.status = 204
      return
    }
    await next()
  })

  // Shutdown waits for these, so an acknowledged POST is never cut off.
  app.use(async (_ctx: Context, next: Next) => {
    const work = next()
    inFlight.add(work)
    try {
      await work
    } finally {
      inFlight.delete(work)
    }
  })

  app.use(protocolRoutes(routes))

  return {
    app,
    options: resolved,
    async listen (port = 0, host) {
      const listening = createServer(app.callback())
      await new Promise<void>((resolve, reject) => {
        listening.once('error', reject)
        listening.listen(port, host, () => resolve())
      })
      server = listening
      const address = listening.address() as AddressInfo
      const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address
      return { server: listening, port: address.port, url: `http://${shownHost}:${address.port}` }
    },
    async close () {
      routes.closing = true
      const stopped = server === null ? Promise.resolve() : new Promise<void>(resolve => server?.close(() => resolve()))
      for (const stream of routes.streams) stream.end()
      const deadline = new Promise<void>(resolve => setTimeout(resolve, resolved.shutdownTimeoutMs).unref())
      await Promise.race([Promise.allSettled([...inFlight, ...[...routes.streams].map(s => s.done)]), deadline])
      // Every request has been answered and every stream ended: what is left is idle.
      server?.closeAllConnections()
      await stopped
      await resolved.store.close()
    }
  }
}
