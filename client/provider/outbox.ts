/**
 * Local updates the server has not acknowledged. One POST at a time, and at least
 * `updateThrottle` between the starts of two; whatever accumulates meanwhile goes out merged in
 * the next one, so a fast typist (or a replayed trace) costs one request per round trip or per
 * `updateThrottle`, whichever is longer, not one per keystroke. Nothing leaves the outbox before
 * the server has answered with an event ID.
 */
import * as Y from 'yjs'
import { Backoff } from './backoff.js'
import { mergeQueued, splitLocalUpdate, type QueuedUpdate } from './local-updates.js'
import { remedyFor, type ConnectionError, type RequestFailure } from './transport.js'
import { timerDelay } from '../../shared/timers.js'

/**
 * Updates not yet acknowledged (taken apart when they are one unbroken run of this client's
 * structs: merging such runs is a concatenation), and how many local changes they carry.
 */
interface Batch extends QueuedUpdate {
  changes: number
  /** How many times {@link MERGE_FAN_IN} batches were merged to make it; `Infinity`: not folded again (a POST's batch, a resume's diff). */
  level: number
}

/** What the outbox needs from the provider. */
export interface OutboxHooks {
  /** POSTs one update; resolves `null` once the server stored it. */
  post(update: Uint8Array): Promise<RequestFailure | null>
  /** Reports a failed POST and when it will be retried. */
  failed(error: ConnectionError): void
  /** The server will not take updates from this client: the provider must stop. */
  stop(error: ConnectionError): void
  /** The number of unacknowledged local changes changed. */
  changed(): void
}

/** Whether `doc` holds structs the server's state vector does not cover. */
const serverLacks = (doc: Y.Doc, serverStateVector: Uint8Array): boolean => {
  const server = Y.decodeStateVector(serverStateVector)
  for (const [client, clock] of Y.decodeStateVector(Y.encodeStateVector(doc))) {
    if ((server.get(client) ?? 0) < clock) return true
  }
  return false
}

/**
 * Most updates merged at once. Runs of this client's own structs are concatenated, at a cost
 * linear in their bytes; anything else goes through `Y.mergeUpdates`, which sorts its inputs again
 * after each run of one client's structs, so its cost per update grows with their number: 2–2.5 µs
 * each for 16–64 typing updates of the automerge-paper trace, 6.6 µs for 256, 21 µs for 1,024,
 * 64 µs for 4,096.
 */
const MERGE_FAN_IN = 64

/** Limits of an {@link Outbox}. */
export interface OutboxLimits {
  /** Upper bound of the backoff delay after failed POSTs, in milliseconds. */
  maxBackoffMs: number
  /** Largest merged update of one POST, in bytes (a single larger update still goes alone). */
  maxBatchBytes: number
  /** Least time between the starts of two POSTs, in milliseconds (leading and trailing throttle). */
  updateThrottle: number
}

export class Outbox {
  private queue: Batch[] = []
  private inFlight: Batch | null = null
  /** POSTs go out only while the event stream is synced: otherwise the server is likely unreachable anyway. */
  private open = false
  private retryTimer: ReturnType<typeof setTimeout> | undefined
  /** Set while the next POST waits for `updateThrottle` to pass since the last one started. */
  private intervalTimer: ReturnType<typeof setTimeout> | undefined
  private lastPostAt = -Infinity
  private readonly backoff: Backoff

  constructor (private readonly hooks: OutboxHooks, private readonly limits: OutboxLimits) {
    this.backoff = new Backoff(limits.maxBackoffMs)
  }

  /** Local changes not yet acknowledged by the server. */
  get unsynced (): number {
    return this.queue.reduce((sum, batch) => sum + batch.changes, this.inFlight?.changes ?? 0)
  }

  /** Records the update of a local transaction; it is sent once the previous POST is answered and `updateThrottle` has passed since it started. */
  add (update: Uint8Array, transaction: Y.Transaction): void {
    this.queue.push({ update, changes: 1, level: 0, local: splitLocalUpdate(update, transaction) })
    this.fold()
    this.hooks.changed()
    this.flush()
  }

  /**
   * Merges the queue's last {@link MERGE_FAN_IN} batches into one while they are of one level, as
   * a counter carries, and fit one POST: a long queue (offline, or a burst behind a slow POST)
   * stays short, no fold merges more than that many, and {@link takeBatch} about that many per level.
   */
  private fold (): void {
    for (;;) {
      const tail = this.queue.length - MERGE_FAN_IN
      const level = this.queue.at(-1)?.level ?? Infinity
      if (tail < 0 || level === Infinity) return
      let bytes = 0
      for (let i = this.queue.length - 1; i >= tail; i--) {
        const batch = this.queue[i] as Batch
        bytes += batch.update.length
        if (batch.level !== level || bytes > this.limits.maxBatchBytes) return
      }
      this.queue.push({ ...this.merge(this.queue.splice(tail)), level: level + 1 })
    }
  }

  /**
   * Starts sending after a (re)connect. When the server lacks structs this doc has (edits made
   * offline, or a server that lost data), the outbox is replaced by one diff against the server's
   * state vector: it holds every queued change and exactly what the server misses.
   */
  resume (doc: Y.Doc, serverStateVector: Uint8Array): void {
    if (serverLacks(doc, serverStateVector)) {
      const changes = Math.max(1, this.unsynced)
      // A POST still in flight from the old connection is covered by the diff: its answer no longer matters.
      this.inFlight = null
      this.queue = [{ update: Y.encodeStateAsUpdate(doc, serverStateVector), changes, level: Infinity, local: null }]
      this.hooks.changed()
    }
    this.open = true
    this.backoff.reset()
    this.flush()
  }

  /** Stops sending (the stream is gone); queued and in-flight updates are kept for the next connection. */
  pause (): void {
    this.open = false
    clearTimeout(this.retryTimer)
    this.retryTimer = undefined
    clearTimeout(this.intervalTimer)
    this.intervalTimer = undefined
  }

  private flush (): void {
    if (!this.open || this.inFlight !== null || this.retryTimer !== undefined || this.intervalTimer !== undefined || this.queue.length === 0) return
    const now = performance.now()
    const wait = this.lastPostAt + this.limits.updateThrottle - now
    if (wait > 0) {
      // Timers may fire a little early (Node's run on a cached, whole-millisecond clock): the
      // callback checks again.
      this.intervalTimer = setTimeout(() => {
        this.intervalTimer = undefined
        this.flush()
      }, timerDelay(wait))
      return
    }
    this.lastPostAt = now
    const batch = this.takeBatch()
    this.inFlight = batch
    void this.hooks.post(batch.update).then(failure => this.settle(batch, failure))
  }

  /** Merges queued updates up to `maxBatchBytes` (at least one), keeping the rest queued. */
  private takeBatch (): Batch {
    let bytes = 0
    let count = 0
    for (const batch of this.queue) {
      if (count > 0 && bytes + batch.update.length > this.limits.maxBatchBytes) break
      bytes += batch.update.length
      count++
    }
    return this.merge(this.queue.splice(0, count))
  }

  private merge (batches: Batch[]): Batch {
    if (batches.length === 1) return batches[0] as Batch
    return { ...mergeQueued(batches), changes: batches.reduce((sum, b) => sum + b.changes, 0), level: Infinity }
  }

  private settle (batch: Batch, failure: RequestFailure | null): void {
    if (this.inFlight !== batch) return
    this.inFlight = null
    if (failure === null) {
      this.backoff.reset()
      this.hooks.changed()
      this.flush()
      return
    }
    switch (remedyFor(failure)) {
      case 'drop':
        // The server refused the update itself (invalid, too large): resending cannot succeed.
        this.hooks.changed()
        this.hooks.failed({ ...failure, retryIn: null })
        this.flush()
        return
      case 'stop':
        this.queue.unshift(batch)
        this.hooks.stop({ ...failure, retryIn: null })
        return
      default: {
        // 'retry', and a 401 that persisted after the transport refreshed the token once.
        this.queue.unshift(batch)
        if (!this.open) return
        const retryIn = (failure.retryAfterMs ?? 0) + this.backoff.next()
        this.hooks.failed({ ...failure, retryIn })
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined
          this.flush()
        }, retryIn)
      }
    }
  }

  /** Forgets everything and cancels the retry timer (the provider is destroyed). */
  destroy (): void {
    this.pause()
    this.queue = []
    this.inFlight = null
  }
}
