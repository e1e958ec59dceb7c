/** The retry policy as pure functions: full jitter, Retry-After, and which failures stop. */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { BASE_BACKOFF_MS, fullJitter, parseRetryAfter } from '../../client/provider/backoff.js'
import { remedyFor } from '../../client/provider/transport.js'

describe('fullJitter', () => {
  it('stays in [0, min(max, base·2^attempt))', () => {
    fc.assert(fc.property(fc.nat(100), fc.integer({ min: 1, max: 120_000 }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (attempt, max, r) => {
      const delay = fullJitter(attempt, max, () => r)
      expect(delay).toBeGreaterThanOrEqual(0)
      expect(delay).toBeLessThan(Math.max(1, Math.min(max, BASE_BACKOFF_MS * 2 ** attempt)))
    }), { seed: 20_240_601, numRuns: 500 })
  })

  it('grows with each failure until the cap, and is spread by the random draw', () => {
    const top = (attempt: number): number => fullJitter(attempt, 10_000, () => 0.999)
    const ceilings = [0, 1, 2, 3, 4, 5, 6, 7, 8].map(top)
    expect(ceilings).toEqual([...ceilings].sort((a, b) => a - b))
    expect(ceilings.at(-1)).toBe(9990)
    expect(new Set([0.1, 0.5, 0.9].map(r => fullJitter(5, 10_000, () => r))).size).toBe(3)
  })
})

describe('parseRetryAfter', () => {
  it('reads seconds and HTTP dates, and nothing else', () => {
    const now = Date.parse('2026-01-01T00:00:00Z')
    expect(parseRetryAfter('3', now)).toBe(3000)
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:10 GMT', now)).toBe(10_000)
    expect(parseRetryAfter('Wed, 31 Dec 2025 00:00:00 GMT', now)).toBe(0)
    expect(parseRetryAfter(null, now)).toBeNull()
    expect(parseRetryAfter('soon', now)).toBeNull()
  })
})

describe('remedyFor', () => {
  it('retries transient failures, refreshes on 401, stops streams the server refuses, drops refused bodies', () => {
    const cases: [Parameters<typeof remedyFor>[0], ReturnType<typeof remedyFor>][] = [
      [{ request: 'events', status: 0 }, 'retry'],
      [{ request: 'events', status: 503 }, 'retry'],
      [{ request: 'events', status: 429 }, 'retry'],
      [{ request: 'events', status: 401 }, 'refresh-token'],
      [{ request: 'events', status: 403 }, 'stop'],
      [{ request: 'events', status: 404 }, 'stop'],
      [{ request: 'events', status: 204 }, 'stop'],
      [{ request: 'events', status: 400 }, 'stop'],
      [{ request: 'updates', status: 403 }, 'stop'],
      [{ request: 'updates', status: 413 }, 'drop'],
      [{ request: 'updates', status: 400 }, 'drop'],
      [{ request: 'updates', status: 500 }, 'retry']
    ]
    for (const [failure, remedy] of cases) expect([failure, remedyFor(failure)]).toEqual([failure, remedy])
  })
})
