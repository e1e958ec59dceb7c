/**
 * A headless Lexical editor bound to a document's Yjs state with `@lexical/yjs`, the same binding
 * the browser editor's `CollaborationPlugin` uses. What a bot writes here arrives in the browser as
 * real paragraphs, headings and lists, and what people type can be read back as text, Markdown or
 * Lexical JSON.
 */
import type * as Y from 'yjs'
import { $createParagraphNode, $createTextNode, $getRoot, COLLABORATION_TAG, SKIP_COLLAB_TAG, type LexicalEditor, type SerializedEditorState } from 'lexical'
import { createHeadlessEditor } from '@lexical/headless'
import { $convertFromMarkdownString, $convertToMarkdownString, $generateNodesFromMarkdownString, TRANSFORMERS } from '@lexical/markdown'
import { createBinding, initLocalState, syncLexicalUpdateToYjs, syncYjsChangesToLexical, type Binding, type Provider } from '@lexical/yjs'
import { documentNodes } from '../lexical-nodes.js'
import { openDocument, type OpenDocument, type OpenDocumentOptions } from './open-document.js'

/** Options of {@link openLexicalDocument}. */
export interface LexicalDocumentOptions extends OpenDocumentOptions {
  /** The name peers see in their list of who is here, e.g. `bot: importer`. Default `bot`. */
  name?: string
  /** The colour of that name. */
  color?: string
}

/** A y-sse document seen as a Lexical rich-text document. */
export interface LexicalDocument extends OpenDocument {
  editor: LexicalEditor
  /** The document as plain text, paragraphs separated by blank lines as Lexical does. */
  readText(): string
  /** The document as Markdown (headings, lists, quotes, code, links, bold, italic). */
  readMarkdown(): string
  /** The document as Lexical's serialized editor state. */
  readJson(): SerializedEditorState
  /** Adds a paragraph at the end. */
  appendParagraph(text: string): Promise<void>
  /** Replaces the whole content with the Markdown. */
  replaceWithMarkdown(markdown: string): Promise<void>
  /** Adds the Markdown's blocks at the end. */
  appendMarkdown(markdown: string): Promise<void>
  /** Calls `listener` after every change that came from the server; returns a function that stops it. */
  onRemoteChange(listener: () => void): () => void
}

/** The document as text, Markdown, or Lexical's serialized state as indented JSON. */
export const renderDocument = (document: LexicalDocument, format: 'text' | 'markdown' | 'json'): string => {
  if (format === 'json') return JSON.stringify(document.readJson(), null, 2)
  return format === 'markdown' ? document.readMarkdown() : document.readText()
}

/** Runs an update to completion (headless editors otherwise commit on a microtask). */
const update = (editor: LexicalEditor, fn: () => void): Promise<void> =>
  new Promise(resolve => editor.update(fn, { discrete: true, onUpdate: resolve }))

/**
 * Opens a document as a Lexical rich-text document. Call `whenSynced()` before reading, and
 * `close()` when done: it waits until the server has stored every edit.
 *
 * @example
 * ```ts
 * const notes = openLexicalDocument('http://localhost:8080', 'notes', { name: 'bot: importer' })
 * await notes.whenSynced()
 * await notes.appendMarkdown('## Build\n\n- passed')
 * console.log(notes.readMarkdown())
 * await notes.close()
 * ```
 */
export const openLexicalDocument = (serverUrl: string, docId: string, options: LexicalDocumentOptions = {}): LexicalDocument => {
  const { name = 'bot', color = '#6b7280', ...openOptions } = options
  const opened = openDocument(serverUrl, docId, openOptions)
  const provider = opened.provider as unknown as Provider
  const editor = createHeadlessEditor({
    namespace: 'y-sse',
    nodes: [...documentNodes],
    onError: error => { throw error }
  })
  const docMap = new Map<string, Y.Doc>([[docId, opened.doc]])
  const binding: Binding = createBinding(editor, provider, docId, opened.doc, docMap)
  const remoteListeners = new Set<() => void>()

  const onYjsChanges = (events: Y.YEvent<Y.XmlText>[], transaction: Y.Transaction): void => {
    // A headless editor has no cursors to draw.
    if (transaction.origin !== binding) syncYjsChangesToLexical(binding, provider, events, false, () => {})
  }
  const sharedRoot = binding.root.getSharedType()
  sharedRoot.observeDeep(onYjsChanges as (events: Y.YEvent<Y.AbstractType<unknown>>[], transaction: Y.Transaction) => void)
  const stopWriting = editor.registerUpdateListener(({ prevEditorState, editorState, dirtyLeaves, dirtyElements, normalizedNodes, tags }) => {
    if (!tags.has(SKIP_COLLAB_TAG)) syncLexicalUpdateToYjs(binding, provider, prevEditorState, editorState, dirtyElements, dirtyLeaves, normalizedNodes, tags)
    // Listeners hear about remote changes once the editor state holds them, not before.
    if (tags.has(COLLABORATION_TAG)) for (const listener of remoteListeners) listener()
  })
  initLocalState(provider, name, color, false, {})

  const read = <T>(fn: () => T): T => editor.getEditorState().read(fn)
  let detached = false

  return {
    ...opened,
    editor,
    // The sync update reaches the editor in an update that commits later: flush it before reading.
    whenSynced: () => opened.whenSynced().then(() => update(editor, () => {})),
    readText: () => read(() => $getRoot().getTextContent()),
    readMarkdown: () => read(() => $convertToMarkdownString(TRANSFORMERS)),
    readJson: () => editor.getEditorState().toJSON(),
    appendParagraph: text => update(editor, () => {
      $getRoot().append($createParagraphNode().append($createTextNode(text)))
    }),
    replaceWithMarkdown: markdown => update(editor, () => {
      $convertFromMarkdownString(markdown, TRANSFORMERS)
    }),
    appendMarkdown: markdown => update(editor, () => {
      // New nodes only: existing paragraphs are left alone, so concurrent edits in them survive.
      $getRoot().append(...$generateNodesFromMarkdownString(markdown, TRANSFORMERS))
    }),
    onRemoteChange (listener) {
      remoteListeners.add(listener)
      return () => remoteListeners.delete(listener)
    },
    close () {
      if (!detached) {
        // Every edit is in the Y.Doc already: detach the editor first (closing destroys the doc).
        detached = true
        stopWriting()
        sharedRoot.unobserveDeep(onYjsChanges as (events: Y.YEvent<Y.AbstractType<unknown>>[], transaction: Y.Transaction) => void)
        remoteListeners.clear()
      }
      return opened.close()
    }
  }
}
