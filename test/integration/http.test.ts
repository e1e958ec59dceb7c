import { get } from 'node:http'
import { gunzipSync } from 'node:zlib'
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import fc from 'fast-check'
import { UPDATE_ENCODING_HEADER, routes } from '../../shared/protocol.js'
import type { ErrorBody } from '../../shared/errors.js'
import { appendUpdate, openEvents, postUpdate, startServer } from '../helpers/server.js'
import { waitFor } from '../helpers/wait.js'

const textUpdate = (text: string): Uint8Array => {
  const doc = new Y.Doc()
  doc.getText('t').insert(0, text)
  return Y.encodeStateAsUpdate(doc)
}

const documentText = async (url: string, docId: string): Promise<string | null> => {
  const res = await fetch(url + routes.document(docId))
  if (res.status === 404) return null
  const doc = new Y.Doc()
  Y.applyUpdate(doc, new Uint8Array(await res.arrayBuffer()))
  return doc.getText('t').toString()
}

const errorCode = async (res: Response): Promise<string> => ((await res.json()) as { error: { code: string } }).error.code

describe('bad input gets a clear error and loses nothing', () => {
  it('refuses malformed, truncated and random updates with 400, stores nothing and sends nothing', async () => {
    const { url } = await startServer()
    await appendUpdate(url, 'doc', textUpdate('kept'))
    const watcher = await openEvents(url, 'doc')
    const sync = await watcher.sync()
    const valid = textUpdate('more text')
    const bad: Uint8Array[] = [
      valid.slice(0, valid.length - 3), // truncated
      new Uint8Array([...valid, 1, 2, 3]), // trailing bytes
      new Uint8Array([255, 255, 255, 255, 255, 255, 255, 255, 255, 255]), // varint overflow
      new Uint8Array([1, 200, 1, 5]) // struct count beyond the body
    ]
    fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), bytes => { bad.push(bytes) }), { seed: 42, numRuns: 200 })
    let refused = 0
    for (const body of bad) {
      const res = await postUpdate(url, 'doc', body)
      if (res.status === 400) {
        expect(await errorCode(res)).toBe('malformed-update')
        refused++
      } else {
        // A random byte string can be a valid (usually empty) update; then it must be storable.
        expect(res.status).toBe(200)
        await res.body?.cancel()
      }
    }
    expect(refused).toBeGreaterThanOrEqual(bad.length - 10)
    expect(await documentText(url, 'doc')).toBe('kept')
    // Nothing refused reached the stream: every update event there is a valid update.
    for (const event of watcher.named('update')) Y.applyUpdate(new Y.Doc(), Buffer.from(event.data, 'base64'))
    expect(sync.resume).toBe('full')
    // The server still serves.
    await appendUpdate(url, 'doc', textUpdate('after'))
    expect(await documentText(url, 'doc')).toMatch(/kept|after/)
  })

  it('answers 400 for an empty body, 415 for another content type and 413 above the limit', async () => {
    const { url } = await startServer({ server: { maxUpdateBytes: 1000 } })
    const empty = await postUpdate(url, 'd', new Uint8Array())
    expect([empty.status, await errorCode(empty)]).toEqual([400, 'empty-body'])
    const json = await postUpdate(url, 'd', textUpdate('x'), 'application/json')
    expect([json.status, await errorCode(json)]).toEqual([415, 'unsupported-media-type'])
    const large = await postUpdate(url, 'd', textUpdate('x'.repeat(2000)))
    expect([large.status, await errorCode(large)]).toEqual([413, 'too-large'])
    expect(await documentText(url, 'd')).toBeNull()
    await appendUpdate(url, 'd', textUpdate('fits'))
    expect(await documentText(url, 'd')).toBe('fits')
  })

  it('answers 413 for a chunked body that grows past the limit without a Content-Length', async () => {
    const { url } = await startServer({ server: { maxUpdateBytes: 1000 } })
    const chunks = new ReadableStream<Uint8Array>({
      start (controller) {
        for (let i = 0; i < 10; i++) controller.enqueue(new Uint8Array(500))
        controller.close()
      }
    })
    const res = await fetch(url + routes.updates('d'), {
      method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: chunks, duplex: 'half'
    } as RequestInit)
    expect(res.status).toBe(413)
    expect(await documentText(url, 'd')).toBeNull()
  })

  it('refuses bad document IDs before touching the store', async () => {
    const { url } = await startServer()
    for (const docId of ['a b', 'a/b', 'x'.repeat(129), 'ü', 'a%00']) {
      const res = await postUpdate(url, docId, textUpdate('x'))
      expect(res.status, docId).toBe(400)
      expect(await errorCode(res)).toBe('bad-doc-id')
      const events = await fetch(url + routes.events(docId))
      expect(events.status, docId).toBe(400)
      await events.body?.cancel()
    }
    const ok = await postUpdate(url, 'A-z_0.9~', textUpdate('x'))
    expect(ok.status).toBe(200)
  })

  it('refuses a malformed Last-Event-ID, state vector or awareness ID with 400', async () => {
    const { url } = await startServer()
    const cases: [Record<string, string>, string, string][] = [
      [{ 'last-event-id': 'a:b' }, '', 'bad-event-id'],
      [{ 'last-event-id': 'x'.repeat(129) }, '', 'bad-event-id'],
      [{}, '?sv=@@@', 'bad-state-vector'],
      [{}, '?sv=AQ', 'bad-state-vector'],
      [{}, '?sv=AQIDBA', 'bad-state-vector'],
      [{}, '?awareness=-1', 'bad-awareness-id']
    ]
    for (const [headers, query, code] of cases) {
      const res = await fetch(url + routes.events('d') + query, { headers })
      expect(res.status, code).toBe(400)
      expect(await errorCode(res)).toBe(code)
    }
  })

  it('answers 404 for a document never written and for unknown routes, 405 for wrong methods', async () => {
    const { url } = await startServer()
    expect((await fetch(url + routes.document('nope'))).status).toBe(404)
    expect((await fetch(url + '/docs/a/b/c')).status).toBe(404)
    const wrong = await fetch(url + routes.updates('a'))
    expect(wrong.status).toBe(405)
    expect(wrong.headers.get('allow')).toBe('POST')
  })

  it('reports health, and 503 once the store is gone', async () => {
    const server = await startServer()
    expect((await fetch(server.url + '/healthz')).status).toBe(200)
    await server.sync.options.store.close()
    expect((await fetch(server.url + '/healthz')).status).toBe(503)
  })

  it('answers CORS preflights and allows Last-Event-ID', async () => {
    const { url } = await startServer()
    const res = await fetch(url + routes.events('d'), { method: 'OPTIONS', headers: { origin: 'http://example.test', 'access-control-request-headers': 'last-event-id' } })
    expect(res.status).toBe(204)
    expect(res.headers.get('access-control-allow-headers')).toMatch(/Last-Event-ID/i)
    expect(res.headers.get('access-control-allow-origin')).toBe('*')
  })
})

describe('document route', () => {
  it('returns the full state with its event ID as ETag', async () => {
    const { url } = await startServer()
    const eventId = await appendUpdate(url, 'd', textUpdate('hello'))
    const res = await fetch(url + routes.document('d'))
    expect(res.headers.get('content-type')).toBe('application/octet-stream')
    expect(res.headers.get('etag')).toBe(`"${eventId}"`)
    const doc = new Y.Doc()
    Y.applyUpdate(doc, new Uint8Array(await res.arrayBuffer()))
    expect(doc.getText('t').toString()).toBe('hello')
  })

  it('answers a document never written with 404, or with the empty document when asked for that', async () => {
    const { url } = await startServer()
    expect((await fetch(url + routes.document('nobody'))).status).toBe(404)
    const res = await fetch(`${url}${routes.document('nobody')}?missing=empty`)
    expect(res.status).toBe(200)
    expect(res.headers.get('etag')).toBe('"0"')
    expect([...new Uint8Array(await res.arrayBuffer())]).toEqual([0, 0])
  })

  it('sends a large state gzip-compressed to a client that accepts it, with a weak ETag', async () => {
    const { url } = await startServer()
    const text = Array.from({ length: 400 }, (_, i) => `line ${i} of a document that compresses well. `).join('')
    const eventId = await appendUpdate(url, 'big', textUpdate(text))
    const raw = (acceptEncoding: string): Promise<{ headers: Record<string, string | string[] | undefined>; body: Buffer }> =>
      new Promise((resolve, reject) => {
        get(url + routes.document('big'), { headers: { 'accept-encoding': acceptEncoding } }, res => {
          const chunks: Buffer[] = []
          res.on('data', (chunk: Buffer) => chunks.push(chunk))
          res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(chunks) }))
        }).on('error', reject)
      })
    const plain = await raw('identity')
    expect(plain.headers['content-encoding']).toBeUndefined()
    expect(plain.headers.etag).toBe(`"${eventId}"`)
    const compressed = await raw('gzip, deflate, br')
    expect(compressed.headers['content-encoding']).toBe('gzip')
    expect(compressed.headers.etag).toBe(`W/"${eventId}"`)
    expect(compressed.headers.vary).toMatch(/Accept-Encoding/i)
    expect(gunzipSync(compressed.body).equals(plain.body)).toBe(true)
    expect(compressed.body.length * 3).toBeLessThan(plain.body.length)
  })

  it('sends the state in update format v2 when asked, saying so in a header; 400 for another format', async () => {
    const { url } = await startServer()
    // Edited as people edit, typing and deleting here and there: v2 encodes the many short items
    // and their IDs far smaller (the automerge-paper trace's state: 160 KB against 311 KB).
    const writer = new Y.Doc()
    const text = writer.getText('t')
    const updates: Uint8Array[] = []
    writer.on('update', (update: Uint8Array) => updates.push(update))
    let seed = 7
    const next = (below: number): number => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % below }
    for (let i = 0; i < 600; i++) {
      if (i % 3 === 2 && text.length > 10) text.delete(next(text.length - 2), 2)
      else text.insert(next(text.length + 1), 'abc')
    }
    let eventId = ''
    for (const update of updates) eventId = await appendUpdate(url, 'typed', update)
    const v1 = await fetch(url + routes.document('typed'), { headers: { 'accept-encoding': 'identity' } })
    const v2 = await fetch(`${url}${routes.document('typed')}?encoding=v2`, { headers: { 'accept-encoding': 'identity', origin: 'http://app.example' } })
    expect(v1.headers.get(UPDATE_ENCODING_HEADER)).toBeNull()
    expect(v2.headers.get(UPDATE_ENCODING_HEADER)).toBe('v2')
    expect(v2.headers.get('access-control-expose-headers')).toContain(UPDATE_ENCODING_HEADER)
    expect(v2.headers.get('etag')).toBe(`"${eventId}"`)
    const v1Bytes = new Uint8Array(await v1.arrayBuffer())
    const v2Bytes = new Uint8Array(await v2.arrayBuffer())
    expect(v2Bytes.length * 1.5).toBeLessThan(v1Bytes.length)
    const doc = new Y.Doc()
    Y.applyUpdateV2(doc, v2Bytes)
    expect(doc.getText('t').toString()).toBe(text.toString())

    const empty = await fetch(`${url}${routes.document('nobody')}?missing=empty&encoding=v2`)
    expect(empty.headers.get(UPDATE_ENCODING_HEADER)).toBe('v2')
    const emptyDoc = new Y.Doc()
    Y.applyUpdateV2(emptyDoc, new Uint8Array(await empty.arrayBuffer()))
    expect(emptyDoc.store.clients.size).toBe(0)

    for (const bad of ['v3', 'v2&encoding=v2']) {
      const res = await fetch(`${url}${routes.document('typed')}?encoding=${bad}`)
      expect(res.status).toBe(400)
      expect((await res.json() as ErrorBody).error.code).toBe('bad-encoding')
    }
  })
})

describe('shutdown', () => {
  it('ends streams, refuses new requests and finishes cleanly', async () => {
    const server = await startServer()
    const reader = await openEvents(server.url, 'd')
    await reader.sync()
    await server.close()
    await waitFor(() => reader.ended, { message: 'stream still open after close()' })
  })
})
