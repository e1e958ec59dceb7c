/**
 * Documents for scripts and bots: open, wait for the server's content, edit, and close only once
 * the server has acknowledged every edit.
 */
import * as Y from 'yjs'
import { SseProvider, type SseProviderOptions } from '../provider/sse-provider.js'
import type { ConnectionError } from '../provider/transport.js'

/** Options of {@link openDocument}: the provider's auth and transport options, plus a deadline. */
export interface OpenDocumentOptions extends Pick<Partial<SseProviderOptions>, 'token' | 'headers' | 'params' | 'fetch' | 'maxBackoffTime'> {
  /** Give up on `whenSynced()` and `close()` after this many milliseconds. Default 10 000. */
  timeoutMs?: number
}

/** An open document; see {@link openDocument}. */
export interface OpenDocument {
  doc: Y.Doc
  provider: SseProvider
  /** Resolves once the server's content is in `doc`; rejects on a stop (403, 404), a timeout or `close()`. */
  whenSynced(): Promise<void>
  /**
   * Waits until the server has acknowledged every local edit (or the deadline passes, which
   * rejects), then releases the connection. Safe to call twice.
   */
  close(): Promise<void>
}

/** Raised when the server cannot be reached, refuses access, or does not answer in time. */
export class DocumentError extends Error {
  /** `timeout`, or the `connection-error` that stopped the provider. */
  readonly reason: 'timeout' | 'stopped'
  /** The HTTP status that stopped the provider, when there was one. */
  readonly status: number | null

  constructor (message: string, reason: 'timeout' | 'stopped', status: number | null = null) {
    super(message)
    this.name = 'DocumentError'
    this.reason = reason
    this.status = status
  }
}

const withDeadline = <T>(work: Promise<T>, timeoutMs: number, what: string, lastError: () => ConnectionError | null): Promise<T> =>
  new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      const error = lastError()
      const detail = error === null ? '' : ` (last error: ${error.message})`
      reject(new DocumentError(`${what} did not complete within ${timeoutMs} ms${detail}`, 'timeout', error?.status ?? null))
    }, timeoutMs)
    work.then(resolve, reject).finally(() => clearTimeout(timer))
  })

/**
 * Opens a document on a y-sse server with a fresh `Y.Doc`.
 *
 * @example
 * ```ts
 * const { doc, whenSynced, close } = openDocument('http://localhost:8080', 'notes', { token })
 * await whenSynced()
 * doc.getText('log').insert(0, 'hello\n')
 * await close()
 * ```
 */
export const openDocument = (serverUrl: string, docId: string, options: OpenDocumentOptions = {}): OpenDocument => {
  const { timeoutMs = 10_000, ...providerOptions } = options
  const doc = new Y.Doc()
  // A stream of its own: a bot opens and closes documents one after another, and on a shared
  // stream each open or close would reopen the stream of every other document the process follows.
  const provider = new SseProvider(serverUrl, docId, doc, { ...providerOptions, connect: false, multiplex: false })
  let lastError: ConnectionError | null = null
  provider.on('connection-error', error => { lastError = error })
  const stopped = (): DocumentError | null =>
    lastError !== null && lastError.retryIn === null ? new DocumentError(lastError.message, 'stopped', lastError.status) : null

  let synced: Promise<void> | null = null
  let closing: Promise<void> | null = null
  return {
    doc,
    provider,
    whenSynced () {
      synced ??= withDeadline(provider.whenSynced(), timeoutMs, `syncing ${docId} with ${serverUrl}`, () => lastError)
        .catch((error: unknown) => { throw stopped() ?? error })
      void provider.connect()
      return synced
    },
    close () {
      closing ??= (async () => {
        try {
          if (provider.unsyncedChanges > 0 && provider.shouldConnect) {
            const acknowledged = new Promise<void>(resolve => {
              const check = ({ unsyncedChanges }: { unsyncedChanges: number }): void => {
                if (unsyncedChanges === 0) resolve()
              }
              provider.on('sync-status', check)
            })
            await withDeadline(acknowledged, timeoutMs, `saving ${docId} on ${serverUrl}`, () => lastError)
          }
        } finally {
          provider.destroy()
          doc.destroy()
        }
      })()
      return closing
    }
  }
}
