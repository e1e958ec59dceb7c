import type { AwarenessEntry } from '../../shared/awareness.js'
import type { UpdateEncoding } from '../../shared/protocol.js'
import type { ClockRange, ResumePoint, SyncResult } from './history.js'
import type { ChangeFeed } from './change-feed.js'

/** An update that passed `validateUpdate`, with the clock ranges it adds. */
export interface ValidatedUpdate {
  bytes: Uint8Array
  ranges: ClockRange[]
}

/** What a document's subscribers receive, in storage order for updates. */
export type DocEvent =
  | { type: 'update'; eventId: string; update: Uint8Array }
  | { type: 'awareness'; update: Uint8Array }
  /** The document's history was replaced (deleted or the store flushed): subscribers must resync. */
  | { type: 'reset' }

export type DocListener = (event: DocEvent) => void

/** Document ID → the last event ID a multiplexed stream sent for it. */
export type StreamPositions = Record<string, string>

/**
 * Where documents live. Every implementation passes the one contract suite in
 * `test/contract/document-store.test.ts`; the server needs nothing else from storage.
 */
export interface DocumentStore {
  /** Every document's changes as one feed (`GET /changes`); absent when the store cannot keep one atomically. */
  readonly changes?: ChangeFeed | undefined
  /** Stores an update durably, then fans it out; resolves with its event ID. */
  append(docId: string, update: ValidatedUpdate): Promise<string>
  /** What a client at `from` needs to reach the head, and how it was made. */
  sync(docId: string, from: ResumePoint): Promise<SyncResult>
  /** The whole document as one update (format v1 unless asked otherwise), or `null` when it has never been written. */
  getDocument(docId: string, encoding?: UpdateEncoding): Promise<{ eventId: string; update: Uint8Array } | null>
  /**
   * Delivers every update stored after this call resolves, in order, and every awareness update
   * published after it, until the returned function is called.
   */
  subscribe(docId: string, listener: DocListener): Promise<() => void>
  /** Whether `eventId` comes after `headEventId` in the same document (for deduplicating at the seam). */
  isAfter(eventId: string, headEventId: string): boolean
  /** Remembers presence entries (for late joiners and retraction) and fans them out. */
  publishAwareness(docId: string, entries: readonly AwarenessEntry[]): Promise<void>
  /** The presence entries seen recently for the document, without retracted ones. */
  awareness(docId: string): Promise<AwarenessEntry[]>
  /** Records that a stream of awareness client `clientID` is open (and keeps it alive when called again). */
  openPresence(docId: string, clientID: number, connectionId: string): Promise<void>
  /** Records that a stream closed; resolves `true` when no other stream of that client remains. */
  closePresence(docId: string, clientID: number, connectionId: string): Promise<boolean>
  /**
   * Saves a snapshot of a multiplexed stream's positions as of its event number `seq`; the record
   * lives `ttlMs` after its last save. The snapshot at `seq` 0 and the newest few others are kept.
   */
  saveStreamPositions(streamKey: string, seq: number, positions: StreamPositions, ttlMs: number): Promise<void>
  /** The newest kept snapshot of the stream at or before `seq`, or `null` when there is none. */
  streamPositions(streamKey: string, seq: number): Promise<StreamPositions | null>
  /** Merges the log into the state now; resolves `false` when there was nothing to do or another writer won. */
  compact(docId: string): Promise<boolean>
  /** Removes the document; a later write starts a new life (epoch) of it. */
  deleteDocument(docId: string): Promise<void>
  /** Resolves when the store is usable, rejects otherwise. */
  ping(): Promise<void>
  /** Waits for background work and releases connections. */
  close(): Promise<void>
}
