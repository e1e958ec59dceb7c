import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import fc from 'fast-check'
import { SignJWT, exportSPKI, generateKeyPair } from 'jose'
import { createJwtAuthorizer, MemoryStore, createSyncServer } from '../../server/index.js'
import { ErrorCode, ProtocolError } from '../../shared/errors.js'
import { routes } from '../../shared/protocol.js'
import { SseProvider } from '../../client/index.js'
import { appendUpdate, onCleanup, openEvents, postUpdate, startServer } from '../helpers/server.js'
import { waitFor } from '../helpers/wait.js'

const SECRET = 'test-secret-that-is-long-enough-for-hs256'

const sign = (claims: Record<string, unknown>, expiresIn: string | number = '1h'): Promise<string> =>
  new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime(expiresIn).sign(new TextEncoder().encode(SECRET))

const update = (text: string): Uint8Array => {
  const doc = new Y.Doc()
  doc.getText('t').insert(0, text)
  return Y.encodeStateAsUpdate(doc)
}

const post = (url: string, docId: string, token?: string, body = update('x')): Promise<Response> =>
  fetch(url + routes.updates(docId), {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream', ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
    body: body as Uint8Array<ArrayBuffer>
  })

const codeOf = async (res: Response): Promise<string> => ((await res.json()) as { error: { code: string } }).error.code

describe('JWT authentication', () => {
  it('answers 401 without or with a bad token, 403 outside the token\'s documents or access, and serves within them', async () => {
    const { url } = await startServer({ server: { authorize: await createJwtAuthorizer({ secret: SECRET }) } })
    const none = await post(url, 'team-a')
    expect([none.status, await codeOf(none)]).toEqual([401, 'unauthorized'])
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer /)
    const forged = await post(url, 'team-a', (await sign({ docs: ['team-*'], access: 'write' })).slice(0, -4) + 'AAAA')
    expect(forged.status).toBe(401)
    const expired = await post(url, 'team-a', await sign({ docs: ['team-*'], access: 'write' }, Math.floor(Date.now() / 1000) - 10))
    expect(((await expired.json()) as { error: { message: string } }).error.message).toBe('the token has expired')

    const writer = await sign({ docs: ['team-*', 'shared'], access: 'write', sub: 'alice' })
    const reader = await sign({ docs: ['team-a'], access: 'read' })
    expect((await post(url, 'team-a', writer)).status).toBe(200)
    expect((await post(url, 'shared', writer)).status).toBe(200)
    const elsewhere = await post(url, 'private', writer)
    expect([elsewhere.status, await codeOf(elsewhere)]).toEqual([403, 'forbidden'])
    const readOnly = await post(url, 'team-a', reader)
    expect([readOnly.status, await codeOf(readOnly)]).toEqual([403, 'forbidden'])

    // A read-only token streams, with the header or, for the browser's EventSource, ?token=.
    const byHeader = await fetch(url + routes.events('team-a'), { headers: { authorization: `Bearer ${reader}` } })
    expect(byHeader.status).toBe(200)
    await byHeader.body?.cancel()
    const byQuery = await fetch(`${url}${routes.events('team-a')}?token=${reader}`)
    expect(byQuery.status).toBe(200)
    await byQuery.body?.cancel()
    expect((await fetch(url + routes.document('team-a'), { headers: { authorization: `Bearer ${reader}` } })).status).toBe(200)
    expect((await fetch(url + routes.document('team-a'))).status).toBe(401)
  })

  it('verifies ES256 tokens with a public key', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256')
    const { url } = await startServer({ server: { authorize: await createJwtAuthorizer({ publicKey: await exportSPKI(publicKey), algorithm: 'ES256' }) } })
    const token = await new SignJWT({ docs: '*', access: 'write' }).setProtectedHeader({ alg: 'ES256' }).setExpirationTime('1h').sign(privateKey)
    expect((await post(url, 'any', token)).status).toBe(200)
    const hs = await post(url, 'any', await sign({ docs: '*', access: 'write' }))
    expect(hs.status).toBe(401)
  })

  it('closes a stream when its token expires, and the provider comes back with a fresh token', async () => {
    const { url } = await startServer({ server: { authorize: await createJwtAuthorizer({ secret: SECRET }), retryMs: 20 } })
    let issued = 0
    const token = async (): Promise<string> => {
      issued++
      return sign({ docs: ['d'], access: 'write' }, Math.floor(Date.now() / 1000) + 2)
    }
    const doc = new Y.Doc()
    const provider = new SseProvider(url, 'd', doc, { token, maxBackoffTime: 200 })
    onCleanup(() => provider.destroy())
    await provider.whenSynced()
    const statuses: string[] = []
    provider.on('status', ({ status }) => statuses.push(status))
    await waitFor(() => issued >= 2 && provider.status === 'connected', { timeout: 8_000, message: () => `issued ${issued}, ${statuses.join(',')}` })
    doc.getText('t').insert(0, 'still writing')
    await waitFor(() => provider.unsyncedChanges === 0)
  })
})

describe('limits', () => {
  it('answers 429 with Retry-After past the request rate, per client', async () => {
    const { url } = await startServer({ server: { rateLimitPerSecond: 5 } })
    const statuses: number[] = []
    for (let i = 0; i < 20; i++) {
      const res = await post(url, 'd')
      statuses.push(res.status)
      if (res.status === 429) {
        expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
        expect(await codeOf(res)).toBe('too-many-requests')
      } else await res.body?.cancel()
    }
    expect(statuses.filter(s => s === 200).length).toBeGreaterThanOrEqual(10)
    expect(statuses).toContain(429)
  })

  it('answers 429 past the open streams per client', async () => {
    const { url } = await startServer({ server: { maxStreamsPerClient: 2 } })
    const first = await openEvents(url, 'a')
    const second = await openEvents(url, 'b')
    const third = await fetch(url + routes.events('c'))
    expect(third.status).toBe(429)
    await second.close()
    await waitFor(async () => {
      const again = await fetch(url + routes.events('c'))
      await again.body?.cancel()
      return again.status === 200
    })
    await first.sync()
  })

  it('counts no stream for a client that left while its request was being authorized', async () => {
    let admit!: () => void
    const admitted = new Promise<void>(resolve => { admit = resolve })
    let asked!: () => void
    const askedFor = new Promise<void>(resolve => { asked = resolve })
    let closed!: () => void
    const closedOnServer = new Promise<void>(resolve => { closed = resolve })
    const { url } = await startServer({
      // The server's side of the abandoned request: its response closes while authorize waits.
      before: async (ctx, next) => {
        if (ctx.path === routes.events('gone')) ctx.res.on('close', closed)
        await next()
      },
      server: {
        maxStreamsPerClient: 1,
        authorize: async (_request, docId) => {
          if (docId === 'gone') {
            asked()
            await admitted
          }
          return { subject: 'one-client' }
        }
      }
    })
    const abort = new AbortController()
    const gone = fetch(url + routes.events('gone'), { signal: abort.signal }).catch(() => null)
    await askedFor
    abort.abort()
    await closedOnServer
    admit()
    expect(await gone).toBeNull()
    // Had the abandoned request taken the client's one stream, this one would get 429.
    const next = await openEvents(url, 'next')
    await next.sync()
    expect(await (await fetch(url + '/metrics')).text()).toMatch(/^ysse_streams_open 1$/m)
  })

  it('refuses updates that would make a document larger than its limit, in both stores', async () => {
    for (const server of [
      await startServer({ store: { maxDocBytes: 300 } }),
      await (async () => {
        const sync = createSyncServer({ store: new MemoryStore({ maxDocBytes: 300 }) })
        const { url } = await sync.listen(0, '127.0.0.1')
        onCleanup(() => sync.close())
        return { url }
      })()
    ]) {
      expect((await post(server.url, 'd', undefined, update('a'.repeat(100)))).status).toBe(200)
      const big = await post(server.url, 'd', undefined, update('b'.repeat(250)))
      expect([big.status, await codeOf(big)]).toEqual([413, 'document-too-large'])
      const res = await fetch(server.url + routes.document('d'))
      const doc = new Y.Doc()
      Y.applyUpdate(doc, new Uint8Array(await res.arrayBuffer()))
      expect(doc.getText('t').toString()).toBe('a'.repeat(100))
    }
  })

  it('answers 408 to a body that never ends', async () => {
    const { url } = await startServer({ server: { bodyTimeoutMs: 200 } })
    const never = new ReadableStream<Uint8Array>({ start (controller) { controller.enqueue(new Uint8Array([1])) } })
    const res = await fetch(url + routes.updates('d'), {
      method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: never, duplex: 'half'
    } as RequestInit)
    expect([res.status, await codeOf(res)]).toEqual([408, 'request-timeout'])
    expect((await fetch(url + routes.document('d'))).status).toBe(404)
  })
})

describe('CORS allow-list', () => {
  it('answers listed origins only', async () => {
    const { url } = await startServer({ server: { corsOrigins: ['https://app.example'] } })
    const listed = await fetch(url + '/healthz', { headers: { origin: 'https://app.example' } })
    expect(listed.headers.get('access-control-allow-origin')).toBe('https://app.example')
    expect(listed.headers.get('vary')).toMatch(/Origin/)
    const other = await fetch(url + '/healthz', { headers: { origin: 'https://evil.example' } })
    expect(other.headers.get('access-control-allow-origin')).toBeNull()
  })

  it('puts the CORS headers and the request ID on event streams, documents and errors alike', async () => {
    let streamResponse: ServerResponse | null = null
    const { url } = await startServer({
      server: { corsOrigins: ['https://app.example'] },
      before: async (ctx, next) => {
        if (ctx.path === routes.events('cors')) streamResponse = ctx.res
        await next()
      },
      // Middleware after the routes keeps a header it sets itself.
      after: async (ctx, next) => {
        if (ctx.path !== '/custom') return next()
        ctx.set('Access-Control-Expose-Headers', 'X-Custom')
        ctx.body = 'custom'
      }
    })
    const headers = { origin: 'https://app.example', 'x-request-id': 'req-1' }
    const abort = new AbortController()
    onCleanup(() => abort.abort())
    // An event stream writes its head itself, outside Koa's response.
    const stream = await fetch(url + routes.events('cors'), { headers: { ...headers, accept: 'text/event-stream' }, signal: abort.signal })
    expect(stream.headers.get('content-type')).toMatch(/^text\/event-stream/)
    expect(stream.headers.get('access-control-allow-origin')).toBe('https://app.example')
    expect(stream.headers.get('access-control-expose-headers')).toMatch(/X-Request-Id/)
    expect(stream.headers.get('vary')).toBe('Origin')
    expect(stream.headers.get('x-request-id')).toBe('req-1')
    // The point of holding them: Node keeps no header map for the held stream.
    expect((streamResponse as ServerResponse | null)?.getHeaderNames()).toEqual([])
    abort.abort()
    await appendUpdate(url, 'cors', update('x'.repeat(2000)))
    const doc = await fetch(url + routes.document('cors'), { headers })
    expect(doc.headers.get('content-encoding')).toBe('gzip')
    expect(doc.headers.get('vary')?.split(/,\s*/).sort()).toEqual(['Accept-Encoding', 'Origin'])
    expect(doc.headers.get('access-control-allow-origin')).toBe('https://app.example')
    expect(doc.headers.get('access-control-expose-headers')).toMatch(/ETag/)
    expect(doc.headers.get('x-request-id')).toBe('req-1')
    const refused = await fetch(url + routes.events('cors') + '?sv=%21', { headers })
    expect(refused.status).toBe(400)
    expect(refused.headers.get('access-control-allow-origin')).toBe('https://app.example')
    expect(refused.headers.get('vary')).toBe('Origin')
    expect(refused.headers.get('x-request-id')).toBe('req-1')
    const custom = await fetch(url + '/custom', { headers })
    expect(await custom.text()).toBe('custom')
    expect(custom.headers.get('access-control-expose-headers')).toBe('X-Custom')
    expect(custom.headers.get('access-control-allow-origin')).toBe('https://app.example')
    expect(custom.headers.get('x-request-id')).toBe('req-1')
  })
})

describe('streams served outside Koa\'s request handling', () => {
  /** What a client sees of a response: its status, the headers the protocol sets, and its body or first event. */
  const seen = async (url: string, headers: Record<string, string>): Promise<Record<string, unknown>> => {
    const abort = new AbortController()
    onCleanup(() => abort.abort())
    const res = await fetch(url, { headers, signal: abort.signal })
    const named = ['content-type', 'cache-control', 'x-request-id', 'access-control-allow-origin', 'access-control-expose-headers', 'vary', 'www-authenticate']
    const head = Object.fromEntries(named.map(name => [name, res.headers.get(name)]))
    if (res.status !== 200 || res.body === null) return { status: res.status, head, body: await res.text() }
    // An event stream: up to the end of its first event with an ID (the sync event).
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
    let text = ''
    while (!/^id: .*\n[^]*?\n\n/m.test(text)) {
      const { value, done } = await reader.read()
      if (done) break
      text += value
    }
    abort.abort()
    return { status: res.status, head, firstEvent: /^event: (\w+)$/m.exec(text)?.[1] }
  }

  it('answer as Koa answers them: heads, errors and events alike, with nothing of Koa\'s kept on the response', async () => {
    const authorize = async (req: { headers: Record<string, string | string[] | undefined> }): Promise<{ subject: string }> => {
      if (req.headers.authorization !== 'Bearer ok') throw new ProtocolError(ErrorCode.unauthorized, 'no "token" here')
      return { subject: 'reader' }
    }
    const sync = createSyncServer({ store: new MemoryStore(), corsOrigins: ['https://app.example'], authorize })
    onCleanup(() => sync.close())
    // What listens for the end of each stream's response once the stream runs.
    const finishListeners: number[] = []
    sync.app.middleware.splice(1, 0, async (ctx, next) => {
      await next()
      if (ctx.respond === false) finishListeners.push(ctx.res.listenerCount('finish'))
    }, async (ctx, next) => {
      // A middleware in front of the routes that answers itself: a text body, or a bare status.
      const answer = ctx.get('x-answer')
      if (answer === '') return next()
      ctx.status = answer === 'text' ? 403 : 418
      if (answer === 'text') ctx.body = 'not for you'
    })
    // In front of the request scope, a plain function that throws: Koa's own error handling answers.
    sync.app.middleware.unshift((ctx, next) => {
      if (ctx.get('x-fail') !== '') throw new Error('a middleware failed')
      return next()
    })
    const urls: string[] = []
    for (const listener of [sync.callback(), sync.app.callback()]) {
      const server = createServer(listener)
      await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
      onCleanup(() => new Promise<void>(resolve => { server.closeAllConnections(); server.close(() => resolve()) }))
      urls.push(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)
    }
    const [outside = '', through = ''] = urls
    const res = await fetch(outside + routes.updates('doc'), { method: 'POST', headers: { authorization: 'Bearer ok', 'content-type': 'application/octet-stream' }, body: update('text') as Uint8Array<ArrayBuffer> })
    expect(res.status).toBe(200)
    const allowed = { authorization: 'Bearer ok', origin: 'https://app.example', 'x-request-id': 'req-7' }
    const requests: [string, Record<string, string>, number][] = [
      [routes.events('doc'), allowed, 200],
      [routes.events('doc') + '?lastEventId=0', allowed, 200],
      [routes.multiplexedEvents() + '?docs=doc,other', allowed, 200],
      [routes.changes(), allowed, 200],
      [routes.events('doc'), { origin: 'https://app.example', 'x-request-id': 'req-8' }, 401],
      [routes.events('doc') + '?sv=%21', allowed, 400],
      [routes.events('doc') + '?lastEventId=' + '9'.repeat(200), allowed, 400],
      [routes.multiplexedEvents() + '?docs=doc,doc', allowed, 400],
      [routes.events('doc'), { ...allowed, 'x-fail': '1' }, 500],
      [routes.events('doc'), { ...allowed, 'x-answer': 'text' }, 403],
      [routes.events('doc'), { ...allowed, 'x-answer': 'status' }, 418]
    ]
    for (const [path, headers, status] of requests) {
      const [lean, koa] = [await seen(outside + path, headers), await seen(through + path, headers)]
      expect(lean, path).toEqual(koa)
      expect(lean.status, path).toBe(status)
    }
    // Koa's own handling listens for the end of every response it serves, its context kept for it:
    // each stream served through Koa has a listener more than the same stream served outside it.
    const opened = requests.filter(([, , status]) => status === 200).length
    expect(finishListeners).toHaveLength(2 * opened)
    for (let i = 0; i < opened; i++) expect(finishListeners[2 * i]).toBeLessThan(finishListeners[2 * i + 1] as number)
  })
})

describe('hostile input', () => {
  it('never answers 5xx to random doc IDs, event IDs, state vectors, headers and bodies, and changes nothing', async () => {
    const { url } = await startServer()
    await appendUpdate(url, 'kept', update('original'))
    const before = Buffer.from(await (await fetch(url + routes.document('kept'))).arrayBuffer())
    const text = fc.string({ unit: 'binary', maxLength: 40 })
    await fc.assert(fc.asyncProperty(
      fc.record({
        docId: fc.oneof(text, fc.constant('kept')),
        lastEventId: fc.oneof(text, fc.stringMatching(/^[A-Za-z0-9._-]{1,130}$/)),
        sv: fc.oneof(text, fc.base64String({ maxLength: 40 })),
        header: fc.string({ maxLength: 40 }),
        body: fc.uint8Array({ maxLength: 64 })
      }),
      async ({ docId, lastEventId, sv, header, body }) => {
        const path = `/docs/${encodeURIComponent(docId)}`
        const headers = { 'x-custom': header.replace(/[^\x20-\x7e]/g, ''), 'last-event-id': lastEventId.replace(/[^\x20-\x7e]/g, '') }
        const events = await fetch(`${url}${path}/events?sv=${encodeURIComponent(sv)}&awareness=${encodeURIComponent(header)}`, { headers })
        expect(events.status).toBeLessThan(500)
        await events.body?.cancel()
        for (const route of ['/updates', '/awareness']) {
          const res = await fetch(`${url}${path}${route}`, { method: 'POST', headers: { ...headers, 'content-type': 'application/octet-stream' }, body: body as Uint8Array<ArrayBuffer> })
          expect(res.status).toBeLessThan(500)
          await res.body?.cancel()
        }
      }
    ), { seed: 7, numRuns: 150 })
    const after = Buffer.from(await (await fetch(url + routes.document('kept'))).arrayBuffer())
    // Random bodies that happen to be valid updates may add content to `kept`, never remove or corrupt it.
    const doc = new Y.Doc()
    Y.applyUpdate(doc, after)
    expect(doc.getText('t').toString()).toContain('original')
    expect(after.length).toBeGreaterThanOrEqual(before.length)
  })
})

describe('observability', () => {
  it('serves Prometheus metrics that move with the traffic, and /readyz', async () => {
    const { url } = await startServer()
    const reader = await openEvents(url, 'd')
    const other = await openEvents(url, 'd')
    await Promise.all([reader.sync(), other.sync()])
    await appendUpdate(url, 'd', update('hello'))
    await waitFor(() => reader.named('update').length === 1 && other.named('update').length === 1)
    const bad = await postUpdate(url, 'd', new Uint8Array([9, 9, 9]))
    expect(bad.status).toBe(400)
    const res = await fetch(url + '/metrics')
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/)
    const text = await res.text()
    expect(text).toMatch(/^ysse_streams_open 2$/m)
    expect(text).toMatch(/^ysse_documents_active 1$/m)
    expect(text).toMatch(/^ysse_updates_received_total 1$/m)
    expect(text).toMatch(/^ysse_events_sent_total\{event="update"\} 2$/m)
    expect(text).toMatch(/^ysse_resumes_total\{kind="full"\} 2$/m)
    expect(text).toMatch(/^ysse_requests_refused_total\{code="malformed-update"\} 1$/m)
    // Once per update, for both of its readers.
    expect(text).toMatch(/^ysse_publish_to_deliver_seconds_count 1$/m)
    expect(text).toMatch(/^ysse_post_update_seconds_count 1$/m)
    expect((await fetch(url + '/readyz')).status).toBe(200)
    expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/)
    const echoed = await fetch(url + '/healthz', { headers: { 'x-request-id': 'abc-123' } })
    expect(echoed.headers.get('x-request-id')).toBe('abc-123')

    // Events are counted between scrapes and folded in once per scrape: never twice, never lost.
    const bytesSent = (metrics: string): number => Number(/^ysse_event_bytes_sent_total (\d+)$/m.exec(metrics)?.[1])
    const bytesBefore = bytesSent(text)
    expect(bytesBefore).toBeGreaterThan(0)
    const again = await (await fetch(url + '/metrics')).text()
    expect(again).toMatch(/^ysse_events_sent_total\{event="update"\} 2$/m)
    expect(bytesSent(again)).toBe(bytesBefore)
    await appendUpdate(url, 'd', update(' world'))
    await waitFor(() => reader.named('update').length === 2 && other.named('update').length === 2)
    const later = await (await fetch(url + '/metrics')).text()
    expect(later).toMatch(/^ysse_events_sent_total\{event="update"\} 4$/m)
    expect(later).toMatch(/^ysse_publish_to_deliver_seconds_count 2$/m)
    expect(bytesSent(later)).toBeGreaterThan(bytesBefore)
  })
})
