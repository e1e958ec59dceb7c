import { spawn } from 'node:child_process'
import { mkdtemp, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { openLexicalDocument, type LexicalDocument } from '../../client/bot/index.js'
import { CURSOR_FILE, mirrorDocuments } from '../../client/bot/mirror.js'
import { onCleanup, startServer } from '../helpers/server.js'
import { waitFor } from '../helpers/wait.js'

const cli = fileURLToPath(new URL('../../dist/client/bot/cli.js', import.meta.url))

const contentOf = (file: string): Promise<string> => readFile(file, 'utf8').catch(() => '')

/** Waits until `file` holds exactly `expected`, within `timeout` ms. */
const fileBecomes = async (file: string, expected: string, timeout: number): Promise<void> => {
  let last = ''
  await waitFor(async () => (last = await contentOf(file)) === expected, { timeout, message: () => `${file}: ${JSON.stringify(last)}` })
}

const open = async (url: string, docId: string): Promise<LexicalDocument> => {
  const document = openLexicalDocument(url, docId, { name: 'person' })
  onCleanup(() => document.close())
  await document.whenSynced()
  return document
}

/** Edits and waits until the server stored them. */
const settle = (document: LexicalDocument): Promise<void> => waitFor(() => document.provider.unsyncedChanges === 0)

/** Runs the built `y-sse mirror` until the test stops it or ends. */
const runMirror = (...args: string[]): { stderr: () => string; stop: () => Promise<number | null> } => {
  const child = spawn(process.execPath, [cli, 'mirror', ...args])
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const exited = new Promise<number | null>(resolve => child.once('exit', code => resolve(code)))
  onCleanup(async () => {
    child.kill('SIGKILL')
    await exited
  })
  return { stderr: () => stderr, stop: async () => { child.kill('SIGINT'); return exited } }
}

describe('y-sse mirror', () => {
  it('writes the Markdown of documents edited through the editor model, within a second of an edit, and resumes after a stop', async () => {
    const { url } = await startServer()
    const dir = await mkdtemp(join(tmpdir(), 'y-sse-mirror-'))
    const notes = await open(url, 'team-notes')
    await notes.appendMarkdown('# Notes\n\n- alpha')
    await settle(notes)
    const outside = await open(url, 'private')
    await outside.appendParagraph('not mirrored')
    await settle(outside)

    const mirror = runMirror('--server', url, '--dir', dir, '--prefix', 'team-')
    await fileBecomes(join(dir, 'team-notes.md'), '# Notes\n\n- alpha\n', 10_000)
    await notes.appendParagraph('beta')
    await fileBecomes(join(dir, 'team-notes.md'), '# Notes\n\n- alpha\n\nbeta\n', 1500)
    const plan = await open(url, 'team-plan')
    await plan.replaceWithMarkdown('## Plan\n\n1. ship')
    await fileBecomes(join(dir, 'team-plan.md'), '## Plan\n\n1. ship\n', 1500)
    expect(await mirror.stop()).toBe(0)
    expect(await contentOf(join(dir, 'private.md'))).toBe('')
    expect(mirror.stderr()).toContain('mirroring')

    // Edits made while the mirror is stopped arrive when it starts again from its cursor.
    expect(await contentOf(join(dir, CURSOR_FILE))).not.toBe('')
    await plan.appendParagraph('later')
    await settle(plan)
    const again = runMirror('--server', url, '--dir', dir, '--prefix', 'team-')
    await fileBecomes(join(dir, 'team-plan.md'), '## Plan\n\n1. ship\n\nlater\n', 10_000)
    expect(again.stderr()).toContain('resuming')
    expect(await again.stop()).toBe(0)
  })

  it('recovers from a cursor older than the retained feed by reading the named documents again', async () => {
    const { url } = await startServer({ store: { changesRetention: 3 } })
    const dir = await mkdtemp(join(tmpdir(), 'y-sse-mirror-'))
    const a = await open(url, 'a')
    await a.appendParagraph('a1')
    await settle(a)
    const logs: string[] = []
    const first = new AbortController()
    const running = mirrorDocuments({ server: url, dir, signal: first.signal, log: message => logs.push(message) })
    await fileBecomes(join(dir, 'a.md'), 'a1\n', 10_000)
    await waitFor(async () => (await contentOf(join(dir, CURSOR_FILE))) !== '')
    first.abort()
    await running

    const b = await open(url, 'b')
    for (const text of ['a2', 'a3']) await a.appendParagraph(text)
    for (const text of ['b1', 'b2']) await b.appendParagraph(text)
    await settle(a)
    await settle(b)
    const second = new AbortController()
    const resumed = mirrorDocuments({ server: url, dir, signal: second.signal, log: message => logs.push(message) })
    onCleanup(async () => { second.abort(); await resumed })
    await fileBecomes(join(dir, 'a.md'), 'a1\n\na2\n\na3\n', 10_000)
    await fileBecomes(join(dir, 'b.md'), 'b1\n\nb2\n', 10_000)
    expect(logs.some(message => message.includes('could not resume exactly'))).toBe(true)
  })
})
