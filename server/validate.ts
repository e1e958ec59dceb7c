/**
 * Validation of posted Yjs updates before anything is stored: a poisoned update must never reach
 * the log, because every client that later syncs would apply it.
 *
 * Two checks, cheapest first:
 * 1. A structural walk of the v1 update format (structs, contents, delete set) that refuses
 *    counts the body cannot hold before anything is allocated, unknown content or type refs, and
 *    any byte left over or missing at the end.
 * 2. Applying the update to an empty `Y.Doc`, which catches what only integration notices.
 */
import * as Y from 'yjs'
import { workDoc } from './ydoc.js'
import * as decoding from 'lib0/decoding'
import { ErrorCode, ProtocolError } from '../shared/errors.js'
import type { ClockRange } from './store/history.js'

const BITS5 = 31
const BIT6 = 32
const BIT7 = 64
const BIT8 = 128
const CONTENT_SKIP = 10
const TYPE_REF_XML_ELEMENT = 3
const TYPE_REF_XML_HOOK = 5
const MAX_TYPE_REF = 6

const remaining = (decoder: decoding.Decoder): number => decoder.arr.length - decoder.pos

/** Reads a count and refuses it when the rest of the body cannot hold that many items. */
const readCount = (decoder: decoding.Decoder, what: string): number => {
  const count = decoding.readVarUint(decoder)
  if (count > remaining(decoder)) throw new TypeError(`${what} count ${count} exceeds the body`)
  return count
}

const skipId = (decoder: decoding.Decoder): void => {
  decoding.readVarUint(decoder)
  decoding.readVarUint(decoder)
}

const skipContent = (decoder: decoding.Decoder, ref: number): void => {
  switch (ref) {
    case 1: // deleted
      decoding.readVarUint(decoder)
      return
    case 2: // JSON
      for (let n = readCount(decoder, 'JSON item'); n > 0; n--) decoding.readVarString(decoder)
      return
    case 3: // binary
      decoding.readVarUint8Array(decoder)
      return
    case 4: // string
      decoding.readVarString(decoder)
      return
    case 5: // embed
      JSON.parse(decoding.readVarString(decoder))
      return
    case 6: // format
      decoding.readVarString(decoder)
      JSON.parse(decoding.readVarString(decoder))
      return
    case 7: { // type
      const typeRef = decoding.readVarUint(decoder)
      if (typeRef > MAX_TYPE_REF) throw new TypeError(`unknown type ref ${typeRef}`)
      if (typeRef === TYPE_REF_XML_ELEMENT || typeRef === TYPE_REF_XML_HOOK) decoding.readVarString(decoder)
      return
    }
    case 8: // any
      for (let n = readCount(decoder, 'any item'); n > 0; n--) decoding.readAny(decoder)
      return
    case 9: // subdocument
      decoding.readVarString(decoder)
      decoding.readAny(decoder)
      return
    default:
      throw new TypeError(`unknown content ref ${ref}`)
  }
}

/** Walks the whole update; @returns whether it has skip structs (gaps in a client's clocks). */
const walkUpdate = (update: Uint8Array): boolean => {
  const decoder = decoding.createDecoder(update)
  let skips = false
  for (let clients = readCount(decoder, 'client'); clients > 0; clients--) {
    let structs = readCount(decoder, 'struct')
    skipId(decoder) // client, first clock
    for (; structs > 0; structs--) {
      if (remaining(decoder) < 1) throw new TypeError('update ends inside a struct')
      const info = decoding.readUint8(decoder)
      const ref = info & BITS5
      if (ref === 0 || ref === CONTENT_SKIP) {
        skips ||= ref === CONTENT_SKIP
        decoding.readVarUint(decoder) // length
        continue
      }
      if (info & BIT8) skipId(decoder) // origin
      if (info & BIT7) skipId(decoder) // right origin
      if ((info & (BIT7 | BIT8)) === 0) {
        // No origins: the parent is written out, either a root type's name or an item ID.
        if (decoding.readVarUint(decoder) === 1) decoding.readVarString(decoder)
        else skipId(decoder)
        if (info & BIT6) decoding.readVarString(decoder) // parent map key
      }
      skipContent(decoder, ref)
    }
  }
  for (let clients = readCount(decoder, 'delete set client'); clients > 0; clients--) {
    decoding.readVarUint(decoder) // client
    for (let ranges = readCount(decoder, 'delete range'); ranges > 0; ranges--) skipId(decoder) // clock, length
  }
  if (decoder.pos !== update.length) throw new TypeError(`update has ${update.length - decoder.pos} trailing bytes`)
  return skips
}

/**
 * Throws a `malformed-update` {@link ProtocolError} unless `update` is one well-formed Yjs v1
 * update that an empty document accepts.
 *
 * @returns the clock ranges the update adds, for extending the document's state vector. An
 * update with gaps gives none: the state vector then under-estimates until the next compaction
 * computes it exactly. That is safe (a client re-sends a little), while over-estimating would make
 * a client withhold data the server lacks.
 */
export const validateUpdate = (update: Uint8Array): ClockRange[] => {
  try {
    const skips = walkUpdate(update)
    Y.applyUpdate(workDoc({ gc: true }), update)
    if (skips) return []
    const { from, to } = Y.parseUpdateMeta(update)
    return [...to].map(([client, end]) => ({ client, from: from.get(client) ?? 0, to: end }))
  } catch (cause) {
    throw new ProtocolError(ErrorCode.malformedUpdate, `not a valid Yjs update: ${(cause as Error).message}`, { cause })
  }
}
