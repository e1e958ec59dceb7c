/**
 * The client side of every system, behind two small interfaces:
 * - {@link SyncClient}: a real provider on a `Y.Doc` (y-sse's `SseProvider`, y-websocket's
 *   `WebsocketProvider`, `HocuspocusProvider`), for workloads that edit and converge;
 * - {@link Subscriber}: a light reader that only sees each delivered update's bytes (raw SSE
 *   with eventsource-parser, raw ws speaking the peer's protocol), for workloads with hundreds or
 *   thousands of clients, so the client core is not what is measured.
 */
import { request, Agent, type ClientRequest } from 'node:http'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { WebSocket } from 'ws'
import { createParser } from 'eventsource-parser'
import { WebsocketProvider } from 'y-websocket'
import { HocuspocusProvider, HocuspocusProviderWebsocket, WebSocketStatus } from '@hocuspocus/provider'
import { SseProvider, defaultFetch, type ByteStream, type Fetch } from '../client/index.js'
import { BINARY_CONTENT_TYPE, routes, SseEvent, type SyncEventData } from '../shared/protocol.js'
import { fromBase64 } from '../shared/codec.js'
import type { BenchServer } from './servers.js'
import { ConvergenceError, waitUntil } from './workload.js'

/** A provider-backed client of any system. */
export interface SyncClient {
  doc: Y.Doc
  /** Requests (y-sse POSTs) or WebSocket messages this client sent so far. */
  messagesSent(): number
  /** Resolves once the server's state has been applied. */
  whenSynced(): Promise<void>
  /** Whether the server acknowledged every local change (always true for y-websocket, which has no acks). */
  acked(): boolean
  /**
   * The Yjs update of the last sync (y-sse's sync event, the peers' sync step 2): its size and,
   * for y-sse, how the server made it. Only recorded with `observeSync`.
   */
  lastSync(): { bytes: number; kind: string } | null
  disconnect(): void
  /**
   * Whether the connection is down, so that `connect()` opens a new one: a WebSocket provider's
   * `disconnect()` only starts closing, and its `connect()` does nothing until the close is done.
   */
  disconnected(): boolean
  connect(): void
  destroy(): void
}

/** What a client's instrumentation records. */
interface Observed {
  sent: number
  sync: { bytes: number; kind: string } | null
}

/**
 * A WebSocket class for a provider's `WebSocketPolyfill` that counts the messages it sends and,
 * when asked, records the size of sync step 2 (Hocuspocus prefixes every message with the document name).
 */
const instrumentedWebSocket = (observed: Observed, observeSync: boolean, prefixed: boolean) =>
  class InstrumentedWebSocket extends WebSocket {
    constructor (address: string | URL, protocols?: string | string[]) {
      super(address, protocols)
      const send = this.send.bind(this) as (...args: unknown[]) => void
      this.send = ((...args: unknown[]) => {
        observed.sent++
        send(...args)
      }) as WebSocket['send']
      if (!observeSync) return
      this.on('message', (data: Buffer | ArrayBuffer) => {
        const decoder = decoding.createDecoder(data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.length))
        if (prefixed) decoding.readVarString(decoder)
        if (decoding.readVarUint(decoder) !== MESSAGE_SYNC || decoding.readVarUint(decoder) !== SYNC_STEP2) return
        observed.sync = { bytes: decoding.readVarUint8Array(decoder).length, kind: 'state vector' }
      })
    }
  }

/**
 * The provider's default `fetch` (in Node, its `node:http` client), counting POSTs and, when
 * asked, reading each event stream's sync event on the side.
 */
const instrumentedFetch = (observed: Observed, observeSync: boolean): Fetch => async (url, init) => {
  if (init.method === 'POST') observed.sent++
  const response = await defaultFetch()(url, init)
  const { body } = response
  if (!observeSync || init.method === 'POST' || body === null) return response
  const parser = createParser({
    onEvent: ({ event, data }) => {
      if (event !== SseEvent.sync) return
      // Providers share a multiplexed stream by default, whose events start with a document tag line.
      const sync = JSON.parse(data.startsWith('{') ? data : data.slice(data.indexOf('\n') + 1)) as SyncEventData
      observed.sync = { bytes: fromBase64(sync.update).length, kind: sync.resume }
    }
  })
  const decoder = new TextDecoder()
  const observedBody: ByteStream = {
    getReader: () => {
      const reader = body.getReader()
      return {
        read: async () => {
          const chunk = await reader.read()
          if (!chunk.done) parser.feed(decoder.decode(chunk.value, { stream: true }))
          return chunk
        },
        releaseLock: () => reader.releaseLock()
      }
    },
    cancel: reason => body.cancel(reason)
  }
  return { ok: response.ok, status: response.status, headers: response.headers, body: observedBody, arrayBuffer: () => response.arrayBuffer(), json: () => response.json() }
}

const onceTrue = (check: () => boolean, subscribe: (listener: () => void) => void): Promise<void> =>
  new Promise(resolve => {
    if (check()) return resolve()
    subscribe(() => { if (check()) resolve() })
  })

/** Creates a connected provider client of `system` on document `docId`; `observeSync` records {@link SyncClient.lastSync}. */
export const syncClient = (server: BenchServer, docId: string, options: { observeSync?: boolean } = {}): SyncClient => {
  const client = providerClient(server, docId, options)
  // A client that never syncs must fail the run, not hang it.
  return { ...client, whenSynced: () => withTimeout(client.whenSynced(), SYNC_TIMEOUT_MS, `${server.system} client of ${docId} not synced`) }
}

const SYNC_TIMEOUT_MS = 60_000

const withTimeout = <T>(promise: Promise<T>, ms: number, what: string): Promise<T> => {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new ConvergenceError(`${what} within ${ms / 1000} s`)), ms) })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

const providerClient = (server: BenchServer, docId: string, { observeSync = false }: { observeSync?: boolean }): SyncClient => {
  const observed: Observed = { sent: 0, sync: null }
  const doc = new Y.Doc()
  const common = { doc, messagesSent: () => observed.sent, lastSync: () => observed.sync }
  switch (server.system) {
    case 'sse-floor': {
      // The floor keeps nothing and sends nothing back: its client only writes, always "synced".
      const writer = new FloorWriter(server, docId, doc, observed)
      return { ...common, whenSynced: async () => {}, acked: () => writer.acked(), disconnect: () => {}, disconnected: () => true, connect: () => {}, destroy: () => writer.destroy() }
    }
    case 'y-sse': {
      const provider = new SseProvider(server.url, docId, doc, { fetch: instrumentedFetch(observed, observeSync) })
      return {
        ...common,
        whenSynced: () => provider.whenSynced(),
        acked: () => provider.synced && provider.unsyncedChanges === 0,
        disconnect: () => provider.disconnect(),
        disconnected: () => provider.status === 'disconnected',
        connect: () => { void provider.connect() },
        destroy: () => provider.destroy()
      }
    }
    case 'y-websocket': {
      const polyfill = instrumentedWebSocket(observed, observeSync, false)
      const provider = new WebsocketProvider(server.wsUrl, docId, doc, { WebSocketPolyfill: polyfill as never, disableBc: true })
      return {
        ...common,
        whenSynced: () => onceTrue(() => provider.synced, listener => provider.on('sync', listener)),
        acked: () => true,
        disconnect: () => provider.disconnect(),
        disconnected: () => provider.ws === null,
        connect: () => provider.connect(),
        destroy: () => provider.destroy()
      }
    }
    case 'hocuspocus': {
      const socket = new HocuspocusProviderWebsocket({ url: server.wsUrl, WebSocketPolyfill: instrumentedWebSocket(observed, observeSync, true) })
      const provider = new HocuspocusProvider({ websocketProvider: socket, name: docId, document: doc })
      provider.attach()
      return {
        ...common,
        whenSynced: () => onceTrue(() => provider.isSynced, listener => provider.on('synced', listener)),
        acked: () => provider.isSynced && provider.unsyncedChanges === 0,
        disconnect: () => socket.disconnect(),
        disconnected: () => socket.status === WebSocketStatus.Disconnected,
        connect: () => { void socket.connect() },
        destroy: () => {
          provider.destroy()
          socket.destroy()
        }
      }
    }
  }
}

/** How long a warm-up connection may take to close, or to sync again. */
const WARM_TIMEOUT_MS = 10_000

/**
 * Opens and closes `count` connections to a scratch document of `server`, one after another: a
 * provider that reconnects, or for the floor a light reader ({@link subscriber}). A server that
 * has been up a while has run its connection code many times and V8 has optimized it (only after
 * many calls), where the few rounds of a workload's own warm-up leave it in the interpreter; this
 * gives every server, the floor's too, the same start.
 */
export const warmConnections = async (server: BenchServer, count: number): Promise<void> => {
  const docId = `warm-${Date.now()}`
  if (server.system === 'sse-floor') {
    for (let i = 0; i < count; i++) {
      const reader = subscriber(server, docId, () => {})
      await reader.ready
      reader.close()
    }
    return
  }
  const client = syncClient(server, docId, { observeSync: true })
  try {
    await client.whenSynced()
    client.doc.getText('t').insert(0, 'warm')
    for (let i = 0; i < count; i++) {
      client.disconnect()
      await waitUntil(() => client.disconnected(), WARM_TIMEOUT_MS, () => `${server.system} client still connected`)
      const before = client.lastSync()
      client.connect()
      await client.whenSynced()
      // Each round must be a new connection's sync, not the old one's flag.
      await waitUntil(() => client.lastSync() !== before, WARM_TIMEOUT_MS, () => `${server.system} client reconnected without a new sync`)
    }
  } finally {
    client.destroy()
  }
}

/** A light reader of one document. */
export interface Subscriber {
  /** Resolves once the initial state arrived (sync event, or sync step 2). */
  ready: Promise<void>
  /**
   * Sends an update: a POST for y-sse (resolves once stored), a sync message on the socket for the
   * peers (resolves once sent; they acknowledge nothing).
   */
  write(update: Uint8Array): Promise<void>
  close(): void
}

/** Called with the bytes of every update a subscriber receives (the initial state included). */
export type OnUpdate = (update: Uint8Array) => void

/** One agent for every raw SSE reader: no pool limit, so thousands of streams can be open. */
const agent = new Agent({ keepAlive: true, maxSockets: Infinity })

const MESSAGE_SYNC = 0
const MESSAGE_AUTH = 2
const SYNC_STEP1 = 0
const SYNC_STEP2 = 1
const SYNC_UPDATE = 2
const AUTH_TOKEN = 0
/** An empty state vector: "send me everything". */
const EMPTY_STATE_VECTOR = Y.encodeStateVector(new Y.Doc())

const message = (write: (encoder: encoding.Encoder) => void): Uint8Array => {
  const encoder = encoding.createEncoder()
  write(encoder)
  return encoding.toUint8Array(encoder)
}

const syncStep1 = (encoder: encoding.Encoder): void => {
  encoding.writeVarUint(encoder, MESSAGE_SYNC)
  encoding.writeVarUint(encoder, SYNC_STEP1)
  encoding.writeVarUint8Array(encoder, EMPTY_STATE_VECTOR)
}

const syncUpdate = (encoder: encoding.Encoder, update: Uint8Array): void => {
  encoding.writeVarUint(encoder, MESSAGE_SYNC)
  encoding.writeVarUint(encoder, SYNC_UPDATE)
  encoding.writeVarUint8Array(encoder, update)
}

/** Reads a y-protocols sync message; hands over step 2 and update payloads, says whether it was step 2. */
const readSync = (decoder: decoding.Decoder, onUpdate: OnUpdate): boolean => {
  const kind = decoding.readVarUint(decoder)
  if (kind !== SYNC_STEP2 && kind !== SYNC_UPDATE) return false
  onUpdate(decoding.readVarUint8Array(decoder))
  return kind === SYNC_STEP2
}

/** Opens a light reader of `docId`. */
export const subscriber = (server: BenchServer, docId: string, onUpdate: OnUpdate): Subscriber => {
  let resolveReady!: () => void
  let rejectReady!: (error: Error) => void
  const ready = new Promise<void>((resolve, reject) => { resolveReady = resolve; rejectReady = reject })
  switch (server.system) {
    case 'y-sse':
    case 'sse-floor': {
      const parser = createParser({
        onEvent: ({ event, data }) => {
          if (event === SseEvent.update) onUpdate(fromBase64(data))
          else if (event === SseEvent.sync) {
            onUpdate(fromBase64((JSON.parse(data) as SyncEventData).update))
            resolveReady()
          }
        }
      })
      const req: ClientRequest = request(`${server.url}${routes.events(docId)}`, { agent, headers: { Accept: 'text/event-stream' } }, res => {
        if (res.statusCode !== 200) rejectReady(new Error(`events: HTTP ${res.statusCode}`))
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => parser.feed(chunk))
        res.on('error', () => {})
      })
      req.on('error', error => rejectReady(error))
      req.end()
      return { ready, write: update => postUpdate(server, docId, update), close: () => req.destroy() }
    }
    case 'y-websocket': {
      const ws = new WebSocket(`${server.wsUrl}/${docId}`)
      ws.binaryType = 'arraybuffer'
      ws.on('open', () => ws.send(message(syncStep1)))
      ws.on('message', (data: ArrayBuffer) => {
        const decoder = decoding.createDecoder(new Uint8Array(data))
        if (decoding.readVarUint(decoder) === MESSAGE_SYNC && readSync(decoder, onUpdate)) resolveReady()
      })
      ws.on('error', error => rejectReady(error))
      return { ready, write: async update => ws.send(message(encoder => syncUpdate(encoder, update))), close: () => ws.terminate() }
    }
    case 'hocuspocus': {
      const ws = new WebSocket(server.wsUrl)
      ws.binaryType = 'arraybuffer'
      ws.on('open', () => {
        // Hocuspocus wants a token message per document before anything else, then the sync handshake.
        ws.send(message(encoder => {
          encoding.writeVarString(encoder, docId)
          encoding.writeVarUint(encoder, MESSAGE_AUTH)
          encoding.writeVarUint(encoder, AUTH_TOKEN)
          encoding.writeVarString(encoder, '')
        }))
        ws.send(message(encoder => {
          encoding.writeVarString(encoder, docId)
          syncStep1(encoder)
        }))
      })
      ws.on('message', (data: ArrayBuffer) => {
        const decoder = decoding.createDecoder(new Uint8Array(data))
        decoding.readVarString(decoder)
        if (decoding.readVarUint(decoder) === MESSAGE_SYNC && readSync(decoder, onUpdate)) resolveReady()
      })
      ws.on('error', error => rejectReady(error))
      const write = async (update: Uint8Array): Promise<void> => ws.send(message(encoder => {
        encoding.writeVarString(encoder, docId)
        syncUpdate(encoder, update)
      }))
      return { ready, write, close: () => ws.terminate() }
    }
  }
}

/** POSTs one update to a y-sse server (or the floor) with the provider's default `fetch`. */
export const postUpdate = async (server: BenchServer, docId: string, update: Uint8Array): Promise<void> => {
  const response = await defaultFetch()(`${server.url}${routes.updates(docId)}`, {
    method: 'POST',
    headers: { 'Content-Type': BINARY_CONTENT_TYPE },
    body: update as Uint8Array<ArrayBuffer>,
    // A POST that never gets its answer fails the workload instead of hanging it.
    signal: AbortSignal.timeout(SYNC_TIMEOUT_MS)
  })
  await response.arrayBuffer()
  if (!response.ok) throw new Error(`POST ${docId}: HTTP ${response.status}`)
}

/** Gives the floor's document its answer ahead of time (`sse-floor.ts`): what its `GET` and its streams' sync event send. */
export const putFloorAnswer = async (server: BenchServer, docId: string, body: Uint8Array): Promise<void> => {
  const response = await fetch(`${server.url}${routes.document(docId)}`, {
    method: 'PUT',
    headers: { 'Content-Type': BINARY_CONTENT_TYPE },
    body: body as Uint8Array<ArrayBuffer>,
    signal: AbortSignal.timeout(SYNC_TIMEOUT_MS)
  })
  await response.arrayBuffer()
  if (!response.ok) throw new Error(`PUT ${docId}: HTTP ${response.status}`)
}

/** `GET /docs/:docId` over `node:http`, the lightest client on Node: the body's bytes. */
export const getDocument = (server: BenchServer, docId: string): Promise<Uint8Array> => new Promise((resolve, reject) => {
  const req = request(`${server.url}${routes.document(docId)}`, { agent }, res => {
    const chunks: Buffer[] = []
    res.on('data', (chunk: Buffer) => chunks.push(chunk))
    res.on('end', () => res.statusCode === 200 ? resolve(new Uint8Array(Buffer.concat(chunks))) : reject(new Error(`GET ${docId}: HTTP ${res.statusCode}`)))
    res.on('error', reject)
  })
  req.on('error', reject)
  req.setTimeout(SYNC_TIMEOUT_MS, () => req.destroy(new Error(`GET ${docId}: no answer`)))
  req.end()
})

/**
 * The floor's writer (`sse-floor.ts`): POSTs what its document changes as the provider's outbox
 * does, one POST in flight and whatever accumulates meanwhile merged into the next, so that under
 * load the floor's events carry several changes as y-sse's do.
 */
class FloorWriter {
  private pending: Uint8Array[] = []
  private inFlight = false
  private failure: Error | null = null

  constructor (private readonly server: BenchServer, private readonly docId: string, private readonly doc: Y.Doc, private readonly observed: Observed) {
    doc.on('update', this.onUpdate)
  }

  /** Whether every change was POSTed and answered; throws once a POST failed. */
  acked (): boolean {
    if (this.failure !== null) throw this.failure
    return !this.inFlight && this.pending.length === 0
  }

  destroy (): void {
    this.doc.off('update', this.onUpdate)
  }

  private readonly onUpdate = (update: Uint8Array): void => {
    this.pending.push(update)
    this.flush()
  }

  private flush (): void {
    if (this.inFlight || this.pending.length === 0) return
    const update = Y.mergeUpdates(this.pending.splice(0))
    this.inFlight = true
    this.observed.sent++
    postUpdate(this.server, this.docId, update).then(() => {
      this.inFlight = false
      this.flush()
    }, (error: Error) => { this.failure = error })
  }
}
