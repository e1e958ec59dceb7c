/** The editor's bootstrap seed: the same Yjs items wherever it is made, so it can never be doubled. */
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { ROOT_NAME, seedIfEmpty } from '../../client/app/bootstrap.js'

const rootLength = (doc: Y.Doc): number => doc.get(ROOT_NAME, Y.XmlText).length

describe('the bootstrap seed', () => {
  it('leaves one paragraph when two clients both seed an empty document and then merge', () => {
    const [ada, bob] = [new Y.Doc(), new Y.Doc()]
    expect(seedIfEmpty(ada)).toBe(true)
    expect(seedIfEmpty(bob)).toBe(true)
    Y.applyUpdate(ada, Y.encodeStateAsUpdate(bob))
    Y.applyUpdate(bob, Y.encodeStateAsUpdate(ada))
    expect(rootLength(ada)).toBe(1)
    expect(Y.encodeStateAsUpdate(ada)).toEqual(Y.encodeStateAsUpdate(bob))
  })

  it('merges with edits made on top of another copy of the seed', () => {
    const [ada, bob] = [new Y.Doc(), new Y.Doc()]
    seedIfEmpty(ada)
    const paragraph = ada.get(ROOT_NAME, Y.XmlText).toDelta()[0].insert as Y.XmlText
    paragraph.insert(0, 'typed after seeding')
    seedIfEmpty(bob)
    Y.applyUpdate(bob, Y.encodeStateAsUpdate(ada))
    expect(rootLength(bob)).toBe(1)
    expect((bob.get(ROOT_NAME, Y.XmlText).toDelta()[0].insert as Y.XmlText).toString()).toBe('typed after seeding')
  })

  it('leaves a document with content alone, and is not a user edit', () => {
    const doc = new Y.Doc()
    doc.get(ROOT_NAME, Y.XmlText).insertEmbed(0, new Y.XmlText())
    const before = Y.encodeStateAsUpdate(doc)
    expect(seedIfEmpty(doc)).toBe(false)
    expect(Y.encodeStateAsUpdate(doc)).toEqual(before)

    const empty = new Y.Doc()
    // What CollaborationPlugin's undo manager tracks: the binding and local (null-origin) edits.
    const undo = new Y.UndoManager(empty.get(ROOT_NAME, Y.XmlText), { trackedOrigins: new Set([null]) })
    seedIfEmpty(empty)
    expect(undo.undoStack).toHaveLength(0)
  })
})
