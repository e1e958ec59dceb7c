/**
 * The fan-out writer in its own process (on the client core, like the subscribers): a real
 * provider that appends a marker `[seq]` to a text at a fixed rate. Its own event loop keeps its
 * request round trips out of the subscribers' (in a deployment the writer is another machine),
 * which matters for y-sse, whose writer waits for each POST's answer. It reports when each marker
 * was written, on the clock every process on the machine shares.
 */
import { syncClient } from './clients.js'
import type { BenchServer } from './servers.js'
import { now, waitUntil } from './workload.js'

/** What the parent asks for (argv[2], as JSON). */
export interface WriterSpec {
  server: Pick<BenchServer, 'system' | 'url' | 'wsUrl'>
  docId: string
  count: number
  ratePerSecond: number
}

/** The writer's messages to the parent. */
export type WriterReply =
  | { type: 'synced' }
  | { type: 'done'; published: number[]; text: string }

const send = (message: WriterReply): void => {
  process.send?.(message)
}

const spec = JSON.parse(process.argv[2] ?? '{}') as WriterSpec
// Only system, url and wsUrl are used by a client; the rest of a BenchServer belongs to the parent.
const writer = syncClient(spec.server as BenchServer, spec.docId)
await writer.whenSynced()
send({ type: 'synced' })
await new Promise(resolve => process.once('message', resolve))
const text = writer.doc.getText('t')
const published: number[] = []
const started = performance.now()
for (let seq = 0; seq < spec.count; seq++) {
  const wait = started + seq * 1000 / spec.ratePerSecond - performance.now()
  if (wait > 0) await new Promise(resolve => setTimeout(resolve, wait))
  published.push(now())
  text.insert(text.length, `[${seq}]`)
}
await waitUntil(() => writer.acked(), 30_000, () => 'the writer\'s updates were not acknowledged')
send({ type: 'done', published, text: text.toString() })
process.on('disconnect', () => {
  writer.destroy()
  process.exit(0)
})
