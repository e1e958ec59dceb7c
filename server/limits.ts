/**
 * Per-client limits of one server instance: a request rate (token bucket) and a number of open
 * event streams. Clients are named by their token's subject or their IP address.
 */

/** A token bucket per client: `rate` requests per second, bursts up to `burst`. */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>()
  private sweeps = 0

  /** @param rate - requests per second; 0 turns the limit off. */
  constructor (private readonly rate: number, private readonly burst = rate * 2) {}

  /**
   * Takes one request from the client's bucket.
   * @returns 0 when allowed, else the milliseconds until a request would be.
   */
  take (client: string, now = Date.now()): number {
    if (this.rate <= 0) return 0
    const bucket = this.buckets.get(client) ?? { tokens: this.burst, at: now }
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.rate)
    bucket.at = now
    this.buckets.set(client, bucket)
    if (++this.sweeps >= 10_000) this.sweep(now)
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1
      return 0
    }
    return Math.ceil(((1 - bucket.tokens) / this.rate) * 1000)
  }

  /** Forgets full buckets, so memory follows active clients, not every client ever seen. */
  private sweep (now: number): void {
    this.sweeps = 0
    for (const [client, bucket] of this.buckets) {
      if (bucket.tokens + ((now - bucket.at) / 1000) * this.rate >= this.burst) this.buckets.delete(client)
    }
  }
}

/** Open streams per client. */
export class StreamCounter {
  private readonly open = new Map<string, number>()

  /** @param max - streams per client; 0 turns the limit off. */
  constructor (private readonly max: number) {}

  /** Counts a new stream; `false` (and nothing counted) when the client is at its limit. */
  acquire (client: string): boolean {
    const count = this.open.get(client) ?? 0
    if (this.max > 0 && count >= this.max) return false
    this.open.set(client, count + 1)
    return true
  }

  release (client: string): void {
    const count = (this.open.get(client) ?? 1) - 1
    if (count <= 0) this.open.delete(client)
    else this.open.set(client, count)
  }
}
