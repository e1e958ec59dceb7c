/**
 * A store in process memory, for a single server without Redis. It keeps the same model as the
 * Redis store (log, compacted state, checkpoints, epochs), so resume behaves the same.
 */
import { encodeAwarenessEntries, type AwarenessEntry } from '../../shared/awareness.js'
import {
  STREAM_START, compareStreamIds, decodeClockMap, extendClocks, maxClocks, newEpoch,
  type Checkpoint, type ClockMap, type ClockRange, type HistorySnapshot, type LogEntry, type StreamId
} from './history.js'
import { LogStore, documentTooLarge, storeDefaults, type Appended, type CompactionCommit, type FullRead, type ReplayRead, type StoreOptions } from './log-store.js'
import { silentLogger } from '../logger.js'
import { MemoryChangeFeed } from './change-feed.js'
import type { StreamPositions } from './types.js'
import { snapshotFor, snapshotsToDrop } from './stream-positions.js'

interface MemoryDoc {
  epoch: string
  head: StreamId
  compacted: StreamId
  floor: StreamId
  state: Uint8Array | null
  stateVector: ClockMap
  log: LogEntry[]
  checkpoints: Checkpoint[]
  pendingUpdates: number
  pendingBytes: number
}

interface StreamRecord {
  expiresAt: number
  snapshots: Map<number, StreamPositions>
}

interface Presence {
  entries: Map<number, AwarenessEntry & { at: number }>
  streams: Map<number, Set<string>>
}

/** {@link DocumentStore} in process memory. */
export class MemoryStore extends LogStore {
  private readonly docs = new Map<string, MemoryDoc>()
  private readonly presence = new Map<string, Presence>()
  /** Multiplexed streams' positions, in the order of their last save (oldest first, for expiry). */
  private readonly streamRecords = new Map<string, StreamRecord>()
  private lastMs = 0
  private seq = 0
  readonly changes: MemoryChangeFeed

  constructor (options: Partial<StoreOptions> = {}) {
    super({ ...storeDefaults, logger: silentLogger, ...options })
    this.changes = new MemoryChangeFeed(this.options.changesRetention)
  }

  /** Stream IDs like Redis assigns them: milliseconds, then a sequence within the millisecond. */
  private nextId (): StreamId {
    const now = Date.now()
    if (now > this.lastMs) {
      this.lastMs = now
      this.seq = 0
    } else {
      this.seq++
    }
    return `${this.lastMs}-${this.seq}`
  }

  private snapshotOf (doc: MemoryDoc | undefined): HistorySnapshot {
    if (doc === undefined) return { epoch: null, head: STREAM_START, compacted: STREAM_START, floor: STREAM_START, stateVector: new Map() }
    return { epoch: doc.epoch, head: doc.head, compacted: doc.compacted, floor: doc.floor, stateVector: new Map(doc.stateVector) }
  }

  protected async appendEntry (docId: string, update: Uint8Array, ranges: readonly ClockRange[]): Promise<Appended> {
    let doc = this.docs.get(docId)
    const limit = this.options.maxDocBytes
    if (limit > 0 && (doc?.state?.length ?? 0) + (doc?.pendingBytes ?? 0) + update.length > limit) throw documentTooLarge(limit)
    if (doc === undefined) {
      doc = {
        epoch: newEpoch(), head: STREAM_START, compacted: STREAM_START, floor: STREAM_START, state: null,
        stateVector: new Map(), log: [], checkpoints: [], pendingUpdates: 0, pendingBytes: 0
      }
      this.docs.set(docId, doc)
    }
    const id = this.nextId()
    // Copy: the caller's buffer may be reused, and the store owns what it keeps.
    const entry = { id, update: update.slice() }
    doc.log.push(entry)
    doc.head = id
    doc.pendingUpdates++
    doc.pendingBytes += update.length
    extendClocks(doc.stateVector, ranges)
    const eventId = `${doc.epoch}.${id}`
    this.changes.record(docId, id, eventId)
    this.emit(docId, { type: 'update', eventId, update: entry.update })
    return { epoch: doc.epoch, id, pendingUpdates: doc.pendingUpdates, pendingBytes: doc.pendingBytes }
  }

  protected async readAfter (docId: string, after: StreamId, maxBytes = Infinity): Promise<ReplayRead> {
    const doc = this.docs.get(docId)
    const log = doc?.log ?? []
    const exists = log.some(e => e.id === after)
    const entries = log.filter(e => compareStreamIds(e.id, after) > 0)
    const complete = entries.reduce((sum, e) => sum + e.update.length, 0) <= maxBytes
    return {
      snapshot: this.snapshotOf(doc),
      entries: complete ? entries : [],
      complete,
      exists,
      checkpoints: exists ? [] : [...doc?.checkpoints ?? []]
    }
  }

  protected async readFull (docId: string): Promise<FullRead> {
    const doc = this.docs.get(docId)
    if (doc === undefined) return { snapshot: this.snapshotOf(doc), state: null, entries: [], checkpoints: [] }
    return {
      snapshot: this.snapshotOf(doc),
      state: doc.state,
      entries: doc.log.filter(e => compareStreamIds(e.id, doc.compacted) > 0),
      checkpoints: [...doc.checkpoints]
    }
  }

  protected async commitCompaction (docId: string, commit: CompactionCommit): Promise<boolean> {
    const doc = this.docs.get(docId)
    if (doc === undefined || doc.epoch !== commit.expectedEpoch || doc.compacted !== commit.expectedCompacted) return false
    doc.state = commit.state
    doc.compacted = commit.compacted
    doc.stateVector = maxClocks(doc.stateVector, decodeClockMap(commit.stateVector))
    doc.checkpoints.unshift({ id: commit.compacted, stateVector: commit.stateVector })
    doc.checkpoints.length = Math.min(doc.checkpoints.length, this.options.checkpointsKept)
    const merged = doc.log.filter(e => compareStreamIds(e.id, commit.compacted) <= 0)
    const floor = merged[merged.length - commit.keepTail - 1]
    if (floor !== undefined) {
      doc.log = doc.log.filter(e => compareStreamIds(e.id, floor.id) > 0)
      doc.floor = floor.id
    }
    doc.pendingUpdates -= commit.mergedUpdates
    doc.pendingBytes -= commit.mergedBytes
    return true
  }

  protected async watch (): Promise<void> {}

  // Appends deliver before they resolve: what was delivered is what is stored.
  protected deliveredHead (docId: string): { epoch: string; id: StreamId } | null {
    const doc = this.docs.get(docId)
    return doc === undefined ? null : { epoch: doc.epoch, id: doc.head }
  }

  protected async unwatch (docId: string): Promise<void> {
    const presence = this.presence.get(docId)
    if (presence !== undefined && presence.streams.size === 0) this.presence.delete(docId)
  }

  private presenceOf (docId: string): Presence {
    let presence = this.presence.get(docId)
    if (presence === undefined) {
      presence = { entries: new Map(), streams: new Map() }
      this.presence.set(docId, presence)
    }
    return presence
  }

  async publishAwareness (docId: string, entries: readonly AwarenessEntry[]): Promise<void> {
    const known = this.presenceOf(docId).entries
    const at = Date.now()
    for (const entry of entries) {
      if (entry.state === 'null') known.delete(entry.clientID)
      else known.set(entry.clientID, { ...entry, at })
    }
    this.emit(docId, { type: 'awareness', update: encodeAwarenessEntries(entries) })
  }

  async awareness (docId: string): Promise<AwarenessEntry[]> {
    const known = this.presence.get(docId)?.entries
    if (known === undefined) return []
    const oldest = Date.now() - this.options.awarenessTimeoutMs
    for (const [clientID, entry] of known) if (entry.at < oldest) known.delete(clientID)
    return [...known.values()].map(({ clientID, clock, state }) => ({ clientID, clock, state }))
  }

  async openPresence (docId: string, clientID: number, connectionId: string): Promise<void> {
    const streams = this.presenceOf(docId).streams
    const set = streams.get(clientID) ?? new Set()
    set.add(connectionId)
    streams.set(clientID, set)
  }

  async closePresence (docId: string, clientID: number, connectionId: string): Promise<boolean> {
    const streams = this.presence.get(docId)?.streams
    const set = streams?.get(clientID)
    if (set === undefined) return true
    set.delete(connectionId)
    if (set.size > 0) return false
    streams?.delete(clientID)
    return true
  }

  async saveStreamPositions (streamKey: string, seq: number, positions: StreamPositions, ttlMs: number): Promise<void> {
    const now = Date.now()
    // Records are ordered by last save, so the expired ones are at the front.
    for (const [key, record] of this.streamRecords) {
      if (record.expiresAt > now) break
      this.streamRecords.delete(key)
    }
    const record = this.streamRecords.get(streamKey) ?? { expiresAt: 0, snapshots: new Map() }
    this.streamRecords.delete(streamKey)
    record.expiresAt = now + ttlMs
    record.snapshots.set(seq, { ...positions })
    for (const old of snapshotsToDrop(record.snapshots.keys())) record.snapshots.delete(old)
    this.streamRecords.set(streamKey, record)
  }

  async streamPositions (streamKey: string, seq: number): Promise<StreamPositions | null> {
    const record = this.streamRecords.get(streamKey)
    if (record === undefined || record.expiresAt <= Date.now()) return null
    const best = snapshotFor(record.snapshots.keys(), seq)
    return best === null ? null : { ...record.snapshots.get(best) }
  }

  async deleteDocument (docId: string): Promise<void> {
    this.docs.delete(docId)
    this.emit(docId, { type: 'reset' })
  }

  async ping (): Promise<void> {}

  protected async release (): Promise<void> {
    this.docs.clear()
    this.presence.clear()
    this.streamRecords.clear()
  }
}
