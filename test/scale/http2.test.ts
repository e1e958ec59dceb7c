import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as http2 from 'node:http2'
import * as https from 'node:https'
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { createParser, type EventSourceMessage } from 'eventsource-parser'
import { createSyncServer, RedisStore } from '../../server/index.js'
import { routes } from '../../shared/protocol.js'
import { onCleanup, openEvents, startServer } from '../helpers/server.js'
import { redisUrl, uniquePrefix } from '../helpers/redis.js'
import { waitFor } from '../helpers/wait.js'

/** A self-signed certificate for 127.0.0.1, made with openssl. */
const selfSigned = (): { key: Buffer; cert: Buffer } => {
  const dir = mkdtempSync(join(tmpdir(), 'y-sse-tls-'))
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' })
  return { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }
}

const update = (text: string): Uint8Array => {
  const doc = new Y.Doc()
  doc.getText('t').insert(0, text)
  return Y.encodeStateAsUpdate(doc)
}

describe('HTTP/2 with TLS', () => {
  it('serves many event streams and POSTs over one HTTP/2 connection, and HTTP/1.1 on the same port', async () => {
    const tls = selfSigned()
    const sync = createSyncServer({ store: new RedisStore({ redis: redisUrl(), prefix: uniquePrefix('h2') }) })
    const { url } = await sync.listen(0, '127.0.0.1', tls)
    onCleanup(() => sync.close())
    expect(url).toMatch(/^https:/)
    const session = http2.connect(url, { ca: tls.cert })
    onCleanup(async () => { session.destroy() })

    // Twenty streams: over HTTP/1.1 a browser would stall after six.
    const streams = Array.from({ length: 20 }, (_, i) => {
      const events: EventSourceMessage[] = []
      const parser = createParser({ onEvent: e => events.push(e) })
      const request = session.request({ ':path': routes.events(`doc-${i}`) })
      let status = 0
      request.on('response', headers => { status = Number(headers[':status']) })
      request.setEncoding('utf8').on('data', (chunk: string) => parser.feed(chunk))
      return { events, request, status: () => status }
    })
    await waitFor(() => streams.every(s => s.events.some(e => e.event === 'sync')))
    expect(streams.map(s => s.status())).toEqual(Array(20).fill(200))

    const post = session.request({ ':method': 'POST', ':path': routes.updates('doc-7'), 'content-type': 'application/octet-stream' })
    post.end(Buffer.from(update('over h2')))
    const answer = await new Promise<string>(resolve => {
      let body = ''
      post.setEncoding('utf8').on('data', (c: string) => { body += c }).on('end', () => resolve(body))
    })
    expect(JSON.parse(answer)).toHaveProperty('eventId')
    await waitFor(() => streams[7]?.events.some(e => e.event === 'update') === true)
    expect(streams[6]?.events.some(e => e.event === 'update')).toBe(false)

    // A refused stream over HTTP/2: served outside Koa's request handling, answered with the protocol's error body.
    const refused = session.request({ ':path': routes.events('doc-1') + '?sv=%21' })
    const [refusedStatus, refusedBody] = await new Promise<[number, string]>(resolve => {
      let status = 0
      let body = ''
      refused.on('response', headers => { status = Number(headers[':status']) })
      refused.setEncoding('utf8').on('data', (c: string) => { body += c }).on('end', () => resolve([status, body]))
    })
    expect(refusedStatus).toBe(400)
    expect(JSON.parse(refusedBody)).toMatchObject({ error: { code: 'bad-state-vector' } })

    const viaHttp1 = await new Promise<{ status: number; alpn: string | false | null }>((resolve, reject) => {
      https.get(url + '/healthz', { ca: tls.cert }, res => {
        res.resume()
        resolve({ status: res.statusCode ?? 0, alpn: (res.socket as import('node:tls').TLSSocket).alpnProtocol })
      }).on('error', reject)
    })
    expect(viaHttp1).toEqual({ status: 200, alpn: false })
    for (const stream of streams) stream.request.close()
  })
})

describe('graceful shutdown', () => {
  it('tells each stream to reconnect after a different random delay within the drain window', async () => {
    const server = await startServer({ server: { drainSpreadMs: 5_000 } })
    const readers = await Promise.all(Array.from({ length: 4 }, () => openEvents(server.url, 'd')))
    await Promise.all(readers.map(r => r.sync()))
    await server.close()
    await waitFor(() => readers.every(r => r.ended))
    const last = readers.map(r => r.retries.at(-1) ?? -1)
    for (const retry of last) {
      expect(retry).toBeGreaterThanOrEqual(0)
      expect(retry).toBeLessThan(5_000)
    }
    expect(new Set(last).size).toBeGreaterThan(1)
    expect(readers.every(r => r.retries.length === 2)).toBe(true)
  })
})
