/**
 * One `GET /docs/:docId/events` stream: subscribe first, then sync, then live updates, with no gap
 * and no duplicate at the seam; presence in and out; bounded memory for slow readers.
 */
import { randomUUID } from 'node:crypto'
import { SseEvent, type SyncEventData } from '../shared/protocol.js'
import { toBase64 } from '../shared/codec.js'
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

/** Timers cannot wait longer than this (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1

/** When the update with this event ID was stored (ms since the epoch), read off its stream ID. */
const storedAtOf = (eventId: string): number | null => {
  const ms = Number(parseEventId(eventId)?.id.split('-')[0])
  return Number.isFinite(ms) && ms > 0 ? ms : null
}

/** An `update` event ready to write, and when its update was stored (for the delivery-age metric). */
interface UpdateFrame {
  frame: SseFrame
  storedAt: number | null
}

/**
 * Formatted `update` events by the update they carry. The store hands the same update object to
 * every stream of a document, so base64, framing and the event ID's parse happen once per update,
 * not once per stream; an entry lives as long as its update.
 */
const updateFrames = new WeakMap<Uint8Array, UpdateFrame>()

const updateFrameOf = (eventId: string, update: Uint8Array): UpdateFrame => {
  let frame = updateFrames.get(update)
  if (frame === undefined) {
    frame = { frame: toFrame({ event: SseEvent.update, id: eventId, data: toBase64(update) }), storedAt: storedAtOf(eventId) }
    updateFrames.set(update, frame)
  }
  return frame
}

interface QueuedUpdate {
  eventId: string
  update: Uint8Array
}

/** A live events stream; `done` resolves once it has closed and cleaned up. */
export class EventsStream {
  readonly done: Promise<void>
  private readonly connectionId = randomUUID()
  private head: string | null = null
  /** Events that arrived before the sync event was written. */
  private early: DocEvent[] = []
  /** Updates held back while the client is not reading, merged when it drains. */
  private queue: QueuedUpdate[] = []
  private queuedBytes = 0
  private unsubscribe: (() => void) | null = null
  private heartbeat: NodeJS.Timeout | null = null
  private expiry: NodeJS.Timeout | null = null
  /** Set once the response closed: work still in flight must undo itself. */
  private released = false
  private finish!: () => void

  constructor (
    private readonly store: DocumentStore,
    private readonly docId: string,
    private readonly writer: SseWriter,
    private readonly awarenessId: number | null,
    private readonly options: EventsStreamOptions,
    private readonly logger: Logger
  ) {
    this.done = new Promise(resolve => { this.finish = resolve })
    writer.onDrain(() => this.flushQueue())
  }

  /**
   * Runs the stream until the client or the server closes it, or `expiresAt` (ms since the epoch)
   * passes: the client then reconnects with a fresh token.
   */
  async open (from: ResumePoint, expiresAt?: number): Promise<void> {
    // Jittered per connection, so clients of a restarted server do not reconnect in lockstep.
    this.writer.send({ retry: this.options.retryMs + Math.floor(Math.random() * this.options.retryMs) })
    this.heartbeat = setInterval(() => this.beat(), this.options.heartbeatMs)
    if (expiresAt !== undefined) this.expiry = setTimeout(() => this.writer.end(), Math.min(MAX_TIMER_MS, Math.max(0, expiresAt - Date.now())))
    try {
      const unsubscribe = await this.store.subscribe(this.docId, event => this.onEvent(event))
      if (this.released) return unsubscribe()
      this.unsubscribe = unsubscribe
      if (this.awarenessId !== null) await this.store.openPresence(this.docId, this.awarenessId, this.connectionId)
      const sync = await this.store.sync(this.docId, from)
      if (this.released) return
      const data: SyncEventData = { update: toBase64(sync.update), stateVector: toBase64(sync.stateVector), resume: sync.resume }
      this.writer.send({ event: SseEvent.sync, id: sync.eventId, data: JSON.stringify(data) })
      this.options.metrics?.resumed(sync.resume)
      this.head = sync.eventId
      const early = this.early
      this.early = []
      for (const event of early) this.onEvent(event)
      const present = (await this.store.awareness(this.docId)).filter(e => e.clientID !== this.awarenessId)
      if (present.length > 0) this.writer.send({ event: SseEvent.awareness, data: toBase64(encodeAwarenessEntries(present)) })
    } catch (error) {
      this.logger.warn('events stream failed', { docId: this.docId, error: String(error) })
      this.writer.end()
    }
  }

  private onEvent (event: DocEvent): void {
    if (this.writer.closed) return
    if (this.head === null) {
      this.early.push(event)
      return
    }
    switch (event.type) {
      case 'update':
        // Updates the sync event already covered arrive again from the subscription: skip them.
        if (!this.store.isAfter(event.eventId, this.head)) return
        this.head = event.eventId
        if (this.writer.blocked || this.queue.length > 0) this.enqueue(event)
        else this.sendUpdate(event.eventId, event.update)
        return
      case 'awareness':
        // Presence is ephemeral and renewed: a reader that is behind loses nothing by missing some.
        if (!this.writer.blocked) this.writer.send({ event: SseEvent.awareness, data: toBase64(event.update) })
        return
      case 'reset':
        // The document's history was replaced; the client resumes and gets the new state.
        this.writer.end()
    }
  }

  private enqueue (update: QueuedUpdate): void {
    this.queue.push(update)
    this.queuedBytes += update.update.length
    if (this.queuedBytes > this.options.maxBufferedBytes) {
      this.logger.warn('closing a stream that does not keep up', { docId: this.docId, queuedBytes: this.queuedBytes })
      this.writer.end()
    }
  }

  /** Sends everything held back as one merged update under the newest event ID. */
  private flushQueue (): void {
    const last = this.queue.at(-1)
    if (last === undefined || this.writer.closed) return
    const update = mergeAll(this.queue.map(q => q.update))
    this.queue = []
    this.queuedBytes = 0
    this.sendUpdate(last.eventId, update)
  }

  private sendUpdate (eventId: string, update: Uint8Array): void {
    const { frame, storedAt } = updateFrameOf(eventId, update)
    this.writer.sendFrame(frame)
    if (storedAt !== null) this.options.metrics?.delivered((Date.now() - storedAt) / 1000)
  }

  private beat (): void {
    if (!this.writer.blocked) this.writer.comment()
    if (this.awarenessId !== null) {
      this.store.openPresence(this.docId, this.awarenessId, this.connectionId)
        .catch(error => this.logger.warn('presence renewal failed', { docId: this.docId, error: String(error) }))
    }
  }

  /** Cleans up after the response closed: subscription, timers, and presence of a client gone for good. */
  async closed (): Promise<void> {
    this.released = true
    if (this.heartbeat !== null) clearInterval(this.heartbeat)
    if (this.expiry !== null) clearTimeout(this.expiry)
    this.unsubscribe?.()
    this.queue = []
    this.early = []
    try {
      if (this.awarenessId !== null && await this.store.closePresence(this.docId, this.awarenessId, this.connectionId)) {
        const last = (await this.store.awareness(this.docId)).find(e => e.clientID === this.awarenessId)
        if (last !== undefined) await this.store.publishAwareness(this.docId, [removalOf(last)])
      }
    } catch (error) {
      this.logger.warn('presence cleanup failed', { docId: this.docId, error: String(error) })
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
