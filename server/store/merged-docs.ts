/**
 * Documents kept merged in memory, least recently used evicted beyond a memory budget. A read
 * after a change applies only what was stored since the head a document is merged at, instead of
 * loading the whole state into a new `Y.Doc` for every head.
 *
 * A document that moves is held in a garbage-collecting `Y.Doc`, which takes updates cheaply and
 * gives a diff without encoding the whole document. A `Y.Doc` takes about ten times the heap of
 * the document's encoding, and reads need no `Y.Doc` (Yjs reads state vectors and diffs off an
 * encoded update), so a small document, and one that has not moved for a while, is held as its
 * encoding instead, and goes back into a `Y.Doc` when updates come.
 */
import * as Y from 'yjs'
import type { LogEntry, StreamId } from './history.js'
import { workDoc } from '../ydoc.js'
import { silentLogger, type Logger } from '../logger.js'

/**
 * A document merged at one head: its whole state, or what a state vector lacks. Valid only in the
 * synchronous step it is handed to: a later read may move the document on, or evict it.
 */
export interface MergedState {
  full(): Uint8Array
  /** {@link full} in Yjs's update format v2. */
  fullV2(): Uint8Array
  diff(stateVector: Uint8Array): Uint8Array
  stateVector(): Uint8Array
}

/** An encoded update as a {@link MergedState}, for what is not kept merged. */
export const mergedUpdate = (state: Uint8Array): MergedState => ({
  full: () => state,
  fullV2: () => Y.convertUpdateFormatV1ToV2(state),
  diff: stateVector => Y.diffUpdate(state, stateVector),
  stateVector: () => Y.encodeStateVectorFromUpdate(state)
})

/**
 * Rough heap cost of a merged document, for the budget: a `Y.Doc` holds about ten times its
 * encoded size (measured on the automerge-paper trace: 311 KB encoded, 3.0 MB of heap), and an
 * empty one about 3 KB.
 */
const heapEstimate = (encodedBytes: number): number => 3 * 1024 + 10 * encodedBytes

/** Rough heap cost of a merged document held as its encoding: the bytes and the objects around them. */
const encodedHeapEstimate = (encodedBytes: number): number => 256 + encodedBytes

/**
 * Time one sweep spends at most holding quiet documents as their encoding (encoding a large one
 * takes milliseconds); the rest wait for the next sweep.
 */
const SWEEP_BUDGET_MS = 10

/**
 * A document whose encoding is at most this large is held as its encoding even while it moves:
 * putting it back into a `Y.Doc` for the updates of a turn takes tens of microseconds, where the
 * `Y.Doc` would hold some 10 KB of heap more for as long as the document is kept.
 */
export const SMALL_DOC_BYTES = 1024

/**
 * A larger document that no update moved for this long is held as its encoding: a document that
 * is being edited keeps its `Y.Doc`, one that only has readers gives back the heap.
 */
export const QUIET_MS = 30_000

/**
 * Delivered updates a kept document holds back at most before applying them together, in one
 * transaction (its store applies them sooner, once the I/O at hand is handled): one apply per
 * update was a tenth of a replaying server's CPU, and in a warm loop applying the replay's POSTs
 * in transactions of 64 took 230–410 ms against 430–550 ms one by one.
 */
const DEFERRED_UPDATES = 64

/**
 * Bytes of delivered updates a kept document holds back at most. Its store applies them once the
 * event loop's turn is done; a read within the turn applies them first, so they bound what that
 * read waits for, however much a busy turn brings. Large updates (a burst a provider merged into
 * one POST) gain little from being applied together, where small ones gain most.
 */
const DEFERRED_BYTES = 16 * 1024

/**
 * Bytes of the latest delivered updates a kept document remembers with their IDs ({@link
 * MergedDoc.recent}): a resume that far back is sent their replay rather than a diff.
 */
export const RECENT_BYTES = 4096

/** One document merged at `head`, in a `Y.Doc` or as its encoding. */
export class MergedDoc implements MergedState {
  /** The whole document at `head`, encoded on first use. */
  private encoded: Uint8Array | null = null
  /**
   * The document as its encoding, while it is held so instead of in {@link doc}: at `head` once
   * settled, else at the head before the deferred updates.
   */
  private held: MergedState | null = null
  /** The same in format v2, encoded on first use. */
  private encodedV2: Uint8Array | null = null
  /** Estimated heap: from the encoded size when last encoded, plus what was applied since (an upper bound). */
  bytes = 0
  /** Updates up to `head` not applied yet ({@link MergedDocs.defer}). */
  deferred: Uint8Array[] = []
  /** Their bytes. */
  deferredBytes = 0
  /** When updates last moved the document (`performance.now()`). */
  movedAt = performance.now()
  /**
   * The latest updates delivered into it ({@link MergedDocs.defer}) with their IDs, oldest first,
   * up to `head` without a gap, within {@link RECENT_BYTES}, and the head before the first: a
   * resume a few updates back replays them from here as it would from the log. Any other move
   * starts them anew, and so does holding the document as its encoding, which a small document
   * is after each update (its diff is small anyway) and a large one once quiet. `null`: none.
   */
  private recent: { from: StreamId; entries: LogEntry[]; bytes: number } | null = null

  /** The document in a `Y.Doc`; null while it is held as its encoding ({@link held}). */
  private doc: Y.Doc | null

  /**
   * @param doc - the document merged at `head`.
   * @param resized - told how much the estimate changed.
   */
  constructor (readonly epoch: string, public head: StreamId, doc: Y.Doc, private readonly resized: (delta: number) => void) {
    this.doc = doc
  }

  full (): Uint8Array {
    this.assertSettled()
    if (this.held !== null) return this.held.full()
    if (this.encoded === null) {
      this.encoded = Y.encodeStateAsUpdate(this.yDoc())
      // Deleted text the updates carried is gone from the document: measure again.
      this.resize(heapEstimate(this.encoded.length))
    }
    return this.encoded
  }

  fullV2 (): Uint8Array {
    this.assertSettled()
    if (this.encodedV2 === null) {
      if (this.held === null) {
        this.encodedV2 = Y.encodeStateAsUpdateV2(this.yDoc())
      } else {
        this.encodedV2 = this.held.fullV2()
        // Held as its encoding, the estimate counts what it holds, this copy too.
        this.resize(this.heldEstimate())
      }
    }
    return this.encodedV2
  }

  diff (stateVector: Uint8Array): Uint8Array {
    this.assertSettled()
    return this.held === null ? Y.encodeStateAsUpdate(this.yDoc(), stateVector) : this.held.diff(stateVector)
  }

  stateVector (): Uint8Array {
    this.assertSettled()
    return this.held === null ? Y.encodeStateVector(this.yDoc()) : this.held.stateVector()
  }

  /** Whether it is held as its encoding, not in a `Y.Doc`. */
  get encodedForm (): boolean {
    return this.held !== null
  }

  /**
   * Applies updates in one transaction, in a `Y.Doc` (made from the encoding when it is held so);
   * the indices of those Yjs refused, which it leaves out.
   */
  apply (updates: readonly Uint8Array[]): number[] {
    let doc = this.doc
    if (doc === null) {
      const state = (this.held as MergedState).full()
      doc = workDoc({ gc: true })
      Y.applyUpdate(doc, state)
      this.doc = doc
      this.held = null
      // Deferred updates may have grown the estimate already (see moved).
      this.resize(Math.max(this.bytes, heapEstimate(state.length)))
    }
    return applyAll(doc, updates)
  }

  /** Holds the settled document as its encoding, and lets go of its `Y.Doc`. */
  holdEncoded (): void {
    if (this.doc === null || this.deferred.length > 0) return
    const state = this.full()
    this.doc.destroy()
    this.doc = null
    this.held = mergedUpdate(state)
    this.forgetRecent()
    this.resize(this.heldEstimate())
  }

  /** Remembers an update delivered at `id`, the new head ({@link recent}). */
  rememberDelivered (id: StreamId, update: Uint8Array): void {
    this.recent ??= { from: this.head, entries: [], bytes: 0 }
    // A view into a larger buffer (a Redis reply holds many) would keep all of it.
    this.recent.entries.push({ id, update: update.byteLength < update.buffer.byteLength ? update.slice() : update })
    this.recent.bytes += update.length
    while (this.recent.bytes > RECENT_BYTES) {
      const dropped = this.recent.entries.shift() as LogEntry
      this.recent.bytes -= dropped.update.length
      this.recent.from = dropped.id
    }
  }

  /** Forgets the updates remembered with their IDs: the document moved otherwise. */
  forgetRecent (): void {
    this.recent = null
  }

  /** The updates stored after `id` up to `head`, when it remembers them all ({@link recent}); `null` otherwise. */
  deliveredAfter (id: StreamId): readonly LogEntry[] | null {
    if (id === this.head) return []
    if (this.recent === null) return null
    if (id === this.recent.from) return this.recent.entries
    const at = this.recent.entries.findIndex(entry => entry.id === id)
    return at < 0 ? null : this.recent.entries.slice(at + 1)
  }

  /** The estimate of a document held as its encoding: the encoding, and its v2 copy once made. */
  private heldEstimate (): number {
    return encodedHeapEstimate((this.held?.full().length ?? 0) + (this.encodedV2?.length ?? 0))
  }

  /**
   * Holds it as its encoding when it is small ({@link SMALL_DOC_BYTES}), by the estimate, which
   * bounds its encoded size from above after updates were applied.
   */
  holdEncodedIfSmall (): void {
    if (this.bytes <= heapEstimate(SMALL_DOC_BYTES)) this.holdEncoded()
  }

  destroy (): void {
    this.doc?.destroy()
  }

  private yDoc (): Y.Doc {
    if (this.doc === null) throw new Error('a merged document held as its encoding has no Y.Doc')
    return this.doc
  }

  /** Reads must come after {@link MergedDocs.settle}, which says whether Yjs took what was deferred. */
  private assertSettled (): void {
    if (this.deferred.length > 0) throw new Error('a merged document was read before its deferred updates were applied')
  }

  /** Records updates applied up to `head`. */
  moved (head: StreamId, appliedBytes: number): void {
    this.head = head
    this.encoded = null
    this.encodedV2 = null
    this.movedAt = performance.now()
    // Held as its encoding, it grows into a Y.Doc with the next apply (earlier deferred updates
    // already grew the estimate past that).
    this.resize((this.held === null ? this.bytes : Math.max(this.bytes, heapEstimate(this.held.full().length))) + 10 * appliedBytes)
  }

  private resize (bytes: number): void {
    const delta = bytes - this.bytes
    this.bytes = bytes
    this.resized(delta)
  }
}

/** Applies updates to `doc`; the indices of those Yjs refused (left out, as compaction leaves them out). */
const applyAll = (doc: Y.Doc, updates: readonly Uint8Array[]): number[] => {
  const refused: number[] = []
  Y.transact(doc, () => {
    updates.forEach((update, i) => {
      try {
        Y.applyUpdate(doc, update)
      } catch {
        refused.push(i)
      }
    })
  })
  return refused
}

/** The merged documents of one store, within `budgetBytes` (estimated heap; 0 keeps none). */
export class MergedDocs {
  /** In least-recently-used order: the first is evicted first. */
  private readonly docs = new Map<string, MergedDoc>()
  private bytes = 0
  /** Runs while some document is held in a `Y.Doc`, to hold the quiet ones as their encoding. */
  private sweeper: NodeJS.Timeout | null = null

  /** @param quietMs - see {@link QUIET_MS}. */
  constructor (private readonly budgetBytes: number, private readonly logger: Logger = silentLogger, private readonly quietMs = QUIET_MS) {}

  /** The document merged at some head, marked as just used. */
  get (docId: string): MergedDoc | undefined {
    const merged = this.docs.get(docId)
    if (merged !== undefined) {
      this.docs.delete(docId)
      this.docs.set(docId, merged)
    }
    return merged
  }

  /** Whether `merged` is still the one kept for `docId` (a concurrent read may have replaced it). */
  holds (docId: string, merged: MergedDoc): boolean {
    return this.docs.get(docId) === merged
  }

  /**
   * Merges a state and the updates after it through a garbage-collecting `Y.Doc` at `head`, and
   * keeps it when it fits the budget and Yjs took every update. `refused`: the indices of updates
   * Yjs refused (left out). A document missing one is not kept: a compaction from a kept document
   * would leave it out silently, where one that merges anew reports what it drops.
   */
  build (docId: string, epoch: string, head: StreamId, state: Uint8Array | null, updates: readonly Uint8Array[]): { merged: MergedState; refused: number[] } {
    const doc = workDoc({ gc: true })
    if (state !== null) applyAll(doc, [state])
    const refused = applyAll(doc, updates)
    this.delete(docId)
    let kept = false
    const merged: MergedDoc = new MergedDoc(epoch, head, doc, delta => { if (kept && this.holds(docId, merged)) this.bytes += delta })
    // Sized by its encoding, which a cold sync or a compaction needs next anyway.
    const update = merged.full()
    if (merged.bytes > this.budgetBytes || refused.length > 0) {
      merged.destroy()
      return { merged: mergedUpdate(update), refused }
    }
    this.docs.set(docId, merged)
    kept = true
    this.bytes += merged.bytes
    this.moved(merged)
    this.evict()
    return { merged, refused }
  }

  /**
   * Brings a kept document from its head to `head` with the updates stored in between; false when
   * Yjs refused one: the caller merges the document anew, which leaves that update out and says so.
   */
  advance (docId: string, merged: MergedDoc, head: StreamId, updates: readonly Uint8Array[]): boolean {
    if (!this.settle(docId, merged)) return false
    if (updates.length === 0) return true
    merged.forgetRecent()
    if (merged.apply(updates).length > 0) {
      if (this.holds(docId, merged)) this.delete(docId)
      return false
    }
    merged.moved(head, updates.reduce((sum, u) => sum + u.length, 0))
    if (this.holds(docId, merged)) {
      this.moved(merged)
      this.evict()
    }
    return true
  }

  /**
   * Moves a kept document to `head` with the one update delivered after its head, applied later
   * with others ({@link DEFERRED_UPDATES}, {@link DEFERRED_BYTES}); false when that application
   * found one Yjs refused.
   */
  defer (docId: string, merged: MergedDoc, head: StreamId, update: Uint8Array): boolean {
    merged.rememberDelivered(head, update)
    merged.deferred.push(update)
    merged.deferredBytes += update.length
    merged.moved(head, update.length)
    if ((merged.deferred.length >= DEFERRED_UPDATES || merged.deferredBytes >= DEFERRED_BYTES) && !this.settle(docId, merged)) return false
    if (this.holds(docId, merged)) this.evict()
    return true
  }

  /**
   * Applies the deferred updates of the document kept for `docId`, if any, without counting as a
   * use of it (least recently used order stays); false when Yjs refused one: it is forgotten.
   */
  settleKept (docId: string): boolean {
    const merged = this.docs.get(docId)
    return merged === undefined || this.settle(docId, merged)
  }

  /**
   * Applies a kept document's deferred updates, as every read of it must first; false when it is
   * no longer the one kept, or Yjs refused (or threw on) one of them: the document is forgotten,
   * and the caller merges it anew, which says what it drops.
   */
  settle (docId: string, merged: MergedDoc): boolean {
    if (!this.holds(docId, merged)) return false
    if (merged.deferred.length === 0) return true
    const updates = merged.deferred
    merged.deferred = []
    merged.deferredBytes = 0
    let applied = false
    try {
      applied = merged.apply(updates).length === 0
    } catch (error) {
      // Yjs threw past applyAll's per-update catch: the document is in no known state.
      this.logger.warn('applying updates to a merged document failed', { docId, error: String(error) })
    }
    if (!applied) {
      this.delete(docId)
      return false
    }
    this.moved(merged)
    return true
  }

  delete (docId: string): void {
    const merged = this.docs.get(docId)
    if (merged === undefined) return
    this.docs.delete(docId)
    this.bytes -= merged.bytes
    merged.destroy()
  }

  clear (): void {
    for (const docId of [...this.docs.keys()]) this.delete(docId)
    this.stopSweeping()
  }

  /**
   * After a kept document took updates: held as its encoding when it is small, else in its `Y.Doc`
   * until the sweep finds it quiet.
   */
  private moved (merged: MergedDoc): void {
    merged.holdEncodedIfSmall()
    if (merged.encodedForm || this.sweeper !== null) return
    this.sweeper = setInterval(() => this.sweep(), this.quietMs)
    this.sweeper.unref()
  }

  /**
   * Holds the documents no update moved for {@link quietMs} as their encoding, within
   * {@link SWEEP_BUDGET_MS}; stops once none is left in a `Y.Doc`.
   */
  private sweep (): void {
    const started = performance.now()
    const quietSince = started - this.quietMs
    let inYDocs = 0
    for (const [docId, merged] of this.docs) {
      if (merged.movedAt <= quietSince && performance.now() - started < SWEEP_BUDGET_MS) {
        try {
          merged.holdEncoded()
        } catch (error) {
          // Nothing else would catch it in a timer; the next read merges the document anew.
          this.logger.warn('holding a merged document as its encoding failed', { docId, error: String(error) })
          this.delete(docId)
          continue
        }
      }
      if (!merged.encodedForm) inYDocs++
    }
    if (inYDocs === 0) this.stopSweeping()
  }

  private stopSweeping (): void {
    if (this.sweeper !== null) clearInterval(this.sweeper)
    this.sweeper = null
  }

  private evict (): void {
    for (const docId of this.docs.keys()) {
      if (this.bytes <= this.budgetBytes) return
      this.delete(docId)
    }
  }
}
