/**
 * The behaviour every store shares: resume planning, compaction scheduling, subscriber fan-out
 * and presence retraction rules. Backends implement only storage primitives, each of which reads
 * or writes one consistent view of a document.
 */
import type { AwarenessEntry } from '../../shared/awareness.js'
import { ErrorCode, ProtocolError } from '../../shared/errors.js'
import {
  checkpointFor, compact, compareStreamIds, diffSync, formatEventId, mergeAll, parseEventId, replaySync, replayStart,
  type Checkpoint, type ClockRange, type HistorySnapshot, type LogEntry, type ResumePoint, type StreamId, type SyncResult
} from './history.js'
import type { DocEvent, DocListener, DocumentStore, StreamPositions, ValidatedUpdate } from './types.js'
import type { Logger } from '../logger.js'
import { DEFAULT_CHANGES_RETENTION } from './change-feed.js'
import type { StoreObserver } from '../metrics.js'

/** Tuning of every store; see {@link storeDefaults}. */
export interface StoreOptions {
  /** Compact when this many updates were stored since the last compaction. */
  compactAfterUpdates: number
  /** Compact when this many bytes of updates were stored since the last compaction. */
  compactAfterBytes: number
  /** Updates kept in the log after compaction, so recent resume points replay exactly. */
  keepTail: number
  /** Compaction checkpoints kept per document, for diffs to older resume points. */
  checkpointsKept: number
  /** Presence entries older than this are forgotten (y-protocols' own timeout is 30 s). */
  awarenessTimeoutMs: number
  /** A stream's presence record expires unless renewed within this time (by heartbeats). */
  presenceTtlMs: number
  /**
   * Bytes of merged full states kept in process memory (least recently used evicted), so cold
   * syncs of a document that has not changed since skip the merge; 0 keeps none.
   */
  fullStateCacheBytes: number
  /** Reject appends that would make a document's stored updates larger than this; 0: no limit. */
  maxDocBytes: number
  /** Entries the change feed keeps (`GET /changes`); a reader further behind gets a reset. */
  changesRetention: number
  logger: Logger
  /** Told about compactions and failures, e.g. the server's {@link Metrics}. */
  observer?: StoreObserver | undefined
}

/** Defaults of {@link StoreOptions}. */
export const storeDefaults: Omit<StoreOptions, 'logger' | 'observer'> = {
  compactAfterUpdates: 500,
  compactAfterBytes: 1024 * 1024,
  keepTail: 200,
  checkpointsKept: 100,
  awarenessTimeoutMs: 30_000,
  presenceTtlMs: 60_000,
  fullStateCacheBytes: 64 * 1024 * 1024,
  maxDocBytes: 0,
  changesRetention: DEFAULT_CHANGES_RETENTION
}

/** The error of an append that would make a document larger than `maxDocBytes`. */
export const documentTooLarge = (maxDocBytes: number): ProtocolError =>
  new ProtocolError(ErrorCode.documentTooLarge, `the document would exceed its limit of ${maxDocBytes} bytes`)

/** A replay up to this size is sent as it is: a smaller diff would not be worth a full read. */
const REPLAY_ALWAYS_BYTES = 4096

/** Result of an append primitive. */
export interface Appended {
  epoch: string
  id: StreamId
  /** Updates and bytes stored since the last compaction, this one included. */
  pendingUpdates: number
  pendingBytes: number
}

/** A consistent read of the snapshot and the log after a stream ID. */
export interface ReplayRead {
  snapshot: HistorySnapshot
  entries: LogEntry[]
  /** Whether the stream ID is a stored entry. */
  exists: boolean
}

/** A consistent read of everything after the compacted state. */
export interface FullRead {
  snapshot: HistorySnapshot
  state: Uint8Array | null
  /** Entries after `snapshot.compacted`. */
  entries: LogEntry[]
  checkpoints: Checkpoint[]
}

/** A compaction to commit if the document is still as it was read. */
export interface CompactionCommit {
  expectedEpoch: string
  expectedCompacted: StreamId
  compacted: StreamId
  state: Uint8Array
  stateVector: Uint8Array
  /**
   * Log entries at or before `compacted` to keep, newest first; older ones are removed and the
   * newest removed one becomes the floor. Counted over the whole log, not only the entries merged
   * now: a compaction that merged fewer entries than this must still trim the earlier tail.
   */
  keepTail: number
  mergedUpdates: number
  mergedBytes: number
}

export abstract class LogStore implements DocumentStore {
  protected readonly options: StoreOptions
  private readonly listeners = new Map<string, Set<DocListener>>()
  private readonly compactions = new Map<string, Promise<boolean>>()
  /** Merged full states by document, in least-recently-used order, keyed by the head they hold. */
  private readonly fullStates = new Map<string, { head: string; update: Uint8Array }>()
  private fullStatesBytes = 0
  /** Watches being set up, by document. */
  private readonly watching = new Map<string, Promise<void>>()

  constructor (options: StoreOptions) {
    this.options = options
  }

  protected abstract appendEntry (docId: string, update: Uint8Array, ranges: readonly ClockRange[]): Promise<Appended>
  protected abstract readAfter (docId: string, after: StreamId): Promise<ReplayRead>
  protected abstract readFull (docId: string): Promise<FullRead>
  protected abstract commitCompaction (docId: string, commit: CompactionCommit): Promise<boolean>
  /** Starts delivering the document's events to {@link emit} (first local subscriber). */
  protected abstract watch (docId: string): Promise<void>
  /** Stops delivering (last local subscriber gone). */
  protected abstract unwatch (docId: string): Promise<void>
  abstract publishAwareness (docId: string, entries: readonly AwarenessEntry[]): Promise<void>
  abstract awareness (docId: string): Promise<AwarenessEntry[]>
  abstract openPresence (docId: string, clientID: number, connectionId: string): Promise<void>
  abstract closePresence (docId: string, clientID: number, connectionId: string): Promise<boolean>
  abstract saveStreamPositions (streamKey: string, seq: number, positions: StreamPositions, ttlMs: number): Promise<void>
  abstract streamPositions (streamKey: string, seq: number): Promise<StreamPositions | null>
  abstract deleteDocument (docId: string): Promise<void>
  abstract ping (): Promise<void>
  protected abstract release (): Promise<void>

  async append (docId: string, update: ValidatedUpdate): Promise<string> {
    const appended = await this.appendEntry(docId, update.bytes, update.ranges)
    if (appended.pendingUpdates >= this.options.compactAfterUpdates || appended.pendingBytes >= this.options.compactAfterBytes) {
      this.compactInBackground(docId)
    }
    return formatEventId(appended.epoch, appended.id)
  }

  async sync (docId: string, from: ResumePoint): Promise<SyncResult> {
    const parsed = from.lastEventId === undefined ? null : parseEventId(from.lastEventId)
    let neverIssued = false
    if (parsed !== null) {
      const read = await this.readAfter(docId, parsed.id)
      const start = replayStart(read.snapshot, from.lastEventId)
      if (start !== null && (start === read.snapshot.floor || start === read.snapshot.head || read.exists)) {
        const replay = replaySync(read.snapshot, read.entries)
        // A replay carries every character typed since the resume point, also those deleted since.
        // When it is not small and the client sent its state vector, a diff of the merged (garbage
        // collected) state may be far smaller: send whichever is.
        if (from.stateVector === undefined || replay.update.length <= REPLAY_ALWAYS_BYTES) return replay
        const { full, update } = await this.readMerged(docId)
        const diff = diffSync(full.snapshot, update, null, from)
        return diff.update.length < replay.update.length ? diff : replay
      }
      // Inside the retained log yet not an entry: this server never issued it, so no checkpoint
      // before it says anything about what the client holds.
      neverIssued = start !== null
    }
    const { full, update } = await this.readMerged(docId)
    const checkpoint = neverIssued ? null : checkpointFor(full.snapshot, full.checkpoints, from.lastEventId)
    return diffSync(full.snapshot, update, checkpoint, from)
  }

  async getDocument (docId: string): Promise<{ eventId: string; update: Uint8Array } | null> {
    const { full, update } = await this.readMerged(docId)
    if (full.snapshot.epoch === null) return null
    return { eventId: formatEventId(full.snapshot.epoch, full.snapshot.head), update }
  }

  /**
   * The whole document as one update. With updates pending since the last compaction, they are
   * merged through a garbage-collecting `Y.Doc`, like a compaction: far smaller than
   * `Y.mergeUpdates`, which keeps every deleted character. The result is cached per head, so cold
   * syncs of an unchanged document cost one read and no merge.
   */
  private async readMerged (docId: string): Promise<{ full: FullRead; update: Uint8Array }> {
    const full = await this.readFull(docId)
    if (full.entries.length === 0) return { full, update: full.state ?? mergeAll([]) }
    const head = `${full.snapshot.epoch ?? ''}.${full.snapshot.head}`
    const cached = this.fullStates.get(docId)
    if (cached?.head === head) {
      // Most recently used last: the oldest entry is the one evicted.
      this.fullStates.delete(docId)
      this.fullStates.set(docId, cached)
      return { full, update: cached.update }
    }
    const { state } = compact(full.state, full.entries)
    this.cacheFullState(docId, { head, update: state })
    return { full, update: state }
  }

  private cacheFullState (docId: string, entry: { head: string; update: Uint8Array }): void {
    const previous = this.fullStates.get(docId)
    if (previous !== undefined) this.fullStatesBytes -= previous.update.length
    this.fullStates.delete(docId)
    if (entry.update.length > this.options.fullStateCacheBytes) return
    this.fullStates.set(docId, entry)
    this.fullStatesBytes += entry.update.length
    for (const [oldest, { update }] of this.fullStates) {
      if (this.fullStatesBytes <= this.options.fullStateCacheBytes) break
      this.fullStates.delete(oldest)
      this.fullStatesBytes -= update.length
    }
  }

  async subscribe (docId: string, listener: DocListener): Promise<() => void> {
    let set = this.listeners.get(docId)
    if (set === undefined) {
      set = new Set()
      this.listeners.set(docId, set)
      this.watching.set(docId, this.watch(docId))
    }
    set.add(listener)
    // Later subscribers wait for the first one's watch too: until it is set up, updates stored
    // now would not be delivered.
    const watching = this.watching.get(docId)
    if (watching !== undefined) {
      try {
        await watching
      } catch (error) {
        set.delete(listener)
        if (set.size === 0 && this.listeners.get(docId) === set) this.listeners.delete(docId)
        throw error
      } finally {
        if (this.watching.get(docId) === watching) this.watching.delete(docId)
      }
    }
    let active = true
    return () => {
      if (!active) return
      active = false
      const current = this.listeners.get(docId)
      if (current === undefined) return
      current.delete(listener)
      if (current.size === 0) {
        this.listeners.delete(docId)
        this.unwatch(docId).catch(error => this.options.logger.warn('unwatch failed', { docId, error: String(error) }))
      }
    }
  }

  isAfter (eventId: string, headEventId: string): boolean {
    const event = parseEventId(eventId)
    const head = parseEventId(headEventId)
    if (event === null || head === null) return true
    return compareStreamIds(event.id, head.id) > 0
  }

  /** Documents with local subscribers. */
  protected watchedDocs (): IterableIterator<string> {
    return this.listeners.keys()
  }

  /** Hands an event to the document's local subscribers. */
  protected emit (docId: string, event: DocEvent): void {
    const set = this.listeners.get(docId)
    if (set === undefined) return
    for (const listener of set) {
      try {
        listener(event)
      } catch (error) {
        this.options.logger.error('subscriber failed', { docId, error: String(error) })
      }
    }
  }

  async compact (docId: string): Promise<boolean> {
    const running = this.compactions.get(docId)
    if (running !== undefined) return running
    const work = this.compactNow(docId).finally(() => this.compactions.delete(docId))
    this.compactions.set(docId, work)
    return work
  }

  private compactInBackground (docId: string): void {
    this.compact(docId).catch(error => this.options.logger.error('compaction failed', { docId, error: String(error) }))
  }

  private async compactNow (docId: string): Promise<boolean> {
    const started = performance.now()
    const full = await this.readFull(docId)
    const { snapshot, entries } = full
    const last = entries.at(-1)
    if (snapshot.epoch === null || last === undefined) return false
    const merged = compact(full.state, entries)
    if (merged.rejected.length > 0) {
      this.options.logger.error('compaction dropped updates that Yjs refused', { docId, ids: merged.rejected })
    }
    const committed = await this.commitCompaction(docId, {
      expectedEpoch: snapshot.epoch,
      expectedCompacted: snapshot.compacted,
      compacted: last.id,
      state: merged.state,
      stateVector: merged.stateVector,
      keepTail: this.options.keepTail,
      mergedUpdates: entries.length,
      mergedBytes: entries.reduce((sum, e) => sum + e.update.length, 0)
    })
    if (committed) {
      this.options.observer?.compacted((performance.now() - started) / 1000, entries.length)
      this.options.logger.debug('compacted', { docId, updates: entries.length, stateBytes: merged.state.length })
    }
    return committed
  }

  async close (): Promise<void> {
    await Promise.allSettled(this.compactions.values())
    this.listeners.clear()
    this.fullStates.clear()
    this.fullStatesBytes = 0
    await this.release()
  }
}
