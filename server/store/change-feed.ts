/**
 * The change feed: one log of "document D changed, its event ID is E" across every document of a
 * store, written in the same atomic step as each document's own log (see `GET /changes` in
 * docs/protocol.md). Stores provide the storage; `server/changes.ts` serves it.
 */
import { STREAM_START, compareStreamIds, newEpoch, type StreamId } from './history.js'

/** One stored change. */
export interface FeedEntry {
  /** The entry's position in the feed. */
  id: StreamId
  docId: string
  /** The document's event ID of the stored update. */
  eventId: string
}

/** A consistent read of the feed after a position. */
export interface FeedRead {
  /** The feed's identity: a new one when its storage was lost (a flushed Redis); `null` before the first entry. */
  epoch: string | null
  /** The newest entry removed by retention (`0-0`: none): a reader at or after it missed nothing. */
  trimmed: StreamId
  /** The newest entry ever written (`0-0`: none). */
  head: StreamId
  /** Entries after the position read from, oldest first. */
  entries: FeedEntry[]
}

/** Storage of a change feed; see the module comment. */
export interface ChangeFeed {
  /** At most `count` entries after `after`, with the feed's epoch, head and retention floor. */
  read(after: StreamId, count: number): Promise<FeedRead>
  /** Documents whose last change is at or after `sinceMs` (every document ever written for `null`). */
  changedDocs(sinceMs: number | null): Promise<string[]>
  /**
   * Calls `listener` after appends (several may be told once) and whenever entries may have been
   * missed (a reconnected subscriber), until the returned function is called.
   */
  watch(listener: () => void): Promise<() => void>
}

/** Entries of the change feed kept by default (`CHANGES_RETENTION`). */
export const DEFAULT_CHANGES_RETENTION = 100_000

/** The milliseconds part of a stream ID. */
export const msOfStreamId = (id: StreamId): number => Number(id.split('-')[0])

/**
 * The change feed of {@link MemoryStore}: written synchronously with the document's log, lost
 * with the process (a new epoch per store, so a cursor of the previous process gets a reset).
 */
export class MemoryChangeFeed implements ChangeFeed {
  private readonly epoch = newEpoch()
  private entries: FeedEntry[] = []
  private trimmed: StreamId = STREAM_START
  /** Document ID → milliseconds of its last change, in order of last change (oldest first). */
  private readonly docs = new Map<string, number>()
  private readonly listeners = new Set<() => void>()

  constructor (private readonly retention: number) {}

  /** Records a change; `id` is the document's new stream ID, unique and increasing across the store. */
  record (docId: string, id: StreamId, eventId: string): void {
    this.entries.push({ id, docId, eventId })
    const excess = this.entries.length - this.retention
    if (excess > 0) {
      this.trimmed = (this.entries[excess - 1] as FeedEntry).id
      this.entries = this.entries.slice(excess)
    }
    this.docs.delete(docId)
    this.docs.set(docId, msOfStreamId(id))
    // Told after this synchronous step: listeners read the feed, which already holds the entry.
    queueMicrotask(() => { for (const listener of this.listeners) listener() })
  }

  async read (after: StreamId, count: number): Promise<FeedRead> {
    const last = this.entries.at(-1)
    return {
      epoch: last === undefined && this.trimmed === STREAM_START ? null : this.epoch,
      trimmed: this.trimmed,
      head: last?.id ?? this.trimmed,
      entries: this.entries.filter(e => compareStreamIds(e.id, after) > 0).slice(0, count)
    }
  }

  async changedDocs (sinceMs: number | null): Promise<string[]> {
    return [...this.docs].filter(([, ms]) => sinceMs === null || ms >= sinceMs).map(([docId]) => docId)
  }

  async watch (listener: () => void): Promise<() => void> {
    const own = (): void => listener()
    this.listeners.add(own)
    return () => this.listeners.delete(own)
  }
}
