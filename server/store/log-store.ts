/**
 * The behaviour every store shares: resume planning, compaction scheduling, subscriber fan-out
 * and presence retraction rules. Backends implement only storage primitives, each of which reads
 * or writes one consistent view of a document.
 */
import type { AwarenessEntry } from '../../shared/awareness.js'
import { ErrorCode, ProtocolError } from '../../shared/errors.js'
import {
  checkpointFor, compareStreamIds, covers, decodeClockMap, diffSync, formatEventId, mergeAll, parseEventId, replaySync, replayStart,
  type Checkpoint, type ClockRange, type HistorySnapshot, type LogEntry, type ResumePoint, type StreamId, type SyncResult
} from './history.js'
import type { DocEvent, DocListener, DocumentStore, StreamPositions, ValidatedUpdate } from './types.js'
import type { Logger } from '../logger.js'
import type { UpdateEncoding } from '../../shared/protocol.js'
import { DEFAULT_CHANGES_RETENTION } from './change-feed.js'
import type { StoreObserver } from '../metrics.js'
import { MergedDocs, RECENT_BYTES, mergedUpdate, type MergedDoc, type MergedState } from './merged-docs.js'

/**
 * Whether updates delivered while the log was read moved a kept document past the read's head: it
 * then holds the document exactly at a later stored head (it moves only through the log, in order).
 */
const movedPast = (merged: MergedDoc, head: StreamId): boolean => compareStreamIds(merged.head, head) > 0

/** A read of the log after a sync's resume point `after` (with the checkpoints, when the log no longer holds it). */
interface KnownRead {
  after: StreamId
  read: ReplayRead
}

/**
 * Whether `known` can bring a document merged at `head` up to date: `head` is at or past the read's
 * head (the document holds all it read, or moved past it), or the read has every entry after
 * `head`: it read the log from that head (usable only while the log still holds it, which the
 * caller checks) or `head` is one of the entries it read, and it read them all.
 */
const reaches = ({ after, read }: KnownRead, head: StreamId): boolean =>
  compareStreamIds(head, read.snapshot.head) >= 0 || (read.complete && (head === after || read.entries.some(e => e.id === head)))

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
   * Estimated heap bytes of documents kept merged in memory (least recently used evicted): a cold
   * sync or a diff then reads only what was stored since, not the whole document; 0 keeps none.
   */
  mergedDocsBytes: number
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
  mergedDocsBytes: 256 * 1024 * 1024,
  maxDocBytes: 0,
  changesRetention: DEFAULT_CHANGES_RETENTION
}

/** The error of an append that would make a document larger than `maxDocBytes`. */
export const documentTooLarge = (maxDocBytes: number): ProtocolError =>
  new ProtocolError(ErrorCode.documentTooLarge, `the document would exceed its limit of ${maxDocBytes} bytes`)

/** How long after an update a followed document is merged: updates arriving meanwhile share one read. */
const FOLLOW_DELAY_MS = 100

/**
 * A replay up to this size is sent as it is: a smaller diff would not be worth a full read. Kept
 * documents remember that much of their latest delivered updates, to replay them without a read.
 */
const REPLAY_ALWAYS_BYTES = RECENT_BYTES

/**
 * A resume that may be answered with a diff (the client sent its state vector) reads the entries
 * after its point only up to this many bytes; past them it is sent the diff, so the entries
 * (hundreds of kilobytes after a long absence) need not cross from the store.
 */
const RESUME_READ_MAX_BYTES = 64 * 1024

/** Whether the log can replay from `lastEventId`: it is in the retained log and, strictly inside it, a stored entry. */
const replayable = (read: ReplayRead, lastEventId: string | undefined): boolean => {
  const start = replayStart(read.snapshot, lastEventId)
  return start !== null && (start === read.snapshot.floor || start === read.snapshot.head || read.exists)
}

/** What {@link LogStore.withMerged} hands over. */
interface MergedRead {
  snapshot: HistorySnapshot
  /** Compaction checkpoints; empty unless the whole document, or a resume point the log no longer holds, was read. */
  checkpoints: readonly Checkpoint[]
  /** The entries after the compacted state; empty unless the whole document was read. */
  pending: readonly LogEntry[]
  /** Stream IDs of entries Yjs refused, which the merged state leaves out. */
  refused: readonly StreamId[]
  merged: MergedState
}

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
  /** The entries after the stream ID; none when they were more bytes than the read took (`complete` false). */
  entries: LogEntry[]
  /** Whether `entries` holds every entry after the stream ID. */
  complete: boolean
  /** Whether the stream ID is a stored entry. */
  exists: boolean
  /** Compaction checkpoints, read only when the stream ID is not a stored entry (empty otherwise). */
  checkpoints: Checkpoint[]
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
  private readonly merged: MergedDocs
  /** Documents whose merged state is about to be brought up to date ({@link follow}). */
  private readonly following = new Map<string, NodeJS.Timeout>()
  /** Documents whose deferred updates are about to be applied ({@link settleSoon}). */
  private readonly settling = new Map<string, NodeJS.Immediate>()
  /** The stream ID of the last update emitted, by watched document (forgotten when the watch ends). */
  private readonly lastEmitted = new Map<string, StreamId>()
  /** Those merges running now, which {@link close} waits for. */
  private readonly merging = new Set<Promise<void>>()
  /** Watches being set up, by document. */
  private readonly watching = new Map<string, Promise<void>>()

  constructor (options: StoreOptions) {
    this.options = options
    this.merged = new MergedDocs(options.mergedDocsBytes, options.logger)
  }

  protected abstract appendEntry (docId: string, update: Uint8Array, ranges: readonly ClockRange[]): Promise<Appended>
  /** Reads the log after `after`; its entries only when they total at most `maxBytes`. */
  protected abstract readAfter (docId: string, after: StreamId, maxBytes?: number): Promise<ReplayRead>
  protected abstract readFull (docId: string): Promise<FullRead>
  protected abstract commitCompaction (docId: string, commit: CompactionCommit): Promise<boolean>
  /** Starts delivering the document's events to {@link emit} (first local subscriber). */
  protected abstract watch (docId: string): Promise<void>
  /** Stops delivering (last local subscriber gone). */
  protected abstract unwatch (docId: string): Promise<void>
  /**
   * The last update of a watched document delivered here, while delivery is not catching up on a
   * read of the log; `null` otherwise (not watched, being set up, catching up, deleted).
   */
  protected abstract deliveredHead (docId: string): { epoch: string; id: StreamId } | null
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
    const delivered = this.syncFromDelivered(docId, parsed, from.stateVector)
    if (delivered?.final === true) return delivered.sync
    let neverIssued = false
    let known: KnownRead | undefined
    if (parsed !== null) {
      // Without a state vector, a resume the log can replay must be replayed, whatever its size.
      const read = await this.readAfter(docId, parsed.id, from.stateVector === undefined ? Infinity : RESUME_READ_MAX_BYTES)
      known = { after: parsed.id, read }
      if (replayable(read, from.lastEventId)) {
        // A replay carries every character typed since the resume point, also those deleted since.
        // When it is not small and the client sent its state vector, a diff of the merged (garbage
        // collected) state may be far smaller: send whichever is. Merging the entries shrinks them
        // little, so a diff smaller than the entries wins without merging them. Past the read's
        // limit the diff goes without comparing: it is the minimal Yjs diff for the client.
        const bytes = read.entries.reduce((sum, e) => sum + e.update.length, 0)
        if (from.stateVector === undefined || (read.complete && bytes <= REPLAY_ALWAYS_BYTES)) return replaySync(read.snapshot, read.entries)
        // The diff made from memory, when the log has nothing past it.
        const diff = delivered !== null && delivered.sync.eventId === formatEventId(read.snapshot.epoch ?? '', read.snapshot.head)
          ? delivered.sync
          : await this.withMerged(docId, false, ({ snapshot, merged }) => diffSync(snapshot, merged, null, from), known)
        if (!read.complete || diff.update.length < bytes) return diff
        const replay = replaySync(read.snapshot, read.entries)
        return diff.update.length < replay.update.length ? diff : replay
      }
      // Inside the retained log yet not an entry: this server never issued it, so no checkpoint
      // before it says anything about what the client holds.
      neverIssued = replayStart(read.snapshot, from.lastEventId) !== null
    }
    // Only a resume point of this server's that the log no longer holds needs the checkpoints,
    // which the read above brought along.
    return this.withMerged(docId, false, ({ snapshot, checkpoints, merged }) =>
      diffSync(snapshot, merged, neverIssued ? null : checkpointFor(snapshot, checkpoints, from.lastEventId), from), known)
  }

  /**
   * Answers a resume without reading the store, from the document kept merged here, when it holds
   * exactly what was delivered here last and delivery is live ({@link deliveredHead}): the caller
   * subscribed first, so the subscription brings what was stored after that head, as it brings
   * every later update (the store's own head may be ahead by the deliveries in flight). Where a
   * read of the store would answer the same:
   * - the client is at that head: nothing to send;
   * - the client is a few updates back, which the kept document remembers: their replay;
   * - the client sent its state vector, and holds nothing the kept document lacks (else the sync
   *   event's state vector would tell it to send again what the store may have): the diff. Not
   *   `final` when the log might hold a smaller replay (the client is in this life of the
   *   document, the diff is past the size a replay is always sent at): the log decides, and the
   *   diff made here is used if the log has nothing past it.
   * A client ahead of what was delivered here, or back further without a state vector, is
   * answered from the store (`null` here).
   */
  private syncFromDelivered (docId: string, parsed: ReturnType<typeof parseEventId>, stateVector: Uint8Array | undefined): { sync: SyncResult; final: boolean } | null {
    if (!this.listeners.has(docId) || this.watching.has(docId)) return null
    const delivered = this.deliveredHead(docId)
    const kept = this.merged.get(docId)
    if (delivered === null || kept === undefined || kept.epoch !== delivered.epoch || kept.head !== delivered.id || !this.merged.settle(docId, kept)) return null
    const sameLife = parsed !== null && parsed.epoch === kept.epoch
    if (sameLife && compareStreamIds(parsed.id, kept.head) > 0) return null
    const head = { eventId: formatEventId(kept.epoch, kept.head), stateVector: kept.stateVector() }
    const replay = sameLife ? kept.deliveredAfter(parsed.id) : null
    if (replay !== null) return { sync: { ...head, update: mergeAll(replay.map(e => e.update)), resume: 'replay' }, final: true }
    if (stateVector === undefined || !covers(decodeClockMap(head.stateVector), decodeClockMap(stateVector))) return null
    const update = kept.diff(stateVector)
    return { sync: { ...head, update, resume: 'state-vector' }, final: !sameLife || update.length <= REPLAY_ALWAYS_BYTES }
  }

  async getDocument (docId: string, encoding: UpdateEncoding = 'v1'): Promise<{ eventId: string; update: Uint8Array } | null> {
    return this.withMerged(docId, false, ({ snapshot, merged }) =>
      snapshot.epoch === null ? null : { eventId: formatEventId(snapshot.epoch, snapshot.head), update: encoding === 'v2' ? merged.fullV2() : merged.full() })
  }

  /**
   * Reads the document merged at its head and hands it to `use` in the same synchronous step (the
   * merged document moves on with the next read). A document kept merged in memory is brought up
   * to date with the updates stored since its head; otherwise the whole document is read and
   * merged through a garbage-collecting `Y.Doc` (far smaller than `Y.mergeUpdates`, which keeps
   * every deleted character) and kept for next time. `readWhole` forces the whole read, which also
   * gives the compaction checkpoints and the entries pending compaction. `known`: a read the caller
   * already made, which saves reading again when it reaches the kept document's head.
   */
  private async withMerged<T> (docId: string, readWhole: boolean, use: (read: MergedRead) => T, known?: KnownRead): Promise<T> {
    const kept = readWhole ? undefined : this.merged.get(docId)
    if (kept !== undefined) {
      const head = kept.head
      const reused = known !== undefined && reaches(known, head)
      const { after, read } = reused ? known : { after: head, read: await this.readAfter(docId, head) }
      // Still the one kept, of this life of the document, and the log continues from where it was
      // (it may have moved on meanwhile, by updates delivered here, to or past what the read saw).
      if (this.merged.holds(docId, kept) && read.snapshot.epoch === kept.epoch && (after !== head || replayable(read, formatEventId(kept.epoch, head))) &&
        (this.catchUp(docId, kept, after, read.entries, read.snapshot.head) || compareStreamIds(kept.head, read.snapshot.head) >= 0) && this.merged.settle(docId, kept)) {
        return use({ snapshot: { ...read.snapshot, head: kept.head }, checkpoints: known?.read.checkpoints ?? [], pending: [], refused: [], merged: kept })
      }
    }
    const { snapshot, checkpoints, state, entries } = await this.readFull(docId)
    const whole = { snapshot, checkpoints, pending: entries }
    if (snapshot.epoch === null || (state === null && entries.length === 0)) return use({ ...whole, refused: [], merged: mergedUpdate(mergeAll([])) })
    const current = this.merged.get(docId)
    if (current !== undefined && current.epoch === snapshot.epoch && this.merged.settle(docId, current)) {
      if (this.catchUp(docId, current, snapshot.compacted, entries, snapshot.head)) return use({ ...whole, refused: [], merged: current })
      // A compaction needs the state at the last entry it read; anyone else takes a later one.
      if (!readWhole && movedPast(current, snapshot.head)) {
        return use({ ...whole, snapshot: { ...snapshot, head: current.head }, refused: [], merged: current })
      }
    }
    const { merged, refused } = this.merged.build(docId, snapshot.epoch, snapshot.head, state, entries.map(e => e.update))
    this.options.observer?.mergedFromLog()
    return use({ ...whole, refused: refused.map(i => entries[i]?.id ?? ''), merged })
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
        this.lastEmitted.delete(docId)
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
    if (event.type === 'update') this.keepMerged(docId, event.eventId, event.update)
    else if (event.type === 'reset') this.lastEmitted.delete(docId)
  }

  /**
   * A watch delivers a document's updates in order and without gaps, so an update that directly
   * follows the head the document is merged at is taken at once (applied with the others of this
   * turn, see {@link settleSoon}); otherwise the merged document is brought up to date by a read
   * ({@link follow}).
   */
  private keepMerged (docId: string, eventId: string, update: Uint8Array): void {
    const parsed = parseEventId(eventId)
    if (parsed === null) return
    const previous = this.lastEmitted.get(docId)
    this.lastEmitted.set(docId, parsed.id)
    const kept = this.merged.get(docId)
    if (kept !== undefined && kept.epoch === parsed.epoch && kept.head === previous && this.merged.defer(docId, kept, parsed.id, update)) {
      this.settleSoon(docId)
      return
    }
    this.follow(docId)
  }

  /**
   * Applies a kept document's deferred updates once the event loop has handled the I/O at hand:
   * the updates that arrived together go in one transaction (many when the server is busy, one
   * when it is not and has the time), and a read that comes later finds the document merged
   * instead of applying them on its request's path. A document Yjs refused an update of is
   * forgotten there: {@link follow} merges it anew, so that read finds it merged all the same.
   */
  private settleSoon (docId: string): void {
    if (this.settling.has(docId)) return
    this.settling.set(docId, setImmediate(() => {
      this.settling.delete(docId)
      try {
        if (!this.merged.settleKept(docId)) this.follow(docId)
      } catch (error) {
        // Nothing else would catch it here: the process would end.
        this.options.logger.error('applying delivered updates failed', { docId, error: String(error) })
      }
    }))
  }

  /**
   * Keeps a document that has readers here merged in memory close to its head, a moment after
   * updates arrive: the next cold sync or diff then finds it merged instead of applying its whole
   * log first (the peers keep every open document in memory; this keeps the ones being read).
   */
  private follow (docId: string): void {
    if (this.following.has(docId) || this.options.mergedDocsBytes === 0) return
    const timer = setTimeout(() => {
      const run = this.withMerged(docId, false, () => undefined)
        .catch(error => this.options.logger.warn('merging a followed document failed', { docId, error: String(error) }))
        .finally(() => {
          this.following.delete(docId)
          this.merging.delete(run)
        })
      this.merging.add(run)
    }, FOLLOW_DELAY_MS)
    timer.unref()
    this.following.set(docId, timer)
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

  /**
   * Brings a merged document to `head` with `entries` (everything stored after `after`), when it is
   * merged at `after` or at one of those entries; false otherwise (or when Yjs refused one).
   */
  private catchUp (docId: string, merged: MergedDoc, after: StreamId, entries: readonly LogEntry[], head: StreamId): boolean {
    const from = merged.head === after ? 0 : entries.findIndex(e => e.id === merged.head) + 1
    return (from > 0 || merged.head === after) && this.merged.advance(docId, merged, head, entries.slice(from).map(e => e.update))
  }

  private async compactNow (docId: string): Promise<boolean> {
    const started = performance.now()
    const planned = await this.planFromDelivered(docId) ?? await this.withMerged(docId, true, ({ snapshot, pending, refused, merged }) => {
      if (snapshot.epoch === null || pending.length === 0) return null
      return { commit: this.compactionCommit(snapshot.epoch, snapshot.compacted, pending, merged.full(), merged.stateVector()), refused }
    })
    if (planned === null) return false
    const { commit, refused } = planned
    if (refused.length > 0) this.options.logger.error('compaction dropped updates that Yjs refused', { docId, ids: refused })
    const committed = await this.commitCompaction(docId, commit)
    if (committed) {
      this.options.observer?.compacted((performance.now() - started) / 1000, commit.mergedUpdates)
      this.options.logger.debug('compacted', { docId, updates: commit.mergedUpdates, stateBytes: commit.state.length })
    }
    return committed
  }

  /**
   * Plans a compaction up to the head of a kept document that follows the deliveries here,
   * encoded before the log is read: updates delivered during the read move the document on, and
   * were it read first, it could no longer give the state at the read's head (merging the whole
   * document anew instead cost a full rebuild per compaction while a document was being written).
   * What was stored past that head is left to the next compaction. `null`: no such document.
   */
  private async planFromDelivered (docId: string): Promise<{ commit: CompactionCommit; refused: string[] } | null> {
    const kept = this.merged.get(docId)
    if (kept === undefined || kept.head !== this.lastEmitted.get(docId) || !this.merged.settle(docId, kept)) return null
    const { epoch, head } = kept
    const state = kept.full()
    const stateVector = kept.stateVector()
    const { snapshot, entries } = await this.readFull(docId)
    const upTo = entries.findIndex(e => e.id === head)
    if (snapshot.epoch !== epoch || upTo < 0) return null
    return { commit: this.compactionCommit(epoch, snapshot.compacted, entries.slice(0, upTo + 1), state, stateVector), refused: [] }
  }

  /** A compaction of `pending` (the entries after `compacted`, at least one), given the state after them. */
  private compactionCommit (epoch: string, compacted: StreamId, pending: readonly LogEntry[], state: Uint8Array, stateVector: Uint8Array): CompactionCommit {
    return {
      expectedEpoch: epoch,
      expectedCompacted: compacted,
      compacted: (pending.at(-1) as LogEntry).id,
      state,
      stateVector,
      keepTail: this.options.keepTail,
      mergedUpdates: pending.length,
      mergedBytes: pending.reduce((sum, e) => sum + e.update.length, 0)
    }
  }

  async close (): Promise<void> {
    for (const timer of this.following.values()) clearTimeout(timer)
    await Promise.allSettled([...this.compactions.values(), ...this.merging])
    this.listeners.clear()
    // Deliveries went on while the merges ended: clear what they scheduled too.
    for (const timer of this.following.values()) clearTimeout(timer)
    for (const immediate of this.settling.values()) clearImmediate(immediate)
    this.settling.clear()
    this.following.clear()
    this.merged.clear()
    await this.release()
  }
}
