/**
 * How often the shared store logic reads the log, on a real MemoryStore that counts its reads:
 * every backend pays a round trip per read, so a resume must not read twice what it read once.
 */
import * as Y from 'yjs'
import { describe, expect, it } from 'vitest'
import { MemoryStore } from '../../server/store/memory-store.js'
import type { StreamId } from '../../server/store/history.js'
import type { FullRead, ReplayRead, StoreOptions } from '../../server/store/log-store.js'
import type { DocEvent } from '../../server/store/types.js'
import { validateUpdate } from '../../server/validate.js'
import { waitFor } from '../helpers/wait.js'

class CountingStore extends MemoryStore {
  reads = 0
  wholeReads = 0

  protected override async readAfter(docId: string, after: StreamId): Promise<ReplayRead> {
    this.reads++
    return super.readAfter(docId, after)
  }

  protected override async readFull(docId: string): Promise<FullRead> {
    this.wholeReads++
    return super.readFull(docId)
  }
}

/** A store with one document, written by `writer`, kept merged for a reader and moved on by deliveries. */
const keptDocument = async (options: Partial<StoreOptions>) => {
  const store = new CountingStore({ compactAfterUpdates: 1e9, compactAfterBytes: 1e12, ...options })
  const deliveries: DocEvent[] = []
  const unsubscribe = await store.subscribe('d', (event) => deliveries.push(event))
  const writer = new Y.Doc()
  const client = new Y.Doc()
  const append = async (text: string): Promise<string> => {
    const before = Y.encodeStateVector(writer)
    writer.getText('t').insert(0, text)
    const update = Y.encodeStateAsUpdate(writer, before)
    return store.append('d', { bytes: update, ranges: validateUpdate(update) })
  }
  const clientAt = await append('seen by the client ')
  Y.applyUpdate(client, Y.encodeStateAsUpdate(writer))
  await store.compact('d') // a checkpoint at the client's point
  // More than a replay is always sent for, so a resume diffs the kept document.
  for (let i = 0; i < 300; i++) await append(`missed ${i} `)
  await store.compact('d') // merges the document once and keeps it; the log keeps `keepTail`
  for (let i = 0; i < 5; i++) await append(`delivered ${i} `) // moves the kept document on
  await waitFor(() => deliveries.length === 306, { message: () => `${deliveries.length} of 306 delivered` })
  store.reads = 0
  store.wholeReads = 0
  const expectCaughtUp = (update: Uint8Array): void => {
    Y.applyUpdate(client, update)
    expect(client.getText('t').toString()).toBe(writer.getText('t').toString())
  }
  return { store, client, clientAt, expectCaughtUp, close: async () => { unsubscribe(); await store.close(); } }
}

describe('log reads', () => {
  it('a state-vector resume of a document kept merged for its readers reads the log once', async () => {
    const { store, client, clientAt, expectCaughtUp, close } = await keptDocument({ keepTail: 1000 })
    const sync = await store.sync('d', { lastEventId: clientAt, stateVector: Y.encodeStateVector(client) })
    expect(sync.resume).toBe('state-vector')
    expectCaughtUp(sync.update)
    expect([store.reads, store.wholeReads]).toEqual([1, 0])
    await close()
  })

  it('a resume from a point compacted away diffs the kept document from the checkpoint that one read brought', async () => {
    const { store, clientAt, expectCaughtUp, close } = await keptDocument({ keepTail: 10 })
    const sync = await store.sync('d', { lastEventId: clientAt })
    expect(sync.resume).toBe('checkpoint')
    expectCaughtUp(sync.update)
    expect([store.reads, store.wholeReads]).toEqual([1, 0])
    await close()
  })
})
