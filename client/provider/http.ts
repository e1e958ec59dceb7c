/**
 * The part of `fetch` the client uses, and the default behind it: the global `fetch` in browsers,
 * and in Node a client on `node:http` that does the same for these requests in a fraction of the
 * CPU time. Node's `fetch` (undici) runs every request through the Fetch standard's steps and every
 * body through web streams, in JavaScript on the caller's thread: for a client that POSTs hundreds
 * of small updates a second that was a third of its CPU time (docs/performance.md).
 */
import type * as NodeHttp from 'node:http'
import type * as NodeZlib from 'node:zlib'
import type { Readable } from 'node:stream'

/** One read of a {@link ByteStream}: a chunk, or the end. */
export type ChunkRead = { done: true; value?: Uint8Array | undefined } | { done: false; value: Uint8Array }

/** A response body read chunk by chunk (a `ReadableStream<Uint8Array>` is one). */
export interface ByteStream {
  getReader(): {
    read(): Promise<ChunkRead>
    releaseLock(): void
  }
  cancel(reason?: unknown): Promise<void>
}

/** What the client reads of a response (a `fetch` `Response` is one). */
export interface HttpResponse {
  readonly ok: boolean
  readonly status: number
  readonly headers: { get(name: string): string | null }
  readonly body: ByteStream | null
  arrayBuffer(): Promise<ArrayBuffer>
  json(): Promise<unknown>
}

/** What the client asks of a request (a `fetch` `RequestInit` is one). */
export interface HttpRequestInit {
  method?: 'GET' | 'POST'
  headers: Record<string, string>
  body?: Uint8Array<ArrayBuffer>
  signal: AbortSignal
  cache?: 'no-store'
}

/** A `fetch`, as far as the client uses it: the global `fetch` is one. */
export type Fetch = (url: string, init: HttpRequestInit) => Promise<HttpResponse>

interface NodeModules {
  http: typeof NodeHttp
  https: typeof NodeHttp
  zlib: typeof NodeZlib
}

type GetBuiltinModule = (id: string) => unknown

/** Node's modules when running in Node (20.16+), through a call no bundler resolves; else null. */
const nodeModules = (): NodeModules | null => {
  const getBuiltinModule = (globalThis as { process?: { getBuiltinModule?: GetBuiltinModule } }).process?.getBuiltinModule
  if (typeof getBuiltinModule !== 'function') return null
  return {
    http: getBuiltinModule('node:http') as typeof NodeHttp,
    https: getBuiltinModule('node:https') as typeof NodeHttp,
    zlib: getBuiltinModule('node:zlib') as typeof NodeZlib
  }
}

let chosen: Fetch | null = null

/**
 * The `fetch` the client uses when given none: in Node, a client on `node:http`, else the global
 * `fetch` (called through a closure: a browser's `fetch` throws "Illegal invocation" when called
 * as a method of another object).
 */
export const defaultFetch = (): Fetch => {
  if (chosen !== null) return chosen
  const modules = nodeModules()
  chosen = modules === null ? (url, init) => globalThis.fetch(url, init) : createNodeFetch(modules)
  return chosen
}

/** Redirects followed before a request fails, as `fetch` does. */
const MAX_REDIRECTS = 20
/** Chunks a stream's reader may hold before the socket is paused. */
const HIGH_WATER_CHUNKS = 16
/** Statuses whose response has no body, as `fetch` has it (`body` is null). */
const NULL_BODY_STATUSES = [204, 205, 304]
const REDIRECT_STATUSES = [301, 302, 303, 307, 308]
/** Headers not sent on to another origin after a redirect, as `fetch` drops them. */
const CREDENTIAL_HEADERS = ['authorization', 'cookie', 'proxy-authorization', 'host']

/**
 * A {@link Fetch} on `node:http`/`node:https` with keep-alive connections, for the requests the
 * client makes: it sends `Accept-Encoding` and decodes gzip, deflate and brotli bodies, follows
 * redirects as `fetch` does (303, and 301/302 of a POST, become a GET; credentials are dropped when
 * the origin changes), rejects with the signal's reason on abort and with a `TypeError` on
 * network errors, and fails a body whose connection breaks before its end.
 */
const createNodeFetch = ({ http, https, zlib }: NodeModules): Fetch => {
  // As Node's global agent: a pooled socket is dropped before the server's keep-alive timeout
  // (which the server's `Keep-Alive: timeout=` hint shortens), not reused as the server closes it.
  const agentOptions = { keepAlive: true, scheduling: 'lifo', timeout: 5000 } as const
  const agents = { 'http:': new http.Agent(agentOptions), 'https:': new https.Agent(agentOptions) }

  // Lenient with a body cut short at a flush point, as browsers and undici are.
  const zlibFlush = { flush: zlib.constants.Z_SYNC_FLUSH, finishFlush: zlib.constants.Z_SYNC_FLUSH }
  const brotliFlush = { flush: zlib.constants.BROTLI_OPERATION_FLUSH, finishFlush: zlib.constants.BROTLI_OPERATION_FLUSH }

  const decoded = (response: NodeHttp.IncomingMessage): Readable => {
    const encoding = (response.headers['content-encoding'] ?? '').trim().toLowerCase()
    const decoder = encoding === 'gzip' || encoding === 'x-gzip'
      ? zlib.createGunzip(zlibFlush)
      : encoding === 'deflate' ? zlib.createInflate(zlibFlush) : encoding === 'br' ? zlib.createBrotliDecompress(brotliFlush) : null
    if (decoder === null) return response
    response.on('error', error => decoder.destroy(error))
    return response.pipe(decoder)
  }

  const send = (url: URL, init: HttpRequestInit, redirects: number): Promise<HttpResponse> => new Promise((resolve, reject) => {
    const { signal } = init
    if (signal.aborted) {
      reject(signal.reason)
      return
    }
    const agent = agents[url.protocol as keyof typeof agents]
    if (agent === undefined) {
      reject(new TypeError(`unsupported protocol ${url.protocol}`))
      return
    }
    const headers = withoutHeaders(init.headers, init.body === undefined ? ['accept-encoding'] : ['accept-encoding', 'content-length'])
    headers['accept-encoding'] = 'gzip, deflate, br'
    if (init.body !== undefined) headers['content-length'] = String(init.body.byteLength)
    const request = (url.protocol === 'https:' ? https : http).request(url, { method: init.method ?? 'GET', headers, agent })
    let body: NodeBody | null = null
    // Once redirected, this request's end (its response destroyed) is not the caller's concern.
    let redirected = false
    const onAbort = (): void => {
      request.destroy()
      if (body === null) reject(signal.reason)
      else body.fail(signal.reason)
    }
    signal.addEventListener('abort', onAbort, { once: true })
    const done = (): void => signal.removeEventListener('abort', onAbort)
    request.on('error', error => {
      done()
      if (redirected) return
      if (body === null) reject(new TypeError(`request to ${url.origin} failed: ${error.message}`, { cause: error }))
      else body.fail(new TypeError(`response from ${url.origin} broke off: ${error.message}`, { cause: error }))
    })
    request.on('response', response => {
      const status = response.statusCode ?? 0
      const location = response.headers.location
      if (REDIRECT_STATUSES.includes(status) && location !== undefined) {
        redirected = true
        // Not drained: a redirect's body that never ends would hold its socket.
        response.destroy()
        done()
        if (redirects >= MAX_REDIRECTS) {
          reject(new TypeError(`more than ${MAX_REDIRECTS} redirects from ${url.href}`))
          return
        }
        let next: URL
        try {
          next = new URL(location, url)
        } catch {
          reject(new TypeError(`redirect from ${url.href} to an invalid URL`))
          return
        }
        const asGet = status === 303 || ((status === 301 || status === 302) && init.method === 'POST')
        const nextHeaders = withoutHeaders(init.headers, [...(next.origin === url.origin ? [] : CREDENTIAL_HEADERS), ...(asGet ? ['content-type'] : [])])
        send(next, asGet ? { ...init, method: 'GET', headers: nextHeaders, body: undefined } : { ...init, headers: nextHeaders }, redirects + 1).then(resolve, reject)
        return
      }
      if (NULL_BODY_STATUSES.includes(status)) {
        response.resume()
        done()
        resolve(new NodeResponse(status, response.headers, null))
        return
      }
      const source = decoded(response)
      body = new NodeBody(source, () => {
        done()
        request.destroy()
      })
      // A response that ended no longer needs the abort listener (one cut short fails as an 'error').
      source.on('end', done)
      resolve(new NodeResponse(status, response.headers, body))
    })
    request.end(init.body)
  })

  return async (url, init) => send(new URL(url), init, 0)
}

/** A copy of `headers` without those named in `names` (lower case), whatever their case. */
const withoutHeaders = (headers: Record<string, string>, names: readonly string[]): Record<string, string> =>
  Object.fromEntries(Object.entries(headers).filter(([name]) => !names.includes(name.toLowerCase())))

/** A response of {@link createNodeFetch}. */
class NodeResponse implements HttpResponse {
  readonly ok: boolean
  readonly headers: { get(name: string): string | null }

  constructor (readonly status: number, headers: NodeHttp.IncomingHttpHeaders, readonly body: NodeBody | null) {
    this.ok = status >= 200 && status < 300
    this.headers = {
      get: name => {
        const value = headers[name.toLowerCase()]
        return value === undefined ? null : Array.isArray(value) ? value.join(', ') : value
      }
    }
  }

  async arrayBuffer (): Promise<ArrayBuffer> {
    const chunks: Uint8Array[] = []
    let length = 0
    if (this.body === null) return new ArrayBuffer(0)
    const reader = this.body.getReader()
    for (;;) {
      const chunk = await reader.read()
      if (chunk.done) break
      chunks.push(chunk.value)
      length += chunk.value.length
    }
    const whole = new Uint8Array(length)
    let offset = 0
    for (const chunk of chunks) {
      whole.set(chunk, offset)
      offset += chunk.length
    }
    return whole.buffer
  }

  async json (): Promise<unknown> {
    return JSON.parse(new TextDecoder().decode(await this.arrayBuffer()))
  }
}

/**
 * A Node stream read as a {@link ByteStream}: chunks queue until read, the socket pauses while
 * {@link HIGH_WATER_CHUNKS} wait, and a failure (abort, broken connection) rejects the next read.
 */
class NodeBody implements ByteStream {
  private readonly queue: Uint8Array[] = []
  private ended = false
  private failure: { reason: unknown } | null = null
  private waiting: { resolve: (read: ChunkRead) => void; reject: (reason: unknown) => void } | null = null

  constructor (private readonly source: Readable, private readonly close: () => void) {
    source.on('data', (chunk: Buffer) => {
      const waiting = this.waiting
      if (waiting !== null) {
        this.waiting = null
        waiting.resolve({ done: false, value: chunk })
        return
      }
      this.queue.push(chunk)
      if (this.queue.length >= HIGH_WATER_CHUNKS) source.pause()
    })
    source.on('end', () => {
      this.ended = true
      this.settle()
    })
    source.on('error', error => this.fail(new TypeError(`response body failed: ${error.message}`, { cause: error })))
  }

  /** Fails the body (unless it was read to its end): the next read rejects with `reason`. */
  fail (reason: unknown): void {
    if (this.ended || this.failure !== null) return
    this.failure = { reason }
    this.close()
    this.settle()
  }

  private settle (): void {
    const waiting = this.waiting
    if (waiting === null || this.queue.length > 0) return
    this.waiting = null
    if (this.failure !== null) waiting.reject(this.failure.reason)
    else if (this.ended) waiting.resolve({ done: true })
  }

  private read (): Promise<ChunkRead> {
    const chunk = this.queue.shift()
    if (chunk !== undefined) {
      if (this.queue.length === 0) this.source.resume()
      return Promise.resolve({ done: false, value: chunk })
    }
    if (this.failure !== null) return Promise.reject(this.failure.reason)
    if (this.ended) return Promise.resolve({ done: true })
    return new Promise((resolve, reject) => { this.waiting = { resolve, reject } })
  }

  getReader (): ReturnType<ByteStream['getReader']> {
    return { read: () => this.read(), releaseLock: () => {} }
  }

  async cancel (): Promise<void> {
    this.queue.length = 0
    this.fail(new TypeError('the body was cancelled'))
  }
}
