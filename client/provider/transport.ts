/**
 * The HTTP side of the provider: the protocol's URLs under the server's base URL, credentials
 * (static headers and a token that rotates), and what to do about a failed request.
 */
import { BINARY_CONTENT_TYPE, Param, UPDATE_ENCODING_HEADER, isValidEventId, routes, type UpdateEncoding } from '../../shared/protocol.js'
import type { ErrorBody } from '../../shared/errors.js'
import { parseRetryAfter } from './backoff.js'
import type { Fetch, HttpResponse } from './http.js'

/** A token, or a function that fetches a fresh one (called on every connection attempt and after a 401). */
export type TokenSource = string | (() => string | Promise<string>)

/** The request kinds of the protocol, as named in {@link ConnectionError}. */
export type RequestKind = 'events' | 'updates' | 'awareness' | 'changes' | 'document'

/** A request that failed, as the provider reports it in its `connection-error` event. */
export interface ConnectionError {
  /** Which request failed. */
  request: RequestKind
  /** HTTP status; `0` for a network error, an unreadable stream or a token function that threw. */
  status: number
  /** The protocol's error code (see `shared/errors.ts`) when the server sent one, such as `not-found`. */
  code: string | null
  /** Readable reason, from the server's error body when it sent one. */
  message: string
  /** The server's `Retry-After`, in milliseconds, when it sent one. */
  retryAfterMs: number | null
  /**
   * Milliseconds until the provider tries again; `null` when it does not: it stopped (an event
   * stream refused with 403, 404, 204 or another 4xx) or it dropped an update the server refused
   * as invalid (400, 413, 415).
   */
  retryIn: number | null
}

/** A failure before the provider has decided when (or whether) to retry. */
export type RequestFailure = Omit<ConnectionError, 'retryIn'>

/**
 * What a failure calls for:
 * - `refresh-token`: 401, fetch a new token and try again;
 * - `retry`: 408, 429, 5xx, network: back off (or honour `Retry-After`) and try again;
 * - `stop`: the server will not serve this client (403, 404, 204 on the stream, other 4xx on
 *   the stream): retrying would only be a loop, so stop and say why;
 * - `drop`: the server refused this body as such (400, 413, 415 on a POST): resending it cannot help.
 */
export type Remedy = 'refresh-token' | 'retry' | 'stop' | 'drop'

/** Decides the {@link Remedy} for a failure from its request kind and status. */
export const remedyFor = ({ request, status }: Pick<RequestFailure, 'request' | 'status'>): Remedy => {
  // 501: this server will never serve the request (a change feed on Redis Cluster).
  if (status === 0 || status === 408 || status === 429 || (status >= 500 && status !== 501)) return 'retry'
  if (status === 401) return 'refresh-token'
  if (status === 403 || status === 404 || request === 'events' || request === 'changes') return 'stop'
  return 'drop'
}

/** How long a POST may take before it counts as failed. */
export const POST_TIMEOUT_MS = 30_000

/** Options of {@link Transport}, taken from the provider's options. */
export interface TransportOptions {
  params: Record<string, string>
  headers: Record<string, string>
  token: TokenSource | undefined
  fetch: Fetch
}

/**
 * Lets a request just started go out before the thread gets busy: Node's HTTP clients (its
 * `fetch`, and `node:http` that `defaultFetch` uses there) send on a later turn of the event
 * loop. A message to ourselves is such a turn and, unlike a timer, is not held back in a
 * browser's background tab.
 */
const letRequestGo = (): Promise<void> => new Promise(resolve => {
  const channel = new MessageChannel()
  channel.port1.onmessage = () => {
    channel.port1.close()
    resolve()
  }
  channel.port2.postMessage(null)
})

/**
 * Runs `settle` (applying fetched snapshots: tens of milliseconds for a large document) while the
 * stream's request `opening` travels, so the two overlap. False when the stream is not to be
 * read: the attempt was aborted meanwhile, or `settle` refused, which aborts it with `refused`.
 */
export const settleWhileOpening = async (opening: Promise<HttpResponse>, attempt: AbortController, settle: () => boolean, refused: Error): Promise<boolean> => {
  opening.catch(() => {}) // awaited by the caller, unless the stream is not to be read
  await letRequestGo()
  if (attempt.signal.aborted) return false
  if (settle()) return true
  attempt.abort(refused)
  return false
}

/** A whole document as `GET /docs/:docId` answers it: the update, its format and its head event ID. */
export interface DocumentSnapshot {
  update: Uint8Array
  encoding: UpdateEncoding
  eventId: string
}

/** Builds the protocol's requests for one document and keeps the current token. */
export class Transport {
  private readonly base: string
  private token: string | null = null
  private refreshing: Promise<unknown> | null = null

  constructor (serverUrl: string, private readonly docName: string, private readonly options: TransportOptions) {
    this.base = serverUrl.replace(/\/+$/, '')
  }

  /** The URL of a route with the user's `params` and the given query added. */
  url (request: RequestKind, query: Record<string, string> = {}): string {
    const search = new URLSearchParams({ ...this.options.params, ...query }).toString()
    return `${this.base}${routes[request](this.docName)}${search === '' ? '' : `?${search}`}`
  }

  /**
   * Asks the token source for a new token; a failure is reported like a network error. Calls made
   * while one is running share it, so parallel 401s fetch one token, not one each.
   */
  refreshToken (request: RequestKind): Promise<RequestFailure | null> {
    this.refreshing ??= this.fetchToken().finally(() => { this.refreshing = null })
    return this.refreshing.then(error => error === null ? null : { request, status: 0, code: null, message: `the token function failed: ${String(error)}`, retryAfterMs: null })
  }

  private async fetchToken (): Promise<unknown> {
    const source = this.options.token
    if (source === undefined) return null
    try {
      this.token = typeof source === 'string' ? source : await source()
      return null
    } catch (error) {
      return error ?? 'unknown error'
    }
  }

  private headers (extra: Record<string, string> = {}): Record<string, string> {
    return { ...this.options.headers, ...(this.token === null ? {} : { Authorization: `Bearer ${this.token}` }), ...extra }
  }

  /**
   * GETs the whole document and its event ID (from the `ETag`; an empty document when nobody wrote
   * it yet); `null` when the request failed. Fetches a token first if none is held yet.
   */
  async getDocument (signal: AbortSignal): Promise<DocumentSnapshot | null> {
    try {
      if (this.token === null && (await this.refreshToken('document')) !== null) return null
      // A document nobody wrote yet is empty, not a 404 a browser would log as an error. Format v2
      // is about half the size of v1 for edited text (a third smaller compressed); a server that
      // does not know it sends v1.
      const url = this.url('document', { [Param.missing]: 'empty', [Param.encoding]: 'v2' })
      const response = await this.options.fetch(url, { headers: this.headers(), signal })
      const eventId = response.headers.get('etag')?.replace(/^W\//, '').replaceAll('"', '') ?? ''
      if (!response.ok || !isValidEventId(eventId)) {
        await response.body?.cancel()
        return null
      }
      const encoding = response.headers.get(UPDATE_ENCODING_HEADER) === 'v2' ? 'v2' : 'v1'
      return { update: new Uint8Array(await response.arrayBuffer()), encoding, eventId }
    } catch {
      return null
    }
  }

  /** Opens the document's event stream; rejects only on network errors and aborts. */
  openEvents (query: Record<string, string>, signal: AbortSignal): Promise<HttpResponse> {
    return this.openStream(this.url('events', query), signal)
  }

  /** Opens a stream of several documents (`GET /events`); rejects only on network errors and aborts. */
  openMultiplexedEvents (query: Record<string, string>, signal: AbortSignal): Promise<HttpResponse> {
    const search = new URLSearchParams({ ...this.options.params, ...query }).toString()
    return this.openStream(`${this.base}${routes.multiplexedEvents()}?${search}`, signal)
  }

  /** Opens the change feed (`GET /changes`, see `watchChanges`); rejects only on network errors and aborts. */
  openChanges (query: Record<string, string>, signal: AbortSignal): Promise<HttpResponse> {
    const search = new URLSearchParams({ ...this.options.params, ...query }).toString()
    return this.openStream(`${this.base}${routes.changes()}?${search}`, signal)
  }

  private openStream (url: string, signal: AbortSignal): Promise<HttpResponse> {
    return this.options.fetch(url, { headers: this.headers({ Accept: 'text/event-stream' }), signal, cache: 'no-store' })
  }

  /**
   * POSTs a binary body. A 401 refreshes the token and tries once more, so a rotated token costs
   * one extra request, not an error. Resolves `null` on success; never rejects.
   */
  async post (request: 'updates' | 'awareness', body: Uint8Array): Promise<RequestFailure | null> {
    const used = this.token
    let failure = await this.postOnce(request, body)
    if (failure !== null && failure.status === 401) {
      // Another request may have refreshed the token meanwhile: then just use the new one.
      if (this.token === used) failure = await this.refreshToken(request)
      failure ??= await this.postOnce(request, body)
    }
    return failure
  }

  private async postOnce (request: 'updates' | 'awareness', body: Uint8Array): Promise<RequestFailure | null> {
    // A POST on a dead connection could hang for minutes; after the timeout it counts as failed and is retried.
    const timeout = new AbortController()
    const timer = setTimeout(() => timeout.abort(new Error(`no answer within ${POST_TIMEOUT_MS} ms`)), POST_TIMEOUT_MS)
    try {
      const response = await this.options.fetch(this.url(request), {
        method: 'POST',
        headers: this.headers({ 'Content-Type': BINARY_CONTENT_TYPE }),
        // Yjs and lib0 allocate plain ArrayBuffers; the DOM typings only refuse a SharedArrayBuffer.
        body: body as Uint8Array<ArrayBuffer>,
        signal: timeout.signal
      })
      if (!response.ok) return await failureOf(request, response)
      // Drain the body so the connection goes back to the pool.
      await response.arrayBuffer()
      return null
    } catch (error) {
      return networkFailure(request, timeout.signal.aborted ? timeout.signal.reason : error)
    } finally {
      clearTimeout(timer)
    }
  }
}

/** A network-level failure (connection refused, reset, aborted). */
export const networkFailure = (request: RequestKind, error: unknown): RequestFailure =>
  ({ request, status: 0, code: null, message: error instanceof Error ? error.message : String(error), retryAfterMs: null })

/** Reads a failed response: its status, the protocol's error body if any, and `Retry-After`. */
export const failureOf = async (request: RequestKind, response: HttpResponse): Promise<RequestFailure> => {
  let code: string | null = null
  let message = `${request} request failed with HTTP ${response.status}`
  try {
    const body = await response.json() as Partial<ErrorBody>
    if (typeof body.error?.code === 'string') code = body.error.code
    if (typeof body.error?.message === 'string') message = body.error.message
  } catch {
    // Not the protocol's JSON (a proxy's page, an empty 204): the status says enough.
  }
  return { request, status: response.status, code, message, retryAfterMs: parseRetryAfter(response.headers.get('retry-after')) }
}
