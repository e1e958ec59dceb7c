/**
 * The pure logic of a document's history, shared by every store: event IDs, state vectors kept
 * as maps, resume planning and compaction. No I/O here; stores fetch a {@link HistorySnapshot}
 * and hand it over.
 *
 * Model: a document is a compacted `state` (all updates up to the stream ID `compacted`) plus a
 * log of updates in stream order. Compaction trims the log only up to `floor` (≤ `compacted`),
 * keeping a tail so recent resume points replay exactly; it records a checkpoint (stream ID and
 * state vector) each time, so older resume points get a diff instead of the whole document.
 */
import * as Y from 'yjs'
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import type { ResumeKind } from '../../shared/protocol.js'
import type { MergedState } from './merged-docs.js'

/** A Redis-style stream ID `<ms>-<seq>`; `0-0` is before every entry. */
export type StreamId = string

export const STREAM_START: StreamId = '0-0'

/**
 * The event ID of a document with no updates. It carries no epoch because an empty state is the
 * same in every life of a document.
 */
export const EMPTY_EVENT_ID = '0'

/** A stored update with its position in the log. */
export interface LogEntry {
  id: StreamId
  update: Uint8Array
}

/** A compaction checkpoint: the state vector of the document at stream ID `id`. */
export interface Checkpoint {
  id: StreamId
  stateVector: Uint8Array
}

/** Client ID → next expected clock, the in-memory form of a Yjs state vector. */
export type ClockMap = Map<number, number>

const STREAM_ID = /^(\d{1,20})-(\d{1,20})$/

/** Whether `id` has the form of a Redis stream ID (`<ms>-<seq>`). */
export const isStreamId = (id: string): boolean => STREAM_ID.test(id)

const LEADING_ZEROS = /^0+(?=\d)/

/**
 * Compares two unsigned decimal integers of any length as strings: no BigInt, since this runs for
 * every delivery on every stream.
 */
const compareDecimal = (a: string, b: string): number => {
  const x = a.replace(LEADING_ZEROS, '')
  const y = b.replace(LEADING_ZEROS, '')
  if (x.length !== y.length) return x.length < y.length ? -1 : 1
  return x === y ? 0 : x < y ? -1 : 1
}

/** Compares two stream IDs numerically. */
export const compareStreamIds = (a: StreamId, b: StreamId): number => {
  const [, am = '0', as = '0'] = STREAM_ID.exec(a) ?? []
  const [, bm = '0', bs = '0'] = STREAM_ID.exec(b) ?? []
  return compareDecimal(am, bm) || compareDecimal(as, bs)
}

/** Event IDs are `<epoch>.<streamId>`: the epoch tells lives of a document apart. */
export const formatEventId = (epoch: string, id: StreamId): string => (id === STREAM_START ? EMPTY_EVENT_ID : `${epoch}.${id}`)

const MAX_U64 = String(2n ** 64n - 1n)

/** Parses an event ID; `null` when it is not one this server could have issued. */
export const parseEventId = (eventId: string): { epoch: string | null; id: StreamId } | null => {
  if (eventId === EMPTY_EVENT_ID) return { epoch: null, id: STREAM_START }
  const dot = eventId.indexOf('.')
  if (dot <= 0) return null
  const id = eventId.slice(dot + 1)
  const match = STREAM_ID.exec(id)
  if (match === null || compareDecimal(match[1] as string, MAX_U64) > 0 || compareDecimal(match[2] as string, MAX_U64) > 0) return null
  return { epoch: eventId.slice(0, dot), id }
}

const EPOCH_LENGTH = 12

/**
 * Random bytes for epochs, drawn a hundred epochs at a time: every append draws an epoch (used only
 * if it creates the document), and a call into the system's random source per append was about
 * 3 % of a small POST's CPU on a server at rest.
 */
const epochEntropy = { bytes: new Uint8Array(0), used: 0 }

/** A new random epoch: 12 characters of `[a-z0-9]`. */
export const newEpoch = (): string => {
  if (epochEntropy.used + EPOCH_LENGTH > epochEntropy.bytes.length) {
    epochEntropy.bytes = crypto.getRandomValues(new Uint8Array(100 * EPOCH_LENGTH))
    epochEntropy.used = 0
  }
  let epoch = ''
  for (let i = 0; i < EPOCH_LENGTH; i++) epoch += ((epochEntropy.bytes[epochEntropy.used++] as number) % 36).toString(36)
  return epoch
}

export const decodeClockMap = (stateVector: Uint8Array): ClockMap => Y.decodeStateVector(stateVector)

export const encodeClockMap = (clocks: ClockMap): Uint8Array => {
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, clocks.size)
  // Descending client order, as Yjs writes state vectors.
  for (const [client, clock] of [...clocks].sort((a, b) => b[0] - a[0])) {
    encoding.writeVarUint(encoder, client)
    encoding.writeVarUint(encoder, clock)
  }
  return encoding.toUint8Array(encoder)
}

/** Per-client maximum of two state vectors: both are lower bounds of what a client holds, so is this. */
export const maxClocks = (a: ClockMap, b: ClockMap): ClockMap => {
  const out = new Map(a)
  for (const [client, clock] of b) if ((out.get(client) ?? 0) < clock) out.set(client, clock)
  return out
}

/** Whether state vector `outer` is at or past `inner` for every client. */
export const covers = (outer: ClockMap, inner: ClockMap): boolean => {
  for (const [client, clock] of inner) if ((outer.get(client) ?? 0) < clock) return false
  return true
}

/** The contiguous clock range `[from, to)` an update adds for one client. */
export interface ClockRange {
  client: number
  from: number
  to: number
}

/** Extends a state vector by an update's ranges: only where the range starts within what is held. */
export const extendClocks = (clocks: ClockMap, ranges: readonly ClockRange[]): void => {
  for (const { client, from, to } of ranges) {
    const current = clocks.get(client) ?? 0
    if (from <= current && to > current) clocks.set(client, to)
  }
}

/** What a store reads to answer a resume: one consistent view of a document. */
export interface HistorySnapshot {
  epoch: string | null
  /** Stream ID of the last stored update (`0-0` when none). */
  head: StreamId
  /** Everything up to here is merged into `state`. */
  compacted: StreamId
  /** The log holds every entry after this ID. */
  floor: StreamId
  /** State vector at the head (a lower bound, exact after compaction). */
  stateVector: ClockMap
}

/** Where a client says it is. */
export interface ResumePoint {
  /** The last event ID the client received. */
  lastEventId?: string | undefined
  /** The client's state vector (first connections only). */
  stateVector?: Uint8Array | undefined
}

/** The answer to a resume: the sync event's content. */
export interface SyncResult {
  /** The head event ID: the sync event's `id:`. */
  eventId: string
  update: Uint8Array
  stateVector: Uint8Array
  resume: ResumeKind
}

/**
 * The stream ID after which the log must be replayed for `lastEventId`, or `null` when the log
 * cannot answer (no ID, another epoch, trimmed away, ahead of the head). An ID strictly inside
 * the log must also be a stored entry: the caller checks that, since only it can read the log.
 */
export const replayStart = (snapshot: HistorySnapshot, lastEventId: string | undefined): StreamId | null => {
  if (lastEventId === undefined) return null
  const parsed = parseEventId(lastEventId)
  if (parsed === null) return null
  if (parsed.id === STREAM_START) return snapshot.floor === STREAM_START ? STREAM_START : null
  if (parsed.epoch !== snapshot.epoch) return null
  if (compareStreamIds(parsed.id, snapshot.floor) < 0 || compareStreamIds(parsed.id, snapshot.head) > 0) return null
  return parsed.id
}

/** The newest checkpoint at or before a resume point of the current epoch, if any is kept. */
export const checkpointFor = (snapshot: HistorySnapshot, checkpoints: readonly Checkpoint[], lastEventId: string | undefined): Checkpoint | null => {
  const parsed = lastEventId === undefined ? null : parseEventId(lastEventId)
  if (parsed === null || parsed.epoch !== snapshot.epoch || compareStreamIds(parsed.id, snapshot.head) > 0) return null
  let best: Checkpoint | null = null
  for (const checkpoint of checkpoints) {
    if (compareStreamIds(checkpoint.id, parsed.id) <= 0 && (best === null || compareStreamIds(checkpoint.id, best.id) > 0)) best = checkpoint
  }
  return best
}

/**
 * Builds the sync answer when the log cannot replay: a diff against the best lower bound of the
 * client's state (checkpoint and/or its own state vector), or the whole document.
 */
export const diffSync = (
  snapshot: HistorySnapshot,
  merged: MergedState,
  checkpoint: Checkpoint | null,
  from: ResumePoint
): SyncResult => {
  const base = { eventId: formatEventId(snapshot.epoch ?? '', snapshot.head), stateVector: encodeClockMap(snapshot.stateVector) }
  let clocks: ClockMap | null = checkpoint === null ? null : decodeClockMap(checkpoint.stateVector)
  if (from.stateVector !== undefined) {
    const own = decodeClockMap(from.stateVector)
    clocks = clocks === null ? own : maxClocks(clocks, own)
  }
  if (clocks === null) return { ...base, update: merged.full(), resume: 'full' }
  return { ...base, update: merged.diff(encodeClockMap(clocks)), resume: checkpoint === null ? 'state-vector' : 'checkpoint' }
}

/** The sync answer from the log: the merged updates after the resume point. */
export const replaySync = (snapshot: HistorySnapshot, entries: readonly LogEntry[]): SyncResult => ({
  eventId: formatEventId(snapshot.epoch ?? '', snapshot.head),
  stateVector: encodeClockMap(snapshot.stateVector),
  update: mergeAll(entries.map(e => e.update)),
  resume: 'replay'
})

const EMPTY_UPDATE = new Uint8Array([0, 0])

/** Merges updates into one; an empty list gives the empty update. */
export const mergeAll = (updates: readonly Uint8Array[]): Uint8Array => {
  if (updates.length === 0) return EMPTY_UPDATE
  if (updates.length === 1) return updates[0] as Uint8Array
  return Y.mergeUpdates(updates as Uint8Array[])
}

/** Reads a state vector sent by a client; throws a `TypeError` when it is not one. */
export const checkStateVector = (bytes: Uint8Array): Uint8Array => {
  const decoder = decoding.createDecoder(bytes)
  const count = decoding.readVarUint(decoder)
  if (count * 2 > bytes.length) throw new TypeError('state vector count exceeds its length')
  for (let i = 0; i < count * 2; i++) decoding.readVarUint(decoder)
  if (decoding.hasContent(decoder)) throw new TypeError('trailing bytes after state vector')
  return bytes
}
