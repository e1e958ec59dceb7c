/**
 * The protocol's routes as Koa middleware. Each handler checks its input completely before it
 * touches the store, so bad input never leaves a trace.
 */
import type { Context, Next } from 'koa'
import { BINARY_CONTENT_TYPE, MAX_AWARENESS_BYTES, Param, isValidDocId, isValidEventId, type PostUpdateResponse } from '../shared/protocol.js'
import { ErrorCode, ProtocolError } from '../shared/errors.js'
import { fromBase64Url } from '../shared/codec.js'
import { decodeAwarenessEntries } from '../shared/awareness.js'
import { checkStateVector, type ResumePoint } from './store/history.js'
import { validateUpdate } from './validate.js'
import { EventsStream } from './events-stream.js'
import { SseWriter, eventStreamHeaders } from './sse.js'
import type { SyncServerOptions } from './options.js'

const DOC_ROUTE = /^\/docs\/([^/]+)(\/updates|\/events|\/awareness)?$/

/** Shared state of the routes: the options and the streams and requests in flight. */
export interface RouteContext {
  options: SyncServerOptions
  streams: Set<EventsStream>
  /** Set on shutdown: new requests get 503. */
  closing: boolean
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

/** Reads a binary body of at most `limit` bytes; 415, 413 and 400 for the wrong type, size or none. */
const readBinaryBody = async (ctx: Context, limit: number): Promise<Uint8Array> => {
  const type = (ctx.get('content-type').split(';')[0] ?? '').trim().toLowerCase()
  if (type !== BINARY_CONTENT_TYPE) throw new ProtocolError(ErrorCode.unsupportedMediaType, `send the body as ${BINARY_CONTENT_TYPE}`)
  const declared = Number(ctx.get('content-length') || NaN)
  if (declared > limit) throw tooLarge(ctx, limit)
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > limit) throw tooLarge(ctx, limit)
    chunks.push(chunk)
  }
  if (size === 0) throw new ProtocolError(ErrorCode.emptyBody, 'the body is empty')
  return new Uint8Array(Buffer.concat(chunks, size))
}

const tooLarge = (ctx: Context, limit: number): ProtocolError => {
  // The rest of the body is not read: the connection cannot carry another request.
  ctx.set('Connection', 'close')
  return new ProtocolError(ErrorCode.tooLarge, `the body exceeds ${limit} bytes`)
}

const postUpdate = async (ctx: Context, docId: string, { options }: RouteContext): Promise<void> => {
  const bytes = await readBinaryBody(ctx, options.maxUpdateBytes)
  const ranges = validateUpdate(bytes)
  const body: PostUpdateResponse = { eventId: await options.store.append(docId, { bytes, ranges }) }
  ctx.body = body
}

const postAwareness = async (ctx: Context, docId: string, { options }: RouteContext): Promise<void> => {
  const bytes = await readBinaryBody(ctx, MAX_AWARENESS_BYTES)
  let entries
  try {
    entries = decodeAwarenessEntries(bytes)
  } catch (cause) {
    throw new ProtocolError(ErrorCode.malformedAwareness, `not a valid awareness update: ${(cause as Error).message}`, { cause })
  }
  if (entries.length > 0) await options.store.publishAwareness(docId, entries)
  ctx.status = 204
}

const resumePointOf = (ctx: Context): ResumePoint => {
  const header = ctx.get(Param.lastEventIdHeader)
  const query = ctx.query[Param.lastEventId]
  const lastEventId = header !== '' ? header : typeof query === 'string' && query !== '' ? query : undefined
  if (lastEventId !== undefined && !isValidEventId(lastEventId)) {
    throw new ProtocolError(ErrorCode.badEventId, 'event IDs are at most 128 characters of A-Z a-z 0-9 . _ -')
  }
  const sv = ctx.query[Param.stateVector]
  if (sv === undefined || sv === '') return { lastEventId }
  try {
    if (typeof sv !== 'string') throw new TypeError('given more than once')
    return { lastEventId, stateVector: checkStateVector(fromBase64Url(sv)) }
  } catch (cause) {
    throw new ProtocolError(ErrorCode.badStateVector, `sv is not a base64url Yjs state vector: ${(cause as Error).message}`, { cause })
  }
}

const awarenessIdOf = (ctx: Context): number | null => {
  const raw = ctx.query[Param.awareness]
  if (raw === undefined || raw === '') return null
  if (typeof raw !== 'string' || !/^\d{1,16}$/.test(raw) || !Number.isSafeInteger(Number(raw))) {
    throw new ProtocolError(ErrorCode.badAwarenessId, 'awareness must be the client\'s numeric awareness clientID')
  }
  return Number(raw)
}

const getEvents = async (ctx: Context, docId: string, routes: RouteContext): Promise<void> => {
  const from = resumePointOf(ctx)
  const awarenessId = awarenessIdOf(ctx)
  const { options, streams } = routes
  // From here on we write the response ourselves: headers now, events as they come.
  ctx.respond = false
  ctx.req.socket.setNoDelay(true)
  ctx.req.socket.setTimeout(0)
  ctx.res.writeHead(200, eventStreamHeaders(ctx.req.httpVersionMajor))
  const stream = new EventsStream(options.store, docId, new SseWriter(ctx.res), awarenessId, options, options.logger)
  streams.add(stream)
  ctx.res.once('close', () => {
    stream.closed().finally(() => streams.delete(stream)).catch(() => {})
  })
  await stream.open(from)
}

const getDocument = async (ctx: Context, docId: string, { options }: RouteContext): Promise<void> => {
  const doc = await options.store.getDocument(docId)
  if (doc === null) throw new ProtocolError(ErrorCode.notFound, `document ${docId} has never been written`)
  ctx.type = BINARY_CONTENT_TYPE
  ctx.set('ETag', `"${doc.eventId}"`)
  ctx.body = Buffer.from(doc.update.buffer, doc.update.byteOffset, doc.update.length)
}

const getHealth = async (ctx: Context, { options, closing }: RouteContext): Promise<void> => {
  if (closing) throw new ProtocolError(ErrorCode.shuttingDown, 'the server is shutting down')
  try {
    await options.store.ping()
  } catch (cause) {
    throw new ProtocolError(ErrorCode.storeUnavailable, 'the document store is unavailable', { cause })
  }
  ctx.body = { ok: true }
}

const methodNotAllowed = (ctx: Context, allow: string): void => {
  ctx.status = 405
  ctx.set('Allow', allow)
}

/** The protocol's routes; requests outside `/docs/` and `/healthz` pass to the next middleware. */
export const protocolRoutes = (routes: RouteContext) => async (ctx: Context, next: Next): Promise<void> => {
  if (ctx.path === '/healthz') {
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return methodNotAllowed(ctx, 'GET, HEAD')
    return getHealth(ctx, routes)
  }
  if (!ctx.path.startsWith('/docs/')) return next()
  const match = DOC_ROUTE.exec(ctx.path)
  if (match === null) throw new ProtocolError(ErrorCode.notFound, `no route ${ctx.method} ${ctx.path}`)
  if (routes.closing) throw new ProtocolError(ErrorCode.shuttingDown, 'the server is shutting down')
  const docId = docIdOf(match[1] as string)
  switch (match[2]) {
    case '/updates':
      return ctx.method === 'POST' ? postUpdate(ctx, docId, routes) : methodNotAllowed(ctx, 'POST')
    case '/awareness':
      return ctx.method === 'POST' ? postAwareness(ctx, docId, routes) : methodNotAllowed(ctx, 'POST')
    case '/events':
      return ctx.method === 'GET' ? getEvents(ctx, docId, routes) : methodNotAllowed(ctx, 'GET')
    default:
      return ctx.method === 'GET' || ctx.method === 'HEAD' ? getDocument(ctx, docId, routes) : methodNotAllowed(ctx, 'GET, HEAD')
  }
}
