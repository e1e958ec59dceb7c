/**
 * Merging a document's consecutive updates by concatenation. A V1 update is the structs of each
 * client (a count, the client, the first clock, then each struct written on its own), then a
 * delete set. A local transaction adds structs of one client only, starting where the previous
 * one ended, so consecutive local updates merge by joining their struct bytes under one header
 * and uniting their delete sets: no struct is decoded or encoded again, where `Y.mergeUpdates`
 * decodes and re-encodes every one (it was the largest cost of a fast typist's provider).
 */
import * as Y from 'yjs'
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'

/** Deleted ranges by client: `[clock, length]`, sorted by clock, neither overlapping nor touching. */
type DeleteRanges = Map<number, Array<[number, number]>>

/** A transaction's update taken apart, for {@link concatLocalUpdates}. */
export interface LocalUpdate {
  /** The whole update, in format V1. */
  update: Uint8Array
  /** The client whose structs it holds, `null` when it holds deletions only (`from` and `to` are then 0). */
  client: number | null
  /** The clock of its first struct. */
  from: number
  /** The clock after its last struct. */
  to: number
  /** How many structs it holds (the header's count). */
  structCount: number
  /** Where the structs' own bytes start in `update`: after the header. */
  structsStart: number
  /** Where they end: at the delete set. */
  structsEnd: number
  /** Its delete set. */
  deletes: DeleteRanges
}

/** An update, with its parts when it was taken apart ({@link splitLocalUpdate}). */
export interface QueuedUpdate {
  update: Uint8Array
  local: LocalUpdate | null
}

const encodeDeletes = (encoder: encoding.Encoder, deletes: DeleteRanges): void => {
  encoding.writeVarUint(encoder, deletes.size)
  for (const client of clientsInOrder(deletes)) {
    const ranges = deletes.get(client) as Array<[number, number]>
    encoding.writeVarUint(encoder, client)
    encoding.writeVarUint(encoder, ranges.length)
    for (const [clock, length] of ranges) {
      encoding.writeVarUint(encoder, clock)
      encoding.writeVarUint(encoder, length)
    }
  }
}

const NO_DELETES: DeleteRanges = new Map()

const varUintLength = (n: number): number => {
  let length = 1
  while (n >= 0x80) {
    n = Math.floor(n / 0x80)
    length++
  }
  return length
}

/** Clients of a delete set in the order Yjs writes them: highest first. */
const clientsInOrder = (deletes: DeleteRanges): number[] => [...deletes.keys()].sort((a, b) => b - a)

/**
 * How many bytes at the end of `update` are `deletes` as Yjs writes them, or -1 when they are not.
 * Read back rather than encoded and compared: this runs for every transaction of a typist.
 */
const deletesLength = (update: Uint8Array, deletes: DeleteRanges): number => {
  if (deletes.size === 0) return update[update.length - 1] === 0 ? 1 : -1
  const clients = clientsInOrder(deletes)
  let length = varUintLength(deletes.size)
  for (const client of clients) {
    const ranges = deletes.get(client) as Array<[number, number]>
    length += varUintLength(client) + varUintLength(ranges.length)
    for (const [clock, len] of ranges) length += varUintLength(clock) + varUintLength(len)
  }
  if (length > update.length) return -1
  const decoder = decoding.createDecoder(update)
  decoder.pos = update.length - length
  if (decoding.readVarUint(decoder) !== deletes.size) return -1
  for (const client of clients) {
    const ranges = deletes.get(client) as Array<[number, number]>
    if (decoding.readVarUint(decoder) !== client || decoding.readVarUint(decoder) !== ranges.length) return -1
    for (const [clock, len] of ranges) {
      if (decoding.readVarUint(decoder) !== clock || decoding.readVarUint(decoder) !== len) return -1
    }
  }
  return length
}

/**
 * Takes apart the V1 update a transaction produced (`doc.on('update')` hands both), or returns
 * `null` when it is not the simple kind: structs of more than one client, a layout other than the
 * one read here (checked against the transaction, never assumed), or structs written after the
 * transaction ended (an observer's nested transaction, which Yjs writes into this update too).
 */
export const splitLocalUpdate = (update: Uint8Array, transaction: Y.Transaction): LocalUpdate | null => {
  const decoder = decoding.createDecoder(update)
  const clients = decoding.readVarUint(decoder)
  if (clients > 1) return null
  let deletes = NO_DELETES
  if (transaction.deleteSet.clients.size > 0) {
    deletes = new Map()
    for (const [client, items] of transaction.deleteSet.clients) deletes.set(client, items.map(item => [item.clock, item.len]))
  }
  const deletesStart = update.length - deletesLength(update, deletes)
  if (deletesStart > update.length) return null
  if (clients === 0) {
    if (decoder.pos !== deletesStart) return null
    return { update, client: null, from: 0, to: 0, structCount: 0, structsStart: deletesStart, structsEnd: deletesStart, deletes }
  }
  const structCount = decoding.readVarUint(decoder)
  const client = decoding.readVarUint(decoder)
  const from = decoding.readVarUint(decoder)
  const to = transaction.afterState.get(client)
  if (from !== (transaction.beforeState.get(client) ?? 0) || to === undefined || to <= from || structCount === 0 || decoder.pos >= deletesStart) return null
  // Yjs writes the client's structs up to the store's end, which an observer may have moved past `to`.
  if (Y.getState(transaction.doc.store, client) !== to) return null
  return { update, client, from, to, structCount, structsStart: decoder.pos, structsEnd: deletesStart, deletes }
}

const uniteDeletes = (parts: readonly LocalUpdate[]): DeleteRanges => {
  const united: DeleteRanges = new Map()
  for (const { deletes: set } of parts) {
    for (const [client, ranges] of set) {
      const all = united.get(client)
      if (all === undefined) united.set(client, [...ranges])
      else all.push(...ranges)
    }
  }
  for (const [client, ranges] of united) {
    ranges.sort((a, b) => a[0] - b[0])
    const merged: Array<[number, number]> = []
    for (const [clock, length] of ranges) {
      const last = merged.at(-1)
      if (last !== undefined && clock <= last[0] + last[1]) last[1] = Math.max(last[1], clock + length - last[0])
      else merged.push([clock, length])
    }
    united.set(client, merged)
  }
  return united
}

/**
 * Merges local updates, oldest first, into one equivalent to `Y.mergeUpdates` of them, or returns
 * `null` when their structs are not one client's unbroken run (another client's, or a gap).
 */
export const concatLocalUpdates = (parts: readonly LocalUpdate[]): LocalUpdate | null => {
  let client: number | null = null
  let from = 0
  let to = 0
  let structCount = 0
  for (const part of parts) {
    if (part.client === null) continue
    if (client === null) {
      client = part.client
      from = part.from
    } else if (part.client !== client || part.from !== to) {
      return null
    }
    to = part.to
    structCount += part.structCount
  }
  const encoder = encoding.createEncoder()
  if (client === null) {
    encoding.writeVarUint(encoder, 0)
  } else {
    encoding.writeVarUint(encoder, 1)
    encoding.writeVarUint(encoder, structCount)
    encoding.writeVarUint(encoder, client)
    encoding.writeVarUint(encoder, from)
  }
  const structsStart = encoding.length(encoder)
  for (const part of parts) {
    encoding.writeUint8Array(encoder, part.update.subarray(part.structsStart, part.structsEnd))
  }
  const structsEnd = encoding.length(encoder)
  const deletes = uniteDeletes(parts)
  encodeDeletes(encoder, deletes)
  return { update: encoding.toUint8Array(encoder), client, from, to, structCount, structsStart, structsEnd, deletes }
}

/**
 * Merges updates, oldest first: by {@link concatLocalUpdates} when every one was taken apart and
 * they are one client's unbroken run (the result is then taken apart too), else with
 * `Y.mergeUpdates`.
 */
export const mergeQueued = (queued: readonly QueuedUpdate[]): QueuedUpdate => {
  const locals = queued.map(q => q.local)
  const local = locals.every((part): part is LocalUpdate => part !== null) ? concatLocalUpdates(locals) : null
  return { update: local?.update ?? Y.mergeUpdates(queued.map(q => q.update)), local }
}
