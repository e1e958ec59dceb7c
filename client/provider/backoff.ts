/**
 * When to try again: exponential backoff with full jitter, `Retry-After`, and a sleep that an
 * `AbortSignal` cuts short. Pure functions apart from the timer, so the policy is testable alone.
 */

/** First backoff ceiling; it doubles per failure up to the provider's `maxBackoffTime`. */
export const BASE_BACKOFF_MS = 100

/**
 * The delay before retry number `attempt` (0-based): uniform in `[0, min(maxMs, baseMs · 2^attempt))`.
 * Full jitter (not "equal" or none) spreads the clients of a restarted server over the whole window,
 * so they never come back in lockstep.
 */
export const fullJitter = (attempt: number, maxMs: number, random: () => number = Math.random, baseMs = BASE_BACKOFF_MS): number =>
  Math.floor(random() * Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30)))

/** Counts consecutive failures of one kind of request and turns them into delays. */
export class Backoff {
  private failures = 0

  constructor (private readonly maxMs: number) {}

  /** The delay before the next try; each call counts one more failure. */
  next (): number {
    return fullJitter(this.failures++, this.maxMs)
  }

  /** Forgets the failures after a success. */
  reset (): void {
    this.failures = 0
  }
}

/**
 * Reads a `Retry-After` header (delay in seconds or an HTTP date); `null` when absent or unreadable.
 */
export const parseRetryAfter = (header: string | null, now: number = Date.now()): number | null => {
  if (header === null || header.trim() === '') return null
  const value = header.trim()
  if (/^\d+$/.test(value)) return Number(value) * 1000
  const date = Date.parse(value)
  return Number.isNaN(date) ? null : Math.max(0, date - now)
}

/** Resolves after `ms`, or at once when `signal` aborts; never rejects, and leaves no timer behind. */
export const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise(resolve => {
    if (signal.aborted) return resolve()
    const done = (): void => {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done)
  })
