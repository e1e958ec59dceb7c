/**
 * `GET /events?docs=a,b,c`: several documents on one event stream. Each event is tagged with its
 * document; the stream's own event IDs are `<streamKey>.<seq>`, and the store keeps, under the
 * stream key, snapshots of every document's position, so one `Last-Event-ID` resumes them all.
 * The wire format is in docs/protocol.md ("Several documents on one stream").
 */
import { randomBytes } from 'node:crypto'
import { SseEvent, type SyncEventData } from '../shared/protocol.js'
import { toBase64 } from '../shared/codec.js'
import type { DocumentStore, StreamPositions } from './store/types.js'
import { toEventBody, type SseWriter } from './sse.js'
import type { EncodedUpdate, StreamFraming } from './events-stream.js'

/** How long the store keeps a stream's positions after their last save. */
export const STREAM_POSITIONS_TTL_MS = 24 * 60 * 60 * 1000

/** `<streamKey>.<seq>`: 16 characters of base64url, then a decimal sequence number. */
const STREAM_EVENT_ID = /^([A-Za-z0-9_-]{16})\.(\d{1,15})$/

/** A new stream key: 96 random bits, so nobody guesses another stream's record. */
const newStreamKey = (): string => randomBytes(12).toString('base64url')

/**
 * The positions a multiplexed event ID names, or `null` when it is not one, or the store no longer
 * knows it (expired, another Redis): the documents then resume from nothing, as with an unknown ID.
 */
export const positionsOf = async (store: DocumentStore, lastEventId: string | undefined): Promise<StreamPositions | null> => {
  const match = lastEventId === undefined ? null : STREAM_EVENT_ID.exec(lastEventId)
  if (match === null) return null
  return store.streamPositions(match[1] as string, Number(match[2]))
}

/**
 * The framing of a multiplexed stream. It numbers the events that carry an ID and remembers each
 * document's last sent event ID; {@link persist} saves that as a snapshot at the current
 * sequence number. A snapshot at `seq` is valid for any client that received `seq` or later, and
 * the store answers a resume with the newest snapshot at or before the client's, so a snapshot
 * taken ahead of what the client read never skips an update (it replays a few twice at worst,
 * which Yjs ignores).
 */
export class MultiplexFraming implements StreamFraming {
  private readonly key = newStreamKey()
  private seq = 0
  private savedSeq = 0
  private readonly positions: Map<string, string>

  /** @param initial - where each document starts (absent: from nothing). */
  constructor (private readonly writer: SseWriter, private readonly store: DocumentStore, initial: StreamPositions) {
    this.positions = new Map(Object.entries(initial))
  }

  /**
   * Saves the starting positions as the snapshot at `seq` 0, so every ID this stream sends
   * resumes. The events do not wait for the save: it goes to the store before the first of them
   * is written, so a resume after getting one normally finds it. One that finds none (it came
   * before the save was stored, which a store reconnecting may delay, or the save failed, until
   * the next heartbeat saves the newest positions) resumes every document from its own position
   * in the query, or from nothing, as with an unknown ID.
   */
  async open (): Promise<void> {
    await this.store.saveStreamPositions(this.key, 0, Object.fromEntries(this.positions), STREAM_POSITIONS_TTL_MS)
  }

  private nextId (docId: string, eventId: string): string {
    this.positions.set(docId, eventId)
    return `${this.key}.${++this.seq}`
  }

  sync (docId: string, eventId: string, data: SyncEventData): void {
    const id = this.nextId(docId, eventId)
    this.writer.send({ event: SseEvent.sync, id, data: `${docId} ${eventId}\n${JSON.stringify(data)}` })
  }

  update (docId: string, eventId: string, update: EncodedUpdate): void {
    const id = this.nextId(docId, eventId)
    // The same for every stream of the document: only the stream's own ID differs.
    update.taggedBody ??= toEventBody(`${docId} ${eventId}\n${update.base64}`)
    this.writer.sendWithId(SseEvent.update, id, update.taggedBody)
  }

  awareness (docId: string, update: Uint8Array): void {
    this.writer.send({ event: SseEvent.awareness, data: `${docId}\n${toBase64(update)}` })
  }

  async persist (): Promise<void> {
    if (this.seq === this.savedSeq) return
    const seq = this.seq
    await this.store.saveStreamPositions(this.key, seq, Object.fromEntries(this.positions), STREAM_POSITIONS_TTL_MS)
    this.savedSeq = seq
  }
}
