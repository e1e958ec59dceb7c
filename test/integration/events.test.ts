import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import * as http from 'node:http'
import * as net from 'node:net'
import { EventSource } from 'eventsource'
import { Awareness, encodeAwarenessUpdate, applyAwarenessUpdate } from 'y-protocols/awareness'
import { routes, type SyncEventData } from '../../shared/protocol.js'
import { fromBase64 } from '../../shared/codec.js'
import { appendUpdate, followDoc, onCleanup, openEvents, openMultiplexedEvents, startServer } from '../helpers/server.js'
import { MemoryStore } from '../../server/index.js'
import { waitFor } from '../helpers/wait.js'

/** A writer whose every change becomes one update to POST. */
const writer = (): { doc: Y.Doc; updates: Uint8Array[] } => {
  const doc = new Y.Doc()
  const updates: Uint8Array[] = []
  doc.on('update', (update: Uint8Array) => updates.push(update))
  return { doc, updates }
}

const postAwareness = (url: string, docId: string, update: Uint8Array): Promise<Response> =>
  fetch(url + routes.awareness(docId), { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: update as Uint8Array<ArrayBuffer> })

describe('event stream framing', () => {
  it('sends status 200, SSE headers, a jittered retry, then sync and update events', async () => {
    const { url } = await startServer()
    const w = writer()
    w.doc.getText('t').insert(0, 'a')
    const first = await appendUpdate(url, 'd', w.updates[0] as Uint8Array)
    const readers = await Promise.all([openEvents(url, 'd'), openEvents(url, 'd'), openEvents(url, 'd')])
    const [reader] = readers
    if (reader === undefined) throw new Error('no reader')
    expect(reader.status).toBe(200)
    expect(reader.headers.get('content-type')).toBe('text/event-stream; charset=utf-8')
    expect(reader.headers.get('cache-control')).toBe('no-cache, no-transform')
    expect(reader.headers.get('x-accel-buffering')).toBe('no')
    const sync = await reader.sync()
    expect(sync.id).toBe(first)
    expect(sync.resume).toBe('full')
    w.doc.getText('t').insert(1, 'b')
    const second = await appendUpdate(url, 'd', w.updates[1] as Uint8Array)
    await waitFor(() => reader.named('update').length === 1)
    const update = reader.named('update')[0]
    expect(update?.id).toBe(second)
    expect(Buffer.from(fromBase64(update?.data ?? ''))).toEqual(Buffer.from(w.updates[1] as Uint8Array))
    // LF only, each event ends with a blank line, retry before the first event.
    expect(reader.raw).not.toContain('\r')
    expect(reader.raw.startsWith('retry: ')).toBe(true)
    expect(reader.raw.endsWith('\n\n')).toBe(true)
    // Jitter: three connections, retry values in [base, 2 base) that are not all equal.
    await Promise.all(readers.map(r => r.sync()))
    const retries = readers.map(r => r.retries[0] ?? -1)
    for (const retry of retries) expect(retry).toBeGreaterThanOrEqual(1000)
    expect(new Set(retries).size).toBeGreaterThan(1)
  })

  it('sends the head, the retry line and the sync event in one write', async () => {
    const { url, port } = await startServer()
    const w = writer()
    w.doc.getText('t').insert(0, 'a')
    await appendUpdate(url, 'd', w.updates[0] as Uint8Array)
    // A raw connection: what arrives first is what the server wrote first (one write, one read on
    // the loopback interface).
    const socket = net.connect(port, '127.0.0.1')
    onCleanup(() => { socket.destroy() })
    socket.write(`GET ${routes.events('d')} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`)
    const first = await new Promise<string>(resolve => socket.once('data', (chunk: Buffer) => resolve(chunk.toString('utf8'))))
    expect(first).toMatch(/^HTTP\/1\.1 200 /)
    expect(first).toMatch(/\r\n\r\nretry: \d+\n\nevent: sync\nid: [^\n]+\ndata: \{[^\n]+\}\n\n$/)
  })

  it('sends the sync event without waiting for the client\'s presence or the stream\'s positions to be stored, and keeps the stream when storing them fails: the heartbeat stores them again', async () => {
    const store = new MemoryStore()
    let fail = (_error: Error): void => {}
    const stored = new Promise<never>((_resolve, reject) => { fail = reject })
    stored.catch(() => {})
    // The first of each waits, then fails; the heartbeat's go through.
    const calls = { presence: 0, positions: 0 }
    const openPresence = store.openPresence.bind(store)
    const saveStreamPositions = store.saveStreamPositions.bind(store)
    store.openPresence = async (...args) => ++calls.presence === 1 ? stored : openPresence(...args)
    store.saveStreamPositions = async (...args) => ++calls.positions === 1 ? stored : saveStreamPositions(...args)
    const { url } = await startServer({ server: { store, heartbeatMs: 100 } })
    const single = await openEvents(url, 'd', { awareness: 7 })
    await waitFor(() => single.named('sync').length === 1, { message: 'no sync event' })
    const multiplexed = await openMultiplexedEvents(url, ['e', 'f'], undefined, { awareness: '8,9' })
    await waitFor(() => multiplexed.named('sync').length === 2, { message: 'no sync events' })
    // Both arrived while the first presence and the first positions were still being stored.
    fail(new Error('the store is down'))
    await waitFor(() => calls.presence >= 6 && calls.positions >= 2, { message: () => `stored again: ${JSON.stringify(calls)}` })
    expect([single.ended, multiplexed.ended]).toEqual([false, false])
    // The positions the heartbeat saved resume the multiplexed stream.
    const id = multiplexed.events.at(-1)?.id ?? ''
    expect(await store.streamPositions(id.split('.')[0] as string, Number(id.split('.')[1]))).toEqual(expect.objectContaining({ e: expect.any(String), f: expect.any(String) }))
  })

  it('sends heartbeat comments', async () => {
    const { url } = await startServer({ server: { heartbeatMs: 50 } })
    const reader = await openEvents(url, 'd')
    await waitFor(() => reader.comments.length >= 2, { message: 'no heartbeats' })
  })

  it('delivers every update exactly once across the seam between sync and live events', async () => {
    const { url } = await startServer()
    const w = writer()
    const text = w.doc.getText('t')
    const posting = (async () => {
      for (let i = 0; i < 60; i++) {
        text.insert(text.length, String(i % 10))
        await appendUpdate(url, 'd', w.updates[i] as Uint8Array)
      }
    })()
    // Readers join while updates are being written.
    const readers = []
    for (let i = 0; i < 6; i++) readers.push(await openEvents(url, 'd'))
    await posting
    for (const reader of readers) {
      const doc = followDoc(reader)
      await waitFor(() => doc.getText('t').toString() === text.toString(), { message: () => `reader has ${doc.getText('t').toString()}` })
      const ids = reader.named('update').map(e => e.id)
      expect(new Set(ids).size).toBe(ids.length)
      // No update event repeats what the sync event covered.
      const syncId = (await reader.sync()).id
      expect(ids).not.toContain(syncId)
    }
  })
})

describe('the eventsource package as a client', () => {
  it('connects, resumes with Last-Event-ID after a server restart, and awareness does not move its resume point', async () => {
    const first = await startServer({ server: { retryMs: 20 } })
    const w = writer()
    const text = w.doc.getText('t')
    text.insert(0, 'one ')
    await appendUpdate(first.url, 'd', w.updates[0] as Uint8Array)

    const seen: { type: string; id: string; data: string }[] = []
    const connections: string[] = []
    const source = new EventSource(first.url + routes.events('d'), {
      fetch: (input, init) => {
        connections.push(new Headers(init?.headers).get('last-event-id') ?? '')
        return fetch(input, init)
      }
    })
    onCleanup(async () => source.close())
    for (const type of ['sync', 'update', 'awareness']) source.addEventListener(type, event => seen.push({ type, id: event.lastEventId, data: event.data }))
    await waitFor(() => seen.some(e => e.type === 'sync'))
    const doc = new Y.Doc()
    const apply = (from: number): void => {
      for (const e of seen.slice(from)) {
        if (e.type === 'sync') Y.applyUpdate(doc, fromBase64((JSON.parse(e.data) as SyncEventData).update))
        if (e.type === 'update') Y.applyUpdate(doc, fromBase64(e.data))
      }
    }

    text.insert(4, 'two ')
    const second = await appendUpdate(first.url, 'd', w.updates[1] as Uint8Array)
    await waitFor(() => seen.some(e => e.type === 'update'))
    const awareness = new Awareness(new Y.Doc())
    awareness.setLocalState({ name: 'x' })
    expect((await postAwareness(first.url, 'd', encodeAwarenessUpdate(awareness, [awareness.clientID]))).status).toBe(204)
    await waitFor(() => seen.some(e => e.type === 'awareness'))
    apply(0)
    const before = seen.length

    // Restart on the same port and Redis; an update lands while the client is away.
    await first.close()
    text.insert(8, 'three')
    const restarted = await startServer({ prefix: first.prefix, port: first.port, server: { retryMs: 20 } })
    await appendUpdate(restarted.url, 'd', w.updates[2] as Uint8Array)
    await waitFor(() => seen.slice(before).some(e => e.type === 'sync'), { timeout: 15_000, message: 'no reconnect' })
    // The awareness event came last but has no id: the resume point is still the last update.
    // (Attempts made while the port was closed send it too.)
    expect(connections[0]).toBe('')
    expect(connections.slice(1).length).toBeGreaterThan(0)
    for (const sent of connections.slice(1)) expect(sent).toBe(second)
    const resumed = seen.slice(before).find(e => e.type === 'sync')
    expect((JSON.parse(resumed?.data ?? '{}') as SyncEventData).resume).toBe('replay')
    apply(before)
    expect(doc.getText('t').toString()).toBe('one two three')
  })
})

describe('awareness', () => {
  it('fans presence out, sends current presence to late joiners, and retracts it when the stream closes', async () => {
    const { url } = await startServer()
    const alice = new Awareness(new Y.Doc())
    alice.setLocalState({ name: 'alice' })
    const aliceStream = await openEvents(url, 'd', { awareness: alice.clientID })
    await aliceStream.sync()
    const bob = await openEvents(url, 'd')
    await bob.sync()
    expect((await postAwareness(url, 'd', encodeAwarenessUpdate(alice, [alice.clientID]))).status).toBe(204)
    const seenByBob = new Awareness(new Y.Doc())
    bob.onEvent(event => { if (event.event === 'awareness') applyAwarenessUpdate(seenByBob, fromBase64(event.data), 'server') })
    await waitFor(() => seenByBob.getStates().get(alice.clientID)?.name === 'alice')

    // A late joiner gets the presence right after its sync event.
    const carol = await openEvents(url, 'd')
    await waitFor(() => carol.named('awareness').length === 1)
    expect(carol.events.map(e => e.event)).toEqual(['sync', 'awareness'])

    // Alice's stream dies without a word: the server retracts her presence.
    await aliceStream.close()
    await waitFor(() => !seenByBob.getStates().has(alice.clientID), { message: 'ghost presence' })
  })

  it('keeps presence while another stream of the same client is open', async () => {
    const { url } = await startServer()
    const alice = new Awareness(new Y.Doc())
    alice.setLocalState({ name: 'alice' })
    const tab1 = await openEvents(url, 'd', { awareness: alice.clientID })
    const tab2 = await openEvents(url, 'd', { awareness: alice.clientID })
    await Promise.all([tab1.sync(), tab2.sync()])
    await postAwareness(url, 'd', encodeAwarenessUpdate(alice, [alice.clientID]))
    // Delivered to the server's streams before Bob subscribes: he gets it once, in his greeting, not
    // also as the live event its notification would bring had it come after his subscription.
    await waitFor(() => tab1.named('awareness').length === 1)
    const bob = await openEvents(url, 'd')
    await waitFor(() => bob.named('awareness').length === 1)
    await tab1.close()
    await tab2.sync()
    // A marker update proves the server processed the close before we look.
    const w = writer()
    w.doc.getText('t').insert(0, 'x')
    await appendUpdate(url, 'd', w.updates[0] as Uint8Array)
    await waitFor(() => bob.named('update').length === 1)
    expect(bob.named('awareness')).toHaveLength(1)
    await tab2.close()
    await waitFor(() => bob.named('awareness').length === 2, { message: 'no retraction after the last stream closed' })
  })

  it('refuses a malformed awareness update', async () => {
    const { url } = await startServer()
    const res = await postAwareness(url, 'd', new Uint8Array([5, 1, 2]))
    expect(res.status).toBe(400)
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('malformed-awareness')
  })
})

describe('several server instances on one Redis', () => {
  it('deliver each other\'s updates, with the same event IDs', async () => {
    const a = await startServer()
    const b = await startServer({ prefix: a.prefix })
    const onA = await openEvents(a.url, 'd')
    const onB = await openEvents(b.url, 'd')
    await Promise.all([onA.sync(), onB.sync()])
    const wa = writer()
    const wb = writer()
    wa.doc.getText('t').insert(0, 'from a ')
    wb.doc.getText('t').insert(0, 'from b ')
    const idA = await appendUpdate(a.url, 'd', wa.updates[0] as Uint8Array)
    const idB = await appendUpdate(b.url, 'd', wb.updates[0] as Uint8Array)
    for (const reader of [onA, onB]) {
      await waitFor(() => reader.named('update').length === 2)
      expect(reader.named('update').map(e => e.id)).toEqual([idA, idB])
    }
    const docA = followDoc(onA)
    const docB = followDoc(onB)
    expect(docA.getText('t').toString()).toBe(docB.getText('t').toString())
    expect(docA.getText('t').length).toBe(14)
  })
})

describe('slow readers', () => {
  /**
   * Opens a stream that stops reading, then stores 160 updates of 64 KiB (10 MiB: more than
   * loopback socket buffers plus the backlog a test allows) while it is paused.
   */
  const fallBehind = async (maxBufferedBytes: number): Promise<{ url: string; res: http.IncomingMessage; text: Y.Text; total: number }> => {
    const { url } = await startServer({ server: { maxBufferedBytes } })
    const { port, hostname } = new URL(url)
    const res = await new Promise<http.IncomingMessage>(resolve => {
      http.get({ host: hostname, port, path: routes.events('d') }, resolve)
    })
    res.pause()
    onCleanup(async () => { res.destroy() })
    const w = writer()
    const text = w.doc.getText('t')
    const total = 160
    for (let i = 0; i < total; i++) {
      text.insert(0, 'x'.repeat(64 * 1024))
      await appendUpdate(url, 'd', w.updates[i] as Uint8Array)
    }
    return { url, res, text, total }
  }

  /** Reads the rest of the stream into a string. */
  const readAll = (res: http.IncomingMessage): { body: () => string; ended: () => boolean } => {
    let body = ''
    let ended = false
    res.setEncoding('utf8')
    res.on('data', (chunk: string) => { body += chunk })
    res.on('close', () => { ended = true })
    res.resume()
    return { body: () => body, ended: () => ended }
  }

  const updateEvents = (body: string): number => body.split('event: update\n').length - 1

  it('are closed once their backlog passes the limit, so memory stays bounded', async () => {
    const { res, total } = await fallBehind(256 * 1024)
    const stream = readAll(res)
    await waitFor(stream.ended, { message: 'the server kept the stream of a reader that fell behind' })
    expect(updateEvents(stream.body())).toBeLessThan(total)
  })

  it('get held-back updates merged into one event when they catch up', async () => {
    const { url, res, text, total } = await fallBehind(64 * 1024 * 1024)
    const stream = readAll(res)
    const doc = new Y.Doc()
    let parsed = 0
    // Generous timeout: 10 MiB of base64 to decode while the rest of the suite loads both cores.
    await waitFor(() => {
      // Apply the complete events received since the last look (the last part may still be arriving).
      const body = stream.body()
      const end = body.lastIndexOf('\n\n')
      if (end < parsed) return false
      for (const e of body.slice(parsed, end).split('\n\n')) {
        const data = /data: (.*)/.exec(e)?.[1] ?? ''
        // The first updates may already be in the sync event: the writes start once the headers arrive.
        if (e.includes('event: sync')) Y.applyUpdate(doc, fromBase64((JSON.parse(data) as SyncEventData).update))
        if (e.includes('event: update')) Y.applyUpdate(doc, fromBase64(data))
      }
      parsed = end + 2
      return doc.getText('t').length === text.length
    }, { timeout: 50_000, message: () => `reader has ${doc.getText('t').length} of ${text.length} characters; stream ended: ${stream.ended()}; ${stream.body().length} bytes received` })
    expect(doc.getText('t').toString()).toBe(text.toString())
    expect(stream.ended()).toBe(false)
    const events = updateEvents(stream.body())
    expect(events).toBeLessThan(total)
    // Each update event is timed once: those written as they came, and each merged catch-up.
    const metrics = await (await fetch(url + '/metrics')).text()
    expect(metrics).toContain(`\nysse_publish_to_deliver_seconds_count ${events}\n`)
  }, 60_000)
})
