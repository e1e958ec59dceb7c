/**
 * The floor: the same trace in one process without any network. A writer doc applies the edits,
 * one transaction each, while its updates are captured; then a reader doc applies every captured
 * update. No provider can deliver the trace faster than this, since it does both halves.
 */
import * as Y from 'yjs'
import { ConvergenceError, applyEdits, type BenchContext, type WorkloadResult } from '../workload.js'

export const floor = {
  id: 'floor',
  async run ({ settings, trace, log }: BenchContext): Promise<WorkloadResult[]> {
    const writer = new Y.Doc()
    const updates: Uint8Array[] = []
    writer.on('update', (update: Uint8Array) => updates.push(update))
    const started = performance.now()
    await applyEdits(writer, trace, 0, settings.edits, 0)
    const written = performance.now() - started
    const reader = new Y.Doc()
    for (const update of updates) Y.applyUpdate(reader, update)
    const total = performance.now() - started
    if (reader.getText('t').toString() !== writer.getText('t').toString()) throw new ConvergenceError('floor: the reader diverged from the writer')
    const encoded = Y.encodeStateAsUpdate(writer)
    log(`  floor: ${(total / 1000).toFixed(2)} s`)
    return [{
      id: 'floor',
      title: `Floor: the replay in one process, no network (${settings.edits.toLocaleString('en-US')} edits)`,
      metrics: [
        { key: 'seconds', label: 'total (s)' },
        { key: 'writerSeconds', label: 'writer (s)' },
        { key: 'readerSeconds', label: 'reader (s)' },
        { key: 'updates', label: 'updates' },
        { key: 'updateBytes', label: 'bytes of all updates' },
        { key: 'docBytes', label: 'encoded doc (V1 bytes)' }
      ],
      rows: [{
        system: 'floor',
        values: {
          seconds: total / 1000,
          writerSeconds: written / 1000,
          readerSeconds: (total - written) / 1000,
          updates: updates.length,
          updateBytes: updates.reduce((sum, u) => sum + u.length, 0),
          docBytes: encoded.length
        }
      }],
      headline: [],
      notes: ['The writer applies each edit in its own transaction and captures its updates; the reader applies them one by one.']
    }]
  }
}
