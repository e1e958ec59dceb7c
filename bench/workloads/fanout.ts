/**
 * Fan-out: one writer (a real provider) appends a marker `[seq]` to a text 100 times a second;
 * N light subscribers on the same document find the markers in the bytes of every update they
 * receive (a Yjs string is stored as UTF-8, so it appears verbatim, also inside merged updates).
 * Measured: publish-to-receive latency over all deliveries, server CPU per delivery, and every
 * marker must arrive exactly once at every subscriber. With `--fanout-writers`, rows with several
 * such writers on the document too, each at 100 updates/s: a document several people type into.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { syncClient, subscriber, type Subscriber } from '../clients.js'
import { rowSystem, startServer, type BenchServer, type ServerKind } from '../servers.js'
import type { WriterReply, WriterRequest, WriterSpec } from '../writer-entry.js'
import { cpuSeconds } from '../proc.js'
import { ConvergenceError, floorRow, markerSeq, now, perSystem, quantile, waitUntil, type BenchContext, type Row, type WorkloadResult } from '../workload.js'

const RATE_PER_SECOND = 100
/** How long after the last publish every subscriber must have everything. */
const DRAIN_TIMEOUT_MS = 30_000
const MARKER = /\[(\d+)\]/g
/** The writers' warm-up markers, counted but not measured. */
const WARMUP_MARKER = /\{(\d+)\}/g
/** Subscribers opened at once. */
const OPEN_BATCH = 100

const WRITER = fileURLToPath(new URL('../writer-entry.js', import.meta.url))

/** A writer in its own process (it inherits the client core): synced, then warmed up, then run on request. */
const startWriter = (spec: WriterSpec): { pid: number; synced: Promise<void>; warm(): Promise<void>; run(): Promise<number[]>; stop(): void } => {
  const child = spawn(process.execPath, [WRITER, JSON.stringify({ ...spec, server: { system: spec.server.system, url: spec.server.url, wsUrl: spec.server.wsUrl } })], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const replies = (type: WriterReply['type']): Promise<WriterReply> => new Promise((resolve, reject) => {
    child.once('exit', code => reject(new Error(`the writer exited with code ${code}`)))
    child.on('message', (message: WriterReply) => { if (message.type === type) resolve(message) })
  })
  const ask = async (request: WriterRequest, reply: WriterReply['type']): Promise<WriterReply> => {
    const answer = replies(reply)
    child.send(request)
    return answer
  }
  return {
    pid: child.pid as number,
    synced: replies('synced').then(() => {}),
    warm: async () => { await ask({ type: 'warm' }, 'warmed') },
    run: async () => {
      const reply = await ask({ type: 'start' }, 'done')
      if (reply.type !== 'done') throw new Error('unexpected writer reply')
      return reply.published
    },
    stop: () => { if (child.connected) child.disconnect() }
  }
}

/**
 * What N subscribers received of `count` markers: when each marker reached each subscriber, and
 * how many warm-up markers arrived.
 */
class Deliveries {
  private receivedCount = 0
  private duplicateCount = 0
  private warm = 0
  private readonly receivedAt: Float64Array

  constructor (private readonly count: number, readonly subscribers: number) {
    this.receivedAt = new Float64Array(count * subscribers).fill(NaN)
  }

  /** Markers that reached a subscriber, each counted once per subscriber. */
  get received (): number {
    return this.receivedCount
  }

  /** Markers that reached a subscriber again. */
  get duplicates (): number {
    return this.duplicateCount
  }

  /** Markers that never reached a subscriber. */
  get lost (): number {
    return this.expected - this.receivedCount
  }

  /** Every marker at every subscriber. */
  private get expected (): number {
    return this.count * this.subscribers
  }

  /** Records the markers in an update that subscriber `index` received now. */
  record (index: number, update: Uint8Array): void {
    const at = now()
    const bytes = Buffer.from(update.buffer, update.byteOffset, update.length).toString('latin1')
    this.warm += bytes.match(WARMUP_MARKER)?.length ?? 0
    for (const match of bytes.matchAll(MARKER)) {
      const slot = Number(match[1]) * this.subscribers + index
      if (!Number.isNaN(this.receivedAt[slot])) {
        this.duplicateCount++
        continue
      }
      this.receivedAt[slot] = at
      this.receivedCount++
    }
  }

  /** Resolves once every subscriber got `warmup` warm-up markers. */
  warmedUp (warmup: number): Promise<void> {
    const expected = warmup * this.subscribers
    return waitUntil(() => this.warm >= expected, DRAIN_TIMEOUT_MS, () => `${this.warm} of ${expected} warm-up deliveries`)
  }

  /** Resolves once every marker arrived everywhere, or after {@link DRAIN_TIMEOUT_MS}: what is missing then counts as lost. */
  async drained (): Promise<void> {
    // The timeout's error is not needed: the row reports what was lost.
    await waitUntil(() => this.receivedCount + this.duplicateCount >= this.expected, DRAIN_TIMEOUT_MS, () => '').catch(() => {})
  }

  /** Publish-to-receive latencies of every delivery (ms), sorted; `published`: when each marker was written. */
  latencies (published: readonly number[]): Float64Array {
    const latencies = new Float64Array(this.received)
    let next = 0
    for (let slot = 0; slot < this.receivedAt.length; slot++) {
      const at = this.receivedAt[slot] as number
      if (!Number.isNaN(at)) latencies[next++] = at - (published[Math.floor(slot / this.subscribers)] as number)
    }
    return latencies.sort()
  }
}

/** Opens the light subscribers of `docId`, {@link OPEN_BATCH} at a time, counting what they receive. */
const openSubscribers = async (server: BenchServer, docId: string, deliveries: Deliveries): Promise<Subscriber[]> => {
  const subscribers: Subscriber[] = []
  for (let first = 0; first < deliveries.subscribers; first += OPEN_BATCH) {
    const batch: Subscriber[] = []
    for (let index = first; index < Math.min(deliveries.subscribers, first + OPEN_BATCH); index++) {
      batch.push(subscriber(server, docId, update => deliveries.record(index, update)))
    }
    await Promise.all(batch.map(s => s.ready))
    subscribers.push(...batch)
  }
  return subscribers
}

/**
 * How many of the markers of `pattern` numbered 0 … `count - 1` `text` lacks, and how many
 * repeats or other numbers it holds.
 */
const markersIn = (text: string, pattern: RegExp, count: number): { missing: number; extra: number } => {
  const seen = new Uint8Array(count)
  let extra = 0
  for (const match of text.matchAll(pattern)) {
    const seq = Number(match[1])
    if (seq >= count || seen[seq] === 1) extra++
    else seen[seq] = 1
  }
  return { missing: seen.reduce((n, s) => n + 1 - s, 0), extra }
}

/**
 * One row's values: a fresh server of `kind`, `writers` writers each in a process of its own
 * writing `count` markers, `n` subscribers. Every marker must arrive exactly once at every
 * subscriber (for y-sse and the floor; the peers' rows report what they lost), and, where the
 * server keeps the document, a fresh reader must then hold every marker once.
 */
const measure = async (context: BenchContext, kind: ServerKind, { n, writers }: Shape, count: number, warmup: number): Promise<Row['values']> => {
  const server = await startServer(kind, context.redis)
  const subscribers: Subscriber[] = []
  const writerProcs: Array<ReturnType<typeof startWriter>> = []
  try {
    const docId = `fanout-${n}-${writers}-${Date.now()}`
    for (let index = 0; index < writers; index++) {
      writerProcs.push(startWriter({ server, docId, count, warmup, ratePerSecond: RATE_PER_SECOND, index, writers }))
    }
    await Promise.all(writerProcs.map(w => w.synced))
    const total = count * writers
    const deliveries = new Deliveries(total, n)
    subscribers.push(...await openSubscribers(server, docId, deliveries))
    await Promise.all(writerProcs.map(w => w.warm()))
    await deliveries.warmedUp(warmup * writers)
    const usage = server.usage()
    const clientCpu = (): number => {
      const own = process.cpuUsage()
      return (own.user + own.system) / 1e6 + writerProcs.reduce((sum, w) => sum + cpuSeconds(w.pid), 0)
    }
    const clientCpuAtStart = clientCpu()
    const startedAt = performance.now()
    const runs = await Promise.all(writerProcs.map(w => w.run()))
    await deliveries.drained()
    const serverCpu = server.usage().cpu - usage.cpu
    const clientCpuUsed = clientCpu() - clientCpuAtStart
    const wall = (performance.now() - startedAt) / 1000
    const published = new Array<number>(total)
    runs.forEach((times, index) => times.forEach((at, k) => { published[markerSeq(index, k, writers)] = at }))
    if (kind !== 'sse-floor') {
      // The document the server holds must have every marker once (the floor keeps nothing to check).
      const check = syncClient(server, docId)
      await check.whenSynced()
      const text = check.doc.getText('t')
      const tally = (): { missing: number; extra: number } => {
        const content = text.toString()
        const measured = markersIn(content, MARKER, total)
        const warm = markersIn(content, WARMUP_MARKER, warmup * writers)
        return { missing: measured.missing + warm.missing, extra: measured.extra + warm.extra }
      }
      await waitUntil(() => { const { missing, extra } = tally(); return missing + extra === 0 }, DRAIN_TIMEOUT_MS, () => {
        const { missing, extra } = tally()
        return `${kind} check reader: ${missing} markers missing, ${extra} repeated or unknown`
      })
      check.destroy()
    }
    const sorted = deliveries.latencies(published)
    const { received, duplicates, lost } = deliveries
    context.log(`  ${rowSystem(kind)}, ${variantOf({ n, writers })}: p50 ${quantile(sorted, 0.5).toFixed(1)} ms, p99 ${quantile(sorted, 0.99).toFixed(1)} ms, lost ${lost}, duplicated ${duplicates}`)
    if ((kind === 'y-sse' || kind === 'sse-floor') && (lost > 0 || duplicates > 0)) throw new ConvergenceError(`${lost} lost and ${duplicates} duplicated deliveries`)
    return {
      p50: quantile(sorted, 0.5),
      p99: quantile(sorted, 0.99),
      max: sorted.at(-1) ?? NaN,
      cpuPerDelivery: serverCpu * 1e6 / Math.max(1, received),
      lost,
      duplicated: duplicates,
      serverBusy: serverCpu / wall,
      clientBusy: clientCpuUsed / wall,
      peakRss: server.usage().peak
    }
  } finally {
    for (const w of writerProcs) w.stop()
    for (const s of subscribers) s.close()
    await server.stop()
  }
}

/** A row's subscribers and writers. */
interface Shape {
  n: number
  writers: number
}

const variantOf = ({ n, writers }: Shape): string =>
  `${n.toLocaleString('en-US')} subscribers${writers === 1 ? '' : `, ${writers} writers`}`

export const fanout = {
  id: 'fanout',
  async run (context: BenchContext): Promise<WorkloadResult[]> {
    const { settings } = context
    const count = settings.fanoutSeconds * RATE_PER_SECOND
    const warmup = settings.fanoutWarmupSeconds * RATE_PER_SECOND
    const shapes = settings.fanoutWriters.flatMap(writers => settings.subscribers.map(n => ({ n, writers })))
    const rows = await perSystem(context, async system => {
      const out: Row[] = []
      for (const shape of shapes) out.push({ system, variant: variantOf(shape), values: await measure(context, system, shape, count, warmup) })
      return out
    })
    for (const shape of shapes) rows.push(await floorRow(context, variantOf(shape), () => measure(context, 'sse-floor', shape, count, warmup)))
    rows.sort((a, b) => (a.variant ?? '').localeCompare(b.variant ?? '', 'en', { numeric: true }))
    return [{
      id: 'fanout',
      title: `Fan-out: one writer (or as many as a row says) at ${RATE_PER_SECOND} updates/s each for ${settings.fanoutSeconds} s after ${settings.fanoutWarmupSeconds} s of warm-up, N subscribers on one document`,
      metrics: [
        { key: 'p50', label: 'p50 (ms)', better: 'lower' },
        { key: 'p99', label: 'p99 (ms)', better: 'lower' },
        { key: 'max', label: 'max (ms)', better: 'lower' },
        { key: 'cpuPerDelivery', label: 'server CPU per delivery (µs)', better: 'lower' },
        { key: 'lost', label: 'lost' },
        { key: 'duplicated', label: 'duplicated' },
        { key: 'serverBusy', label: 'server core busy' },
        { key: 'clientBusy', label: 'client core busy' },
        { key: 'peakRss', label: 'server peak RSS' }
      ],
      rows,
      headline: ['p99', 'cpuPerDelivery'],
      notes: [
        'Latency: from the writer\'s local edit to a subscriber finding its marker, over every delivery. The writer (a real provider) runs in its own process on the client core, the subscribers in the bench process; both read the same clock. Rows with several writers: each in a process of its own, all on the client core, their ticks spread evenly over the 10 ms between two of one writer\'s.',
        'Warm-up: every server is fresh for each row; the writers first publish for the warm-up seconds (other markers, delivered to every subscriber, not measured), so the numbers are those of a server whose code is compiled, as after a few seconds of real traffic.',
        'Subscribers are light (raw SSE with eventsource-parser over node:http for y-sse; raw ws speaking the peer\'s protocol), all in the bench process; "client core busy" is the CPU time of that process and the writers\' over the wall time: near 1.0 would mean the client side limits the numbers.',
        'Server CPU per delivery: the server\'s CPU time during the run (y-sse: plus Redis) over the deliveries. "Server core busy": the same CPU time over the wall time until every delivery arrived; near 1.0, the server\'s core is what limits the row.',
        'floor: the bare `node:http` server of `bench/sse-floor.ts`, which answers each POST and writes its body to every stream of the document as one event framed once, as y-sse does, with no Koa, Redis, validation, storage or heartbeats. Its writer, in a process of its own like the others, POSTs as the provider does (one POST in flight, what waits merged into the next), and nothing may be lost or duplicated. The least an SSE server on Node pays per delivery.'
      ]
    }]
  }
}
