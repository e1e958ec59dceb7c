/**
 * `watchChanges`: the server's change feed (`GET /changes`) as an async iterator that reconnects
 * by itself and resumes from its cursor, built on the provider's transport, stream reader and
 * backoff.
 */
import { ChangesEvent, type ChangeEventData, type ResetEventData } from '../shared/protocol.js'
import { Backoff, sleep } from './provider/backoff.js'
import { readEvents } from './provider/event-stream.js'
import { defaultFetch, type Fetch, type HttpResponse } from './provider/http.js'
import { Transport, failureOf, networkFailure, remedyFor, type ConnectionError, type RequestFailure, type TokenSource } from './provider/transport.js'

/** Options of {@link watchChanges}. */
export interface WatchChangesOptions {
  /** Only documents whose ID starts with this. Default: every document. */
  prefix?: string
  /** The cursor to resume after (a `cursor` this iterator gave earlier). Default: none, which starts with a `reset` listing every document. */
  lastEventId?: string
  /** A token, or a function that fetches one (called before every connection). Its `docs` must cover the prefix (`prefix*` or `*`). */
  token?: TokenSource
  /** Headers sent with every request. */
  headers?: Record<string, string>
  /** The `fetch` to use. Default: {@link defaultFetch}. */
  fetch?: Fetch
  /** Ends the iteration (without an error) when aborted. */
  signal?: AbortSignal
  /** Longest wait between reconnection attempts, in ms. Default 10 000. */
  maxBackoffTime?: number
  /** Told about every failed connection attempt, including those it recovers from. */
  onError?: (error: ConnectionError) => void
}

/** What {@link watchChanges} yields; `cursor` is where to resume after it (`lastEventId`). */
export type ChangeNotice =
  /** One stored update of `docId`, in the document's order. */
  | { type: 'change'; docId: string; eventId: string; cursor: string }
  /** The feed could not resume exactly (no cursor, too old, or the server's storage was replaced): read these documents in full. */
  | { type: 'reset'; docs: string[]; cursor: string }

/** Raised by {@link watchChanges} when the server refuses the feed for good (401 after a new token, 403, 400, 501…). */
export class ChangesError extends Error {
  constructor (readonly failure: RequestFailure) {
    super(failure.message)
    this.name = 'ChangesError'
  }
}

/**
 * Follows every document's changes on a y-sse server.
 *
 * @example
 * ```ts
 * for await (const notice of watchChanges('http://localhost:8080', { prefix: 'team-', lastEventId: saved })) {
 *   if (notice.type === 'change') await reindex(notice.docId)
 *   else await Promise.all(notice.docs.map(reindex))
 *   saved = notice.cursor
 * }
 * ```
 */
export async function * watchChanges (serverUrl: string, options: WatchChangesOptions = {}): AsyncGenerator<ChangeNotice, void, undefined> {
  const { prefix = '', signal, maxBackoffTime = 10_000, onError } = options
  const transport = new Transport(serverUrl, '', {
    params: {},
    headers: options.headers ?? {},
    token: options.token,
    fetch: options.fetch ?? defaultFetch()
  })
  const backoff = new Backoff(maxBackoffTime)
  let cursor = options.lastEventId
  let retryMs = 0
  let refreshed = false
  // A function, not a property read: TypeScript would keep the narrowing of the loop's condition across awaits.
  const aborted = (): boolean => signal?.aborted === true
  const retryAfter = async (failure: RequestFailure): Promise<void> => {
    onError?.({ ...failure, retryIn: null })
    const remedy = remedyFor(failure)
    if (remedy === 'refresh-token' && !refreshed) {
      // One new token per failure streak: a second 401 in a row means the token is not the problem.
      refreshed = true
      return
    }
    if (remedy !== 'retry') throw new ChangesError(failure)
    await sleep(failure.retryAfterMs ?? backoff.next(), signal ?? new AbortController().signal)
  }
  while (!aborted()) {
    const tokenFailure = await transport.refreshToken('changes')
    if (tokenFailure !== null) {
      await retryAfter(tokenFailure)
      continue
    }
    const connection = new AbortController()
    const stop = (): void => connection.abort()
    signal?.addEventListener('abort', stop)
    try {
      let response: HttpResponse
      try {
        response = await transport.openChanges({ prefix, ...(cursor === undefined ? {} : { lastEventId: cursor }) }, connection.signal)
      } catch (error) {
        if (aborted()) return
        await retryAfter(networkFailure('changes', error))
        continue
      }
      if (!response.ok || response.body === null) {
        await retryAfter(await failureOf('changes', response))
        continue
      }
      backoff.reset()
      refreshed = false
      // Events arrive while the consumer works on earlier ones: queue them, in order.
      const queue: ChangeNotice[] = []
      let wake: (() => void) | null = null
      let ended = false
      const reading = readEvents(response.body, ({ event, id, data }) => {
        if (id === undefined) return
        if (event === ChangesEvent.change) {
          const { docId, eventId } = JSON.parse(data) as ChangeEventData
          queue.push({ type: 'change', docId, eventId, cursor: id })
        } else if (event === ChangesEvent.reset) {
          queue.push({ type: 'reset', docs: (JSON.parse(data) as ResetEventData).docs, cursor: id })
        }
        wake?.()
      }, ms => { retryMs = ms }, connection)
      const finished = reading.then(() => null, (error: unknown) => error).finally(() => {
        ended = true
        wake?.()
      })
      for (;;) {
        const notice = queue.shift()
        if (notice !== undefined) {
          cursor = notice.cursor
          yield notice
          continue
        }
        if (ended) break
        await new Promise<void>(resolve => { wake = resolve })
        wake = null
      }
      const error = await finished
      if (aborted()) return
      // A stream the server ended (shutdown, expired token) resumes after its `retry:`; a broken one backs off.
      if (error === null) await sleep(retryMs, signal ?? connection.signal)
      else await retryAfter(networkFailure('changes', error))
    } finally {
      signal?.removeEventListener('abort', stop)
      connection.abort()
    }
  }
}
