/**
 * Event streams: `GET /docs/:docId/events` (one document) and `GET /events` (several on one
 * response). Per document: subscribe first, then sync, then live updates, with no gap and no
 * duplicate at the seam; presence in and out; bounded memory for slow readers.
 */
import { randomUUID } from 'node:crypto'
import { SseEvent, type SyncEventData } from '../shared/protocol.js'
import { toBase64 } from '../shared/codec.js'
import { timerDelay } from '../shared/timers.js'
import { encodeAwarenessEntries, removalOf } from '../shared/awareness.js'
import { mergeAll, parseEventId, type ResumePoint } from './store/history.js'
import type { DocEvent, DocumentStore } from './store/types.js'
import { toFrame, type SseFrame, type SseWriter } from './sse.js'
import type { Logger } from './logger.js'
import type { Metrics } from './metrics.js'

/** What an events stream needs from the server's options. */
export interface EventsStreamOptions {
  heartbeatMs: number
  retryMs: number
  maxBufferedBytes: number
  metrics: Metrics | null
}

/** When the update with this event ID was stored (ms since the epoch), read off its stream ID. */
const storedAtOf = (eventId: string): number | null => {
  const ms = Number(parseEventId(eventId)?.id.split('-')[0])
  return Number.isFinite(ms) && ms > 0 ? ms : null
}

/** What a stored update costs to send, computed once however many streams carry it. */
export interface EncodedUpdate {
  base64: string
  /** When it was stored (for the delivery-age metric). */
  storedAt: number | null
  /** The plain `update` event of single-document streams, framed on first use. */
  frame?: SseFrame
  /** The data of the multiplexed `update` event (document tag, then the update), encoded on first use. */
  taggedBody?: Buffer
}

/**
 * Encoded updates by the update they carry. The store hands the same update object to every
 * stream of a document, so base64, framing and the event ID's parse happen once per update, not
 * once per stream; an entry lives as long as its update.
 */
const encodedUpdates = new WeakMap<Uint8Array, EncodedUpdate>()

/** The base64 and storage time of an update, cached for every stream that sends it. */
export const encodeUpdate = (eventId: string, update: Uint8Array): EncodedUpdate => {
  let encoded = encodedUpdates.get(update)
  if (encoded === undefined) {
    encoded = { base64: toBase64(update), storedAt: storedAtOf(eventId) }
    encodedUpdates.set(update, encoded)
  }
  return encoded
}

/**
 * How a response frames the events of its documents: plain events for a single-document stream
 * ({@link SingleDocumentFraming}), events tagged with their document on a multiplexed one.
 */
export interface StreamFraming {
  sync(docId: string, eventId: string, data: SyncEventData): void
  update(docId: string, eventId: string, update: EncodedUpdate): void
  awareness(docId: string, update: Uint8Array): void
  /**
   * Called when the stream opens, to set up resume state the framing needs; the documents' events
   * do not wait for it, and its failure only loses that state until {@link persist} saves it.
   */
  open?(): Promise<void>
  /** Called on every heartbeat and once on close, to keep that resume state up to date. */
  persist?(): Promise<void>
}

/**
 * The framing of `GET /docs/:docId/events`: the protocol's events, untagged, under the document's
 * event IDs. A class, not an object of closures: a server holds thousands of idle streams.
 */
export class SingleDocumentFraming implements StreamFraming {
  constructor (private readonly writer: SseWriter) {}

  sync (_docId: string, eventId: string, data: SyncEventData): void {
    this.writer.send({ event: SseEvent.sync, id: eventId, data: JSON.stringify(data) })
  }

  update (_docId: string, eventId: string, update: EncodedUpdate): void {
    update.frame ??= toFrame({ event: SseEvent.update, id: eventId, data: update.base64 })
    this.writer.sendFrame(update.frame)
  }

  awareness (_docId: string, update: Uint8Array): void {
    this.writer.send({ event: SseEvent.awareness, data: toBase64(update) })
  }
}

interface QueuedUpdate {
  eventId: string
  update: Uint8Array
}

/** The bytes held back for a slow reader, counted across all documents of one response. */
interface Backlog {
  bytes: number
}

/** Where one document of a stream starts, and the awareness client reading it (if any). */
export interface StreamedDocument {
  docId: string
  from: ResumePoint
  awarenessId: number | null
}

/**
 * One document within a response: subscribe first, then sync, then live updates, with no gap
 * and no duplicate at the seam; presence in and out; held-back updates merged for a slow reader.
 */
class DocumentFeed {
  /** Names this stream's presence record; drawn only for a client that has presence. */
  private connectionId: string | null = null
  /** The sync event's ID once it was written; the subscription may repeat updates up to it. */
  private syncedAt: string | null = null
  /**
   * Set once an update past the sync event arrived: the subscription delivers in storage order,
   * so from then on none can repeat what the sync covered and the comparison is skipped.
   */
  private pastSeam = false
  /** Events that arrived before the sync event was written. */
  private early: DocEvent[] = []
  /** Updates held back while the client is not reading, merged when it drains. */
  private queue: QueuedUpdate[] = []
  private unsubscribe: (() => void) | null = null
  /** Set once the response closed: work still in flight must undo itself. */
  private released = false

  constructor (
    private readonly store: DocumentStore,
    private readonly doc: StreamedDocument,
    private readonly writer: SseWriter,
    private readonly framing: StreamFraming,
    private readonly backlog: Backlog,
    private readonly options: EventsStreamOptions,
    private readonly logger: Logger
  ) {}

  private get docId (): string {
    return this.doc.docId
  }

  private presenceId (): string {
    this.connectionId ??= randomUUID()
    return this.connectionId
  }

  /**
   * Subscribes, syncs and greets with the presence of others; rejects when the subscription or
   * the sync fails, which ends the stream before its sync event. The sync event waits for nothing
   * else: the client's presence and the others' go to the store alongside, and once the client is
   * synced, a failure of either only loses that (the heartbeat stores the presence again).
   */
  async open (): Promise<void> {
    const { docId, awarenessId } = this.doc
    const unsubscribe = await this.store.subscribe(docId, event => this.onEvent(event))
    if (this.released) return unsubscribe()
    this.unsubscribe = unsubscribe
    // Subscribed first, so nothing stored from now on is missed; the rest needs no order among itself.
    if (awarenessId !== null) {
      this.store.openPresence(docId, awarenessId, this.presenceId())
        .catch(error => this.logger.warn('storing presence failed', { docId, error: String(error) }))
    }
    const others = this.store.awareness(docId)
    others.catch(() => {}) // awaited below, unless the sync fails
    const sync = await this.store.sync(docId, this.doc.from)
    if (this.released || this.writer.closed) return
    this.framing.sync(docId, sync.eventId, { update: toBase64(sync.update), stateVector: toBase64(sync.stateVector), resume: sync.resume })
    this.options.metrics?.resumed(sync.resume)
    this.syncedAt = sync.eventId
    const early = this.early
    this.early = []
    for (const event of early) this.onEvent(event)
    let present
    try {
      present = (await others).filter(e => e.clientID !== awarenessId)
    } catch (error) {
      this.logger.warn('reading presence failed', { docId, error: String(error) })
      return
    }
    if (present.length > 0 && !this.writer.closed) this.framing.awareness(docId, encodeAwarenessEntries(present))
  }

  private onEvent (event: DocEvent): void {
    if (this.writer.closed) return
    if (this.syncedAt === null) {
      this.early.push(event)
      return
    }
    switch (event.type) {
      case 'update':
        // Updates the sync event already covered arrive again from the subscription: skip them.
        if (!this.pastSeam) {
          if (!this.store.isAfter(event.eventId, this.syncedAt)) return
          this.pastSeam = true
        }
        if (this.writer.blocked || this.queue.length > 0) this.enqueue(event)
        else this.sendUpdate(event.eventId, event.update)
        return
      case 'awareness':
        // Presence is ephemeral and renewed: a reader that is behind loses nothing by missing some.
        if (!this.writer.blocked) this.framing.awareness(this.docId, event.update)
        return
      case 'reset':
        // The document's history was replaced; the client resumes and gets the new state.
        this.writer.end()
    }
  }

  private enqueue (update: QueuedUpdate): void {
    this.queue.push(update)
    this.backlog.bytes += update.update.length
    if (this.backlog.bytes > this.options.maxBufferedBytes) {
      this.logger.warn('closing a stream that does not keep up', { docId: this.docId, queuedBytes: this.backlog.bytes })
      this.writer.end()
    }
  }

  /** Sends everything held back as one merged update under the newest event ID (the client reads again). */
  flushQueue (): void {
    const [first] = this.queue
    const last = this.queue.at(-1)
    if (first === undefined || last === undefined || this.writer.closed) return
    const update = mergeAll(this.queue.map(q => q.update))
    for (const queued of this.queue) this.backlog.bytes -= queued.update.length
    this.queue = []
    this.framing.update(this.docId, last.eventId, encodeUpdate(last.eventId, update))
    const storedAt = storedAtOf(first.eventId)
    if (storedAt !== null) this.options.metrics?.backlogDelivered(storedAt)
  }

  private sendUpdate (eventId: string, update: Uint8Array): void {
    const encoded = encodeUpdate(eventId, update)
    this.framing.update(this.docId, eventId, encoded)
    if (encoded.storedAt !== null) this.options.metrics?.updateDelivered(encoded, encoded.storedAt)
  }

  /** Keeps the client's presence record alive while its stream is open. */
  renewPresence (): void {
    const { docId, awarenessId } = this.doc
    if (awarenessId === null) return
    this.store.openPresence(docId, awarenessId, this.presenceId())
      .catch(error => this.logger.warn('presence renewal failed', { docId, error: String(error) }))
  }

  /** Cleans up after the response closed: subscription, and presence of a client gone for good. */
  async closed (): Promise<void> {
    this.released = true
    this.unsubscribe?.()
    for (const queued of this.queue) this.backlog.bytes -= queued.update.length
    this.queue = []
    this.early = []
    const { docId, awarenessId } = this.doc
    try {
      if (awarenessId !== null && await this.store.closePresence(docId, awarenessId, this.presenceId())) {
        const last = (await this.store.awareness(docId)).find(e => e.clientID === awarenessId)
        if (last !== undefined) await this.store.publishAwareness(docId, [removalOf(last)])
      }
    } catch (error) {
      this.logger.warn('presence cleanup failed', { docId, error: String(error) })
    }
  }
}

/**
 * One events response carrying one or several documents: they share its writer, its heartbeat,
 * its expiry and its backlog limit; `done` resolves once it has closed and cleaned up.
 */
export class EventsStream {
  readonly done: Promise<void>
  private readonly feeds: DocumentFeed[]
  private heartbeat: NodeJS.Timeout | null = null
  private expiry: NodeJS.Timeout | null = null
  private finish!: () => void

  constructor (
    store: DocumentStore,
    docs: readonly StreamedDocument[],
    private readonly writer: SseWriter,
    private readonly framing: StreamFraming,
    private readonly options: EventsStreamOptions,
    private readonly logger: Logger
  ) {
    this.done = new Promise(resolve => { this.finish = resolve })
    const backlog: Backlog = { bytes: 0 }
    this.feeds = docs.map(doc => new DocumentFeed(store, doc, writer, framing, backlog, options, logger))
    writer.onDrain(() => { for (const feed of this.feeds) feed.flushQueue() })
  }

  /**
   * Runs the stream until the client or the server closes it, or `expiresAt` (ms since the epoch)
   * passes: the client then reconnects with a fresh token.
   */
  async open (expiresAt?: number): Promise<void> {
    // Jittered per connection, so clients of a restarted server do not reconnect in lockstep.
    this.writer.sendWithNext({ retry: this.options.retryMs + Math.floor(Math.random() * this.options.retryMs) })
    this.heartbeat = setInterval(() => this.beat(), this.options.heartbeatMs)
    if (expiresAt !== undefined) this.expiry = setTimeout(() => this.writer.end(), timerDelay(expiresAt - Date.now()))
    // The framing's set-up first: a multiplexed stream's starting positions go to the store before
    // any document's sync event. Its failure only costs the resume state, which the heartbeat saves.
    void this.logFailedSave(this.framing.open?.())
    try {
      await Promise.all(this.feeds.map(feed => feed.open()))
    } catch (error) {
      this.logger.warn('events stream failed', { error: String(error) })
      this.writer.end()
    }
  }

  private beat (): void {
    if (!this.writer.blocked) this.writer.comment()
    for (const feed of this.feeds) feed.renewPresence()
    this.persist()
  }

  private persist (): Promise<void> {
    return this.logFailedSave(this.framing.persist?.())
  }

  /** A save of the framing's resume state that logs its failure: the next heartbeat saves again. */
  private logFailedSave (save: Promise<void> | undefined): Promise<void> {
    return save?.catch(error => this.logger.warn('saving the stream\'s resume state failed', { error: String(error) })) ?? Promise.resolve()
  }

  /** Cleans up after the response closed: subscriptions, timers, and presence of clients gone for good. */
  async closed (): Promise<void> {
    if (this.heartbeat !== null) clearInterval(this.heartbeat)
    if (this.expiry !== null) clearTimeout(this.expiry)
    try {
      await Promise.all([...this.feeds.map(feed => feed.closed()), this.persist()])
    } finally {
      this.finish()
    }
  }

  /** Ends the stream from the server side (shutdown), asking the client to reconnect after `retryMs`. */
  end (retryMs: number): void {
    if (!this.writer.blocked) this.writer.send({ retry: retryMs })
    this.writer.end()
  }
}
