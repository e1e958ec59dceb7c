import * as Y from 'yjs'
import { createParser, type EventSourceMessage } from 'eventsource-parser'
import type { Context, Middleware, Next } from 'koa'
import { afterEach } from 'vitest'
import { createSyncServer, MemoryStore, RedisStore, type RedisStoreOptions, type SyncServer, type SyncServerOptions } from '../../server/index.js'
import type { StoreOptions } from '../../server/store/log-store.js'
import { BINARY_CONTENT_TYPE, routes, type SyncEventData } from '../../shared/protocol.js'
import { fromBase64, toBase64Url } from '../../shared/codec.js'
import { redisUrl, uniquePrefix } from './redis.js'
import { waitFor } from './wait.js'

const cleanups: (() => Promise<void> | void)[] = []

afterEach(async () => {
  // Reverse order: clients before the servers they talk to.
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** Registers work for the end of the current test. */
export const onCleanup = (cleanup: () => Promise<void> | void): void => {
  cleanups.push(cleanup)
}

export interface TestServer {
  /** The running server; replaced by {@link TestServer.restart}. */
  sync: SyncServer
  url: string
  port: number
  prefix: string
  /** Closes the server (streams end, clients reconnect) and starts a new one on the same port and Redis prefix. */
  restart(): Promise<void>
  /** Closes the server (and its store); idempotent. */
  close(): Promise<void>
}

export interface StartOptions {
  server?: Partial<SyncServerOptions>
  store?: Partial<StoreOptions>
  /** Share documents with another test server: reuse its Redis prefix. */
  prefix?: string
  port?: number
  /** Middleware put in front of the protocol's routes (after the error middleware), e.g. an auth check. */
  before?: Middleware
  /** Middleware put after the protocol's routes, e.g. the editor's static files. */
  after?: Middleware
  /** Keep documents in a MemoryStore instead of the test Redis: they are lost on `restart()`. */
  memory?: boolean
  /** Another Redis than the run's, e.g. a private one a test stops, or a cluster's nodes. */
  redis?: RedisStoreOptions['redis']
}

const listen = async (options: StartOptions, prefix: string, port: number): Promise<{ sync: SyncServer; url: string; port: number }> => {
  const store = options.memory === true ? new MemoryStore(options.store) : new RedisStore({ redis: options.redis ?? redisUrl(), prefix, ...options.store })
  const sync = createSyncServer({ store, ...options.server })
  // Index 0 is the error middleware: a rejection still gets the protocol's JSON body.
  if (options.before !== undefined) sync.app.middleware.splice(1, 0, options.before)
  if (options.after !== undefined) sync.app.use(options.after)
  return { sync, ...(await sync.listen(port, '127.0.0.1')) }
}

/** A real server on a free port over the test Redis, closed after the test. */
export const startServer = async (options: StartOptions = {}): Promise<TestServer> => {
  const prefix = options.prefix ?? uniquePrefix('srv')
  const first = await listen(options, prefix, options.port ?? 0)
  let closed = false
  const server: TestServer = {
    sync: first.sync,
    url: first.url,
    port: first.port,
    prefix,
    async restart () {
      await server.sync.close()
      server.sync = (await listen(options, prefix, first.port)).sync
    },
    async close () {
      if (closed) return
      closed = true
      await server.sync.close()
    }
  }
  onCleanup(() => server.close())
  return server
}

/** Koa middleware that answers matching requests itself. */
export const intercept = (answer: (ctx: Context) => boolean): Middleware => async (ctx: Context, next: Next) => {
  if (!answer(ctx)) await next()
}

/** POSTs bytes as an update; returns the response. */
export const postUpdate = (url: string, docId: string, body: Uint8Array, contentType = BINARY_CONTENT_TYPE): Promise<Response> =>
  fetch(url + routes.updates(docId), { method: 'POST', headers: { 'content-type': contentType }, body: body as Uint8Array<ArrayBuffer> })

/** POSTs an update and returns its event ID, failing the test on any other answer. */
export const appendUpdate = async (url: string, docId: string, update: Uint8Array): Promise<string> => {
  const res = await postUpdate(url, docId, update)
  if (res.status !== 200) throw new Error(`POST update answered ${res.status}: ${await res.text()}`)
  return ((await res.json()) as { eventId: string }).eventId
}

export interface EventsOptions {
  lastEventId?: string
  lastEventIdQuery?: string
  stateVector?: Uint8Array
  awareness?: number
}

/** A raw event-stream reader over fetch + eventsource-parser, recording every event and comment. */
export interface EventsReader {
  status: number
  headers: Headers
  events: EventSourceMessage[]
  retries: number[]
  comments: string[]
  /** Raw text received, for framing checks. */
  raw: string
  ended: boolean
  /** The sync event's data, once received. */
  sync(): Promise<SyncEventData & { id: string }>
  /** Events named `name` received so far. */
  named(name: string): EventSourceMessage[]
  /** Calls `listener` for every event received so far and from now on. */
  onEvent(listener: (event: EventSourceMessage) => void): void
  close(): Promise<void>
}

export const openEvents = async (url: string, docId: string, options: EventsOptions = {}): Promise<EventsReader> => {
  const query = new URLSearchParams()
  if (options.lastEventIdQuery !== undefined) query.set('lastEventId', options.lastEventIdQuery)
  if (options.stateVector !== undefined) query.set('sv', toBase64Url(options.stateVector))
  if (options.awareness !== undefined) query.set('awareness', String(options.awareness))
  return readEvents(`${url}${routes.events(docId)}?${query}`, options.lastEventId)
}

/** Opens `GET /events?docs=…` (several documents on one stream), with `Last-Event-ID` when given. */
export const openMultiplexedEvents = (url: string, docIds: readonly string[], lastEventId?: string, params: Record<string, string> = {}): Promise<EventsReader> => {
  const query = new URLSearchParams({ docs: docIds.join(','), ...params })
  return readEvents(`${url}${routes.multiplexedEvents()}?${query}`, lastEventId)
}

/**
 * `fetch` of a stream, sent once more when it went out on a pooled connection the server had just
 * closed (UND_ERR_SOCKET before any answer: a test server restarted while undici still held its
 * idle sockets), as browsers retry a request on a reused connection that fails.
 */
const fetchStream = async (url: string, init: RequestInit): Promise<Response> => {
  try {
    return await fetch(url, init)
  } catch (error) {
    if ((error as { cause?: { code?: string } }).cause?.code !== 'UND_ERR_SOCKET') throw error
    return fetch(url, init)
  }
}

const readEvents = async (streamUrl: string, lastEventId: string | undefined): Promise<EventsReader> => {
  const controller = new AbortController()
  const headers: Record<string, string> = { accept: 'text/event-stream' }
  if (lastEventId !== undefined) headers['last-event-id'] = lastEventId
  const res = await fetchStream(streamUrl, { headers, signal: controller.signal })
  const reader: EventsReader = {
    status: res.status,
    headers: res.headers,
    events: [],
    retries: [],
    comments: [],
    raw: '',
    ended: false,
    async sync () {
      await waitFor(() => reader.events.length > 0 || reader.ended, { message: 'no sync event' })
      const first = reader.events[0]
      if (first?.event !== 'sync') throw new Error(`first event is ${first?.event ?? 'missing'}`)
      return { ...(JSON.parse(first.data) as SyncEventData), id: first.id ?? '' }
    },
    named: name => reader.events.filter(e => e.event === name),
    onEvent (listener) {
      reader.events.forEach(listener)
      listeners.push(listener)
    },
    async close () {
      controller.abort()
      await waitFor(() => reader.ended, { message: 'stream did not end after abort' })
    }
  }
  const listeners: ((event: EventSourceMessage) => void)[] = []
  const parser = createParser({
    onEvent: event => {
      reader.events.push(event)
      for (const listener of listeners) listener(event)
    },
    onRetry: retry => reader.retries.push(retry),
    onComment: comment => reader.comments.push(comment)
  })
  const pump = async (): Promise<void> => {
    const decoder = new TextDecoder()
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        const text = decoder.decode(chunk, { stream: true })
        reader.raw += text
        parser.feed(text)
      }
    } catch {
      // Aborted or cut: `ended` tells the test.
    } finally {
      reader.ended = true
    }
  }
  void pump()
  onCleanup(() => reader.close())
  return reader
}

/** An event of a multiplexed stream, split into its document, the document's event ID, and its data. */
export interface TaggedEvent {
  event: string
  docId: string
  docEventId: string | undefined
  data: string
}

/** Splits the document tag off a multiplexed stream's event. */
export const untag = ({ event, data }: EventSourceMessage): TaggedEvent => {
  const lineEnd = data.indexOf('\n')
  const [docId = '', docEventId] = data.slice(0, lineEnd).split(' ')
  return { event: event ?? 'message', docId, docEventId, data: data.slice(lineEnd + 1) }
}

/** A document fed by an events reader: applies sync and update events as they arrive. */
export const followDoc = (reader: EventsReader): Y.Doc => {
  const doc = new Y.Doc()
  reader.onEvent(event => {
    if (event.event === 'sync') Y.applyUpdate(doc, fromBase64((JSON.parse(event.data) as SyncEventData).update))
    if (event.event === 'update') Y.applyUpdate(doc, fromBase64(event.data))
  })
  return doc
}
