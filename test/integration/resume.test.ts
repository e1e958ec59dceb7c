import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { fromBase64 } from '../../shared/codec.js'
import { routes } from '../../shared/protocol.js'
import { appendUpdate, followDoc, openEvents, startServer } from '../helpers/server.js'
import { loadTrace, tracePrefix, type Patch } from '../helpers/traces.js'
import { waitFor } from '../helpers/wait.js'

/**
 * Replays patches into `text`, POSTing what accumulated whenever the previous POST was answered
 * (as a provider does), so the server sees realistic merged batches.
 */
const replay = async (url: string, docId: string, doc: Y.Doc, name: string, patches: readonly Patch[]): Promise<number> => {
  const text = doc.getText(name)
  let pending: Uint8Array[] = []
  doc.on('update', (update: Uint8Array) => pending.push(update))
  let posts = 0
  let inFlight: Promise<string> | null = null
  for (let i = 0; i < patches.length; i++) {
    const [pos, del, ins] = patches[i] as Patch
    doc.transact(() => {
      if (del > 0) text.delete(pos, del)
      if (ins !== '') text.insert(pos, ins)
    })
    if (i % 200 === 0 || i === patches.length - 1) {
      await inFlight
      const batch = Y.mergeUpdates(pending)
      pending = []
      inFlight = appendUpdate(url, docId, batch)
      posts++
    }
  }
  await inFlight
  return posts
}

describe('two writers and two readers on real editing traces', () => {
  it('converge on two server instances, through compactions', async () => {
    const edits = 20_000
    const paper = tracePrefix(loadTrace('automerge-paper'), edits)
    const blog = tracePrefix(loadTrace('seph-blog1'), edits)
    const store = { compactAfterUpdates: 20, keepTail: 10 }
    const a = await startServer({ store })
    const b = await startServer({ prefix: a.prefix, store })
    const readerA = followDoc(await openEvents(a.url, 'trace'))
    const readerB = followDoc(await openEvents(b.url, 'trace'))
    const [postsA, postsB] = await Promise.all([
      replay(a.url, 'trace', new Y.Doc(), 'paper', paper.patches),
      replay(b.url, 'trace', new Y.Doc(), 'blog', blog.patches)
    ])
    expect(postsA + postsB).toBeGreaterThan(100)
    for (const reader of [readerA, readerB]) {
      await waitFor(() => reader.getText('paper').length === paper.text.length && reader.getText('blog').length === blog.text.length, {
        timeout: 30_000,
        message: () => `reader at ${reader.getText('paper').length}/${paper.text.length}, ${reader.getText('blog').length}/${blog.text.length}`
      })
      expect(reader.getText('paper').toString()).toBe(paper.text)
      expect(reader.getText('blog').toString()).toBe(blog.text)
    }
    // A late joiner and the document route agree with them.
    const late = openEvents(b.url, 'trace')
    const cold = followDoc(await late)
    await waitFor(() => cold.getText('blog').length === blog.text.length)
    expect(cold.getText('paper').toString()).toBe(paper.text)
    const whole = new Y.Doc()
    Y.applyUpdate(whole, new Uint8Array(await (await fetch(a.url + routes.document('trace'))).arrayBuffer()))
    expect(whole.getText('blog').toString()).toBe(blog.text)
  })
})

describe('resume by event ID over HTTP', () => {
  /** `n` single-character edits in the middle of the text, one update each. */
  const edit = (doc: Y.Doc, n: number): void => {
    const text = doc.getText('t')
    for (let i = 0; i < n; i++) text.insert(Math.floor(text.length / 2), String.fromCharCode(97 + (i % 26)))
  }

  const setup = async (store: { compactAfterUpdates: number; keepTail: number }) => {
    const server = await startServer({ store })
    const writer = new Y.Doc()
    const updates: Uint8Array[] = []
    writer.on('update', (u: Uint8Array) => updates.push(u))
    const flush = async (): Promise<string> => {
      let last = ''
      for (const update of updates.splice(0)) last = await appendUpdate(server.url, 'd', update)
      return last
    }
    return { server, writer, updates, flush }
  }

  it('replays exactly what was missed inside the retained history, with no update twice', async () => {
    const { server, writer, flush } = await setup({ compactAfterUpdates: 1000, keepTail: 100 })
    edit(writer, 20)
    const first = await openEvents(server.url, 'd')
    const client = followDoc(first)
    await flush()
    await waitFor(() => client.getText('t').length === 20)
    const last = first.named('update').at(-1)?.id ?? ''
    await first.close()
    edit(writer, 10)
    await flush()
    const again = await openEvents(server.url, 'd', { lastEventId: last })
    const sync = await again.sync()
    expect(sync.resume).toBe('replay')
    again.onEvent(event => { if (event.event === 'sync') Y.applyUpdate(client, fromBase64(sync.update)) })
    edit(writer, 5)
    await flush()
    await waitFor(() => again.named('update').length === 5)
    for (const event of again.named('update')) Y.applyUpdate(client, fromBase64(event.data))
    expect(client.getText('t').toString()).toBe(writer.getText('t').toString())
    const ids = [...first.named('update'), ...again.named('update')].map(e => e.id)
    expect(new Set(ids).size).toBe(ids.length)
  })

  it('after compaction, sends a checkpoint diff close to the minimal one', async () => {
    const { server, writer, flush } = await setup({ compactAfterUpdates: 20, keepTail: 5 })
    const reader = await openEvents(server.url, 'd')
    const client = followDoc(reader)
    edit(writer, 100)
    await flush()
    await waitFor(() => client.getText('t').length === 100)
    const last = reader.named('update').at(-1)?.id ?? ''
    await reader.close()
    edit(writer, 300)
    await flush()
    const store = server.sync.options.store
    await store.compact('d')
    const again = await openEvents(server.url, 'd', { lastEventId: last })
    const sync = await again.sync()
    expect(sync.resume).toBe('checkpoint')
    const update = fromBase64(sync.update)
    const minimal = Y.diffUpdate(Y.encodeStateAsUpdate(writer), Y.encodeStateVector(client))
    const full = Y.encodeStateAsUpdate(writer)
    expect(update.length).toBeLessThanOrEqual(minimal.length * 1.5 + 100)
    expect(update.length).toBeLessThan(full.length)
    Y.applyUpdate(client, update)
    expect(client.getText('t').toString()).toBe(writer.getText('t').toString())
  })

  it('gives the full state for an unknown ID and a state-vector diff when the client sends its state vector', async () => {
    const { server, writer, flush } = await setup({ compactAfterUpdates: 1000, keepTail: 100 })
    edit(writer, 50)
    await flush()
    const unknown = await openEvents(server.url, 'd', { lastEventId: 'zzzzzzzzzzzz.1-0' })
    const full = await unknown.sync()
    expect(full.resume).toBe('full')
    const client = new Y.Doc()
    Y.applyUpdate(client, fromBase64(full.update))
    expect(client.getText('t').toString()).toBe(writer.getText('t').toString())
    edit(writer, 5)
    await flush()
    const withSv = await openEvents(server.url, 'd', { lastEventIdQuery: 'zzzzzzzzzzzz.1-0', stateVector: Y.encodeStateVector(client) })
    const diff = await withSv.sync()
    expect(diff.resume).toBe('state-vector')
    expect(fromBase64(diff.update).length).toBeLessThan(fromBase64(full.update).length / 4)
    Y.applyUpdate(client, fromBase64(diff.update))
    expect(client.getText('t').toString()).toBe(writer.getText('t').toString())
  })

  it('gives a client from an earlier life of the document the new state, not a wrong diff', async () => {
    const { server, writer, flush } = await setup({ compactAfterUpdates: 1000, keepTail: 100 })
    edit(writer, 10)
    const oldId = await flush()
    await server.sync.options.store.deleteDocument('d')
    const reborn = new Y.Doc()
    reborn.getText('t').insert(0, 'new life')
    await appendUpdate(server.url, 'd', Y.encodeStateAsUpdate(reborn))
    const reader = await openEvents(server.url, 'd', { lastEventId: oldId })
    const sync = await reader.sync()
    expect(sync.resume).toBe('full')
    const doc = new Y.Doc()
    Y.applyUpdate(doc, fromBase64(sync.update))
    expect(doc.getText('t').toString()).toBe('new life')
  })
})
