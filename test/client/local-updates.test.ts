/**
 * Concatenating a client's own updates (the outbox's merge) gives what `Y.mergeUpdates` gives, and
 * refuses what it cannot concatenate: another client's structs, or a gap.
 */
import * as Y from 'yjs'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { concatLocalUpdates, splitLocalUpdate, type LocalUpdate } from '../../client/provider/local-updates.js'

type Edit =
  | { kind: 'insert'; at: number; text: string }
  | { kind: 'delete'; at: number; length: number }
  | { kind: 'format'; at: number; length: number }
  | { kind: 'map'; key: string; value: number | null }
  | { kind: 'array'; at: number; values: number[] }
  | { kind: 'nested'; text: string }

const fraction = fc.double({ min: 0, max: 1, noNaN: true })
const edit: fc.Arbitrary<Edit> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('insert' as const), at: fraction, text: fc.string({ minLength: 1, maxLength: 8 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('delete' as const), at: fraction, length: fc.integer({ min: 1, max: 12 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('format' as const), at: fraction, length: fc.integer({ min: 1, max: 6 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('map' as const), key: fc.constantFrom('a', 'b'), value: fc.option(fc.nat(99)) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('array' as const), at: fraction, values: fc.array(fc.nat(9), { minLength: 1, maxLength: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('nested' as const), text: fc.string({ maxLength: 4 }) }) }
)

const applyEdit = (doc: Y.Doc, e: Edit): void => {
  const text = doc.getText('t')
  const span = (at: number, length: number): [number, number] => {
    const start = Math.floor(at * text.length)
    return [start, Math.min(length, text.length - start)]
  }
  switch (e.kind) {
    case 'insert':
      text.insert(Math.floor(e.at * text.length), e.text)
      return
    case 'delete': {
      const [start, length] = span(e.at, e.length)
      if (length > 0) text.delete(start, length)
      return
    }
    case 'format': {
      const [start, length] = span(e.at, e.length)
      if (length > 0) text.format(start, length, { bold: true })
      return
    }
    case 'map':
      if (e.value === null) doc.getMap('m').delete(e.key)
      else doc.getMap('m').set(e.key, e.value)
      return
    case 'array': {
      const array = doc.getArray<number>('a')
      array.insert(Math.floor(e.at * array.length), e.values)
      return
    }
    case 'nested': {
      const nested = new Y.Map<Y.Text>()
      nested.set('x', new Y.Text(e.text))
      doc.getArray<unknown>('n').push([nested])
    }
  }
}

/** A doc whose every update is taken apart as the outbox takes it. */
const recording = (gc: boolean): { doc: Y.Doc; parts: Array<LocalUpdate | null> } => {
  const doc = new Y.Doc({ gc })
  const parts: Array<LocalUpdate | null> = []
  doc.on('update', (update: Uint8Array, _origin: unknown, _doc: Y.Doc, transaction: Y.Transaction) => parts.push(splitLocalUpdate(update, transaction)))
  return { doc, parts }
}

const replayed = (updates: readonly Uint8Array[]): Y.Doc => {
  const doc = new Y.Doc()
  for (const update of updates) Y.applyUpdate(doc, update)
  return doc
}

/** Splits `items` into consecutive groups at the given cut points. */
const groups = <T>(items: readonly T[], cuts: readonly number[]): T[][] => {
  const at = [...new Set(cuts.map(c => Math.floor(c * items.length)))].sort((a, b) => a - b)
  const out: T[][] = []
  let start = 0
  for (const cut of [...at, items.length]) {
    if (cut > start) out.push(items.slice(start, cut))
    start = Math.max(start, cut)
  }
  return out
}

const content = (doc: Y.Doc): unknown => ({
  t: doc.getText('t').toDelta(),
  m: doc.getMap('m').toJSON(),
  a: doc.getArray('a').toJSON(),
  n: doc.getArray('n').toJSON()
})

const expectSameDoc = (actual: Y.Doc, expected: Y.Doc): void => {
  expect(content(actual)).toEqual(content(expected))
  expect(Y.equalSnapshots(Y.snapshot(actual), Y.snapshot(expected))).toBe(true)
}

describe('concatenating local updates', () => {
  it('gives the document Y.mergeUpdates gives, for any edits, grouping and regrouping', () => {
    fc.assert(fc.property(
      fc.array(fc.array(edit, { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 40 }),
      fc.array(fraction, { maxLength: 6 }),
      fc.array(fraction, { maxLength: 3 }),
      fc.boolean(),
      (transactions, cuts, outerCuts, gc) => {
        const { doc, parts } = recording(gc)
        for (const edits of transactions) doc.transact(() => { for (const e of edits) applyEdit(doc, e) })
        expect(parts.every(part => part !== null)).toBe(true)
        const local = parts as LocalUpdate[]
        // Merged in groups, then the groups merged again, as the outbox folds and then batches.
        const merged = groups(groups(local, cuts).map(group => concatLocalUpdates(group) as LocalUpdate), outerCuts)
          .map(group => concatLocalUpdates(group) as LocalUpdate)
        expect(merged.every(m => m !== null)).toBe(true)
        const reference = replayed([Y.mergeUpdates(local.map(part => part.update))])
        expectSameDoc(replayed(merged.map(m => m.update)), doc)
        expectSameDoc(replayed(merged.map(m => m.update)), reference)
      }
    ), { seed: 20_261_126, numRuns: 150 })
  })

  it('keeps a client\'s runs whole across updates applied from other clients', () => {
    const { doc, parts } = recording(true)
    const other = new Y.Doc()
    other.getText('t').insert(0, 'remote')
    doc.getText('t').insert(0, 'local ')
    Y.applyUpdate(doc, Y.encodeStateAsUpdate(other), 'remote')
    doc.getText('t').insert(3, 'AL')
    doc.getText('t').delete(0, 9) // deletes the other client's structs too
    const local = [parts[0], parts[2], parts[3]] as LocalUpdate[]
    expect(parts[1]).toMatchObject({ client: other.clientID })
    const merged = concatLocalUpdates(local) as LocalUpdate
    expect(merged).not.toBeNull()
    const copy = replayed([Y.encodeStateAsUpdate(other), merged.update])
    expectSameDoc(copy, doc)
  })

  it('refuses another client\'s structs and a gap in the clocks, which Y.mergeUpdates then merges', () => {
    const { doc, parts } = recording(true)
    const other = recording(true)
    doc.getText('t').insert(0, 'one')
    doc.getText('t').insert(3, 'two')
    doc.getText('t').insert(6, 'three')
    other.doc.getText('t').insert(0, 'else')
    const [one, two, three] = parts as LocalUpdate[]
    expect(concatLocalUpdates([one as LocalUpdate, three as LocalUpdate])).toBeNull()
    expect(concatLocalUpdates([two as LocalUpdate, one as LocalUpdate])).toBeNull()
    expect(concatLocalUpdates([one as LocalUpdate, other.parts[0] as LocalUpdate])).toBeNull()
    expect(concatLocalUpdates([one as LocalUpdate, two as LocalUpdate, three as LocalUpdate])?.update).toEqual(Y.mergeUpdates([one, two, three].map(p => (p as LocalUpdate).update)))
  })

  it('does not take apart an update of several clients\' structs', () => {
    const { doc, parts } = recording(true)
    const a = new Y.Doc()
    const b = new Y.Doc()
    a.getText('t').insert(0, 'a')
    b.getText('t').insert(0, 'b')
    Y.applyUpdate(doc, Y.mergeUpdates([Y.encodeStateAsUpdate(a), Y.encodeStateAsUpdate(b)]), 'remote')
    expect(parts).toEqual([null])
  })
})
