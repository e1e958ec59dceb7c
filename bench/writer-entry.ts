/**
 * A fan-out writer in its own process (on the client core, like the subscribers): a real
 * provider that appends a marker `[seq]` to a text at a fixed rate; with several writers, each
 * writes the markers whose `seq` modulo their number is its index ({@link markerSeq}), its ticks
 * spread evenly between the others'. Its own event loop keeps its request round trips out of the
 * subscribers' (in a deployment the writer is another machine), which matters for y-sse, whose
 * writer waits for each POST's answer. It reports when each marker was written, on the clock
 * every process on the machine shares. A warm-up run with other markers comes first, so the
 * measured run finds the server's code compiled, as it is after a few seconds of real traffic.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { syncClient } from './clients.js'
import type { BenchServer } from './servers.js'
import { markerSeq, now, paced, waitUntil } from './workload.js'

/** What the parent asks for (argv[2], as JSON). */
export interface WriterSpec {
  server: Pick<BenchServer, 'system' | 'url' | 'wsUrl'>
  docId: string
  /** Markers `[seq]` this writer writes in the measured run. */
  count: number
  /** Markers `{seq}` it writes before it, at the same rate, to warm up the server (not measured). */
  warmup: number
  ratePerSecond: number
  /** This writer's index among `writers` ({@link markerSeq}). */
  index: number
  writers: number
}

/** The parent's requests, in this order: warm up, then run. */
export type WriterRequest = { type: 'warm' } | { type: 'start' }

/** The writer's messages to the parent. */
export type WriterReply =
  | { type: 'synced' }
  | { type: 'warmed' }
  | {
    type: 'done'
    /** `published[k]`: when this writer's `k`-th marker ({@link markerSeq}) was written. */
    published: number[]
  }

const send = (message: WriterReply): void => {
  process.send?.(message)
}

const request = (type: WriterRequest['type']): Promise<void> => new Promise(resolve => {
  const listener = (message: WriterRequest): void => {
    if (message.type !== type) return
    process.off('message', listener)
    resolve()
  }
  process.on('message', listener)
})

const spec = JSON.parse(process.argv[2] ?? '{}') as WriterSpec
// Only system, url and wsUrl are used by a client; the rest of a BenchServer belongs to the parent.
const writer = syncClient(spec.server as BenchServer, spec.docId)
const text = writer.doc.getText('t')

/**
 * Appends `count` of this writer's markers at the spec's rate, starting its share of a period
 * after the one before it: writers that ticked together would send bursts, not people typing.
 * @returns when each was written.
 */
const write = async (count: number, marker: (seq: number) => string): Promise<number[]> => {
  const published: number[] = []
  await sleep(spec.index * 1000 / spec.ratePerSecond / spec.writers)
  await paced(count, spec.ratePerSecond, k => {
    published.push(now())
    text.insert(text.length, marker(markerSeq(spec.index, k, spec.writers)))
  })
  await waitUntil(() => writer.acked(), 30_000, () => 'the writer\'s updates were not acknowledged')
  return published
}

await writer.whenSynced()
send({ type: 'synced' })
await request('warm')
await write(spec.warmup, seq => `{${seq}}`)
send({ type: 'warmed' })
await request('start')
const published = await write(spec.count, seq => `[${seq}]`)
send({ type: 'done', published })
process.on('disconnect', () => {
  writer.destroy()
  process.exit(0)
})
