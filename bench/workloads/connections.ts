/**
 * Connections: how many idle streams one server instance holds. Light clients open streams in
 * batches (spread over documents, ten per document) until the target, a failure, or the time
 * limit; each stream counts once its initial state arrived.
 */
import { subscriber, type Subscriber } from '../clients.js'
import { rowSystem, startServer, type ServerKind } from '../servers.js'
import { floorRow, perSystem, type BenchContext, type Row, type WorkloadResult } from '../workload.js'

const BATCH = 500
const STREAMS_PER_DOC = 10
const BATCH_TIMEOUT_MS = 30_000
const TOTAL_TIMEOUT_MS = 120_000

/**
 * Starts a server of `kind` and opens idle streams on it until `target`, a batch slower than
 * {@link BATCH_TIMEOUT_MS} or {@link TOTAL_TIMEOUT_MS}; measures them, closes them and stops it.
 */
const holdStreams = async (context: BenchContext, kind: ServerKind, target: number): Promise<Row['values']> => {
  const server = await startServer(kind, context.redis)
  const open: Subscriber[] = []
  try {
    const prefix = `conn-${Date.now()}`
    // One batch opened and closed first, so the code the server compiles for its first requests
    // is not counted as the streams' memory.
    const warmUp = Array.from({ length: BATCH }, (_, i) => subscriber(server, `${prefix}-warm-up-${Math.floor(i / STREAMS_PER_DOC)}`, () => {}))
    await Promise.all(warmUp.map(s => s.ready))
    for (const s of warmUp) s.close()
    await server.clientsGone()
    const emptyHeap = await server.gc()
    const empty = server.usage().rss
    const started = performance.now()
    let stopped = ''
    while (open.length < target && stopped === '') {
      const batch: Subscriber[] = []
      for (let i = open.length; i < Math.min(target, open.length + BATCH); i++) {
        batch.push(subscriber(server, `${prefix}-${Math.floor(i / STREAMS_PER_DOC)}`, () => {}))
      }
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`a batch took over ${BATCH_TIMEOUT_MS / 1000} s`)), BATCH_TIMEOUT_MS) })
      try {
        await Promise.race([Promise.all(batch.map(s => s.ready)), timeout])
        open.push(...batch)
      } catch (error) {
        for (const s of batch) s.close()
        stopped = (error as Error).message
      } finally {
        clearTimeout(timer)
      }
      if (performance.now() - started > TOTAL_TIMEOUT_MS) stopped ||= `time limit of ${TOTAL_TIMEOUT_MS / 1000} s`
    }
    const seconds = (performance.now() - started) / 1000
    const heap = await server.gc()
    const { rss, peak } = server.usage()
    context.log(`  ${rowSystem(kind)}: ${open.length} streams in ${seconds.toFixed(1)} s${stopped === '' ? '' : ` (stopped: ${stopped})`}`)
    return { held: open.length, seconds, perStreamBytes: open.length === 0 ? null : (rss - empty) / open.length, heapPerStreamBytes: open.length === 0 ? null : (heap - emptyHeap) / open.length, rss, peakRss: peak, stopped: stopped === '' ? 'target reached' : stopped }
  } finally {
    for (const s of open) s.close()
    await server.stop()
  }
}

export const connections = {
  id: 'connections',
  async run (context: BenchContext): Promise<WorkloadResult[]> {
    const target = context.settings.connections
    const rows = await perSystem(context, async system => [{ system, values: await holdStreams(context, system, target) }])
    rows.push(await floorRow(context, undefined, () => holdStreams(context, 'sse-floor', target)))
    return [{
      id: 'connections',
      title: `Connections: idle streams held by one instance (target ${target.toLocaleString('en-US')}, ${STREAMS_PER_DOC} per document)`,
      metrics: [
        { key: 'held', label: 'streams held', better: 'higher' },
        { key: 'seconds', label: 'time to open (s)', better: 'lower' },
        { key: 'perStreamBytes', label: 'RSS per stream', better: 'lower' },
        { key: 'heapPerStreamBytes', label: 'heap per stream', better: 'lower' },
        { key: 'rss', label: 'server RSS' },
        { key: 'peakRss', label: 'server peak RSS' },
        { key: 'stopped', label: 'ended by' }
      ],
      rows,
      headline: ['perStreamBytes', 'heapPerStreamBytes', 'seconds'],
      notes: [
        `Streams open in batches of ${BATCH} from one client process on 127.0.0.1; a stream counts once its initial state arrived. The run stops at the target, at a batch slower than ${BATCH_TIMEOUT_MS / 1000} s, or after ${TOTAL_TIMEOUT_MS / 1000} s.`,
        'RSS and heap per stream: what the server\'s resident memory and its JavaScript heap in use (`process.memoryUsage().heapUsed`) grew by, each after a full GC, over the streams held.',
        'floor: a bare `node:http` server that starts each stream as y-sse does (the same headers, socket settings and event writer), sends the sync event of an empty document and holds the response, with no Koa, store, documents or heartbeat timers (`bench/sse-floor.ts`): the least an event stream costs on Node\'s HTTP server, which keeps its request, response and parser for as long as the response is open, where a WebSocket server drops them at the upgrade.'
      ]
    }]
  }
}
