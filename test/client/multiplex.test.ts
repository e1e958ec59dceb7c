/** Providers of one server sharing one event stream (`GET /events`): convergence, resume, membership, presence. */
import * as Y from 'yjs'
import { describe, expect, it } from 'vitest'
import type { ConnectionError, SseProvider } from '../../client/index.js'
import { ErrorCode, ProtocolError } from '../../shared/errors.js'
import { waitFor } from '../helpers/wait.js'
import { RequestLog, provider, resumes, startServer, syncedPair, uniqueDocId, waitAcked } from './harness.js'

const text = (p: { doc: Y.Doc }): string => p.doc.getText('t').toString()

/** The multiplexed streams a log saw, as the lists of documents they asked for and their own resume points. */
const streamsOf = (log: RequestLog): { docs: string[]; lastEventIds: string[] }[] =>
  log.requests.filter(r => r.method === 'GET' && r.path === '/events').map(r => {
    const query = new URL(r.url).searchParams
    return { docs: (query.get('docs') ?? '').split(','), lastEventIds: (query.get('lastEventIds') ?? '').split(',') }
  })

/** A document's own event ID, as the tag line of a multiplexed event names it (`0`: still empty). */
const DOC_EVENT_ID = /^(0|[a-z0-9]{12}\.\d+-\d+)$/

describe('providers sharing one stream', () => {
  it('20 documents converge over one stream, and resume through a server restart', async () => {
    const server = await startServer()
    const docIds = Array.from({ length: 20 }, () => uniqueDocId('mux'))
    const readLog = new RequestLog()
    const writeLog = new RequestLog()
    const readers = docIds.map(docId => provider(server, docId, { fetch: readLog.fetch, maxBackoffTime: 300 }))
    const writers = docIds.map(docId => provider(server, docId, { fetch: writeLog.fetch, maxBackoffTime: 300 }))
    await Promise.all([...readers, ...writers].map(p => p.whenSynced()))
    // One stream for the readers, one for the writers: not one per document.
    // Each resumes from its (empty) snapshot's event ID.
    expect(streamsOf(readLog)).toEqual([{ docs: docIds, lastEventIds: docIds.map(() => '0') }])
    expect(streamsOf(writeLog)).toHaveLength(1)
    expect(readLog.requests.filter(r => r.method === 'GET' && r.path.startsWith('/docs/') && r.path.endsWith('/events'))).toEqual([])
    // Each empty document first asked for its snapshot (still empty), all before the one stream opened.
    const gets = readLog.requests.filter(r => r.method === 'GET').map(r => r.path)
    expect(gets.slice(0, 20).sort()).toEqual(docIds.map(docId => `/docs/${docId}`).sort())
    expect(gets[20]).toBe('/events')

    writers.forEach((w, i) => w.doc.getText('t').insert(0, `doc ${i}: before`))
    await waitFor(() => readers.every((r, i) => text(r) === text(writers[i] as SseProvider)))

    await server.restart()
    writers.forEach(w => w.doc.getText('t').insert(text(w).length, ', after'))
    await Promise.all(writers.map(w => waitAcked(w)))
    await waitFor(() => readers.every((r, i) => text(r) === `doc ${i}: before, after`), { timeout: 15_000 })
    // The readers came back on one stream again, each document resuming from its own event ID.
    const last = streamsOf(readLog).at(-1)
    expect(last?.docs).toEqual(docIds)
    expect(last?.lastEventIds).toHaveLength(20)
    for (const id of last?.lastEventIds ?? []) expect(id).toMatch(DOC_EVENT_ID)
    expect((await resumes(server)).full).toBeUndefined()
  })

  it("takes multiplex: 'tabs' for true where tabs cannot share a stream (no Web Locks, no BroadcastChannel)", async () => {
    const server = await startServer()
    const log = new RequestLog()
    const docIds = [uniqueDocId('tabs'), uniqueDocId('tabs')]
    const [a, b] = docIds.map(docId => provider(server, docId, { fetch: log.fetch, multiplex: 'tabs' })) as [SseProvider, SseProvider]
    await Promise.all([a.whenSynced(), b.whenSynced()])
    expect(streamsOf(log)).toEqual([{ docs: docIds, lastEventIds: ['0', '0'] }])
  })

  it('keeps delivering to the other documents while documents join and leave', async () => {
    const server = await startServer()
    const log = new RequestLog()
    const [one, two, three] = [uniqueDocId('stay'), uniqueDocId('leave'), uniqueDocId('join')] as [string, string, string]
    const writer = provider(server, one, { multiplex: false })
    const staying = provider(server, one, { fetch: log.fetch })
    const leaving = provider(server, two, { fetch: log.fetch })
    await Promise.all([writer.whenSynced(), staying.whenSynced(), leaving.whenSynced()])
    expect(streamsOf(log).map(s => s.docs)).toEqual([[one, two]])

    // Each change of the set reopens the stream; edits made meanwhile still arrive.
    const joining = provider(server, three, { fetch: log.fetch })
    writer.doc.getText('t').insert(0, 'a')
    await joining.whenSynced()
    writer.doc.getText('t').insert(1, 'b')
    leaving.destroy()
    writer.doc.getText('t').insert(2, 'c')
    await waitAcked(writer)
    await waitFor(() => text(staying) === 'abc' && staying.synced)
    expect(streamsOf(log).map(s => s.docs)).toEqual([[one, two], [one, two, three], [one, three]])
    // The documents that stayed resumed from where they were.
    expect(streamsOf(log)[1]?.lastEventIds.slice(0, 2).every(id => DOC_EVENT_ID.test(id))).toBe(true)
    expect(streamsOf(log)[2]?.lastEventIds.every(id => DOC_EVENT_ID.test(id))).toBe(true)

    writer.doc.getText('t').insert(3, 'd')
    await waitFor(() => text(staying) === 'abcd')
  })

  it('two providers of one document on one stream: one disconnects, misses edits, reconnects and catches up', async () => {
    const server = await startServer()
    const { a: writer, b: client } = await syncedPair(server, 'same')
    writer.doc.getText('t').insert(0, 'before')
    await waitFor(() => text(client) === 'before')
    client.disconnect()
    writer.doc.getText('t').insert(6, ', missed')
    await waitAcked(writer)
    const before = await resumes(server)
    void client.connect()
    await client.whenSynced()
    await waitFor(() => text(client) === 'before, missed')
    // It came back from its own event ID: the server replayed what it missed, not the whole document.
    const after = await resumes(server)
    expect(after.replay).toBe((before.replay ?? 0) + 1)
    expect(after.full).toBe(before.full)
    writer.doc.getText('t').insert(0, 'live: ')
    await waitFor(() => text(client) === 'live: before, missed')
  })

  it('keeps presence per document', async () => {
    const server = await startServer()
    const [x, y] = [uniqueDocId('px'), uniqueDocId('py')]
    const logA = new RequestLog()
    const logB = new RequestLog()
    const a = { x: provider(server, x, { fetch: logA.fetch }), y: provider(server, y, { fetch: logA.fetch }) }
    const b = { x: provider(server, x, { fetch: logB.fetch }), y: provider(server, y, { fetch: logB.fetch }) }
    await Promise.all([a.x, a.y, b.x, b.y].map(p => p.whenSynced()))
    a.x.awareness.setLocalStateField('user', 'ada on x')
    a.y.awareness.setLocalStateField('user', 'ada on y')
    await waitFor(() => b.x.awareness.getStates().get(a.x.awareness.clientID)?.user === 'ada on x')
    await waitFor(() => b.y.awareness.getStates().get(a.y.awareness.clientID)?.user === 'ada on y')
    expect(b.x.awareness.getStates().has(a.y.awareness.clientID)).toBe(false)
    expect(b.y.awareness.getStates().has(a.x.awareness.clientID)).toBe(false)

    // Leaving one document retracts presence there for good; on the other, the reopened stream
    // announces it again (the server retracts it when the old stream closes).
    a.x.disconnect()
    await waitFor(() => !b.x.awareness.getStates().has(a.x.awareness.clientID))
    await waitFor(() => a.y.synced && b.y.awareness.getStates().get(a.y.awareness.clientID)?.user === 'ada on y')
    expect(b.x.awareness.getStates().has(a.x.awareness.clientID)).toBe(false)
    expect(streamsOf(logA).map(s => s.docs)).toEqual([[x, y], [y]])
  })

  it('sends every provider to a stream of its own when the server refuses the shared one, so only the refused document stops', async () => {
    const secret = uniqueDocId('secret')
    const server = await startServer({
      server: { authorize: async (_request, docId) => { if (docId === secret) throw new ProtocolError(ErrorCode.forbidden, 'no access'); return {} } }
    })
    const open = uniqueDocId('open')
    const log = new RequestLog()
    const allowed = provider(server, open, { fetch: log.fetch })
    const refused = provider(server, secret, { fetch: log.fetch })
    const errors: ConnectionError[] = []
    refused.on('connection-error', error => errors.push(error))
    const refusal = refused.whenSynced().then(() => null, (error: unknown) => error)
    await allowed.whenSynced()
    expect(String(await refusal)).toMatch(/no access/)
    expect(errors).toMatchObject([{ request: 'events', status: 403, retryIn: null }])
    expect(refused.shouldConnect).toBe(false)
    expect(log.requests.filter(r => r.method === 'GET').map(r => [r.path, r.status])).toEqual(expect.arrayContaining([
      ['/events', 403], [`/docs/${open}/events`, 200], [`/docs/${secret}/events`, 403]
    ]))
  })
})
