/**
 * Validation of posted Yjs updates before anything is stored: a poisoned update must never reach
 * the log, because every client that later syncs would apply it.
 *
 * Two checks, cheapest first:
 * 1. A walk through the v1 update format (structs, contents, delete set) that decodes it as Yjs
 *    does: it refuses counts the body cannot hold before anything is allocated, unknown content or
 *    type refs, contents Yjs's decoder would throw on, and any byte left over or missing at the end.
 * 2. When an empty document could integrate some of it (a client starting at clock 0), applying
 *    it to an empty `Y.Doc`, which catches what only integration notices.
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

/**
 * Skips one item's content as Yjs decodes it (`readItemContent`), refusing what would make Yjs's
 * decoder throw; @returns the content's length in clock units.
 */
const skipContent = (decoder: decoding.Decoder, ref: number): number => {
  switch (ref) {
    case 1: // deleted
      return decoding.readVarUint(decoder)
    case 2: { // JSON: each item parsed, "undefined" standing for undefined
      const count = readCount(decoder, 'JSON item')
      for (let n = count; n > 0; n--) {
        const item = decoding.readVarString(decoder)
        if (item !== 'undefined') JSON.parse(item)
      }
      return count
    }
    case 3: // binary
      decoding.readVarUint8Array(decoder)
      return 1
    case 4: // string, counted in UTF-16 code units like Yjs's clocks
      return decoding.readVarString(decoder).length
    case 5: // embed
      JSON.parse(decoding.readVarString(decoder))
      return 1
    case 6: // format
      decoding.readVarString(decoder)
      JSON.parse(decoding.readVarString(decoder))
      return 1
    case 7: { // type
      const typeRef = decoding.readVarUint(decoder)
      if (typeRef > MAX_TYPE_REF) throw new TypeError(`unknown type ref ${typeRef}`)
      if (typeRef === TYPE_REF_XML_ELEMENT || typeRef === TYPE_REF_XML_HOOK) decoding.readVarString(decoder)
      return 1
    }
    case 8: { // any
      const count = readCount(decoder, 'any item')
      for (let n = count; n > 0; n--) decoding.readAny(decoder)
      return count
    }
    case 9: { // subdocument: Yjs reads its options' properties
      decoding.readVarString(decoder)
      const options: unknown = decoding.readAny(decoder)
      if (options === null || options === undefined) throw new TypeError('subdocument without options')
      return 1
    }
    default:
      throw new TypeError(`unknown content ref ${ref}`)
  }
}

/** What a walk through an update found. */
interface Walked {
  /** The clock range each client's structs cover. */
  ranges: ClockRange[]
  /** Whether there are skip structs (gaps in a client's clocks). */
  skips: boolean
  /** Whether some client's structs start at clock 0, so an empty document could integrate them. */
  fromZero: boolean
}

/** Walks the whole update as Yjs decodes it. */
const walkUpdate = (update: Uint8Array): Walked => {
  const decoder = decoding.createDecoder(update)
  const ranges: ClockRange[] = []
  const clients = new Set<number>()
  let skips = false
  let fromZero = false
  for (let count = readCount(decoder, 'client'); count > 0; count--) {
    let structs = readCount(decoder, 'struct')
    const client = decoding.readVarUint(decoder)
    const from = decoding.readVarUint(decoder)
    // Yjs's encoder writes each client once; a decoder would keep only the last of two.
    if (clients.has(client)) throw new TypeError(`client ${client} appears twice`)
    clients.add(client)
    fromZero ||= from === 0
    let clock = from
    for (; structs > 0; structs--) {
      if (remaining(decoder) < 1) throw new TypeError('update ends inside a struct')
      const info = decoding.readUint8(decoder)
      const ref = info & BITS5
      if (ref === 0 || ref === CONTENT_SKIP) {
        skips ||= ref === CONTENT_SKIP
        clock += decoding.readVarUint(decoder)
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
      clock += skipContent(decoder, ref)
    }
    if (clock > from) ranges.push({ client, from, to: clock })
  }
  for (let count = readCount(decoder, 'delete set client'); count > 0; count--) {
    decoding.readVarUint(decoder) // client
    for (let deletes = readCount(decoder, 'delete range'); deletes > 0; deletes--) {
      decoding.readVarUint(decoder) // clock
      // Yjs never writes an empty range, and throws when it holds one back to apply later.
      if (decoding.readVarUint(decoder) === 0) throw new TypeError('empty delete range')
    }
  }
  if (decoder.pos !== update.length) throw new TypeError(`update has ${update.length - decoder.pos} trailing bytes`)
  return { ranges, skips, fromZero }
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
    const { ranges, skips, fromZero } = walkUpdate(update)
    // An empty document integrates nothing of an update whose every client starts past clock 0:
    // Yjs decodes it and holds it back, structs and deletions, until the start arrives. The walk
    // decodes it the same way and refuses the one thing holding back throws on (an empty delete
    // range). The usual update (typing into a document) is such; applying it cost most of a small
    // POST's validation on a server at rest.
    if (fromZero) Y.applyUpdate(workDoc({ gc: true }), update)
    return skips ? [] : ranges
  } catch (cause) {
    throw new ProtocolError(ErrorCode.malformedUpdate, `not a valid Yjs update: ${(cause as Error).message}`, { cause })
  }
}
