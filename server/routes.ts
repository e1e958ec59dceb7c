/**
 * The protocol's routes as Koa middleware. Each handler checks its input completely before it
 * touches the store, so bad input never leaves a trace.
 */
import { promisify } from 'node:util'
import { gzip as gzipCallback } from 'node:zlib'
import type { Context, Next } from 'koa'
import * as Y from 'yjs'
import {
  BINARY_CONTENT_TYPE, MAX_AWARENESS_BYTES, MAX_STREAM_DOCS, Param, UPDATE_ENCODING_HEADER, isValidDocId, isValidEventId, routes,
  type PostUpdateResponse, type UpdateEncoding
} from '../shared/protocol.js'
import { ErrorCode, ProtocolError } from '../shared/errors.js'
import { fromBase64Url } from '../shared/codec.js'
import { decodeAwarenessEntries } from '../shared/awareness.js'
import { EMPTY_EVENT_ID, checkStateVector, type ResumePoint } from './store/history.js'
import type { StreamPositions } from './store/types.js'
import { validateUpdate } from './validate.js'
import { EventsStream, SingleDocumentFraming, type StreamFraming, type StreamedDocument } from './events-stream.js'
import { MultiplexFraming, positionsOf } from './multiplex.js'
import { admitStream, openEventStream, type SseWriter } from './sse.js'
import type { SyncServerOptions } from './options.js'
import type { Access, Grant } from './auth.js'
import { RateLimiter, StreamCounter } from './limits.js'
import { changesPrefixOf, changesScope, getChanges } from './changes.js'

const MULTIPLEXED_EVENTS_ROUTE = routes.multiplexedEvents()
const CHANGES_ROUTE = routes.changes()
const DOC_ROUTE = /^\/docs\/([^/]+)(\/updates|\/events|\/awareness)?$/

/**
 * Whether a request opens a stream held open for long (a document's or several documents' events,
 * or the change feed), from its method and request target: what the server's `callback()` serves
 * outside Koa's request handling. A target it does not recognize goes through Koa, which answers
 * it the same way.
 */
export const opensStream = (method: string | undefined, url: string | undefined): boolean => {
  if (method !== 'GET' || url === undefined) return false
  const query = url.indexOf('?')
  const path = query < 0 ? url : url.slice(0, query)
  return path === MULTIPLEXED_EVENTS_ROUTE || path === CHANGES_ROUTE || DOC_ROUTE.exec(path)?.[2] === '/events'
}

/** A streaming response (events or changes) that the server ends on shutdown. */
export interface OpenStream {
  /** Ends it, asking the client to reconnect after `retryMs`. */
  end(retryMs: number): void
  /** Resolves once it has closed and cleaned up. */
  readonly done: Promise<void>
}

/** Shared state of the routes: the options, the open streams and the per-client limits. */
export interface RouteContext {
  options: SyncServerOptions
  streams: Set<OpenStream>
  /** Set on shutdown: new requests get 503. */
  closing: boolean
  limiter: RateLimiter
  streamsPerClient: StreamCounter
}

/** The state of the routes for `options`. */
export const routeContext = (options: SyncServerOptions): RouteContext => ({
  options,
  streams: new Set(),
  closing: false,
  limiter: new RateLimiter(options.rateLimitPerSecond),
  streamsPerClient: new StreamCounter(options.maxStreamsPerClient)
})

/** A request allowed on a document, and who made it. */
interface Allowed {
  docId: string
  grant: Grant
  /** The client's name for per-client limits. */
  client: string
}

const docIdOf = (raw: string): string => {
  let docId: string
  try {
    docId = decodeURIComponent(raw)
  } catch {
    docId = raw
  }
  if (!isValidDocId(docId)) throw new ProtocolError(ErrorCode.badDocId, 'document IDs are 1-128 characters of A-Z a-z 0-9 . _ ~ -')
  return docId
}

/**
 * Reads a binary body of at most `limit` bytes within `timeoutMs`; 415, 413, 408 and 400 for the
 * wrong type, size, a body that never ends, or none.
 */
const readBinaryBody = async (ctx: Context, limit: number, timeoutMs: number): Promise<Uint8Array> => {
  const type = (ctx.get('content-type').split(';')[0] ?? '').trim().toLowerCase()
  if (type !== BINARY_CONTENT_TYPE) throw new ProtocolError(ErrorCode.unsupportedMediaType, `send the body as ${BINARY_CONTENT_TYPE}`)
  const declared = Number(ctx.get('content-length') || NaN)
  if (declared > limit) throw tooLarge(ctx, limit)
  const req = ctx.req
  const chunks: Buffer[] = []
  let size = 0
  await new Promise<void>((resolve, reject) => {
    const finish = (error?: Error): void => {
      clearTimeout(timer)
      req.off('data', onData).off('end', onEnd).off('error', finish)
      if (error === undefined) resolve()
      else {
        req.pause()
        reject(error)
      }
    }
    const onData = (chunk: Buffer): void => {
      size += chunk.length
      if (size > limit) finish(tooLarge(ctx, limit))
      else chunks.push(chunk)
    }
    const onEnd = (): void => finish()
    const timer = setTimeout(() => {
      ctx.set('Connection', 'close')
      finish(new ProtocolError(ErrorCode.requestTimeout, `the body did not arrive within ${timeoutMs} ms`))
    }, timeoutMs)
    req.on('data', onData).on('end', onEnd).on('error', finish)
  })
  if (size === 0) throw new ProtocolError(ErrorCode.emptyBody, 'the body is empty')
  return new Uint8Array(Buffer.concat(chunks, size))
}

const tooLarge = (ctx: Context, limit: number): ProtocolError => {
  // The rest of the body is not read: the connection cannot carry another request.
  ctx.set('Connection', 'close')
  return new ProtocolError(ErrorCode.tooLarge, `the body exceeds ${limit} bytes`)
}

const postUpdate = async (ctx: Context, { docId }: Allowed, { options }: RouteContext): Promise<void> => {
  const bytes = await readBinaryBody(ctx, options.maxUpdateBytes, options.bodyTimeoutMs)
  const started = performance.now()
  const ranges = validateUpdate(bytes)
  const body: PostUpdateResponse = { eventId: await options.store.append(docId, { bytes, ranges }) }
  options.metrics?.updateStored(bytes.length, (performance.now() - started) / 1000)
  ctx.body = body
}

const postAwareness = async (ctx: Context, { docId }: Allowed, { options }: RouteContext): Promise<void> => {
  const bytes = await readBinaryBody(ctx, MAX_AWARENESS_BYTES, options.bodyTimeoutMs)
  let entries
  try {
    entries = decodeAwarenessEntries(bytes)
  } catch (cause) {
    throw new ProtocolError(ErrorCode.malformedAwareness, `not a valid awareness update: ${(cause as Error).message}`, { cause })
  }
  if (entries.length > 0) await options.store.publishAwareness(docId, entries)
  ctx.status = 204
}

/** The `Last-Event-ID` header, else the `lastEventId` query parameter; `400` when malformed. */
const lastEventIdOf = (ctx: Context): string | undefined => {
  const header = ctx.get(Param.lastEventIdHeader)
  const query = ctx.query[Param.lastEventId]
  const lastEventId = header !== '' ? header : typeof query === 'string' && query !== '' ? query : undefined
  if (lastEventId !== undefined && !isValidEventId(lastEventId)) {
    throw new ProtocolError(ErrorCode.badEventId, 'event IDs are at most 128 characters of A-Z a-z 0-9 . _ -')
  }
  return lastEventId
}

const isGiven = (value: string | undefined): value is string => value !== undefined && value !== ''

/** A base64url state vector from the query; `400 bad-state-vector` when it is not one. */
const stateVectorOf = (sv: string, name: string): Uint8Array => {
  try {
    return checkStateVector(fromBase64Url(sv))
  } catch (cause) {
    throw new ProtocolError(ErrorCode.badStateVector, `${name} is not a base64url Yjs state vector: ${(cause as Error).message}`, { cause })
  }
}

const resumePointOf = (ctx: Context): ResumePoint => {
  const lastEventId = lastEventIdOf(ctx)
  const sv = ctx.query[Param.stateVector]
  if (sv === undefined || sv === '') return { lastEventId }
  if (typeof sv !== 'string') throw new ProtocolError(ErrorCode.badStateVector, 'sv is given more than once')
  return { lastEventId, stateVector: stateVectorOf(sv, Param.stateVector) }
}

/**
 * A per-document list of a multiplexed stream's query (`awareness`, `lastEventIds`, `svs`): one
 * entry per document in the order of `docs`, empty entries for none; all empty when absent.
 */
const perDocument = (ctx: Context, name: string, count: number, code: ErrorCode, what: string): string[] => {
  const raw = queryValue(ctx, name, code, `give ${name} once, as a comma-separated list with ${what}`)
  if (raw === '') return Array.from({ length: count }, () => '')
  const entries = raw.split(',')
  if (entries.length !== count) throw new ProtocolError(code, `give one entry in ${name} per document (${what})`)
  return entries
}

const BAD_AWARENESS_ID = 'awareness must be the client\'s numeric awareness clientID'

const parseAwarenessId = (raw: string): number | null => {
  if (raw === '') return null
  if (!/^\d{1,16}$/.test(raw) || !Number.isSafeInteger(Number(raw))) throw new ProtocolError(ErrorCode.badAwarenessId, BAD_AWARENESS_ID)
  return Number(raw)
}

/** A single query parameter's value; `''` when absent, `400` with `code` when given more than once. */
const queryValue = (ctx: Context, name: string, code: ErrorCode, message: string): string => {
  const raw = ctx.query[name]
  if (raw === undefined) return ''
  if (typeof raw !== 'string') throw new ProtocolError(code, message)
  return raw
}

const awarenessIdOf = (ctx: Context): number | null => parseAwarenessId(queryValue(ctx, Param.awareness, ErrorCode.badAwarenessId, BAD_AWARENESS_ID))

/**
 * Streams `docs` on this response until it closes; `framing` frames their events. Counts the
 * stream against the client's limit (`429` beyond it).
 */
const streamEvents = async (
  ctx: Context,
  docs: readonly StreamedDocument[],
  client: string,
  expiresAt: number | undefined,
  routes: RouteContext,
  framingOf: (writer: SseWriter) => StreamFraming
): Promise<void> => {
  const { options, streams, streamsPerClient } = routes
  if (!admitStream(ctx, streamsPerClient, client, options.maxStreamsPerClient)) return
  const metrics = options.metrics
  const writer = openEventStream(ctx, metrics)
  const stream = new EventsStream(options.store, docs, writer, framingOf(writer), options, options.logger)
  streams.add(stream)
  for (const { docId } of docs) metrics?.streamOpened(docId)
  // 'close' comes at most once; `on` spares the wrapper `once` would keep for the life of the stream.
  ctx.res.on('close', () => {
    streamsPerClient.release(client)
    for (const { docId } of docs) metrics?.streamClosed(docId)
    stream.closed().finally(() => streams.delete(stream)).catch(() => {})
  })
  await stream.open(expiresAt)
}

const getEvents = async (ctx: Context, { docId, grant, client }: Allowed, routes: RouteContext): Promise<void> => {
  const doc = { docId, from: resumePointOf(ctx), awarenessId: awarenessIdOf(ctx) }
  await streamEvents(ctx, [doc], client, grant.expiresAt, routes, writer => new SingleDocumentFraming(writer))
}

/** `GET /events?docs=a,b,c`: several documents on one stream (docs/protocol.md, "Several documents on one stream"). */
const getMultiplexedEvents = async (ctx: Context, routes: RouteContext): Promise<void> => {
  const docIds = queryValue(ctx, Param.docs, ErrorCode.badDocId, 'give docs once, as a comma-separated list').split(',')
  if (docIds.length > MAX_STREAM_DOCS) throw new ProtocolError(ErrorCode.badDocId, `at most ${MAX_STREAM_DOCS} documents per stream`)
  for (const docId of docIds) docIdOf(docId)
  if (new Set(docIds).size !== docIds.length) throw new ProtocolError(ErrorCode.badDocId, 'a document is listed twice')
  const awarenessIds = perDocument(ctx, Param.awareness, docIds.length, ErrorCode.badAwarenessId, 'the numeric awareness clientID or nothing')
    .map(parseAwarenessId)
  const ownIds = perDocument(ctx, Param.lastEventIds, docIds.length, ErrorCode.badEventId, 'an event ID or nothing')
  for (const id of ownIds) if (id !== '' && !isValidEventId(id)) throw new ProtocolError(ErrorCode.badEventId, 'event IDs are at most 128 characters of A-Z a-z 0-9 . _ -')
  const stateVectors = perDocument(ctx, Param.stateVectors, docIds.length, ErrorCode.badStateVector, 'a base64url state vector or nothing')
    .map(sv => sv === '' ? undefined : stateVectorOf(sv, Param.stateVectors))
  const lastEventId = lastEventIdOf(ctx)
  const { options } = routes
  const grants = await Promise.all(docIds.map(docId => authorize(ctx, docId, 'read', options)))
  const client = grants[0]?.subject ?? ctx.ip
  rateLimit(ctx, client, routes)
  // The stream's resume point (what a native EventSource sends) first, then each document's own.
  const known = await positionsOf(options.store, lastEventId) ?? {}
  const initial: StreamPositions = {}
  docIds.forEach((docId, i) => {
    const position = known[docId] ?? ownIds[i]
    if (isGiven(position)) initial[docId] = position
  })
  const docs = docIds.map((docId, i) => ({ docId, from: { lastEventId: initial[docId], stateVector: stateVectors[i] }, awarenessId: awarenessIds[i] ?? null }))
  const expiries = grants.flatMap(grant => grant.expiresAt === undefined ? [] : [grant.expiresAt])
  const expiresAt = expiries.length === 0 ? undefined : Math.min(...expiries)
  await streamEvents(ctx, docs, client, expiresAt, routes, writer => new MultiplexFraming(writer, options.store, initial))
}

/** The update format a `GET /docs/:docId` asks for; `400 bad-encoding` for another. */
const encodingOf = (ctx: Context): UpdateEncoding => {
  const given = ctx.query[Param.encoding]
  if (given === undefined || given === 'v1' || given === 'v2') return given ?? 'v1'
  throw new ProtocolError(ErrorCode.badEncoding, 'encoding is v1 or v2, given once')
}

const getDocument = async (ctx: Context, { docId }: Allowed, { options }: RouteContext): Promise<void> => {
  const encoding = encodingOf(ctx)
  const doc = await options.store.getDocument(docId, encoding) ?? (ctx.query[Param.missing] === 'empty' ? EMPTY_DOCUMENT[encoding] : null)
  if (doc === null) throw new ProtocolError(ErrorCode.notFound, `document ${docId} has never been written`)
  ctx.type = BINARY_CONTENT_TYPE
  if (encoding === 'v2') ctx.set(UPDATE_ENCODING_HEADER, 'v2')
  ctx.vary('Accept-Encoding')
  if (doc.update.length >= GZIP_MIN_BYTES && ctx.acceptsEncodings('gzip', 'identity') === 'gzip') {
    ctx.set('Content-Encoding', 'gzip')
    // The same document in other bytes: a weak validator.
    ctx.set('ETag', `W/"${doc.eventId}"`)
    ctx.body = await gzipped(doc.update)
    return
  }
  ctx.set('ETag', `"${doc.eventId}"`)
  ctx.body = Buffer.from(doc.update.buffer, doc.update.byteOffset, doc.update.length)
}

const gzip = promisify(gzipCallback)

/** A document nobody wrote: the empty update, before every event ID, in either format. */
const EMPTY_DOCUMENT: Record<UpdateEncoding, { eventId: string; update: Uint8Array }> = {
  v1: { eventId: EMPTY_EVENT_ID, update: new Uint8Array([0, 0]) },
  v2: { eventId: EMPTY_EVENT_ID, update: Y.convertUpdateFormatV1ToV2(new Uint8Array([0, 0])) }
}

/** Smaller states go as they are: compressing them saves less than it costs. */
const GZIP_MIN_BYTES = 1024

/**
 * Compressed states by the state they compress. The store hands out the same bytes for a document
 * until its head moves, so each head is compressed once (off the event loop, in libuv's pool).
 */
const compressed = new WeakMap<Uint8Array, Promise<Buffer>>()

const gzipped = (update: Uint8Array): Promise<Buffer> => {
  let result = compressed.get(update)
  if (result === undefined) {
    result = gzip(update)
    compressed.set(update, result)
  }
  return result
}

/** Liveness: the process serves and its store answers; stays 200 while draining on shutdown. */
const getHealth = async (ctx: Context, { options }: RouteContext): Promise<void> => {
  try {
    await options.store.ping()
  } catch (cause) {
    throw new ProtocolError(ErrorCode.storeUnavailable, 'the document store is unavailable', { cause })
  }
  ctx.body = { ok: true }
}

/** Readiness: take traffic only when the store answers and the server is not shutting down. */
const getReady = async (ctx: Context, routes: RouteContext): Promise<void> => {
  if (routes.closing) throw new ProtocolError(ErrorCode.shuttingDown, 'the server is shutting down')
  await getHealth(ctx, routes)
}

const getMetrics = async (ctx: Context, { options }: RouteContext): Promise<void> => {
  if (options.metrics === null) throw new ProtocolError(ErrorCode.notFound, 'metrics are turned off')
  ctx.type = options.metrics.registry.contentType
  ctx.body = await options.metrics.registry.metrics()
}

const authorize = (ctx: Context, docId: string, access: Access, options: SyncServerOptions): Promise<Grant> =>
  options.authorize({ headers: ctx.headers, query: new URLSearchParams(ctx.querystring) }, docId, access)

/** Counts a request against the client's rate limit; `429` beyond it. */
const rateLimit = (ctx: Context, client: string, { options, limiter }: RouteContext): void => {
  const waitMs = limiter.take(client)
  if (waitMs > 0) {
    ctx.set('Retry-After', String(Math.ceil(waitMs / 1000)))
    throw new ProtocolError(ErrorCode.tooManyRequests, `more than ${options.rateLimitPerSecond} requests per second`)
  }
}

/** Authorizes the request and applies the per-client rate limit. */
const allow = async (ctx: Context, docId: string, access: Access, routes: RouteContext): Promise<Allowed> => {
  const grant = await authorize(ctx, docId, access, routes.options)
  const client = grant.subject ?? ctx.ip
  rateLimit(ctx, client, routes)
  return { docId, grant, client }
}

const methodNotAllowed = (ctx: Context, allow: string): void => {
  ctx.status = 405
  ctx.set('Allow', allow)
}

const SERVICE_ROUTES: Record<string, (ctx: Context, routes: RouteContext) => Promise<void>> = {
  '/healthz': getHealth,
  '/readyz': getReady,
  '/metrics': getMetrics
}

/** The protocol's routes; requests outside `/docs/` and the service routes pass to the next middleware. */
export const protocolRoutes = (routes: RouteContext) => async (ctx: Context, next: Next): Promise<void> => {
  const service = SERVICE_ROUTES[ctx.path]
  if (service !== undefined) {
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return methodNotAllowed(ctx, 'GET, HEAD')
    return service(ctx, routes)
  }
  if (ctx.path === CHANGES_ROUTE) {
    if (ctx.method !== 'GET') return methodNotAllowed(ctx, 'GET')
    if (routes.closing) throw new ProtocolError(ErrorCode.shuttingDown, 'the server is shutting down')
    const prefix = changesPrefixOf(ctx)
    const lastEventId = lastEventIdOf(ctx)
    const { grant, client } = await allow(ctx, changesScope(prefix), 'read', routes)
    return getChanges(ctx, { prefix, lastEventId, grant, client }, routes)
  }
  if (ctx.path === MULTIPLEXED_EVENTS_ROUTE) {
    if (ctx.method !== 'GET') return methodNotAllowed(ctx, 'GET')
    if (routes.closing) throw new ProtocolError(ErrorCode.shuttingDown, 'the server is shutting down')
    return getMultiplexedEvents(ctx, routes)
  }
  if (!ctx.path.startsWith('/docs/')) return next()
  const match = DOC_ROUTE.exec(ctx.path)
  if (match === null) throw new ProtocolError(ErrorCode.notFound, `no route ${ctx.method} ${ctx.path}`)
  if (routes.closing) throw new ProtocolError(ErrorCode.shuttingDown, 'the server is shutting down')
  const docId = docIdOf(match[1] as string)
  const reading = ctx.method === 'GET' || ctx.method === 'HEAD'
  switch (match[2]) {
    case '/updates':
      return ctx.method === 'POST' ? postUpdate(ctx, await allow(ctx, docId, 'write', routes), routes) : methodNotAllowed(ctx, 'POST')
    case '/awareness':
      return ctx.method === 'POST' ? postAwareness(ctx, await allow(ctx, docId, 'write', routes), routes) : methodNotAllowed(ctx, 'POST')
    case '/events':
      return ctx.method === 'GET' ? getEvents(ctx, await allow(ctx, docId, 'read', routes), routes) : methodNotAllowed(ctx, 'GET')
    default:
      return reading ? getDocument(ctx, await allow(ctx, docId, 'read', routes), routes) : methodNotAllowed(ctx, 'GET, HEAD')
  }
}
