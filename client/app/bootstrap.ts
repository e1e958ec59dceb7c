/**
 * Bootstrapping a new document, exactly once however many people open it at the same moment.
 *
 * Lexical's own bootstrap (`shouldBootstrap`) inserts a paragraph as an ordinary edit of the
 * local client: two clients that both see an empty document after syncing each insert one, and
 * Yjs keeps both. Here every client writes the *same* Yjs items instead: the seed is made by a
 * fixed client ID at clock 0 with fixed content, so it is byte-for-byte one update wherever it is
 * made. Yjs identifies items by (client ID, clock) and skips items it already has, so applying it
 * twice, or merging two clients that each applied it, leaves one paragraph.
 *
 * Never change the seed's content: a different seed under the same IDs would make documents
 * diverge. To change it, change SEED_CLIENT_ID too.
 */
import * as Y from 'yjs'

/** Lexical's default name for the root shared type of a document (CollaborationPlugin's `rootName`). */
export const ROOT_NAME = 'root'

/** The author of the seed; no real client has it (and Yjs gives a client whose random ID collides a new one). */
const SEED_CLIENT_ID = 0x5eed5eed

/** Origin of the seed's transaction: not a user's edit, so CollaborationPlugin's undo manager ignores it. */
export const SEED_ORIGIN = Symbol('y-sse seed')

const makeSeed = (): Uint8Array => {
  const doc = new Y.Doc()
  doc.clientID = SEED_CLIENT_ID
  doc.transact(() => {
    // What Lexical's binding writes for an empty paragraph: an embedded XmlText typed by `__type`.
    const paragraph = new Y.XmlText()
    doc.get(ROOT_NAME, Y.XmlText).insertEmbed(0, paragraph)
    paragraph.setAttribute('__type', 'paragraph')
  })
  return Y.encodeStateAsUpdate(doc)
}

/** The seed, one Yjs update: an empty paragraph. */
export const SEED = makeSeed()

/**
 * Seeds `doc` when its root is empty; call it once the server's state is in `doc` (the provider's
 * `sync`), so a document with content is never touched. Returns whether it applied the seed.
 */
export const seedIfEmpty = (doc: Y.Doc): boolean => {
  if (doc.get(ROOT_NAME, Y.XmlText).length > 0) return false
  Y.applyUpdate(doc, SEED, SEED_ORIGIN)
  return true
}
