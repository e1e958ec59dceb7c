/**
 * Resume: a client syncs a document, goes away, misses N edits, and comes back. Measured: time
 * until its text equals the writer's, the Yjs update it got (against the minimal
 * `Y.diffUpdate(state, itsStateVector)` and the full state a cold sync would send), and the bytes
 * the server wrote. y-sse resumes by event ID (plus its state vector); it runs twice: with the
 * missed edits still in the log, and with the log compacted and trimmed past the client's
 * position (a server keeping no tail, compaction forced), so it must diff from a checkpoint. The
 * peers resume by a full state-vector handshake.
 */
import * as Y from 'yjs'
import { putFloorAnswer, subscriber, syncClient, warmConnections, type SyncClient } from '../clients.js'
import { startServer, type BenchServer, type StoreTuning, type System } from '../servers.js'
import { applyEdits, floorRow, median, perSystem, waitForText, waitUntil, type BenchContext, type Row, type WorkloadResult } from '../workload.js'

/** Edits written before the client leaves: the document it resumes is that large. */
const BASE_EDITS = 10_000
const TIMEOUT_MS = 120_000
/** Reconnections measured per row (fewer when the trace runs out). */
const ROUNDS = 5
/**
 * Reconnections before those, not measured, missing up to {@link WARMUP_MISSED} edits each: the
 * first ones of a fresh server process also compile its code, which a server that has been up
 * for a while has done (as the fan-out's warm-up).
 */
const WARMUP_ROUNDS = 2
const WARMUP_MISSED = 1000
/** Connections to another document opened and closed before the rows, on every server ({@link warmConnections}). */
const WARM_CONNECTIONS = 300

interface Variant {
  name: string
  store: StoreTuning
  compact: boolean
}

const variantsOf = (system: System): Variant[] => system === 'y-sse'
  ? [{ name: 'in log', store: {}, compact: false }, { name: 'after compaction', store: { keepTail: 0 }, compact: true }]
  : [{ name: 'state vector', store: {}, compact: false }]

/** Waits until the server holds everything the writer wrote: its acks, or (y-websocket has none) a fresh reader. */
const waitStored = async (system: System, writer: SyncClient, open: () => SyncClient): Promise<void> => {
  if (system !== 'y-websocket') return waitUntil(() => writer.acked(), TIMEOUT_MS, () => `${system} writer not acknowledged`)
  const check = open()
  try {
    await check.whenSynced()
    await waitForText(check.doc, writer.doc.getText('t').toString(), TIMEOUT_MS, `${system} check reader`)
  } finally {
    check.destroy()
  }
}

/** How a row of `missed` edits runs on the trace: the document's size before, and the rounds. */
interface Plan {
  base: number
  warmupMissed: number
  rounds: number
}

const planOf = (missed: number, traceEdits: number): Plan => {
  const warmupMissed = Math.min(missed, WARMUP_MISSED)
  if (missed + WARMUP_ROUNDS * warmupMissed > traceEdits) {
    throw new Error(`--missed ${missed} leaves no edits of the trace's ${traceEdits} for the warm-up rounds`)
  }
  const available = traceEdits - BASE_EDITS - WARMUP_ROUNDS * warmupMissed
  const rounds = Math.max(1, Math.min(ROUNDS, Math.floor(available / missed)))
  return { base: Math.min(BASE_EDITS, traceEdits - missed * rounds - WARMUP_ROUNDS * warmupMissed), warmupMissed, rounds }
}

/** One reconnection after `count` missed edits: its time, and what the row reports of it. */
type Reconnect = (count: number) => Promise<{ ms: number; values: Omit<Row['values'], 'ms'> }>

/** The warm-up rounds, then the measured ones: their median time, and the last one's values. */
const measureRounds = async (plan: Plan, missed: number, reconnect: Reconnect): Promise<Row['values']> => {
  for (let round = 0; round < WARMUP_ROUNDS; round++) await reconnect(plan.warmupMissed)
  const times: number[] = []
  let last: Omit<Row['values'], 'ms'> = {}
  for (let round = 0; round < plan.rounds; round++) {
    const { ms, values } = await reconnect(missed)
    times.push(ms)
    last = values
  }
  return { ...last, ms: median(times) }
}

/** The row's log line. */
const logRow = (context: BenchContext, who: string, missed: number, rounds: number, values: Row['values']): void => {
  context.log(`  ${who}, ${missed} missed: ${(values.ms as number).toFixed(1)} ms (median of ${rounds}), ${String(values.updateBytes)} B (minimal ${String(values.minimalBytes)} B, ${String(values.how)})`)
}

/**
 * The floor of a resume (`sse-floor.ts`): the server has the minimal diff ready as the sync event
 * of the client's stream before it asks, and the client is a light reader (`node:http`,
 * eventsource-parser) applying it: one request, the transfer and the client's apply.
 */
const resumeFloor = async (context: BenchContext, server: BenchServer, missed: number): Promise<Row['values']> => {
  const { trace, settings } = context
  const plan = planOf(missed, trace.txns.length)
  const docId = `resume-floor-${missed}-${Date.now()}`
  const writer = new Y.Doc()
  const client = new Y.Doc()
  await applyEdits(writer, trace, 0, plan.base, settings.burst)
  Y.applyUpdate(client, Y.encodeStateAsUpdate(writer))
  let next = plan.base
  const values = await measureRounds(plan, missed, async count => {
    const stateVector = Y.encodeStateVector(client)
    await applyEdits(writer, trace, next, next + count, settings.burst)
    next += count
    const state = Y.encodeStateAsUpdate(writer)
    const diff = Y.diffUpdate(state, stateVector)
    await putFloorAnswer(server, docId, diff)
    const expected = writer.getText('t').toString()
    const traffic = await server.traffic()
    const started = performance.now()
    const reader = subscriber(server, docId, update => Y.applyUpdate(client, update))
    try {
      await reader.ready
      await waitForText(client, expected, TIMEOUT_MS, 'floor resumed client')
    } finally {
      reader.close()
    }
    const ms = performance.now() - started
    const written = (await server.traffic()).written - traffic.written
    return { ms, values: { how: 'the minimal diff, ready', updateBytes: diff.length, vsMinimal: 1, minimalBytes: diff.length, fullBytes: state.length, wireBytes: written } }
  })
  logRow(context, 'floor', missed, plan.rounds, values)
  return values
}

export const resume = {
  id: 'resume',
  async run (context: BenchContext): Promise<WorkloadResult[]> {
    const { settings, trace } = context
    const rows = await perSystem(context, async system => {
      const out: Row[] = []
      for (const variant of variantsOf(system)) {
        const server = await startServer(system, context.redis, variant.store)
        try {
          await warmConnections(server, WARM_CONNECTIONS)
          for (const missed of settings.missed) {
            // Several rounds on one document, the median reported: a single reconnection is too noisy to compare.
            const plan = planOf(missed, trace.txns.length)
            const docId = `resume-${missed}-${Date.now()}`
            const writer = syncClient(server, docId)
            const client = syncClient(server, docId, { observeSync: true })
            await Promise.all([writer.whenSynced(), client.whenSynced()])
            await applyEdits(writer.doc, trace, 0, plan.base, settings.burst)
            await waitForText(client.doc, writer.doc.getText('t').toString(), TIMEOUT_MS, `${system} client before leaving`)
            let next = plan.base
            /** The client leaves, `count` edits are made and stored, and it comes back. */
            const values = await measureRounds(plan, missed, async count => {
              const stateVector = Y.encodeStateVector(client.doc)
              client.disconnect()
              await applyEdits(writer.doc, trace, next, next + count, settings.burst)
              next += count
              await waitStored(system, writer, () => syncClient(server, docId))
              if (variant.compact) await server.compact(docId)
              const expected = writer.doc.getText('t').toString()
              const state = Y.encodeStateAsUpdate(writer.doc)
              const minimal = Y.diffUpdate(state, stateVector).length
              const traffic = await server.traffic()
              const started = performance.now()
              client.connect()
              await client.whenSynced()
              await waitForText(client.doc, expected, TIMEOUT_MS, `${system} resumed client`)
              const ms = performance.now() - started
              const written = (await server.traffic()).written - traffic.written
              const sync = client.lastSync()
              const update = sync?.bytes ?? NaN
              return { ms, values: { how: `${variant.name}: ${sync?.kind ?? '?'}`, updateBytes: update, vsMinimal: update / minimal, minimalBytes: minimal, fullBytes: state.length, wireBytes: written } }
            })
            writer.destroy()
            client.destroy()
            logRow(context, `${system} ${variant.name}`, missed, plan.rounds, values)
            out.push({ system, variant: `${missed.toLocaleString('en-US')} missed`, values })
          }
        } finally {
          await server.stop()
        }
      }
      return out
    })
    const floor = await startServer('sse-floor', context.redis)
    try {
      await warmConnections(floor, WARM_CONNECTIONS)
      for (const missed of settings.missed) rows.push(await floorRow(context, `${missed.toLocaleString('en-US')} missed`, () => resumeFloor(context, floor, missed)))
    } finally {
      await floor.stop()
    }
    rows.sort((a, b) => (a.variant ?? '').localeCompare(b.variant ?? '', 'en', { numeric: true }))
    return [{
      id: 'resume',
      title: `Resume after missed edits (document of ${BASE_EDITS.toLocaleString('en-US')} trace edits, then the missed ones)`,
      metrics: [
        { key: 'how', label: 'how' },
        { key: 'ms', label: 'time (ms)', better: 'lower' },
        { key: 'updateBytes', label: 'update bytes', better: 'lower' },
        { key: 'vsMinimal', label: '× minimal diff', better: 'lower' },
        { key: 'minimalBytes', label: 'minimal diff bytes' },
        { key: 'fullBytes', label: 'full state bytes' },
        { key: 'wireBytes', label: 'server bytes written' }
      ],
      rows,
      headline: ['ms', 'vsMinimal'],
      notes: [
        `time: from reconnecting until the client's text equals the writer's, the median of up to ${ROUNDS} rounds of leaving, missing the edits and coming back on one document (bytes: the last round), after ${WARMUP_ROUNDS} such rounds not measured (missing up to ${WARMUP_MISSED.toLocaleString('en-US')} edits) and, on each server first (the floor's too), ${WARM_CONNECTIONS} connections to another document opened and closed one after another (a provider reconnecting once its old connection is closed, until a new sync; a light reader for the floor), so the connection code of a server fresh for each variant is compiled and optimized, as after a while of real traffic. update bytes: the Yjs update of the sync (y-sse's sync event, decoded; the peers' sync step 2).`,
        'minimal diff: `Y.diffUpdate(writer state, client state vector)`; full state: what a cold sync sends. server bytes written: everything the server sent on the reconnect, with HTTP headers, base64 and JSON (y-sse) or WebSocket frames and the handshake (peers).',
        'y-sse "after compaction" runs a server that keeps no log tail (`keepTail: 0`) and compacts before the client returns, so its position is gone from the log. A y-sse server that delivers the document (here: to the writer\'s stream) answers from the document it keeps in memory (nothing, a replay of its latest 4 KB of updates, or a diff), which the log\'s state does not change; where the log decides (a diff past 4 KB that a replay might beat), it answers from a checkpoint.'
      ]
    }]
  }
}
