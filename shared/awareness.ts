/**
 * The y-protocols awareness update format, read and written without an `Awareness` instance so
 * the server can relay, remember and retract presence without holding documents.
 *
 * Layout (lib0 encoding):
 * ```
 * varUint count
 * count × { varUint clientID, varUint clock, varString JSON(state) }   // state `null` = removed
 * ```
 */
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'

/** One client's entry in an awareness update. */
export interface AwarenessEntry {
  clientID: number
  clock: number
  /** The JSON text of the state; `'null'` means the client left. */
  state: string
}

/** Writes entries in the y-protocols awareness update format. */
export const encodeAwarenessEntries = (entries: readonly AwarenessEntry[]): Uint8Array => {
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, entries.length)
  for (const { clientID, clock, state } of entries) {
    encoding.writeVarUint(encoder, clientID)
    encoding.writeVarUint(encoder, clock)
    encoding.writeVarString(encoder, state)
  }
  return encoding.toUint8Array(encoder)
}

/**
 * Reads an awareness update; throws a `TypeError` unless the bytes are exactly one well-formed
 * update whose states are JSON.
 */
export const decodeAwarenessEntries = (update: Uint8Array): AwarenessEntry[] => {
  const decoder = decoding.createDecoder(update)
  const count = decoding.readVarUint(decoder)
  // Each entry takes at least three bytes: refuse counts the body cannot hold before allocating.
  if (count * 3 > update.length) throw new TypeError('awareness entry count exceeds the body')
  const entries: AwarenessEntry[] = []
  for (let i = 0; i < count; i++) {
    const clientID = decoding.readVarUint(decoder)
    const clock = decoding.readVarUint(decoder)
    const state = decoding.readVarString(decoder)
    JSON.parse(state)
    entries.push({ clientID, clock, state })
  }
  if (decoding.hasContent(decoder)) throw new TypeError('trailing bytes after awareness update')
  return entries
}

/** The entry that retracts a client's presence: the next clock with a `null` state. */
export const removalOf = (entry: AwarenessEntry): AwarenessEntry => ({ clientID: entry.clientID, clock: entry.clock + 1, state: 'null' })
