import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { Awareness, encodeAwarenessUpdate, applyAwarenessUpdate } from 'y-protocols/awareness'
import { routes, MAX_STREAM_DOCS, type SyncEventData } from '../../shared/protocol.js'
import { fromBase64, toBase64Url } from '../../shared/codec.js'
import { ProtocolError, ErrorCode } from '../../shared/errors.js'
import { appendUpdate, openMultiplexedEvents, startServer, untag, type EventsReader, type TaggedEvent } from '../helpers/server.js'
import { waitFor } from '../helpers/wait.js'

/** A writer per document: each insert becomes one update to POST. */
const writers = (count: number): { docId: string; doc: Y.Doc; updates: Uint8Array[] }[] =>
  Array.from({ length: count }, (_, i) => {
    const doc = new Y.Doc()
    const updates: Uint8Array[] = []
    doc.on('update', (update: Uint8Array) => updates.push(update))
    return { docId: `mux-${i}`, doc, updates }
  })

/** Inserts `text` into the writer's document and POSTs the update. */
const write = async (url: string, w: { docId: string; doc: Y.Doc; updates: Uint8Array[] }, text: string): Promise<string> => {
  w.doc.getText('t').insert(w.doc.getText('t').length, text)
  return appendUpdate(url, w.docId, w.updates.at(-1) as Uint8Array)
}

/** Documents fed by a multiplexed reader, by document ID; also counts update events per document. */
const follow = (reader: EventsReader): { docs: Map<string, Y.Doc>; syncs: Map<string, SyncEventData>; updates: Map<string, number> } => {
  const docs = new Map<string, Y.Doc>()
  const syncs = new Map<string, SyncEventData>()
  const updates = new Map<string, number>()
  reader.onEvent(message => {
    const { event, docId, data } = untag(message)
    let doc = docs.get(docId)
    if (doc === undefined) docs.set(docId, doc = new Y.Doc())
    if (event === 'sync') {
      const sync = JSON.parse(data) as SyncEventData
      syncs.set(docId, sync)
      Y.applyUpdate(doc, fromBase64(sync.update))
    }
    if (event === 'update') {
      updates.set(docId, (updates.get(docId) ?? 0) + 1)
      Y.applyUpdate(doc, fromBase64(data))
    }
  })
  return { docs, syncs, updates }
}

const textOf = (doc: Y.Doc | undefined): string => doc?.getText('t').toString() ?? ''

describe('several documents on one stream', () => {
  it('carries 20 documents tagged with their own event IDs, under stream IDs that fit the protocol', async () => {
    const { url } = await startServer()
    const ws = writers(20)
    await Promise.all(ws.map(w => write(url, w, 'a')))
    const reader = await openMultiplexedEvents(url, ws.map(w => w.docId))
    expect(reader.status).toBe(200)
    expect(reader.headers.get('content-type')).toBe('text/event-stream; charset=utf-8')
    const { docs, syncs } = follow(reader)
    await waitFor(() => syncs.size === 20)
    expect([...syncs.values()].every(s => s.resume === 'full')).toBe(true)
    const ids = await Promise.all(ws.map(w => write(url, w, 'b')))
    await waitFor(() => ws.every(w => textOf(docs.get(w.docId)) === 'ab'))
    const updates = reader.events.filter(e => e.event === 'update').map(untag)
    expect(updates.map(u => u.docEventId).sort()).toEqual([...ids].sort())
    for (const event of reader.events) {
      if (event.id !== undefined) expect(event.id).toMatch(/^[A-Za-z0-9._-]{1,128}$/)
    }
    expect(new Set(reader.events.flatMap(e => e.id === undefined ? [] : [e.id])).size).toBe(40)
  })

  it('resumes every document from its own position with one Last-Event-ID, after a drop and after a server restart', async () => {
    const server = await startServer({ server: { heartbeatMs: 50 } })
    const ws = writers(20)
    await Promise.all(ws.map(w => write(server.url, w, 'a')))
    const first = await openMultiplexedEvents(server.url, ws.map(w => w.docId))
    const one = follow(first)
    await waitFor(() => one.syncs.size === 20)
    // Only some documents move, so each document's position differs.
    await Promise.all(ws.slice(0, 10).map(w => write(server.url, w, 'b')))
    await waitFor(() => ws.slice(0, 10).every(w => textOf(one.docs.get(w.docId)) === 'ab'))
    const lastId = first.events.at(-1)?.id as string
    await first.close()

    // Missed while away: one more update on every document.
    await Promise.all(ws.map(w => write(server.url, w, 'c')))
    await server.restart()
    const second = await openMultiplexedEvents(server.url, ws.map(w => w.docId), lastId)
    const two = follow(second)
    await waitFor(() => two.syncs.size === 20)
    // Exactly the missed update per document, replayed from the log: no full state, no gap.
    for (const w of ws) {
      const sync = two.syncs.get(w.docId) as SyncEventData
      expect(sync.resume).toBe('replay')
      const doc = one.docs.get(w.docId) as Y.Doc
      Y.applyUpdate(doc, fromBase64(sync.update))
      expect(textOf(doc)).toBe(textOf(w.doc))
    }
  })

  it('resumes a document added to the set from nothing and the others from their positions', async () => {
    const { url } = await startServer()
    const ws = writers(3)
    await Promise.all(ws.map(w => write(url, w, 'a')))
    const first = await openMultiplexedEvents(url, ws.slice(0, 2).map(w => w.docId))
    const one = follow(first)
    await waitFor(() => one.syncs.size === 2)
    await first.close()
    const second = await openMultiplexedEvents(url, ws.map(w => w.docId), first.events.at(-1)?.id)
    const two = follow(second)
    await waitFor(() => two.syncs.size === 3)
    expect(ws.map(w => two.syncs.get(w.docId)?.resume)).toEqual(['replay', 'replay', 'full'])
  })

  it('resumes each document from its own event ID and state vector where the stream resume point does not cover it', async () => {
    const { url } = await startServer()
    const ws = writers(4)
    const before = await Promise.all(ws.map(w => write(url, w, 'a')))
    const stateVectors = ws.map(w => toBase64Url(Y.encodeStateVector(w.doc)))
    await Promise.all(ws.map(w => write(url, w, 'b')))
    // The first document is on the stream's snapshot, which wins; the others bring their own point:
    // an event ID (replay), a state vector (diff), nothing (full).
    const first = await openMultiplexedEvents(url, [ws[0]?.docId ?? ''])
    await waitFor(() => first.named('sync').length === 1)
    await first.close()
    await write(url, ws[0] as (typeof ws)[0], 'c')
    const reader = await openMultiplexedEvents(url, ws.map(w => w.docId), first.events.at(-1)?.id, {
      lastEventIds: ['0', before[1], '', ''].join(','),
      svs: ['', '', stateVectors[2], ''].join(',')
    })
    const { syncs, docs } = follow(reader)
    await waitFor(() => syncs.size === 4)
    expect(ws.map(w => syncs.get(w.docId)?.resume)).toEqual(['replay', 'replay', 'state-vector', 'full'])
    // Each got only what it lacked: the first only the "c" written after its snapshot (clock 2 on), the
    // second and third only the "b" (clock 1 on), the last everything.
    const startClock = (w: (typeof ws)[number]): number | undefined =>
      Y.parseUpdateMeta(fromBase64(syncs.get(w.docId)?.update ?? '')).from.get(w.doc.clientID)
    expect(ws.map(startClock)).toEqual([2, 1, 1, 0])
    expect(textOf(docs.get(ws[3]?.docId ?? ''))).toBe('ab')
  })

  it('an unknown stream ID resumes every document from nothing', async () => {
    const { url } = await startServer()
    const ws = writers(2)
    await Promise.all(ws.map(w => write(url, w, 'a')))
    const reader = await openMultiplexedEvents(url, ws.map(w => w.docId), 'AAAAAAAAAAAAAAAA.5')
    const { syncs, docs } = follow(reader)
    await waitFor(() => syncs.size === 2)
    expect([...syncs.values()].map(s => s.resume)).toEqual(['full', 'full'])
    expect(ws.map(w => textOf(docs.get(w.docId)))).toEqual(['a', 'a'])
  })

  it('relays presence per document and retracts it when the stream closes', async () => {
    const { url } = await startServer()
    const peer = await openMultiplexedEvents(url, ['p-1', 'p-2'])
    await waitFor(() => peer.named('sync').length === 2)
    const local = new Awareness(new Y.Doc())
    local.setLocalState({ name: 'ada' })
    const reader = await openMultiplexedEvents(url, ['p-1', 'p-2'], undefined, { awareness: `${local.clientID},${local.clientID}` })
    await waitFor(() => reader.named('sync').length === 2)
    const res = await fetch(url + routes.awareness('p-2'), {
      method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: encodeAwarenessUpdate(local, [local.clientID]) as Uint8Array<ArrayBuffer>
    })
    expect(res.status).toBe(204)
    const remote = new Awareness(new Y.Doc())
    const presence = (): TaggedEvent[] => peer.named('awareness').map(untag)
    await waitFor(() => presence().length === 1)
    expect(presence()[0]?.docId).toBe('p-2')
    applyAwarenessUpdate(remote, fromBase64(presence()[0]?.data ?? ''), null)
    expect(remote.getStates().get(local.clientID)).toEqual({ name: 'ada' })
    await reader.close()
    await waitFor(() => presence().length === 2)
    expect(presence()[1]?.docId).toBe('p-2')
    applyAwarenessUpdate(remote, fromBase64(presence()[1]?.data ?? ''), null)
    expect(remote.getStates().has(local.clientID)).toBe(false)
  })

  it('refuses bad document lists, bad event IDs and documents the client may not read, before streaming', async () => {
    const forbidden = new ProtocolError(ErrorCode.forbidden, 'no access')
    const { url } = await startServer({ server: { authorize: async (_request, docId) => { if (docId === 'secret') throw forbidden; return {} } } })
    const status = async (query: string, headers: Record<string, string> = {}): Promise<number> => (await fetch(`${url}/events?${query}`, { headers })).status
    const tooMany = Array.from({ length: MAX_STREAM_DOCS + 1 }, (_, i) => `d${i}`).join(',')
    expect(await status('')).toBe(400)
    expect(await status('docs=')).toBe(400)
    expect(await status('docs=a,,b')).toBe(400)
    expect(await status('docs=a,a')).toBe(400)
    expect(await status('docs=a/b')).toBe(400)
    expect(await status(`docs=${tooMany}`)).toBe(400)
    expect(await status('docs=a,b&awareness=1')).toBe(400)
    expect(await status('docs=a&awareness=x')).toBe(400)
    expect(await status('docs=a', { 'last-event-id': 'a:b' })).toBe(400)
    expect(await status('docs=a,b&lastEventIds=0')).toBe(400)
    expect(await status('docs=a,b&lastEventIds=0,a:b')).toBe(400)
    expect(await status('docs=a,b&svs=,AAA')).toBe(400)
    expect(await status('docs=a,b&svs=AA')).toBe(400)
    expect(await status('docs=a,b&lastEventIds=0,&svs=,AA')).toBe(200)
    expect(await status('docs=a,secret')).toBe(403)
    expect((await fetch(`${url}/events?docs=a`, { method: 'POST' })).status).toBe(405)
  })
})
