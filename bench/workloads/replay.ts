/**
 * Trace replay and cold sync. One writer replays the automerge-paper trace through its provider,
 * one Yjs transaction per edit, yielding to the event loop every `burst` edits; one reader on the
 * same document; the clock stops when the reader's text equals the trace's. Then fresh clients
 * join the replayed document (cold sync), one after another.
 */
import { tracePrefix } from '../../test/helpers/traces.js'
import * as Y from 'yjs'
import { getDocument, putFloorAnswer, syncClient } from '../clients.js'
import { rowSystem, startServer, type BenchServer } from '../servers.js'
import { ConvergenceError, applyEdits, floorRow, median, perSystem, waitForText, type BenchContext, type Row, type WorkloadResult } from '../workload.js'

const CONVERGE_TIMEOUT_MS = 120_000
const COLD_SYNCS = 15
const COLD_TIMEOUT_MS = 30_000

export const replay = {
  id: 'replay',
  async run (context: BenchContext): Promise<WorkloadResult[]> {
    const { settings, trace } = context
    const expected = settings.edits >= trace.txns.length ? trace.endContent : tracePrefix(trace, settings.edits).text
    const coldRows: Row[] = []
    /** The replayed document in format v2, for the floor of a join. */
    let replayed: Uint8Array | null = null
    const rows = await perSystem(context, async system => {
      const server = await startServer(system, context.redis)
      try {
        const docId = `replay-${Date.now()}`
        const writer = syncClient(server, docId)
        const reader = syncClient(server, docId)
        await Promise.all([writer.whenSynced(), reader.whenSynced()])
        const before = { usage: server.usage(), traffic: await server.traffic(), sent: writer.messagesSent() }
        const started = performance.now()
        await applyEdits(writer.doc, trace, 0, settings.edits, settings.burst)
        const written = performance.now() - started
        await waitForText(reader.doc, expected, CONVERGE_TIMEOUT_MS, `${system} reader`)
        const converged = performance.now() - started
        if (writer.doc.getText('t').toString() !== expected) throw new ConvergenceError(`${system} writer diverged from the trace`)
        const after = { usage: server.usage(), traffic: await server.traffic() }
        context.log(`  ${system}: converged in ${(converged / 1000).toFixed(2)} s`)
        const row: Row = {
          system,
          values: {
            seconds: converged / 1000,
            writerSeconds: written / 1000,
            messages: writer.messagesSent() - before.sent,
            wireBytes: after.traffic.read + after.traffic.written - before.traffic.read - before.traffic.written,
            serverCpu: after.usage.cpu - before.usage.cpu,
            peakRss: after.usage.peak
          }
        }
        reader.destroy()
        // The writer stays: Hocuspocus (without a persistence extension) drops a document nobody is connected to.
        try {
          coldRows.push({ system, values: await coldSync(context, server, expected, async () => {
            const client = syncClient(server, docId)
            await client.whenSynced()
            return client
          }) })
        } catch (error) {
          context.log(`  ${system}: cold sync FAILED: ${(error as Error).message}`)
          coldRows.push({ system, values: {}, failure: (error as Error).message })
        }
        replayed ??= Y.encodeStateAsUpdateV2(writer.doc)
        writer.destroy()
        return [row]
      } finally {
        await server.stop()
      }
    })
    for (const system of settings.systems) {
      if (!coldRows.some(r => r.system === system)) coldRows.push({ system, values: {}, failure: 'the replay did not converge' })
    }
    coldRows.push(await floorRow(context, undefined, () => coldFloor(context, replayed, expected)))
    return [{
      id: 'replay',
      title: `Trace replay (automerge-paper, ${settings.edits.toLocaleString('en-US')} edits, yield every ${settings.burst})`,
      metrics: [
        { key: 'seconds', label: 'converged (s)', better: 'lower' },
        { key: 'writerSeconds', label: 'writer done (s)' },
        { key: 'messages', label: 'requests/messages sent', better: 'lower' },
        { key: 'wireBytes', label: 'bytes on the wire', better: 'lower' },
        { key: 'serverCpu', label: 'server CPU (s)', better: 'lower' },
        { key: 'peakRss', label: 'server peak RSS', better: 'lower' }
      ],
      rows,
      headline: ['seconds', 'serverCpu'],
      notes: [
        'converged: from the first edit until the reader\'s text equals the trace\'s; writer done: when the last edit was applied locally.',
        'bytes on the wire: TCP payload both ways on the server\'s client connections (HTTP headers and WebSocket frames included).',
        'server CPU: utime + stime of the server process during the replay (for y-sse plus its Redis, on the same core).'
      ]
    }, {
      id: 'cold',
      title: 'Cold sync of the replayed document',
      metrics: [
        { key: 'ms', label: 'time to synced (ms, median)', better: 'lower' },
        { key: 'bytes', label: 'bytes received', better: 'lower' },
        { key: 'serverCpuMs', label: 'server CPU per sync (ms, mean)', better: 'lower' }
      ],
      rows: coldRows,
      headline: ['ms', 'bytes'],
      notes: [
        `A fresh client with an empty Y.Doc joins the replayed document (its writer still connected); the median of ${COLD_SYNCS} joins, one after another, each until its text equals the trace's. bytes received: what the server wrote to the new client, headers and framing included.`,
        'floor: the bare `node:http` server of `bench/sse-floor.ts` with the document\'s state in format v2 (the smaller to apply) ready before the joins; each join GETs it over `node:http`, uncompressed, and applies it to a fresh Y.Doc: one request, the transfer and the client\'s own work, which every system\'s joins pay too.'
      ]
    }]
  }
}

/** A client that joined, once it holds the state its server sent. */
interface Joined {
  doc: Y.Doc
  destroy(): void
}

/** Fresh clients (`join`) join one after another; median time, bytes the server wrote, server CPU. */
const coldSync = async (context: BenchContext, server: BenchServer, expected: string, join: () => Promise<Joined>): Promise<Row['values']> => {
  const times: number[] = []
  const bytes: number[] = []
  const cpuBefore = server.usage().cpu
  for (let i = 0; i < COLD_SYNCS; i++) {
    const traffic = await server.traffic()
    const started = performance.now()
    const client = await join()
    await waitForText(client.doc, expected, COLD_TIMEOUT_MS, `${rowSystem(server.system)} cold client`)
    times.push(performance.now() - started)
    bytes.push((await server.traffic()).written - traffic.written)
    client.destroy()
  }
  // /proc counts CPU in 10 ms ticks: average over all joins rather than take a median of ticks.
  const serverCpuMs = (server.usage().cpu - cpuBefore) * 1000 / COLD_SYNCS
  context.log(`  ${rowSystem(server.system)}: cold sync ${median(times).toFixed(1)} ms`)
  return { ms: median(times), bytes: median(bytes), serverCpuMs }
}

/** The floor of a join: the state ready on the bare server, fetched and applied (see the table's notes). */
const coldFloor = async (context: BenchContext, state: Uint8Array | null, expected: string): Promise<Row['values']> => {
  if (state === null) throw new Error('no system\'s replay converged: there is no state to join')
  const server = await startServer('sse-floor', context.redis)
  try {
    const docId = `cold-floor-${Date.now()}`
    await putFloorAnswer(server, docId, state)
    return await coldSync(context, server, expected, async () => {
      const doc = new Y.Doc()
      Y.applyUpdateV2(doc, await getDocument(server, docId))
      return { doc, destroy: () => doc.destroy() }
    })
  } finally {
    await server.stop()
  }
}
