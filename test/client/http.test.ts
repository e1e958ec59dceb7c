/**
 * The client's `node:http` fetch (the default in Node) against real HTTP servers on port 0: what
 * the provider relies on of `fetch`, including streaming, aborts, broken connections, compressed
 * bodies and redirects.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib'
import { describe, expect, it } from 'vitest'
import { defaultFetch, type HttpRequestInit } from '../../client/index.js'
import { onCleanup } from '../helpers/server.js'
import { waitFor } from '../helpers/wait.js'

interface Received {
  method: string
  url: string
  headers: IncomingMessage['headers']
  body: Buffer
}

/** An HTTP server on a free port that records every request and every connection it accepted. */
const server = async (handle: (request: Received, response: ServerResponse, raw: IncomingMessage) => void) => {
  const received: Received[] = []
  const sockets: Socket[] = []
  const http = createServer((raw, response) => {
    const chunks: Buffer[] = []
    raw.on('data', (chunk: Buffer) => chunks.push(chunk))
    raw.on('end', () => {
      const request = { method: raw.method ?? '', url: raw.url ?? '', headers: raw.headers, body: Buffer.concat(chunks) }
      received.push(request)
      handle(request, response, raw)
    })
  })
  http.on('connection', socket => sockets.push(socket))
  await new Promise<void>(resolve => http.listen(0, '127.0.0.1', resolve))
  onCleanup(() => new Promise<void>(resolve => {
    http.closeAllConnections()
    http.close(() => resolve())
  }))
  return { url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`, received, sockets }
}

const fetch = defaultFetch()
const get = (headers: Record<string, string> = {}): HttpRequestInit => ({ headers, signal: new AbortController().signal })
const text = async (response: { arrayBuffer(): Promise<ArrayBuffer> }): Promise<string> => Buffer.from(await response.arrayBuffer()).toString()

describe('the node:http fetch', () => {
  it('is the default in Node', () => {
    expect(fetch).not.toBe(globalThis.fetch)
    expect(defaultFetch()).toBe(fetch)
  })

  it('sends headers and a binary body, and reads status, headers and JSON', async () => {
    const s = await server((_request, response) => response.writeHead(201, { 'X-Answer': '42', 'Content-Type': 'application/json' }).end('{"ok":true}'))
    const body = new Uint8Array([0, 1, 2, 255])
    const response = await fetch(`${s.url}/docs/a/updates?x=1`, { method: 'POST', headers: { 'Content-Type': 'application/octet-stream', Authorization: 'Bearer t' }, body, signal: new AbortController().signal })
    expect([response.status, response.ok, response.headers.get('x-answer'), response.headers.get('X-ANSWER'), response.headers.get('missing')]).toEqual([201, true, '42', '42', null])
    expect(await response.json()).toEqual({ ok: true })
    const [request] = s.received
    expect(request?.method).toBe('POST')
    expect(request?.url).toBe('/docs/a/updates?x=1')
    expect(request?.headers['content-length']).toBe('4')
    expect(request?.headers['content-type']).toBe('application/octet-stream')
    expect(request?.headers.authorization).toBe('Bearer t')
    expect([...(request?.body ?? [])]).toEqual([0, 1, 2, 255])
  })

  it('keeps the connection for the next request', async () => {
    const s = await server((_request, response) => response.end('x'))
    for (let i = 0; i < 3; i++) expect(await text(await fetch(s.url, get()))).toBe('x')
    expect(s.received).toHaveLength(3)
    expect(s.sockets).toHaveLength(1)
  })

  it.each([
    ['gzip', gzipSync],
    ['deflate', deflateSync],
    ['br', brotliCompressSync]
  ])('asks for compressed bodies and decodes %s', async (encoding, compress) => {
    const plain = 'y-sse '.repeat(1000)
    const s = await server((_request, response) => response.writeHead(200, { 'Content-Encoding': encoding }).end(compress(plain)))
    expect(await text(await fetch(s.url, get()))).toBe(plain)
    expect(s.received[0]?.headers['accept-encoding']).toBe('gzip, deflate, br')
  })

  it('hands over each chunk of a stream as it arrives', async () => {
    const open: { response?: ServerResponse } = {}
    const s = await server((_request, response) => {
      response.writeHead(200, { 'Content-Type': 'text/event-stream' }).write('first')
      open.response = response
    })
    const response = await fetch(s.url, get())
    const reader = response.body?.getReader()
    const first = await reader?.read()
    expect(Buffer.from(first?.value ?? []).toString()).toBe('first')
    open.response?.write('second')
    expect(Buffer.from((await reader?.read())?.value ?? []).toString()).toBe('second')
    open.response?.end()
    expect((await reader?.read())?.done).toBe(true)
  })

  it('pauses a body nobody reads and resumes it when read, losing nothing', async () => {
    const whole = Buffer.alloc(4 << 20, 'abcdefgh')
    let written: Promise<void> | null = null
    const s = await server((_request, response) => {
      written = new Promise(resolve => {
        for (let at = 0; at < whole.length; at += 1024) response.write(whole.subarray(at, at + 1024))
        response.end(resolve)
      })
    })
    const response = await fetch(s.url, get())
    // Everything has reached the client's socket (or waits in the kernel) before the first read.
    await waitFor(() => written !== null)
    const [read] = await Promise.all([response.arrayBuffer(), written])
    expect(Buffer.from(read).equals(whole)).toBe(true)
  })

  it('rejects with the signal\'s reason when aborted before the response, and closes the connection', async () => {
    const s = await server(() => {})
    const abort = new AbortController()
    const pending = fetch(s.url, { headers: {}, signal: abort.signal })
    await waitFor(() => s.received.length === 1)
    const reason = new Error('gave up')
    abort.abort(reason)
    await expect(pending).rejects.toBe(reason)
    await waitFor(() => s.sockets[0]?.destroyed === true)
  })

  it('fails a read in progress with the signal\'s reason when aborted mid-stream, and closes the connection', async () => {
    const s = await server((_request, response) => response.writeHead(200).write('start'))
    const abort = new AbortController()
    const response = await fetch(s.url, { headers: {}, signal: abort.signal })
    const reader = response.body?.getReader()
    await reader?.read()
    const next = reader?.read()
    const reason = new Error('disconnect')
    abort.abort(reason)
    await expect(next).rejects.toBe(reason)
    await waitFor(() => s.sockets[0]?.destroyed === true)
  })

  it.each([
    ['with a length', { 'Content-Length': '100' }],
    ['chunked', {}]
  ])('fails a body (%s) whose connection breaks before its end', async (_kind, headers) => {
    const s = await server((_request, response) => {
      response.writeHead(200, headers).write('only part', () => response.socket?.destroy())
    })
    const response = await fetch(s.url, get())
    await expect(response.arrayBuffer()).rejects.toThrow(TypeError)
  })

  it('closes the connection when the body is cancelled', async () => {
    const s = await server((_request, response) => response.writeHead(200).write('open'))
    const response = await fetch(s.url, get())
    await response.body?.cancel()
    await waitFor(() => s.sockets[0]?.destroyed === true)
    await expect(response.arrayBuffer()).rejects.toThrow(/cancelled/)
  })

  it('rejects with a TypeError naming the server when nobody listens', async () => {
    // Port 1 (tcpmux) is privileged and unused: connecting to it is refused.
    await expect(fetch('http://127.0.0.1:1/', get())).rejects.toThrow(/request to http:\/\/127\.0\.0\.1:1 failed/)
  })

  it('gives a 204 no body, as fetch does', async () => {
    const s = await server((_request, response) => response.writeHead(204, { 'Content-Encoding': 'gzip' }).end())
    const response = await fetch(s.url, get())
    expect([response.status, response.body]).toEqual([204, null])
    expect((await response.arrayBuffer()).byteLength).toBe(0)
  })

  it('rejects a URL or a redirect it cannot parse', async () => {
    await expect(fetch('not a url', get())).rejects.toThrow(TypeError)
    const s = await server((_request, response) => response.writeHead(302, { Location: 'http://[bad' }).end())
    await expect(fetch(s.url, get())).rejects.toThrow(/invalid URL/)
  })

  it('follows redirects as fetch does: 307 keeps a POST, 303 turns it into a GET, another origin gets no credentials', async () => {
    const other = await server((_request, response) => response.end('elsewhere'))
    const s = await server((request, response) => {
      if (request.url === '/temporary') response.writeHead(307, { Location: '/target' }).end()
      else if (request.url === '/see-other') response.writeHead(303, { Location: '/target' }).end()
      else if (request.url === '/away') response.writeHead(302, { Location: `${other.url}/there` }).end()
      else if (request.url === '/loop') response.writeHead(302, { Location: '/loop' }).end()
      else response.end(`${request.method} ${request.body.toString()}`)
    })
    const post = (path: string) => fetch(`${s.url}${path}`, { method: 'POST', headers: { Authorization: 'Bearer t', 'Content-Type': 'application/octet-stream' }, body: new Uint8Array(Buffer.from('data')), signal: new AbortController().signal })
    expect(await text(await post('/temporary'))).toBe('POST data')
    expect(await text(await post('/see-other'))).toBe('GET ')
    expect(s.received.at(-1)?.headers['content-type']).toBeUndefined()
    expect(s.received.at(-1)?.headers.authorization).toBe('Bearer t')
    expect(await text(await fetch(`${s.url}/away`, get({ Authorization: 'Bearer t', Cookie: 'session=1', 'X-Kept': 'yes' })))).toBe('elsewhere')
    expect(other.received[0]?.headers.authorization).toBeUndefined()
    expect(other.received[0]?.headers.cookie).toBeUndefined()
    expect(other.received[0]?.headers['x-kept']).toBe('yes')
    await expect(fetch(`${s.url}/loop`, get())).rejects.toThrow(/more than 20 redirects/)
  })
})
