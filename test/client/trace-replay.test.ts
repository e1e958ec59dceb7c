/**
 * Replays a real editing trace through a provider, one transaction per edit, yielding to the event
 * loop after each one (the fastest typist there can be), and counts the POSTs it takes.
 */
import { readFileSync } from 'node:fs'
import { gunzipSync } from 'node:zlib'
import { setImmediate as nextTick } from 'node:timers/promises'
import { describe, expect, it } from 'vitest'
import { RequestLog, provider, serverDoc, startServer, uniqueDocId, waitAcked } from './harness.js'
import { waitFor } from '../helpers/wait.js'

interface SequentialTrace {
  startContent: string
  endContent: string
  txns: { patches: [number, number, string][] }[]
}

const TRACE = process.env.YSSE_TRACE ?? 'automerge-paper'
/** Edits applied between two yields to the event loop. */
const BURST = Number(process.env.YSSE_TRACE_BURST ?? 10)

const loadTrace = (name: string): SequentialTrace =>
  JSON.parse(gunzipSync(readFileSync(new URL(`../../../shared/data/editing-traces/${name}.json.gz`, import.meta.url))).toString('utf8')) as SequentialTrace

describe('trace replay', () => {
  it(`sends far fewer POSTs than edits (${TRACE})`, async () => {
    const trace = loadTrace(TRACE)
    const server = await startServer()
    const docId = uniqueDocId('trace')
    const log = new RequestLog()
    const writer = provider(server, docId, { fetch: log.fetch })
    await writer.whenSynced()
    const text = writer.doc.getText('t')
    const started = performance.now()
    for (const [index, { patches }] of trace.txns.entries()) {
      writer.doc.transact(() => {
        for (const [pos, del, ins] of patches) {
          if (del > 0) text.delete(pos, del)
          if (ins !== '') text.insert(pos, ins)
        }
      })
      if (index % BURST === BURST - 1) await nextTick()
    }
    await waitAcked(writer, 60_000)
    const elapsed = performance.now() - started
    expect(text.toString()).toBe(trace.endContent)

    const posts = log.count('POST', '/updates')
    const edits = trace.txns.length
    console.log(`[trace ${TRACE}, yield every ${BURST}] ${edits} edits, ${posts} POSTs (${(posts / edits).toFixed(4)} per edit, ${(edits / posts).toFixed(1)} edits per POST), ${Math.round(elapsed)} ms until all acknowledged`)
    expect(posts).toBeLessThan(edits / 5)

    expect((await serverDoc(server, docId)).getText('t').toString()).toBe(trace.endContent)
    const reader = provider(server, docId)
    await reader.whenSynced()
    await waitFor(() => reader.doc.getText('t').length === trace.endContent.length)
    expect(reader.doc.getText('t').toString()).toBe(trace.endContent)
  }, 180_000)
})
