/**
 * When to open the event stream again after an attempt ended: shared by a provider's own stream
 * and by the stream several providers share (stream-hub.ts), so both react to the server alike.
 */
import { Backoff } from './backoff.js'
import { remedyFor, type ConnectionError, type RequestFailure } from './transport.js'

/** What an ended attempt calls for: stop for good, or try again after `delay` ms (reporting `error`, if any). */
export type NextAttempt =
  | { kind: 'stop'; error: ConnectionError }
  | { kind: 'retry'; delay: number; error: ConnectionError | null }

/** Consecutive failures of one stream, turned into delays. */
export class ReconnectPolicy {
  private readonly backoff: Backoff
  private lastWasUnauthorized = false

  constructor (maxBackoffMs: number) {
    this.backoff = new Backoff(maxBackoffMs)
  }

  /**
   * @param failure - why the attempt failed; `null` when a synced stream ended (server shutdown,
   *   document reset, network): it resumes after the server's `retry:` delay, `retryMs`.
   */
  after (failure: RequestFailure | null, retryMs: number): NextAttempt {
    if (failure === null) {
      this.backoff.reset()
      this.lastWasUnauthorized = false
      return { kind: 'retry', delay: retryMs, error: null }
    }
    const remedy = remedyFor(failure)
    if (remedy === 'stop' || remedy === 'drop') return { kind: 'stop', error: { ...failure, retryIn: null } }
    // A 401 gets one immediate retry with a fresh token; a second one in a row backs off.
    const unauthorized = remedy === 'refresh-token'
    const delay = unauthorized && !this.lastWasUnauthorized ? 0 : (failure.retryAfterMs ?? 0) + this.backoff.next()
    this.lastWasUnauthorized = unauthorized
    return { kind: 'retry', delay, error: { ...failure, retryIn: delay } }
  }
}
