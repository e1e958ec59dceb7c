import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { MergedDoc, MergedDocs, RECENT_BYTES, SMALL_DOC_BYTES } from '../../server/store/merged-docs.js'
import { silentLogger } from '../../server/logger.js'
import { waitFor } from '../helpers/wait.js'

/** A document of `length` characters as one update. */
const textUpdate = (length: number): Uint8Array => {
  const doc = new Y.Doc()
  doc.getText('t').insert(0, 'x'.repeat(length))
  return Y.encodeStateAsUpdate(doc)
}

const textOf = (update: Uint8Array): string => {
  const doc = new Y.Doc()
  Y.applyUpdate(doc, update)
  return doc.getText('t').toString()
}

/** Merged docs within `budget` keeping document `d`, merged from `state` at head `1-0`. */
const keeping = (budget: number, state: Uint8Array | null): { merged: MergedDocs; doc: MergedDoc } => {
  const merged = new MergedDocs(budget)
  merged.build('d', 'e', '1-0', state, [])
  const doc = merged.get('d')
  if (doc === undefined) throw new Error('not kept')
  return { merged, doc }
}

describe('documents kept merged in memory', () => {
  it('keeps the most recently used within the budget, and serves one too large for it without keeping it', () => {
    const merged = new MergedDocs(100 * 1024)
    for (const docId of ['a', 'b', 'c']) merged.build(docId, 'e', '1-0', textUpdate(2000), [])
    expect(['a', 'b', 'c'].map(docId => merged.get(docId) !== undefined)).toEqual([true, true, true])
    // About 23 KB each, so four fit. Touching "a" makes "b" the least recently used: the fifth evicts it.
    merged.get('a')
    merged.build('d', 'e', '1-0', textUpdate(2000), [])
    merged.build('f', 'e', '1-0', textUpdate(2000), [])
    expect(['a', 'b', 'c', 'd', 'f'].map(docId => merged.get(docId) !== undefined)).toEqual([true, false, true, true, true])

    const { merged: large } = merged.build('large', 'e', '1-0', textUpdate(50_000), [])
    expect(merged.get('large')).toBeUndefined()
    expect(textOf(large.full())).toBe('x'.repeat(50_000))
  })

  it('estimates from what was applied, then from the encoded size once deleted text is gone', () => {
    const { merged, doc } = keeping(1024 * 1024 * 1024, null)
    const writer = new Y.Doc()
    const updates: Uint8Array[] = []
    writer.on('update', (update: Uint8Array) => updates.push(update))
    const empty = doc.bytes
    // Typed and deleted again: the updates are large, the document stays small.
    for (let i = 0; i < 20; i++) {
      writer.getText('t').insert(0, 'y'.repeat(5000))
      writer.getText('t').delete(0, 5000)
    }
    expect(merged.advance('d', doc, '2-0', updates)).toBe(true)
    const applied = updates.reduce((sum, u) => sum + u.length, 0)
    expect(doc.bytes).toBeGreaterThanOrEqual(empty + 10 * applied)
    expect(textOf(doc.full())).toBe('')
    expect(doc.bytes).toBeLessThan(empty + applied)
  })

  it('does not keep a document merged without an update Yjs rejected, and says which', () => {
    const merged = new MergedDocs(1024 * 1024)
    const { merged: state, refused } = merged.build('d', 'e', '2-0', null, [textUpdate(10), new Uint8Array([1, 2, 3])])
    expect(refused).toEqual([1])
    expect(state.full().length).toBeGreaterThan(10)
    expect(merged.get('d')).toBeUndefined()
  })

  it('refuses to advance past an update Yjs rejects, and forgets the document', () => {
    const { merged, doc } = keeping(1024 * 1024, textUpdate(10))
    expect(merged.advance('d', doc, '2-0', [new Uint8Array([1, 2, 3])])).toBe(false)
    expect(merged.get('d')).toBeUndefined()
  })

  it('applies delivered updates together when the document is read, or when 64 wait', () => {
    const { merged, doc } = keeping(1024 * 1024, null)
    const writer = new Y.Doc()
    const updates: Uint8Array[] = []
    writer.on('update', (update: Uint8Array) => updates.push(update))
    for (let i = 0; i < 70; i++) writer.getText('t').insert(i, 'z')
    updates.slice(0, 3).forEach((update, i) => expect(merged.defer('d', doc, `${i + 2}-0`, update)).toBe(true))
    expect(doc.head).toBe('4-0')
    expect(() => doc.full()).toThrow(/deferred/)
    expect(merged.settle('d', doc)).toBe(true)
    expect(textOf(doc.full())).toBe('zzz')
    // The 64th waiting update applies them all without a read.
    updates.slice(3, 67).forEach((update, i) => expect(merged.defer('d', doc, `${i + 5}-0`, update)).toBe(true))
    expect(textOf(doc.full())).toBe('z'.repeat(67))
  })

  it('applies delivered updates at once when 16 KB of them wait, so a read never applies more', () => {
    const { merged, doc } = keeping(1024 * 1024, null)
    const writer = new Y.Doc()
    const updates: Uint8Array[] = []
    writer.on('update', (update: Uint8Array) => updates.push(update))
    // Three large bursts, as a provider merges a fast writer's edits into one POST: 6,000 characters each.
    for (let i = 0; i < 3; i++) writer.getText('t').insert(i * 6000, String(i).repeat(6000))
    expect(merged.defer('d', doc, '2-0', updates[0] as Uint8Array)).toBe(true)
    expect(merged.defer('d', doc, '3-0', updates[1] as Uint8Array)).toBe(true)
    expect(() => doc.full()).toThrow(/deferred/)
    // The third brings the waiting bytes past 16 KB: all three are applied without a read.
    expect(merged.defer('d', doc, '4-0', updates[2] as Uint8Array)).toBe(true)
    expect(textOf(doc.full())).toBe('0'.repeat(6000) + '1'.repeat(6000) + '2'.repeat(6000))
  })

  it('says so when the 64th waiting update brings in one Yjs rejects, and forgets the document', () => {
    const { merged, doc } = keeping(1024 * 1024, null)
    expect(merged.defer('d', doc, '2-0', new Uint8Array([1, 2, 3]))).toBe(true)
    const results = Array.from({ length: 63 }, (_, i) => merged.defer('d', doc, `${i + 3}-0`, textUpdate(1)))
    expect(results.slice(0, 62).every(Boolean)).toBe(true)
    expect(results[62]).toBe(false)
    expect(merged.get('d')).toBeUndefined()
  })

  it('leaves the newer document kept when an older one it replaced is settled', () => {
    const { merged, doc: older } = keeping(1024 * 1024, null)
    merged.defer('d', older, '2-0', new Uint8Array([1, 2, 3]))
    merged.build('d', 'e', '2-0', textUpdate(5), [])
    const newer = merged.get('d')
    expect(merged.settle('d', older)).toBe(false)
    expect(merged.get('d')).toBe(newer)
    expect(newer).not.toBe(older)
  })

  /**
   * Every read of a merged document, decoded: its text (v1 and v2), its state vector, and the text
   * of a client that holds `known` once it applied the diff against its state vector.
   */
  const reads = (doc: MergedDoc, known: Uint8Array): unknown => {
    const client = new Y.Doc()
    Y.applyUpdate(client, known)
    Y.applyUpdate(client, doc.diff(Y.encodeStateVector(client)))
    const v2 = new Y.Doc()
    Y.applyUpdateV2(v2, doc.fullV2())
    return { full: textOf(doc.full()), v2: v2.getText('t').toString(), diff: client.getText('t').toString(), stateVector: [...Y.decodeStateVector(doc.stateVector())] }
  }

  it('holds a small document as its encoding, through updates, and reads it as from a Y.Doc', () => {
    const { merged, doc } = keeping(1024 * 1024, textUpdate(100))
    expect(doc.encodedForm).toBe(true)
    expect(doc.bytes).toBeLessThan(SMALL_DOC_BYTES)
    const writer = new Y.Doc()
    Y.applyUpdate(writer, doc.full())
    const known = Y.encodeStateAsUpdate(writer)
    const updates: Uint8Array[] = []
    writer.on('update', (update: Uint8Array) => updates.push(update))
    writer.getText('t').insert(0, 'abc')
    writer.getText('t').delete(50, 10)
    // Moved through a Y.Doc, and held as its encoding again.
    expect(merged.advance('d', doc, '2-0', updates.splice(0))).toBe(true)
    expect(doc.encodedForm).toBe(true)
    writer.getText('t').insert(3, 'def')
    expect(merged.defer('d', doc, '3-0', updates[0] as Uint8Array)).toBe(true)
    expect(merged.settle('d', doc)).toBe(true)
    expect(doc.encodedForm).toBe(true)
    const expected = writer.getText('t').toString()
    // The same document in a Y.Doc.
    const yDoc = new Y.Doc()
    Y.applyUpdate(yDoc, Y.encodeStateAsUpdate(writer))
    const inYDoc = new MergedDoc('e', '3-0', yDoc, () => {})
    expect(inYDoc.encodedForm).toBe(false)
    const empty = Y.encodeStateAsUpdate(new Y.Doc())
    expect(reads(doc, empty)).toEqual(reads(inYDoc, empty))
    expect(reads(doc, known)).toEqual(reads(inYDoc, known))
    expect(reads(doc, known)).toMatchObject({ full: expected, diff: expected })
  })

  it('counts every update deferred on a document held as its encoding, and its v2 copy', () => {
    const { merged, doc } = keeping(1024 * 1024, textUpdate(100))
    expect(doc.encodedForm).toBe(true)
    const held = doc.bytes
    doc.fullV2()
    expect(doc.bytes).toBe(held + doc.fullV2().length)
    const writer = new Y.Doc()
    Y.applyUpdate(writer, doc.full())
    const updates: Uint8Array[] = []
    writer.on('update', (update: Uint8Array) => updates.push(update))
    // 40 updates of about 200 bytes: under the 64 updates and 16 KB that are applied at once.
    for (let i = 0; i < 40; i++) writer.getText('t').insert(0, String(i % 10).repeat(200))
    updates.forEach((update, i) => expect(merged.defer('d', doc, `${i + 2}-0`, update)).toBe(true))
    const deferred = updates.reduce((sum, u) => sum + u.length, 0)
    expect(doc.bytes).toBeGreaterThanOrEqual(10 * deferred)
    // Settled, it is 8 KB encoded: past the small size, so it stays in its Y.Doc.
    expect(merged.settle('d', doc)).toBe(true)
    expect(doc.encodedForm).toBe(false)
    expect(textOf(doc.full())).toBe(writer.getText('t').toString())
  })

  it('holds a larger document in a Y.Doc while updates move it, and as its encoding once they stop, in the budget too', async () => {
    const merged = new MergedDocs(60 * 1024, silentLogger, 50)
    merged.build('a', 'e', '1-0', textUpdate(5000), [])
    const a = merged.get('a') as MergedDoc
    // 3 KB + ten times the 5 KB encoding.
    expect(a.encodedForm).toBe(false)
    expect(a.bytes).toBeGreaterThan(50 * 1024)
    await waitFor(() => a.encodedForm, { message: 'the quiet document is still in a Y.Doc' })
    expect(a.bytes).toBeLessThan(6 * 1024)
    expect(textOf(a.full())).toBe('x'.repeat(5000))
    // Both fit the budget now: "a" held as its encoding, "b" in its Y.Doc.
    merged.build('b', 'e', '1-0', textUpdate(5000), [])
    expect(merged.get('a')).toBe(a)
    expect(merged.get('b')?.encodedForm).toBe(false)
    await waitFor(() => merged.get('b')?.encodedForm === true, { message: 'the quiet document is still in a Y.Doc' })
    // An update takes "a" back into a Y.Doc, and it goes quiet again.
    const writer = new Y.Doc()
    Y.applyUpdate(writer, a.full())
    const updates: Uint8Array[] = []
    writer.on('update', (update: Uint8Array) => updates.push(update))
    writer.getText('t').insert(0, 'y')
    expect(merged.advance('a', a, '2-0', updates)).toBe(true)
    expect(a.encodedForm).toBe(false)
    expect(merged.get('a')).toBe(a)
    await waitFor(() => a.encodedForm, { message: 'the quiet document is still in a Y.Doc' })
    expect(textOf(a.full())).toBe('y' + 'x'.repeat(5000))
    merged.clear()
  })

  it('forgets a document when a deferred update turns out to be one Yjs rejects', () => {
    const { merged, doc } = keeping(1024 * 1024, textUpdate(10))
    expect(merged.defer('d', doc, '2-0', new Uint8Array([1, 2, 3]))).toBe(true)
    expect(merged.settle('d', doc)).toBe(false)
    expect(merged.get('d')).toBeUndefined()
  })

  it('remembers the latest delivered updates with their IDs within 4 KB, and forgets them when it moves otherwise', () => {
    const writer = new Y.Doc()
    const updates: Uint8Array[] = []
    writer.on('update', (update: Uint8Array) => updates.push(update))
    writer.getText('t').insert(0, 'x'.repeat(5000))
    const { merged, doc } = keeping(1024 * 1024 * 1024, updates.splice(0)[0] as Uint8Array)
    // Delivered one by one at heads 2-0 … 21-0, about 300 bytes each.
    const ids: string[] = []
    const sizes: number[] = []
    for (let i = 2; i <= 21; i++) {
      writer.getText('t').insert(0, String(i % 10).repeat(290))
      const update = updates.splice(0)[0] as Uint8Array
      ids.push(`${i}-0`)
      sizes.push(update.length)
      expect(merged.defer('d', doc, `${i}-0`, update)).toBe(true)
    }
    expect(merged.settle('d', doc)).toBe(true)
    const after = (id: string): string[] | undefined => doc.deliveredAfter(id)?.map(e => e.id)
    expect(after('21-0')).toEqual([])
    expect(after('20-0')).toEqual(['21-0'])
    // As many back as fit in 4 KB, counted from the newest; the one before them is where they start.
    let fit = 0
    for (let bytes = 0; bytes + (sizes.at(-1 - fit) as number) <= RECENT_BYTES; fit++) bytes += sizes.at(-1 - fit) as number
    expect(fit).toBeLessThan(ids.length - 1)
    expect(after(ids[ids.length - 1 - fit] as string)).toEqual(ids.slice(-fit))
    expect(after(ids[ids.length - 2 - fit] as string)).toBeUndefined()
    expect(after('1-0')).toBeUndefined()
    // Moved by a read of the log (advance) or held as its encoding, it replays nothing but from its head.
    writer.getText('t').insert(0, 'z')
    expect(merged.advance('d', doc, '22-0', updates.splice(0))).toBe(true)
    expect([after('21-0'), after('22-0')]).toEqual([undefined, []])
    writer.getText('t').insert(0, 'w')
    expect(merged.defer('d', doc, '23-0', updates.splice(0)[0] as Uint8Array)).toBe(true)
    expect(after('22-0')).toEqual(['23-0'])
    expect(merged.settle('d', doc)).toBe(true)
    doc.holdEncoded()
    expect([after('22-0'), after('23-0')]).toEqual([undefined, []])
  })
})
