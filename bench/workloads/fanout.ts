/**
 * Fan-out: one writer (a real provider) appends a marker `[seq]` to a text 100 times a second;
 * N light subscribers on the same document find the markers in the bytes of every update they
 * receive (a Yjs string is stored as UTF-8, so it appears verbatim, also inside merged updates).
 * Measured: publish-to-receive latency over all deliveries, server CPU per delivery, and every
 * marker must arrive exactly once at every subscriber.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { syncClient, subscriber, type Subscriber } from '../clients.js'
import { startServer } from '../servers.js'
import type { WriterReply, WriterRequest, WriterSpec } from '../writer-entry.js'
import { ConvergenceError, now, perSystem, quantile, waitForText, waitUntil, type BenchContext, type Row, type WorkloadResult } from '../workload.js'

const RATE_PER_SECOND = 100
/** How long after the last publish every subscriber must have everything. */
const DRAIN_TIMEOUT_MS = 30_000
const MARKER = /\[(\d+)\]/g
/** The writer's warm-up markers, counted but not measured. */
const WARMUP_MARKER = /\{\d+\}/g
/** Subscribers opened at once. */
const OPEN_BATCH = 100

const WRITER = fileURLToPath(new URL('../writer-entry.js', import.meta.url))

/** The writer in its own process (it inherits the client core): synced, then warmed up, then run on request. */
const startWriter = (spec: WriterSpec): { synced: Promise<void>; warm(): Promise<void>; run(): Promise<{ published: number[]; text: string }>; stop(): void } => {
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
    synced: replies('synced').then(() => {}),
    warm: async () => { await ask({ type: 'warm' }, 'warmed') },
    run: async () => {
      const reply = await ask({ type: 'start' }, 'done')
      if (reply.type !== 'done') throw new Error('unexpected writer reply')
      return { published: reply.published, text: reply.text }
    },
    stop: () => { if (child.connected) child.disconnect() }
  }
}

export const fanout = {
  id: 'fanout',
  async run (context: BenchContext): Promise<WorkloadResult[]> {
    const { settings } = context
    const count = settings.fanoutSeconds * RATE_PER_SECOND
    const warmup = settings.fanoutWarmupSeconds * RATE_PER_SECOND
    const rows = await perSystem(context, async system => {
      const out: Row[] = []
      for (const n of settings.subscribers) {
        const server = await startServer(system, context.redis)
        const subscribers: Subscriber[] = []
        let stopWriter = (): void => {}
        try {
          const docId = `fanout-${n}-${Date.now()}`
          const writer = startWriter({ server, docId, count, warmup, ratePerSecond: RATE_PER_SECOND })
          stopWriter = writer.stop
          await writer.synced
          const receivedAt = new Float64Array(count * n).fill(NaN)
          let received = 0
          let duplicates = 0
          let warmedUp = 0
          for (let first = 0; first < n; first += OPEN_BATCH) {
            const batch: Subscriber[] = []
            for (let index = first; index < Math.min(n, first + OPEN_BATCH); index++) {
              batch.push(subscriber(server, docId, update => {
                const at = now()
                const bytes = Buffer.from(update.buffer, update.byteOffset, update.length).toString('latin1')
                warmedUp += bytes.match(WARMUP_MARKER)?.length ?? 0
                for (const match of bytes.matchAll(MARKER)) {
                  const slot = Number(match[1]) * n + index
                  if (!Number.isNaN(receivedAt[slot])) {
                    duplicates++
                    continue
                  }
                  receivedAt[slot] = at
                  received++
                }
              }))
            }
            await Promise.all(batch.map(s => s.ready))
            subscribers.push(...batch)
          }
          await writer.warm()
          await waitUntil(() => warmedUp >= warmup * n, DRAIN_TIMEOUT_MS, () => `${warmedUp} of ${warmup * n} warm-up deliveries`)
          const usage = server.usage()
          const cpuAtStart = process.cpuUsage()
          const started = performance.now()
          const { published, text } = await writer.run()
          const expected = count * n
          try {
            await waitUntil(() => received + duplicates >= expected, DRAIN_TIMEOUT_MS, () => `${received} of ${expected} deliveries`)
          } catch {
            // Counted as lost below; the row still reports them.
          }
          const serverCpu = server.usage().cpu - usage.cpu
          const clientCpu = process.cpuUsage(cpuAtStart)
          const wall = (performance.now() - started) / 1000
          // What everyone was sent must be what the writer holds.
          const check = syncClient(server, docId)
          await check.whenSynced()
          await waitForText(check.doc, text, DRAIN_TIMEOUT_MS, `${system} check reader`)
          check.destroy()
          const latencies = new Float64Array(received)
          let next = 0
          for (let slot = 0; slot < receivedAt.length; slot++) {
            const at = receivedAt[slot] as number
            if (!Number.isNaN(at)) latencies[next++] = at - (published[Math.floor(slot / n)] as number)
          }
          const sorted = latencies.sort()
          const lost = expected - received
          context.log(`  ${system}, ${n} subscribers: p50 ${quantile(sorted, 0.5).toFixed(1)} ms, p99 ${quantile(sorted, 0.99).toFixed(1)} ms, lost ${lost}, duplicated ${duplicates}`)
          if (system === 'y-sse' && (lost > 0 || duplicates > 0)) throw new ConvergenceError(`${lost} lost and ${duplicates} duplicated deliveries`)
          out.push({
            system,
            variant: `${n.toLocaleString('en-US')} subscribers`,
            values: {
              p50: quantile(sorted, 0.5),
              p99: quantile(sorted, 0.99),
              max: sorted.at(-1) ?? NaN,
              cpuPerDelivery: serverCpu * 1e6 / Math.max(1, received),
              lost,
              duplicated: duplicates,
              serverBusy: serverCpu / wall,
              clientBusy: (clientCpu.user + clientCpu.system) / 1e6 / wall,
              peakRss: server.usage().peak
            }
          })
        } finally {
          stopWriter()
          for (const s of subscribers) s.close()
          await server.stop()
        }
      }
      return out
    })
    rows.sort((a, b) => (a.variant ?? '').localeCompare(b.variant ?? '', 'en', { numeric: true }))
    return [{
      id: 'fanout',
      title: `Fan-out: one writer at ${RATE_PER_SECOND} updates/s for ${settings.fanoutSeconds} s after ${settings.fanoutWarmupSeconds} s of warm-up, N subscribers on one document`,
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
        'Latency: from the writer\'s local edit to a subscriber finding its marker, over every delivery. The writer (a real provider) runs in its own process on the client core, the subscribers in the bench process; both read the same clock.',
        'Warm-up: every server is fresh for each row; the writer first publishes for the warm-up seconds (other markers, delivered to every subscriber, not measured), so the numbers are those of a server whose code is compiled, as after a few seconds of real traffic.',
        'Subscribers are light (raw SSE with eventsource-parser over node:http for y-sse; raw ws speaking the peer\'s protocol), all in the client process; "client core busy" is that process\'s CPU time over the wall time: near 1.0 would mean the client side limits the numbers.',
        'Server CPU per delivery: the server\'s CPU time during the run (y-sse: plus Redis) over the deliveries. "Server core busy": the same CPU time over the wall time until every delivery arrived; near 1.0, the server\'s core is what limits the row.'
      ]
    }]
  }
}
