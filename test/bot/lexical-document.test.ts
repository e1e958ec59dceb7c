import { describe, expect, it } from 'vitest'
import { $getRoot, $isElementNode, type LexicalNode } from 'lexical'
import { openDocument, openLexicalDocument, DocumentError, type LexicalDocument } from '../../client/bot/index.js'
import { intercept, onCleanup, startServer } from '../helpers/server.js'
import { waitFor } from '../helpers/wait.js'

const open = (url: string, docId: string, name?: string): LexicalDocument => {
  const document = openLexicalDocument(url, docId, { name, timeoutMs: 5_000 })
  onCleanup(() => document.close().catch(() => {}))
  return document
}

/** The node types under the root, as the other side's editor model holds them. */
const blockTypes = (document: LexicalDocument): string[] =>
  document.editor.getEditorState().read(() => $getRoot().getChildren().map((node: LexicalNode) =>
    node.getType() === 'heading' || node.getType() === 'list' ? `${node.getType()}:${($isElementNode(node) ? (node as unknown as { getTag?: () => string }).getTag?.() : '') ?? ''}` : node.getType()))

describe('the bot library', () => {
  it('imports Markdown that another editor model reads back as headings, lists and formatted text', async () => {
    const { url } = await startServer()
    const importer = open(url, 'doc', 'bot: importer')
    await importer.whenSynced()
    await importer.replaceWithMarkdown('# Title\n\nSome **bold** and *italic* text with a [link](https://example.com).\n\n- one\n- two\n\n1. first\n2. second\n\n> quoted')
    await importer.close()

    const reader = open(url, 'doc')
    await reader.whenSynced()
    await waitFor(() => reader.readText().includes('quoted'))
    expect(blockTypes(reader)).toEqual(['heading:h1', 'paragraph', 'list:ul', 'list:ol', 'quote'])
    expect(reader.readMarkdown()).toBe('# Title\n\nSome **bold** and *italic* text with a [link](https://example.com).\n\n- one\n- two\n\n1. first\n2. second\n\n> quoted')
    const json = reader.readJson()
    expect(json.root.children).toHaveLength(5)
  })

  it('reads back what the other side writes, live, and appends without touching existing blocks', async () => {
    const { url } = await startServer()
    const bot = open(url, 'doc', 'bot: watcher')
    const person = open(url, 'doc', 'person')
    await Promise.all([bot.whenSynced(), person.whenSynced()])
    let changes = 0
    bot.onRemoteChange(() => { changes++ })
    await person.appendParagraph('typed by a person')
    await waitFor(() => bot.readText() === 'typed by a person')
    expect(changes).toBeGreaterThan(0)
    await bot.appendMarkdown('## Status\n\n- build passed')
    await waitFor(() => person.readMarkdown() === 'typed by a person\n\n## Status\n\n- build passed')
    await bot.appendParagraph('last')
    await waitFor(() => person.readText().endsWith('last'))
    // The bot is visible to the person by its name.
    await waitFor(() => [...person.provider.awareness.getStates().values()].some(s => (s as { name?: string }).name === 'bot: watcher'))
  })

  it('close() waits until the server has stored every edit', async () => {
    const { url } = await startServer()
    const writer = openDocument(url, 'plain', { timeoutMs: 5_000 })
    await writer.whenSynced()
    for (let i = 0; i < 50; i++) writer.doc.getText('t').insert(0, 'x')
    await writer.close()
    const reader = openDocument(url, 'plain', { timeoutMs: 5_000 })
    onCleanup(() => reader.close())
    await reader.whenSynced()
    expect(reader.doc.getText('t').length).toBe(50)
  })

  it('rejects with a clear error when access is refused or the server does not answer', async () => {
    const { url } = await startServer({ before: intercept(ctx => {
      if (ctx.path.startsWith('/docs/secret/')) {
        ctx.status = 403
        ctx.body = { error: { code: 'forbidden', message: 'no access to secret' } }
        return true
      }
      return false
    }) })
    const refused = openDocument(url, 'secret', { timeoutMs: 5_000 })
    onCleanup(() => refused.close())
    const error = await refused.whenSynced().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(DocumentError)
    expect((error as DocumentError).status).toBe(403)

    const nowhere = openDocument('http://127.0.0.1:9', 'doc', { timeoutMs: 300 })
    onCleanup(() => nowhere.close().catch(() => {}))
    const timeout = await nowhere.whenSynced().catch((e: unknown) => e)
    expect((timeout as DocumentError).reason).toBe('timeout')
  })
})
