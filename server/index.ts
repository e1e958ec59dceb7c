/**
 * The y-sse server: `createSyncServer` builds a Koa app serving the protocol over any
 * {@link DocumentStore}. Embed it with `app` (mount it in an existing Koa app) or run it with
 * `listen`.
 */
import { randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createSecureServer, type Http2SecureServer, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2'
import type { AddressInfo, Socket } from 'node:net'
import Koa, { type Context, type Next } from 'koa'
import compose, { type ComposedMiddleware } from 'koa-compose'
import { pipeline, Readable } from 'node:stream'
import { ErrorCode, ProtocolError, type ErrorBody } from '../shared/errors.js'
import { UPDATE_ENCODING_HEADER } from '../shared/protocol.js'
import { MemoryStore } from './store/memory-store.js'
import { opensStream, protocolRoutes, routeContext } from './routes.js'
import { allowAll } from './auth.js'
import { Metrics } from './metrics.js'
import { serverDefaults, type SyncServerOptions } from './options.js'
import { silentLogger } from './logger.js'
import { holdHeader, holdVary, setHeldHeaders } from './held-headers.js'

export { serverDefaults, type SyncServerOptions } from './options.js'
export type { DocumentStore, DocEvent, DocListener, ValidatedUpdate } from './store/types.js'
export type { ResumePoint, SyncResult } from './store/history.js'
export { storeDefaults, type StoreOptions } from './store/log-store.js'
export type { ChangeFeed, FeedEntry, FeedRead } from './store/change-feed.js'
export { MemoryStore } from './store/memory-store.js'
export { RedisStore, type RedisStoreOptions } from './store/redis-store.js'
export { validateUpdate } from './validate.js'
export { createJsonLogger, foldRepeats, silentLogger, type FoldingLogger, type Logger, type LogLevel } from './logger.js'
export { createJwtAuthorizer, issueToken, allowAll, docsCover, tokenOf, type Access, type Authorize, type AuthRequest, type Grant, type JwtKey, type SigningKey, type TokenClaims } from './auth.js'
export { Metrics, type StoreObserver } from './metrics.js'

/** A request listener for Node's HTTP(S) servers, HTTP/1.1 and HTTP/2 alike. */
export type RequestListener = (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse) => void

/** A running or embeddable sync server. */
export interface SyncServer {
  /**
   * The Koa app: mount it, or pass `app.callback()` to any Node HTTP(S) server. Middleware added
   * after the protocol's routes gets the request ID and CORS headers on the responses Koa sends
   * for it (server/held-headers.ts). Prefer {@link callback} where you would pass `app.callback()`:
   * it holds event streams with less memory.
   */
  app: Koa
  /**
   * A request listener for a Node HTTP(S) server, as `app.callback()` is, which {@link listen}
   * uses. It serves the requests that open streams (events, changes) through the same middleware
   * and routes, without Koa's own request handling: Koa keeps each request's context, and the
   * listeners that tell it when the response finished, for as long as the response is open, about
   * 3 KB of heap for every held stream. Every other request goes to Koa.
   */
  callback(): RequestListener
  options: SyncServerOptions
  /**
   * Listens on `port` (0 picks a free one); resolves with the bound address. With `tls` (PEM key
   * and certificate) it serves HTTP/2 and HTTP/1.1 over TLS, so browsers are not limited to six
   * connections per origin.
   */
  listen(port?: number, host?: string, tls?: { key: string | Buffer; cert: string | Buffer }): Promise<{ server: Server | Http2SecureServer; port: number; url: string }>
  /**
   * Stops accepting requests, ends event streams with a random `retry:` within `drainSpreadMs`
   * (clients reconnect elsewhere, spread out), lets in-flight requests finish, then closes the store.
   */
  close(): Promise<void>
}

/** The `Access-Control-Allow-Origin` value for a request's `Origin`, or `null` for none. */
const allowedOrigin = (allowed: SyncServerOptions['corsOrigins'], origin: string): string | null => {
  if (allowed === null) return null
  if (allowed === '*') return '*'
  return allowed.includes(origin) ? origin : null
}

const isClientGone = (error: unknown): boolean => {
  const code = (error as NodeJS.ErrnoException).code
  return code === 'ECONNRESET' || code === 'EPIPE' || code === 'ERR_STREAM_PREMATURE_CLOSE'
}

/** Statuses whose response has no body, as Koa strips them. */
const EMPTY_STATUSES = new Set([204, 205, 304])

/**
 * Sends the answer the middleware left on a context it did not hand to a stream, as Koa's own
 * `respond` does for a GET: the protocol's routes leave an error's JSON body, and a middleware in
 * front of them may leave a status, a string, a buffer or a stream.
 */
const respond = (ctx: Context): void => {
  const { res } = ctx
  if (ctx.respond === false) return
  if (!ctx.writable) {
    res.end()
    return
  }
  if (EMPTY_STATUSES.has(ctx.status)) {
    ctx.body = null
    res.end()
    return
  }
  const body: unknown = ctx.body
  if (body === null || body === undefined) {
    const text = ctx.req.httpVersionMajor >= 2 ? String(ctx.status) : ctx.message || String(ctx.status)
    if (!res.headersSent) {
      ctx.type = 'text'
      ctx.length = Buffer.byteLength(text)
    }
    res.end(text)
  } else if (typeof body === 'string' || Buffer.isBuffer(body)) {
    res.end(body)
  } else if (body instanceof Readable) {
    pipeline(body, res, error => { if (error !== null && error !== undefined) ctx.onerror(error) })
  } else {
    const json = JSON.stringify(body)
    if (!res.headersSent) ctx.length = Buffer.byteLength(json)
    res.end(json)
  }
}

/** Accepts a client's request ID when it looks like one, so logs correlate across services. */
const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/

/** Creates the server; nothing listens until {@link SyncServer.listen}. */
export const createSyncServer = (options: Partial<SyncServerOptions> = {}): SyncServer => {
  const logger = options.logger ?? silentLogger
  const metrics = options.metrics === undefined ? new Metrics() : options.metrics
  const resolved: SyncServerOptions = {
    ...serverDefaults,
    store: options.store ?? new MemoryStore({ logger, observer: metrics ?? undefined }),
    authorize: allowAll,
    logger,
    ...options,
    metrics
  }
  const routes = routeContext(resolved)
  const app = new Koa({ proxy: resolved.trustProxy })
  const inFlight = new Set<Promise<unknown>>()
  const sockets = new Set<Socket>()
  let server: Server | Http2SecureServer | null = null

  app.on('error', (error: unknown) => {
    // A client that goes away mid-response is normal life for a streaming server, not a failure.
    if (!isClientGone(error)) logger.error('request failed', { error: String(error) })
  })

  // Request IDs, and errors as the protocol's JSON error body, in this one place; the headers
  // held for every response go on it here, once the route has run (server/held-headers.ts).
  const requestScope = async (ctx: Context, next: Next): Promise<void> => {
    const given = ctx.get('x-request-id')
    const requestId = REQUEST_ID.test(given) ? given : randomUUID()
    holdHeader(ctx, 'X-Request-Id', requestId)
    try {
      await next()
    } catch (error) {
      const protocolError = ProtocolError.is(error) ? error : new ProtocolError(ErrorCode.internal, 'internal error', { cause: error })
      const fields = { requestId, method: ctx.method, path: ctx.path, status: protocolError.status, code: protocolError.code }
      if (!ProtocolError.is(error)) logger.error('unexpected error', { ...fields, error: String(error), stack: (error as Error).stack })
      else if (protocolError.status >= 500) logger.warn(protocolError.message, { ...fields, cause: String(protocolError.cause) })
      else logger.debug(protocolError.message, fields)
      resolved.metrics?.refusedRequest(protocolError.code)
      if (protocolError.status === 401) ctx.set('WWW-Authenticate', `Bearer error="invalid_token", error_description="${protocolError.message.replaceAll('"', "'")}"`)
      const body: ErrorBody = { error: { code: protocolError.code, message: protocolError.message } }
      ctx.status = protocolError.status
      ctx.body = body
    }
    setHeldHeaders(ctx)
  }

  const cors = async (ctx: Context, next: Next): Promise<void> => {
    const origin = allowedOrigin(resolved.corsOrigins, ctx.get('origin'))
    if (origin !== null) {
      holdHeader(ctx, 'Access-Control-Allow-Origin', origin)
      holdHeader(ctx, 'Access-Control-Expose-Headers', `ETag, Retry-After, X-Request-Id, ${UPDATE_ENCODING_HEADER}`)
    }
    // Answers differ by origin unless every origin gets the same `*`.
    if (resolved.corsOrigins !== '*' && resolved.corsOrigins !== null) holdVary(ctx, 'Origin')
    if (ctx.method === 'OPTIONS' && origin !== null) {
      ctx.set('Access-Control-Allow-Methods', 'GET, HEAD, POST, OPTIONS')
      ctx.set('Access-Control-Allow-Headers', 'Content-Type, Last-Event-ID, Authorization, X-Request-Id')
      ctx.set('Access-Control-Max-Age', '86400')
      ctx.status = 204
      return
    }
    await next()
  }

  // Shutdown waits for these, so an acknowledged POST is never cut off.
  const tracked = async (_ctx: Context, next: Next): Promise<void> => {
    const work = next()
    inFlight.add(work)
    try {
      await work
    } finally {
      inFlight.delete(work)
    }
  }

  app.use(requestScope).use(cors).use(tracked).use(protocolRoutes(routes))

  /**
   * Serves a request that opens a stream through the app's middleware, composed as Koa composes
   * it, without Koa's request handling, so nothing keeps its context once the stream runs: the
   * middleware hands the response to the stream, or leaves an answer on the context (an error),
   * sent as Koa sends it; an error that escapes every middleware goes to the context's `onerror`.
   */
  const serveStream = (run: ComposedMiddleware<Context>, req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse): void => {
    // The requests Koa serves start as 404 too: a route that sets nothing answers the same either way.
    res.statusCode = 404
    const ctx = app.createContext(req as IncomingMessage, res as ServerResponse)
    run(ctx).then(() => respond(ctx)).catch((error: unknown) => ctx.onerror(error as Error))
  }

  const callback = (): RequestListener => {
    // Koa composes the middleware as it is when the callback is made: so does the stream's path.
    const koa = app.callback()
    const run = compose(app.middleware)
    return (req, res) => {
      if (opensStream(req.method, req.url)) serveStream(run, req, res)
      else void koa(req, res)
    }
  }

  return {
    app,
    callback,
    options: resolved,
    async listen (port = 0, host, tls) {
      // HTTP/2 needs TLS in browsers; HTTP/1.1 clients keep working on the same port.
      const listening: Server | Http2SecureServer = tls === undefined
        ? createServer(callback())
        : createSecureServer({ ...tls, allowHTTP1: true, settings: { maxConcurrentStreams: 1000 } }, callback())
      // One listener for every socket, not a closure and a once-wrapper each: an idle event stream
      // holds its socket for hours, and there may be tens of thousands.
      function forget (this: Socket): void {
        sockets.delete(this)
      }
      listening.on(tls === undefined ? 'connection' : 'secureConnection', (socket: Socket) => {
        sockets.add(socket)
        socket.on('close', forget)
      })
      await new Promise<void>((resolve, reject) => {
        listening.once('error', reject)
        listening.listen(port, host, () => resolve())
      })
      server = listening
      const address = listening.address() as AddressInfo
      const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address
      return { server: listening, port: address.port, url: `${tls === undefined ? 'http' : 'https'}://${shownHost}:${address.port}` }
    },
    async close () {
      routes.closing = true
      const stopped = server === null ? Promise.resolve() : new Promise<void>(resolve => server?.close(() => resolve()))
      // Spread the reconnects of this instance's clients over the drain window, so the other
      // instances are not hit by all of them at once.
      for (const stream of routes.streams) stream.end(Math.floor(Math.random() * resolved.drainSpreadMs))
      const deadline = new Promise<void>(resolve => setTimeout(resolve, resolved.shutdownTimeoutMs).unref())
      await Promise.race([Promise.allSettled([...inFlight, ...[...routes.streams].map(s => s.done)]), deadline])
      // Every request has been answered and every stream ended: what is left is idle.
      for (const socket of sockets) socket.destroy()
      await stopped
      await resolved.store.close()
    }
  }
}
