/** Lifecycle and sync: events, connect/disconnect cycles, offline edits, restarts, destroy. */
import { setTimeout as delay } from 'node:timers/promises'
import * as Y from 'yjs'
import { Awareness } from 'y-protocols/awareness'
import { describe, expect, it } from 'vitest'
import { defaultFetch, type ProviderStatus } from '../../client/index.js'
import { waitFor } from '../helpers/wait.js'
import { RequestLog, provider, resumes, serverDoc, startServer, syncedPair, uniqueDocId, waitAcked } from './harness.js'

const text = (p: { doc: Y.Doc }): string => p.doc.getText('t').toString()

/** A snapshot whose body a proxy rewrote into bytes that are no Yjs update; its headers still name its event ID. */
const rewrittenByAProxy = async (response: Response): Promise<Response> => {
  await response.arrayBuffer()
  return new Response(new Uint8Array([1, 2, 3]), { status: 200, headers: response.headers })
}

describe('SseProvider', () => {
  it('syncs two providers through the server', async () => {
    const server = await startServer()
    const { docId, a, b } = await syncedPair(server, 'basic')
    a.doc.getText('t').insert(0, 'hello')
    await waitFor(() => text(b) === 'hello')
    b.doc.getText('t').insert(5, ' world')
    await waitFor(() => text(a) === 'hello world')
    await waitAcked(a)
    await waitAcked(b)
    expect((await serverDoc(server, docId)).getText('t').toString()).toBe('hello world')
  })

  it('sends a local change an observer makes while a remote update is applied, and nothing of the remote one', async () => {
    const server = await startServer()
    const docId = uniqueDocId('answer')
    const writer = provider(server, docId)
    const log = new RequestLog()
    const answering = provider(server, docId, { fetch: log.fetch })
    await Promise.all([writer.whenSynced(), answering.whenSynced()])
    const t = answering.doc.getText('t')
    // Runs inside the provider's apply of the remote update: its insert is a transaction of its own there.
    t.observe(event => {
      if (event.transaction.origin === answering && t.toString() === 'ping') t.insert(4, ' pong')
    })
    writer.doc.getText('t').insert(0, 'ping')
    await waitFor(() => text(writer) === 'ping pong')
    await waitAcked(answering)
    expect(log.count('POST', '/updates')).toBe(1)
    expect((await serverDoc(server, docId)).getText('t').toString()).toBe('ping pong')
  })

  it('stays destroyed when an observer destroys it while a remote update is applied', async () => {
    const server = await startServer()
    const { a: writer, b: leaving } = await syncedPair(server, 'destroyed-inside')
    leaving.doc.getText('t').observe(() => leaving.destroy())
    writer.doc.getText('t').insert(0, 'bye')
    await waitFor(() => text(leaving) === 'bye')
    leaving.doc.getText('t').insert(3, '!')
    expect(leaving.unsyncedChanges).toBe(0)
  })

  it('emits status, then sync only once the server state is in the document', async () => {
    const server = await startServer()
    const docId = uniqueDocId('events')
    const writer = provider(server, docId)
    writer.doc.getText('t').insert(0, 'existing content')
    await waitAcked(writer)

    const reader = provider(server, docId, { connect: false })
    const seen: string[] = []
    reader.on('status', ({ status }) => seen.push(status))
    reader.on('sync', synced => seen.push(`sync:${String(synced)}:${text(reader)}`))
    await reader.connect()
    expect(reader.synced).toBe(true)
    expect(seen).toEqual(['connecting', 'connected', 'sync:true:existing content'])
    reader.disconnect()
    expect(seen.slice(3)).toEqual(['sync:false:existing content', 'disconnected'])
  })

  it('loads an empty document as one compressed snapshot, then resumes the stream from its event ID', async () => {
    const server = await startServer()
    const docId = uniqueDocId('snapshot')
    const writer = provider(server, docId, { multiplex: false })
    writer.doc.getText('t').insert(0, 'x'.repeat(5000))
    await waitAcked(writer)
    const log = new RequestLog()
    const before = await resumes(server)
    const reader = provider(server, docId, { fetch: log.fetch })
    await reader.whenSynced()
    expect(text(reader)).toBe('x'.repeat(5000))
    const gets = log.requests.filter(r => r.method === 'GET').map(r => [r.path, r.status])
    expect(gets).toEqual([[`/docs/${docId}`, 200], ['/events', 200]])
    expect(new URL(log.requests[0]?.url ?? '').searchParams.get('encoding')).toBe('v2')
    // The stream replayed what came after the snapshot (nothing), not the whole document again.
    const after = await resumes(server)
    expect(after.full).toBe(before.full)
    expect(after.replay).toBe((before.replay ?? 0) + 1)

    // Edits that arrive while the snapshot is on its way are not lost: the stream replays them.
    const late = provider(server, docId, { fetch: async (input, init) => {
      const response = await fetch(input, init)
      if (new URL(String(input)).pathname === `/docs/${docId}`) {
        writer.doc.getText('t').insert(0, 'late ')
        await waitAcked(writer)
      }
      return response
    } })
    await late.whenSynced()
    await waitFor(() => text(late) === `late ${'x'.repeat(5000)}`)

    // A server that does not know format v2 ignores the parameter and sends v1, applied as such.
    const replays = (await resumes(server)).replay ?? 0
    const older = provider(server, docId, { fetch: async (input, init) => {
      const url = new URL(String(input))
      url.searchParams.delete('encoding')
      return fetch(url, init)
    } })
    await older.whenSynced()
    expect(text(older)).toBe(`late ${'x'.repeat(5000)}`)
    expect((await resumes(server)).replay).toBe(replays + 1)
  })

  it.each([
    { stream: 'a shared stream', multiplex: true, eventsPath: () => '/events' },
    { stream: 'a stream of its own', multiplex: false, eventsPath: (docId: string) => `/docs/${docId}/events` }
  ])('on $stream, sends the stream\'s request before applying the snapshot, and opens it again for the whole document when the snapshot is no update', async ({ multiplex, eventsPath }) => {
    const server = await startServer()
    const docId = uniqueDocId('overlap')
    const writer = provider(server, docId, { multiplex: false })
    writer.doc.getText('t').insert(0, 'y'.repeat(5000))
    await waitAcked(writer)

    const order: string[] = []
    const doc = new Y.Doc()
    const reader = provider(server, docId, { multiplex, fetch: async (input, init) => {
      order.push(new URL(String(input)).pathname)
      return fetch(input, init)
    } }, doc)
    doc.on('update', (_update: Uint8Array, origin: unknown) => { if (origin === reader) order.push('applied') })
    await reader.whenSynced()
    expect(text(reader)).toBe('y'.repeat(5000))
    expect(order.slice(0, 3)).toEqual([`/docs/${docId}`, eventsPath(docId), 'applied'])

    const before = await resumes(server)
    const snapshots: string[] = []
    const rewritten = provider(server, docId, { multiplex, fetch: async (input, init) => {
      const response = await fetch(input, init)
      if (new URL(String(input)).pathname !== `/docs/${docId}`) return response
      snapshots.push(response.headers.get('etag') ?? '')
      return rewrittenByAProxy(response)
    } })
    await rewritten.whenSynced()
    expect(text(rewritten)).toBe('y'.repeat(5000))
    // Fetched once, not again on the stream opened anew, which sent the whole document (a diff
    // against the empty document's state vector; the first stream, abandoned, had a replay).
    expect(snapshots).toHaveLength(1)
    expect((await resumes(server))['state-vector']).toBe((before['state-vector'] ?? 0) + 1)
  })

  it('on a shared stream, applies every member\'s snapshot once, also when another member\'s was no update', async () => {
    const server = await startServer()
    const [good, bad] = [uniqueDocId('good'), uniqueDocId('bad')]
    for (const docId of [good, bad]) {
      const writer = provider(server, docId, { multiplex: false })
      writer.doc.getText('t').insert(0, `${docId} `.repeat(200))
      await waitAcked(writer)
    }
    const snapshots: string[] = []
    // One fetch for both, so they share a stream; it rewrites one document's snapshot.
    const rewriting: typeof fetch = async (input, init) => {
      const response = await fetch(input, init)
      const path = new URL(String(input)).pathname
      if (path !== `/docs/${good}` && path !== `/docs/${bad}`) return response
      snapshots.push(path)
      return path === `/docs/${bad}` ? rewrittenByAProxy(response) : response
    }
    // The refused one first: the other's snapshot must still be applied, once.
    const readers = [provider(server, bad, { fetch: rewriting }), provider(server, good, { fetch: rewriting })]
    await Promise.all(readers.map(reader => reader.whenSynced()))
    expect(readers.map(text)).toEqual([`${bad} `.repeat(200), `${good} `.repeat(200)])
    expect(snapshots.sort()).toEqual([`/docs/${bad}`, `/docs/${good}`])
  })

  it('counts unacknowledged local changes in sync-status, once per synchronous step', async () => {
    const server = await startServer()
    const p = provider(server, uniqueDocId('status'))
    await p.whenSynced()
    const counts: number[] = []
    p.on('sync-status', ({ unsyncedChanges }) => counts.push(unsyncedChanges))
    p.doc.getText('t').insert(0, 'a')
    p.doc.getText('t').insert(1, 'b')
    p.doc.getText('t').insert(2, 'c')
    expect(p.unsyncedChanges).toBe(3)
    await Promise.resolve()
    p.doc.getText('t').insert(3, 'd')
    await waitAcked(p)
    expect(counts.slice(0, 2)).toEqual([3, 4])
    expect(counts.at(-1)).toBe(0)
  })

  it('survives connect → disconnect → connect many times, keeping edits made in between', async () => {
    const server = await startServer()
    const docId = uniqueDocId('cycles')
    const p = provider(server, docId)
    const peer = provider(server, docId)
    const errors: unknown[] = []
    p.on('connection-error', e => errors.push(e))
    for (let i = 0; i < 6; i++) {
      await p.connect()
      p.disconnect()
      p.doc.getText('t').insert(0, String(i))
      if (i % 2 === 0) void p.connect()
    }
    await p.connect()
    await waitAcked(p)
    await waitFor(() => text(peer) === '543210')
    expect(text(p)).toBe('543210')
    // Closing a stream on purpose is not an error, however quickly the next connect() follows.
    expect(errors).toEqual([])
  })

  it('stays connected under React StrictMode as Lexical drives it (connect, then disconnect chained on it, connect)', async () => {
    const server = await startServer()
    const docId = uniqueDocId('strict')
    const p = provider(server, docId, { connect: false })
    const peer = provider(server, docId)
    // Lexical's useProvider: mount, cleanup (`connectionPromise.then(disconnect)`), mount again.
    const first = p.connect()
    void first.then(() => p.disconnect())
    await p.connect()
    await peer.whenSynced()
    peer.doc.getText('t').insert(0, 'still live')
    await waitFor(() => text(p) === 'still live')
    expect(p.shouldConnect).toBe(true)
    expect(p.status).toBe('connected')

    // The real unmount: the chained disconnect runs even when the server is unreachable.
    const unreachable = provider({ url: 'http://127.0.0.1:1' }, docId, { connect: false })
    await unreachable.connect().then(() => unreachable.disconnect())
    expect(unreachable.shouldConnect).toBe(false)
    await waitFor(() => unreachable.status === 'disconnected')
  })

  it('stays connected when Lexical re-runs its effect long after the first connect (a new name or colour)', async () => {
    const server = await startServer()
    const docId = uniqueDocId('rerun')
    const p = provider(server, docId, { connect: false })
    const first = p.connect()
    await first
    await p.whenSynced()
    // Cleanup of the old effect, then the new effect: the chained disconnect runs after connect().
    void first.then(() => p.disconnect())
    const second = p.connect()
    await second
    await Promise.resolve()
    expect(p.shouldConnect).toBe(true)
    const peer = provider(server, docId)
    await peer.whenSynced()
    peer.doc.getText('t').insert(0, 'after the re-run')
    await waitFor(() => text(p) === 'after the re-run')
    // The latest attempt's own chained disconnect (the real unmount) still works.
    await second.then(() => p.disconnect())
    expect(p.shouldConnect).toBe(false)
  })

  it('sends a burst of thousands of edits queued behind a POST in flight whole, in the next POST', async () => {
    const server = await startServer()
    const docId = uniqueDocId('burst')
    const log = new RequestLog()
    let release!: () => void
    const held = new Promise<void>(resolve => { release = resolve })
    let posts = 0
    const writer = provider(server, docId, { fetch: async (url, init) => {
      // The first POST waits until the burst is queued behind it.
      if (init.method === 'POST' && posts++ === 0) await held
      return log.fetch(url, init)
    } })
    await writer.whenSynced()
    const t = writer.doc.getText('t')
    const edits = 5000
    for (let i = 0; i < edits; i++) t.insert(i % 7 === 0 ? 0 : t.length, String.fromCharCode(97 + (i % 26)))
    expect(writer.unsyncedChanges).toBe(edits)
    release()
    await waitAcked(writer)
    expect((await serverDoc(server, docId)).getText('t').toString()).toBe(t.toString())
    expect(log.count('POST', '/updates')).toBe(2)
  })

  it('sends a queued burst whose edits an observer rewrites as they are typed, and the edits after it', async () => {
    const server = await startServer()
    const docId = uniqueDocId('burst-normalized')
    let release!: () => void
    const held = new Promise<void>(resolve => { release = resolve })
    let posts = 0
    const writer = provider(server, docId, { fetch: async (url, init) => {
      if (init.method === 'POST' && posts++ === 0) await held
      return defaultFetch()(url, init)
    } })
    await writer.whenSynced()
    const t = writer.doc.getText('t')
    // As an editor normalizes: the observer's transaction runs inside the one that typed the mark.
    t.observe(() => {
      const at = t.toString().indexOf('#')
      if (at < 0) return
      writer.doc.transact(() => {
        t.delete(at, 1)
        t.insert(at, '*')
      })
    })
    for (let i = 0; i < 300; i++) t.insert(t.length, i % 10 === 9 ? '#' : 'a')
    release()
    await waitAcked(writer)
    expect((await serverDoc(server, docId)).getText('t').toString()).toBe(t.toString())
    t.insert(0, 'after ')
    await waitAcked(writer)
    const onServer = (await serverDoc(server, docId)).getText('t').toString()
    expect(onServer).toBe(t.toString())
    expect(onServer.startsWith('after aaaaaaaaa*')).toBe(true)
  })

  it('keeps each POST of a queued burst within maxBatchBytes', async () => {
    const server = await startServer()
    const docId = uniqueDocId('burst-bytes')
    let release!: () => void
    const held = new Promise<void>(resolve => { release = resolve })
    const sizes: number[] = []
    const writer = provider(server, docId, { maxBatchBytes: 2000, fetch: async (url, init) => {
      if (init.method === 'POST' && url.endsWith('/updates') && sizes.push(init.body?.length ?? 0) === 1) await held
      return defaultFetch()(url, init)
    } })
    await writer.whenSynced()
    const t = writer.doc.getText('t')
    for (let i = 0; i < 5000; i++) t.insert(t.length, 'x')
    release()
    await waitAcked(writer)
    expect((await serverDoc(server, docId)).getText('t').length).toBe(5000)
    expect(sizes.length).toBeGreaterThan(2)
    expect(Math.max(...sizes)).toBeLessThanOrEqual(2000)
  })

  it('starts POSTs of updates at least updateThrottle apart, merging what was typed meanwhile', async () => {
    const server = await startServer()
    /** Types 40 edits 10 ms apart; returns when each POST of updates started. */
    const typeSteadily = async (updateThrottle: number): Promise<number[]> => {
      const log = new RequestLog()
      const docId = uniqueDocId(`throttle-${updateThrottle}`)
      const writer = provider(server, docId, { updateThrottle, fetch: log.fetch })
      await writer.whenSynced()
      const t = writer.doc.getText('t')
      for (let i = 0; i < 40; i++) {
        t.insert(t.length, String(i % 10))
        await delay(10) // pacing the typist, not waiting for a result
      }
      await waitAcked(writer)
      expect((await serverDoc(server, docId)).getText('t').toString()).toBe('0123456789'.repeat(4))
      return log.starts('POST', '/updates')
    }
    const throttled = await typeSteadily(200)
    expect(throttled.length).toBeGreaterThanOrEqual(3)
    const gaps = throttled.slice(1).map((at, i) => at - (throttled[i] as number))
    // Noted a few microseconds after the outbox reads the clock, which keeps the interval exactly.
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(199)
    const unthrottled = await typeSteadily(0)
    expect(unthrottled.length).toBeGreaterThan(2 * throttled.length)
  })

  it('sends an edit after a quiet spell at once, and one soon after the last POST once updateThrottle has passed', async () => {
    const server = await startServer()
    const docId = uniqueDocId('throttle-leading')
    const log = new RequestLog()
    const writer = provider(server, docId, { updateThrottle: 300, fetch: log.fetch })
    const starts = (): number[] => log.starts('POST', '/updates')
    await writer.whenSynced()
    const t = writer.doc.getText('t')
    // The provider calls fetch within the transaction's update event: what is sent is known at once.
    t.insert(0, 'a')
    expect(starts().length).toBe(1)
    await waitAcked(writer)
    t.insert(1, 'b')
    expect(starts().length).toBe(1)
    await waitAcked(writer)
    const [first, second] = starts() as [number, number]
    expect(starts().length).toBe(2)
    expect(second - first).toBeGreaterThanOrEqual(299)
    // A quiet spell as long as the throttle: the next edit leaves at once.
    await waitFor(() => performance.now() - second >= 300)
    t.insert(2, 'c')
    expect(starts().length).toBe(3)
    await waitAcked(writer)
    expect((await serverDoc(server, docId)).getText('t').toString()).toBe('abc')
  })

  it('merges offline edits from both sides on reconnect', async () => {
    const server = await startServer()
    const { docId, a, b } = await syncedPair(server, 'offline')
    a.doc.getText('t').insert(0, 'shared ')
    await waitFor(() => text(b) === 'shared ')
    a.disconnect()
    b.disconnect()
    a.doc.getText('t').insert(7, 'from-a ')
    b.doc.getText('t').insert(7, 'from-b ')
    b.doc.getMap('m').set('b', 1)
    await Promise.all([a.connect(), b.connect()])
    await waitAcked(a)
    await waitAcked(b)
    await waitFor(() => text(a) === text(b) && a.doc.getMap('m').get('b') === 1)
    expect(text(a)).toMatch(/^shared (from-a from-b |from-b from-a )$/)
    expect((await serverDoc(server, docId)).getText('t').toString()).toBe(text(a))
  })

  it('keeps edits made while the server restarts and delivers them afterwards', async () => {
    const server = await startServer()
    const { docId, a, b } = await syncedPair(server, 'restart', { maxBackoffTime: 300 })
    a.doc.getText('t').insert(0, 'before ')
    await waitAcked(a)
    const down = server.sync.close()
    a.doc.getText('t').insert(7, 'during ')
    await down
    a.doc.getText('t').insert(14, 'down ')
    await server.restart()
    a.doc.getText('t').insert(19, 'after')
    await waitAcked(a)
    await waitFor(() => text(b) === 'before during down after', { timeout: 15_000 })
    expect((await serverDoc(server, docId)).getText('t').toString()).toBe('before during down after')
  })

  it('works under a base path', async () => {
    const server = await startServer({
      before: async (ctx, next) => {
        if (!ctx.path.startsWith('/sync/')) return next()
        ctx.path = ctx.path.slice('/sync'.length)
        await next()
      }
    })
    const docId = uniqueDocId('base')
    const a = provider({ url: `${server.url}/sync/` }, docId)
    const b = provider({ url: `${server.url}/sync` }, docId)
    await Promise.all([a.whenSynced(), b.whenSynced()])
    a.doc.getText('t').insert(0, 'mounted')
    await waitFor(() => text(b) === 'mounted')
  })

  it('releases every listener, timer and stream on destroy', async () => {
    const server = await startServer()
    const docId = uniqueDocId('destroy')
    const doc = new Y.Doc()
    const awareness = new Awareness(doc)
    const observers = (o: { _observers: Map<string, Set<unknown>> }): number => [...o._observers.values()].reduce((n, s) => n + s.size, 0)
    const before = { doc: observers(doc), awareness: observers(awareness), timers: process.getActiveResourcesInfo().filter(r => r === 'Timeout').length }

    const log = new RequestLog()
    const p = provider(server, docId, { awareness, fetch: log.fetch }, doc)
    const statuses: ProviderStatus[] = []
    p.on('status', ({ status }) => statuses.push(status))
    await p.whenSynced()
    doc.getText('t').insert(0, 'x')
    awareness.setLocalStateField('name', 'leaving')
    await waitAcked(p)
    p.destroy()

    expect(observers(doc)).toBe(before.doc)
    expect(observers(awareness)).toBe(before.awareness)
    expect(p.status).toBe('disconnected')
    await expect(p.whenSynced()).rejects.toThrow('destroyed')
    await expect(p.connect()).rejects.toThrow('destroyed')
    // The stream is closed: the server ends its presence, and no timer of the provider is left.
    await waitFor(() => process.getActiveResourcesInfo().filter(r => r === 'Timeout').length <= before.timers, {
      message: () => String(process.getActiveResourcesInfo())
    })
    const requests = log.requests.length
    doc.getText('t').insert(0, 'y')
    expect(log.requests.length).toBe(requests)
    awareness.destroy()
  })

  it('destroys itself with its document', async () => {
    const server = await startServer()
    const doc = new Y.Doc()
    const p = provider(server, uniqueDocId('doc-destroy'), {}, doc)
    await p.whenSynced()
    doc.destroy()
    expect(p.shouldConnect).toBe(false)
    await expect(p.whenSynced()).rejects.toThrow('destroyed')
  })
})
