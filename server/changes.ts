/**
 * `GET /changes`: every document's changes (under an optional ID prefix) as one resumable event
 * stream, read from the store's change feed. Each stream keeps its own cursor and reads the feed
 * after it whenever the store says the feed grew, so a lost notification delays a change but
 * never loses it, and a reader that does not keep up is simply read for later (no buffering).
 */
import type { Context } from 'koa'
import { CHANGES_PREFIX_PARAM, ChangesEvent, type ChangeEventData, type ResetEventData } from '../shared/protocol.js'
import { ErrorCode, ProtocolError } from '../shared/errors.js'
import { timerDelay } from '../shared/timers.js'
import { STREAM_START, compareStreamIds, formatEventId, parseEventId, type StreamId } from './store/history.js'
import { msOfStreamId, type ChangeFeed, type FeedRead } from './store/change-feed.js'
import { admitStream, openEventStream, type SseWriter } from './sse.js'
import type { EventsStreamOptions } from './events-stream.js'
import type { Grant } from './auth.js'
import type { RouteContext } from './routes.js'
import type { Logger } from './logger.js'

/** Feed entries read per round trip. */
const READ_BATCH = 500

/** A prefix of document IDs: up to 127 of their characters (one more makes a whole ID). */
const PREFIX = /^[A-Za-z0-9._~-]{0,127}$/

/** The `prefix` query parameter of `GET /changes` (`''` for every document); `400` when malformed. */
export const changesPrefixOf = (ctx: Context): string => {
  const raw = ctx.query[CHANGES_PREFIX_PARAM] ?? ''
  if (typeof raw !== 'string' || !PREFIX.test(raw)) {
    throw new ProtocolError(ErrorCode.badDocId, 'prefix must be given once, as up to 127 characters of A-Z a-z 0-9 . _ ~ -')
  }
  return raw
}

/**
 * What a token must cover to stream the changes under `prefix`, asked of the server's authorizer
 * as a document ID: `<prefix>*`. With JWT auth, `docsCover` grants it to `*` and to `p*` entries
 * where `p` starts the prefix, never to single documents ('*' is not a document ID character).
 */
export const changesScope = (prefix: string): string => `${prefix}*`

/** A position in the feed: the cursor clients hold, as `<feed epoch>.<stream ID>` (`0`: before everything). */
interface Position {
  epoch: string | null
  id: StreamId
}

/** The request, checked and authorized. */
export interface ChangesRequest {
  prefix: string
  /** `Last-Event-ID` or `?lastEventId=`, already checked as a well-formed event ID. */
  lastEventId: string | undefined
  grant: Grant
  /** The client's name for per-client limits. */
  client: string
}

/** Serves `GET /changes` on this response until it closes; `501` when the store keeps no feed. */
export const getChanges = async (ctx: Context, request: ChangesRequest, routes: RouteContext): Promise<void> => {
  const { options, streams, streamsPerClient } = routes
  const feed = options.store.changes
  if (feed === undefined) throw new ProtocolError(ErrorCode.notImplemented, 'this store keeps no change feed (Redis Cluster cannot write it atomically)')
  const from = request.lastEventId === undefined ? null : parseEventId(request.lastEventId)
  if (request.lastEventId !== undefined && from === null) throw new ProtocolError(ErrorCode.badEventId, 'not a cursor of this change feed')
  if (!admitStream(ctx, streamsPerClient, request.client, options.maxStreamsPerClient)) return
  const writer = openEventStream(ctx, options.metrics)
  const stream = new ChangesStream(feed, request.prefix, from, writer, options, options.logger)
  streams.add(stream)
  // 'close' comes at most once; `on` spares the wrapper `once` would keep for the life of the stream.
  ctx.res.on('close', () => {
    streamsPerClient.release(request.client)
    stream.closed()
    streams.delete(stream)
  })
  await stream.open(request.grant.expiresAt)
}

/** One `GET /changes` response; `done` resolves once it has closed. */
class ChangesStream {
  readonly done: Promise<void>
  private finish!: () => void
  private pulling = false
  /** Set when the feed grew during a read: read again before resting. */
  private again = false
  private stopWatching: (() => void) | null = null
  private heartbeat: NodeJS.Timeout | null = null
  private expiry: NodeJS.Timeout | null = null
  private released = false

  constructor (
    private readonly feed: ChangeFeed,
    private readonly prefix: string,
    /** Where the client is; `null` when it gave no cursor (it gets a reset listing every document). */
    private cursor: Position | null,
    private readonly writer: SseWriter,
    private readonly options: EventsStreamOptions,
    private readonly logger: Logger
  ) {
    this.done = new Promise(resolve => { this.finish = resolve })
    // A blocked reader is not read for; once it drains, the feed is read from its cursor again.
    writer.onDrain(() => this.pull())
  }

  /** Runs until the client or the server closes the stream, or `expiresAt` (ms since the epoch) passes. */
  async open (expiresAt: number | undefined): Promise<void> {
    // Jittered per connection, so clients of a restarted server do not reconnect in lockstep.
    this.writer.sendWithNext({ retry: this.options.retryMs + Math.floor(Math.random() * this.options.retryMs) })
    this.heartbeat = setInterval(() => { if (!this.writer.blocked) this.writer.comment() }, this.options.heartbeatMs)
    if (expiresAt !== undefined) this.expiry = setTimeout(() => this.writer.end(), timerDelay(expiresAt - Date.now()))
    try {
      // Watch before the first read: a change stored in between is told, not missed.
      const stop = await this.feed.watch(() => this.pull())
      if (this.released) return stop()
      this.stopWatching = stop
      this.pull()
    } catch (error) {
      this.logger.warn('changes stream failed', { error: String(error) })
      this.writer.end()
    }
  }

  /** Reads the feed after the cursor; one read at a time per stream. */
  private pull (): void {
    if (this.pulling) {
      this.again = true
      return
    }
    this.pulling = true
    this.pullLoop()
      .catch(error => {
        // The client resumes from its cursor on another try.
        this.logger.warn('reading the change feed failed', { error: String(error) })
        this.writer.end()
      })
      .finally(() => { this.pulling = false })
  }

  private async pullLoop (): Promise<void> {
    for (;;) {
      this.again = false
      if (this.released || this.writer.closed || this.writer.blocked) return
      const read = await this.feed.read(this.cursor?.id ?? STREAM_START, READ_BATCH)
      if (this.released || this.writer.closed) return
      if (!(await this.resetIfLost(read))) {
        for (const { id, docId, eventId } of read.entries) {
          this.cursor = { epoch: read.epoch, id }
          if (!docId.startsWith(this.prefix)) continue
          const data: ChangeEventData = { docId, eventId }
          this.writer.send({ event: ChangesEvent.change, id: formatEventId(read.epoch ?? '', id), data: JSON.stringify(data) })
        }
        if (read.entries.length < READ_BATCH && !this.again) return
      }
    }
  }

  /**
   * Sends a reset when the cursor cannot be resumed from exactly: none given, another feed's
   * (flushed Redis, restarted memory store), one never issued, or one behind the retained feed.
   * It lists the documents to read in full and moves the cursor to the feed's head. Resolves
   * whether it did.
   */
  private async resetIfLost (read: FeedRead): Promise<boolean> {
    const cursor = this.cursor
    const known = cursor !== null && (cursor.epoch === null || cursor.epoch === read.epoch) && compareStreamIds(cursor.id, read.head) <= 0
    if (known && compareStreamIds(read.trimmed, cursor.id) <= 0) return false
    // Every document changed since the cursor is in the index with its last change at or after it.
    const since = known ? msOfStreamId(cursor.id) : null
    const docs = (await this.feed.changedDocs(since)).filter(docId => docId.startsWith(this.prefix))
    if (this.released) return true
    this.cursor = { epoch: read.epoch, id: read.head }
    const data: ResetEventData = { docs }
    this.writer.send({ event: ChangesEvent.reset, id: formatEventId(read.epoch ?? '', read.head), data: JSON.stringify(data) })
    return true
  }

  /** Ends the stream from the server side (shutdown), asking the client to reconnect after `retryMs`. */
  end (retryMs: number): void {
    if (!this.writer.blocked) this.writer.send({ retry: retryMs })
    this.writer.end()
  }

  /** Cleans up after the response closed. */
  closed (): void {
    this.released = true
    if (this.heartbeat !== null) clearInterval(this.heartbeat)
    if (this.expiry !== null) clearTimeout(this.expiry)
    this.stopWatching?.()
    this.finish()
  }
}
