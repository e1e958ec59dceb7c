/**
 * Prometheus metrics of one server instance (prom-client), in a registry of its own so several
 * servers in one process never mix their numbers. Served at `GET /metrics`.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { ResumeKind } from '../shared/protocol.js'

/** What a store reports, so it can feed the server's metrics without knowing prom-client. */
export interface StoreObserver {
  /** A compaction committed after `seconds`, merging `updates` log entries. */
  compacted(seconds: number, updates: number): void
  /** A store operation failed (Redis unreachable, script error). */
  failed(): void
  /** A document was merged from its whole stored state: none was kept in memory, or a kept one could not catch up. */
  mergedFromLog(): void
}

export class Metrics implements StoreObserver {
  readonly registry = new Registry()
  private readonly streams = new Gauge({ name: 'ysse_streams_open', help: 'Open event streams.', registers: [this.registry] })
  private readonly documents = new Gauge({ name: 'ysse_documents_active', help: 'Documents with at least one open stream on this instance.', registers: [this.registry] })
  private readonly updatesIn = new Counter({ name: 'ysse_updates_received_total', help: 'Updates stored through this instance.', registers: [this.registry] })
  private readonly bytesIn = new Counter({ name: 'ysse_update_bytes_received_total', help: 'Bytes of updates stored through this instance.', registers: [this.registry] })
  /**
   * Events and bytes written since the last scrape, by event name. Counted in plain numbers
   * because it happens once per delivery (200 times per update with 200 readers), where a
   * labelled counter's hashing showed in profiles; folded into the counters when scraped.
   */
  private readonly unscraped = new Map<string, { events: number; bytes: number }>()
  private readonly eventsOut = new Counter({
    name: 'ysse_events_sent_total', help: 'SSE events written, by event name.', labelNames: ['event'], registers: [this.registry],
    collect: () => this.foldUnscraped()
  })
  private readonly bytesOut = new Counter({
    name: 'ysse_event_bytes_sent_total', help: 'Bytes of SSE events written.', registers: [this.registry],
    collect: () => this.foldUnscraped()
  })
  private readonly postSeconds = new Histogram({
    name: 'ysse_post_update_seconds', help: 'Time to validate and durably store a posted update.',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1], registers: [this.registry]
  })
  private readonly deliverSeconds = new Histogram({
    name: 'ysse_publish_to_deliver_seconds',
    help: 'From storing an update to having written it to every stream of this instance that keeps up, once per update; a slow stream catching up counts once more, with the age of the oldest update it was held back.',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5], registers: [this.registry]
  })
  private readonly resumes = new Counter({ name: 'ysse_resumes_total', help: 'Sync events, by how the update was made.', labelNames: ['kind'], registers: [this.registry] })
  private readonly compactions = new Histogram({
    name: 'ysse_compaction_seconds', help: 'Duration of committed compactions.',
    buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10], registers: [this.registry]
  })
  private readonly compactedUpdates = new Counter({ name: 'ysse_compacted_updates_total', help: 'Log entries merged by compactions.', registers: [this.registry] })
  private readonly mergedFromLogs = new Counter({
    name: 'ysse_documents_merged_from_log_total',
    help: 'Documents merged from their whole stored state (not kept in memory, or a kept one could not catch up).',
    registers: [this.registry]
  })
  private readonly storeErrors = new Counter({ name: 'ysse_store_errors_total', help: 'Failed store operations.', registers: [this.registry] })
  private readonly refused = new Counter({ name: 'ysse_requests_refused_total', help: 'Requests answered with an error, by error code.', labelNames: ['code'], registers: [this.registry] })
  private readonly openByDoc = new Map<string, number>()
  /** Updates whose delivery age was (or is about to be) observed, by the object standing for each. */
  private readonly timedUpdates = new WeakSet<object>()

  constructor (options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'ysse_' })
  }

  streamOpened (docId: string): void {
    this.streams.inc()
    const open = (this.openByDoc.get(docId) ?? 0) + 1
    this.openByDoc.set(docId, open)
    if (open === 1) this.documents.inc()
  }

  streamClosed (docId: string): void {
    this.streams.dec()
    const open = (this.openByDoc.get(docId) ?? 1) - 1
    if (open > 0) {
      this.openByDoc.set(docId, open)
      return
    }
    this.openByDoc.delete(docId)
    this.documents.dec()
  }

  updateStored (bytes: number, seconds: number): void {
    this.updatesIn.inc()
    this.bytesIn.inc(bytes)
    this.postSeconds.observe(seconds)
  }

  eventSent (event: string, bytes: number): void {
    const counts = this.unscraped.get(event)
    if (counts === undefined) {
      this.unscraped.set(event, { events: 1, bytes })
      return
    }
    counts.events++
    counts.bytes += bytes
  }

  private foldUnscraped (): void {
    for (const [event, counts] of this.unscraped) {
      if (counts.events === 0) continue
      this.eventsOut.inc({ event }, counts.events)
      this.bytesOut.inc(counts.bytes)
      counts.events = 0
      counts.bytes = 0
    }
  }

  /**
   * An update stored at `storedAt` (ms since the epoch) was written to a stream of this instance;
   * called for every stream, observed once per update (`update` stands for it): at the end of the
   * synchronous step that writes it to every stream keeping up, so the age its last reader got it
   * at (a batch delivered in one step shares that moment). Observed per stream, prom-client's
   * `observe` was a tenth of what y-sse adds per delivery to a bare `node:http` server.
   */
  updateDelivered (update: object, storedAt: number): void {
    if (this.timedUpdates.has(update)) return
    this.timedUpdates.add(update)
    queueMicrotask(() => this.observeAge(storedAt))
  }

  /**
   * A slow stream caught up: the updates it was held back went out merged; `storedAt` is when the
   * oldest of them was stored.
   */
  backlogDelivered (storedAt: number): void {
    this.observeAge(storedAt)
  }

  private observeAge (storedAt: number): void {
    this.deliverSeconds.observe(Math.max(0, (Date.now() - storedAt) / 1000))
  }

  resumed (kind: ResumeKind): void {
    this.resumes.inc({ kind })
  }

  refusedRequest (code: string): void {
    this.refused.inc({ code })
  }

  compacted (seconds: number, updates: number): void {
    this.compactions.observe(seconds)
    this.compactedUpdates.inc(updates)
  }

  failed (): void {
    this.storeErrors.inc()
  }

  mergedFromLog (): void {
    this.mergedFromLogs.inc()
  }
}
