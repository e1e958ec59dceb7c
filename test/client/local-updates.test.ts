/**
 * Concatenating a document's updates (the outbox's merge) gives what `Y.mergeUpdates` gives, and
 * refuses what it cannot concatenate: another client's structs, a gap, an observer's edits.
 */
import * as Y from 'yjs'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { concatLocalUpdates, mergeQueued, splitLocalUpdate, type LocalUpdate, type QueuedUpdate } from '../../client/provider/local-updates.js'

type Edit =
  | { kind: 'insert'; at: number; text: string }
  | { kind: 'delete'; at: number; length: number }
  | { kind: 'format'; at: number; length: number }
  | { kind: 'map'; key: string; value: number | null }
  | { kind: 'array'; at: number; values: number[] }
  | { kind: 'nested'; text: string }
  /** Typed text the document's observer (when it has one) rewrites in a nested transaction, as an editor normalizes. */
  | { kind: 'normalized'; at: number }

/** One local transaction, or another client's edit applied by the provider (which the outbox never sends back). */
type Step = { kind: 'local'; edits: Edit[] } | { kind: 'remote'; text: string }

const fraction = fc.double({ min: 0, max: 1, noNaN: true })
const edit: fc.Arbitrary<Edit> = fc.oneof(
  { weight: 10, arbitrary: fc.record({ kind: fc.constant('insert' as const), at: fraction, text: fc.string({ minLength: 1, maxLength: 8 }) }) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('delete' as const), at: fraction, length: fc.integer({ min: 1, max: 12 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('format' as const), at: fraction, length: fc.integer({ min: 1, max: 6 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('map' as const), key: fc.constantFrom('a', 'b'), value: fc.option(fc.nat(99)) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('array' as const), at: fraction, values: fc.array(fc.nat(9), { minLength: 1, maxLength: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('nested' as const), text: fc.string({ maxLength: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('normalized' as const), at: fraction }) }
)
const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('local' as const), edits: fc.array(edit, { minLength: 1, maxLength: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('remote' as const), text: fc.string({ minLength: 1, maxLength: 4 }) }) }
)

/** The origin of updates the provider applied. */
const PROVIDER = Symbol('provider')
/** Typed by 'normalized' edits, replaced by the observer. */
const MARK = '#'

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
      return
    }
    case 'normalized':
      text.insert(Math.floor(e.at * text.length), MARK)
  }
}

/** Replaces every mark with `*` from the text's observer, in a nested transaction that Yjs also writes into the update of the transaction that fired it. */
const normalizing = (doc: Y.Doc): void => {
  const text = doc.getText('t')
  text.observe(() => {
    const at = text.toString().indexOf(MARK)
    if (at < 0) return
    doc.transact(() => {
      text.delete(at, 1)
      text.insert(at, '*')
    })
  })
}

/** A doc whose updates are taken apart as the outbox takes them: all but those the provider applied. */
const recording = (gc: boolean): { doc: Y.Doc; parts: QueuedUpdate[] } => {
  const doc = new Y.Doc({ gc })
  const parts: QueuedUpdate[] = []
  doc.on('update', (update: Uint8Array, origin: unknown, _doc: Y.Doc, transaction: Y.Transaction) => {
    if (origin !== PROVIDER) parts.push({ update, local: splitLocalUpdate(update, transaction) })
  })
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

/** The parts taken apart, each of which must have been. */
const splits = (parts: readonly QueuedUpdate[]): LocalUpdate[] => parts.map(p => {
  expect(p.local).not.toBeNull()
  return p.local as LocalUpdate
})

describe('concatenating local updates', () => {
  it('gives the document Y.mergeUpdates gives, for any edits, grouping and regrouping', () => {
    let joined = 0
    let merges = 0
    fc.assert(fc.property(
      fc.array(step, { minLength: 1, maxLength: 40 }),
      fc.array(fraction, { maxLength: 6 }),
      fc.array(fraction, { maxLength: 3 }),
      fc.boolean(),
      fc.boolean(),
      (steps, cuts, outerCuts, gc, normalizes) => {
        const { doc, parts } = recording(gc)
        if (normalizes) normalizing(doc)
        const remote = new Y.Doc()
        for (const s of steps) {
          if (s.kind === 'local') {
            doc.transact(() => { for (const e of s.edits) applyEdit(doc, e) })
          } else {
            const before = Y.encodeStateVector(remote)
            remote.getText('t').insert(0, s.text)
            Y.applyUpdate(doc, Y.encodeStateAsUpdate(remote, before), PROVIDER)
          }
        }
        // Merged in groups, then the groups merged again, as the outbox folds and then batches.
        const merged = groups(groups(parts, cuts).map(mergeQueued), outerCuts).map(mergeQueued)
        merges += merged.length
        joined += merged.filter(m => m.local !== null).length
        const others = Y.encodeStateAsUpdate(remote)
        expectSameDoc(replayed([others, ...merged.map(m => m.update)]), doc)
        expectSameDoc(replayed([others, Y.mergeUpdates(parts.map(p => p.update))]), doc)
      }
    ), { seed: 20_261_126, numRuns: 200 })
    // Most merges must have been joins, or the property says little about them.
    expect(joined / merges).toBeGreaterThan(0.6)
  })

  it('does not take apart the update of a transaction whose observer edited the document', () => {
    const { doc, parts } = recording(true)
    normalizing(doc)
    const text = doc.getText('t')
    text.insert(0, 'ab')
    text.insert(2, MARK)
    text.insert(3, 'cd')
    expect(text.toString()).toBe('ab*cd')
    expect(parts.map(p => p.local !== null)).toEqual([true, false, true, true])
    const merged = mergeQueued(parts)
    expectSameDoc(replayed([merged.update]), doc)
    // The next edit's clock follows what was really typed, so a server holding the merge takes it.
    text.insert(0, 'Z')
    expectSameDoc(replayed([merged.update, (parts.at(-1) as QueuedUpdate).update]), doc)
  })

  it('keeps a client\'s runs whole across updates applied from other clients', () => {
    const { doc, parts } = recording(true)
    const other = new Y.Doc()
    other.getText('t').insert(0, 'remote')
    doc.getText('t').insert(0, 'local ')
    Y.applyUpdate(doc, Y.encodeStateAsUpdate(other), PROVIDER)
    doc.getText('t').insert(3, 'AL')
    doc.getText('t').delete(0, 9) // deletes the other client's structs too
    const merged = concatLocalUpdates(splits(parts))
    expect(merged).not.toBeNull()
    expectSameDoc(replayed([Y.encodeStateAsUpdate(other), (merged as LocalUpdate).update]), doc)
  })

  it('refuses another client\'s structs and a gap in the clocks', () => {
    const { doc, parts } = recording(true)
    const other = recording(true)
    doc.getText('t').insert(0, 'one')
    doc.getText('t').insert(3, 'two')
    doc.getText('t').insert(6, 'three')
    other.doc.getText('t').insert(0, 'else')
    const [one, two, three] = splits(parts) as [LocalUpdate, LocalUpdate, LocalUpdate]
    const [elsewhere] = splits(other.parts) as [LocalUpdate]
    expect(concatLocalUpdates([one, three])).toBeNull()
    expect(concatLocalUpdates([two, one])).toBeNull()
    expect(concatLocalUpdates([one, elsewhere])).toBeNull()
    expectSameDoc(replayed([(concatLocalUpdates([one, two, three]) as LocalUpdate).update]), doc)
  })

  it('does not take apart an update of several clients\' structs, nor one that is not its transaction\'s', () => {
    const { doc, parts } = recording(true)
    const a = new Y.Doc()
    const b = new Y.Doc()
    a.getText('t').insert(0, 'a')
    b.getText('t').insert(0, 'b')
    Y.applyUpdate(doc, Y.mergeUpdates([Y.encodeStateAsUpdate(a), Y.encodeStateAsUpdate(b)]), 'persistence')
    expect(parts.map(p => p.local)).toEqual([null])
    const transactions: Y.Transaction[] = []
    doc.on('afterTransaction', (transaction: Y.Transaction) => { transactions.push(transaction) })
    doc.getText('t').insert(0, 'typed')
    doc.getText('t').delete(0, 2)
    const [typed, deleted] = transactions as [Y.Transaction, Y.Transaction]
    const [typedUpdate, deletedUpdate] = parts.slice(1).map(p => p.update) as [Uint8Array, Uint8Array]
    expect(splitLocalUpdate(typedUpdate, deleted)).toBeNull()
    expect(splitLocalUpdate(deletedUpdate, typed)).toBeNull()
  })
})
