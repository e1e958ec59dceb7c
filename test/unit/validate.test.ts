/**
 * `validateUpdate` against Yjs itself: it must accept what Yjs encodes, report the clock ranges
 * Yjs reports, and never accept bytes that Yjs cannot decode or an empty document cannot take
 * (it applies only updates an empty document could integrate, and walks the rest).
 */
import * as Y from 'yjs'
import fc from 'fast-check'
import * as encoding from 'lib0/encoding'
import { describe, expect, it } from 'vitest'
import { validateUpdate } from '../../server/validate.js'

/** One edit of the kinds a real document holds: text with formats and embeds, maps, arrays, XML, subdocuments, deletions. */
const edits: ((doc: Y.Doc, n: number) => void)[] = [
  (doc, n) => doc.getText('t').insert(Math.min(n, doc.getText('t').length), `word ${n} ✓ 𝄞`),
  (doc, n) => doc.getText('t').insert(0, 'bold', { bold: true, size: n }),
  (doc) => doc.getText('t').insertEmbed(0, { image: 'a.png' }),
  (doc, n) => {
    const text = doc.getText('t')
    if (text.length > 2) text.delete(n % (text.length - 1), 1)
  },
  (doc, n) => doc.getMap('m').set(`k${n % 3}`, { nested: [n, 'x', null, true] }),
  (doc, n) => doc.getMap('m').set('bytes', new Uint8Array([n, 1, 2])),
  (doc, n) => doc.getArray('a').push([n, `s${n}`, { o: n }]),
  (doc) => {
    const array = doc.getArray('a')
    if (array.length > 0) array.delete(0, 1)
  },
  (doc, n) => {
    const element = new Y.XmlElement('p')
    element.setAttribute('class', `c${n}`)
    element.insert(0, [new Y.XmlText('xml')])
    doc.getXmlFragment('x').insert(0, [element])
  },
  (doc, n) => doc.getMap('m').set('sub', new Y.Doc({ guid: `sub-${n}` })),
]

/** The updates a few clients produce editing one document, each captured as the update Yjs emits. */
const updatesOf = (script: readonly [number, number, number][]): Uint8Array[] => {
  const docs = [new Y.Doc(), new Y.Doc(), new Y.Doc()]
  const updates: Uint8Array[] = []
  docs.forEach((doc) => doc.on('update', (update: Uint8Array, origin: unknown) => {
    if (origin !== 'remote') updates.push(update)
  }))
  for (const [who, kind, n] of script) {
    const doc = docs[who % docs.length] as Y.Doc
    const edit = edits[kind % edits.length] as (doc: Y.Doc, n: number) => void
    edit(doc, n)
    // Every client sees every update, so later edits refer to others' items.
    for (const other of docs) if (other !== doc) Y.applyUpdate(other, updates.at(-1) ?? new Uint8Array([0, 0]), 'remote')
  }
  return updates
}

const scripts = fc.array(fc.tuple(fc.nat(2), fc.nat(edits.length - 1), fc.nat(50)), { minLength: 1, maxLength: 12 })

/** The ranges Yjs reports for an update, in the validator's form. */
const yjsRanges = (update: Uint8Array) => {
  const { from, to } = Y.parseUpdateMeta(update)
  return [...to].map(([client, end]) => ({ client, from: from.get(client) ?? 0, to: end }))
}

const acceptedByYjs = (update: Uint8Array): boolean => {
  try {
    Y.decodeUpdate(update)
    Y.applyUpdate(new Y.Doc(), update)
    return true
  } catch {
    return false
  }
}

/**
 * An update of one client starting at `clock` (past 0: an empty document would hold it back
 * unapplied) with one struct under the root type `root`: content ref `ref`, written by `content`.
 */
const oneStruct = (clock: number, ref: number, content: (encoder: encoding.Encoder) => void, clients = 1): Uint8Array => {
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, clients)
  for (let i = 0; i < clients; i++) {
    encoding.writeVarUint(encoder, 1) // structs
    encoding.writeVarUint(encoder, 7) // client
    encoding.writeVarUint(encoder, clock)
    encoding.writeUint8(encoder, ref) // no origins: the parent follows
    encoding.writeVarUint(encoder, 1) // parent is a root type, by name
    encoding.writeVarString(encoder, 'root')
    content(encoder)
  }
  encoding.writeVarUint(encoder, 0) // delete set
  return encoding.toUint8Array(encoder)
}

describe('validateUpdate', () => {
  it('refuses what Yjs cannot decode or hold back, also where it would not apply the update', () => {
    const string = oneStruct(5, 4, (e) => encoding.writeVarString(e, 'fine'))
    expect(validateUpdate(string)).toEqual([{ client: 7, from: 5, to: 9 }])
    const badJson = oneStruct(5, 2, (e) => {
      encoding.writeVarUint(e, 1)
      encoding.writeVarString(e, '{not json')
    })
    const subdocWithoutOptions = oneStruct(5, 9, (e) => {
      encoding.writeVarString(e, 'guid')
      encoding.writeAny(e, null)
    })
    for (const update of [badJson, subdocWithoutOptions]) {
      expect(() => Y.decodeUpdate(update)).toThrow()
      expect(() => validateUpdate(update)).toThrow(/not a valid Yjs update/)
    }
    // An empty delete range decodes, but an empty document holding it back to apply later throws.
    const emptyDeletion = new Uint8Array([0, 1, 7, 1, 3, 0])
    expect(acceptedByYjs(emptyDeletion)).toBe(false)
    expect(() => validateUpdate(emptyDeletion)).toThrow(/empty delete range/)
    // Yjs never encodes a client twice; a decoder keeps the last, so the first would vanish.
    expect(() => validateUpdate(oneStruct(5, 4, (e) => encoding.writeVarString(e, 'x'), 2))).toThrow(/appears twice/)
  })


  it('accepts what Yjs encodes, merged or not, reports the clock ranges Yjs reports, and refuses every truncation', () => {
    fc.assert(fc.property(scripts, (script) => {
      const updates = updatesOf(script)
      updates.push(Y.mergeUpdates(updates))
      for (const update of updates) {
        expect(validateUpdate(update)).toEqual(yjsRanges(update))
        for (const cut of new Set([1, 2, Math.floor(update.length / 2)])) {
          if (cut < update.length) expect(() => validateUpdate(update.slice(0, update.length - cut))).toThrow(/not a valid Yjs update/)
        }
      }
    }), { seed: 20261125, numRuns: 300 })
  })

  it('gives no clock ranges for an update with gaps', () => {
    const doc = new Y.Doc()
    const updates: Uint8Array[] = []
    doc.on('update', (u: Uint8Array) => updates.push(u))
    doc.getText('t').insert(0, 'abc')
    doc.getText('t').insert(3, 'de')
    doc.getText('t').insert(5, 'f')
    // A merge of the first and the third update skips the clocks between them.
    expect(validateUpdate(Y.mergeUpdates([updates[0] as Uint8Array, updates[2] as Uint8Array]))).toEqual([])
  })

  it('never accepts an altered update that Yjs cannot decode or an empty document cannot take', () => {
    let accepted = 0
    let refused = 0
    const alteration = fc.record({ at: fc.nat(), byte: fc.nat(255), how: fc.constantFrom('set', 'insert', 'delete', 'truncate') })
    fc.assert(fc.property(scripts, fc.array(alteration, { minLength: 1, maxLength: 3 }), fc.nat(), (script, alterations, pick) => {
      const updates = updatesOf(script)
      if (updates.length === 0) return // only deletions of nothing
      let bytes = [...(updates[pick % updates.length] as Uint8Array)]
      for (const { at, byte, how } of alterations) {
        const i = at % (bytes.length + 1)
        if (how === 'set') bytes[Math.min(i, bytes.length - 1)] = byte
        else if (how === 'insert') bytes.splice(i, 0, byte)
        else if (how === 'delete') bytes.splice(i, 1)
        else bytes = bytes.slice(0, i)
      }
      const update = new Uint8Array(bytes)
      let ok = true
      try {
        validateUpdate(update)
      } catch {
        ok = false
      }
      if (ok) {
        accepted++
        expect(acceptedByYjs(update)).toBe(true)
      } else refused++
    }), { seed: 42, numRuns: 3000 })
    // Both outcomes occurred, so the property was tested on each side.
    expect(accepted).toBeGreaterThan(100)
    expect(refused).toBeGreaterThan(100)
  })
})
