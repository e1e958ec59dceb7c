/**
 * How often the shared store logic reads the log, on real stores whose reads are counted: every
 * backend pays a round trip per read, so a resume must not read twice what it read once.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import * as Y from 'yjs'
import { describe, expect, it } from 'vitest'
import { MemoryStore } from '../../server/store/memory-store.js'
import { RedisStore } from '../../server/store/redis-store.js'
import type { StreamId } from '../../server/store/history.js'
import { RECENT_BYTES } from '../../server/store/merged-docs.js'
import type { FullRead, LogStore, ReplayRead, StoreOptions } from '../../server/store/log-store.js'
import type { DocEvent } from '../../server/store/types.js'
import { validateUpdate } from '../../server/validate.js'
import { waitFor } from '../helpers/wait.js'
import { redisUrl, uniquePrefix } from '../helpers/redis.js'

/** What a store read within {@link Reads.during}, counted by wrapping its storage primitives. */
interface Reads {
  reads: number
  wholeReads: number
  /** Bytes of the entries each read after a stream ID returned. */
  entryBytes: number[]
  /** Runs `work`, counting the reads it makes (not those of the store's background merges). */
  during<T>(work: () => Promise<T>): Promise<T>
}

type Primitives = {
  readAfter(docId: string, after: StreamId, maxBytes?: number): Promise<ReplayRead>
  readFull(docId: string): Promise<FullRead>
}

/** Counts the reads of a real store (its protected primitives, wrapped on the instance). */
const counted = (store: LogStore): Reads => {
  const counting = new AsyncLocalStorage<true>()
  const reads: Reads = { reads: 0, wholeReads: 0, entryBytes: [], during: work => counting.run(true, work) }
  const primitives = store as unknown as Primitives
  const readAfter = primitives.readAfter.bind(store)
  const readFull = primitives.readFull.bind(store)
  primitives.readAfter = async (docId, after, maxBytes) => {
    const read = await readAfter(docId, after, maxBytes)
    if (counting.getStore() === true) {
      reads.reads++
      reads.entryBytes.push(read.entries.reduce((sum, e) => sum + e.update.length, 0))
    }
    return read
  }
  primitives.readFull = async (docId) => {
    if (counting.getStore() === true) reads.wholeReads++
    return readFull(docId)
  }
  return reads
}

const backends: { name: string; create: (options: Partial<StoreOptions>) => LogStore }[] = [
  { name: 'MemoryStore', create: options => new MemoryStore(options) },
  { name: 'RedisStore', create: options => new RedisStore({ redis: redisUrl(), prefix: uniquePrefix('reads'), ...options }) }
]

/**
 * A store with one document, written by `writer`, kept merged for a reader and moved on by
 * deliveries; the client missed 300 appends of `missed` (a function of the append's number).
 */
const keptDocument = async (create: (options: Partial<StoreOptions>) => LogStore, options: Partial<StoreOptions>, missed = (i: number) => `missed ${i} `) => {
  const store = create({ compactAfterUpdates: 1e9, compactAfterBytes: 1e12, ...options })
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
  for (let i = 0; i < 300; i++) await append(missed(i))
  await store.compact('d') // merges the document once and keeps it; the log keeps `keepTail`
  for (let i = 0; i < 5; i++) await append(`delivered ${i} `) // moves the kept document on
  await waitFor(() => deliveries.length === 306, { message: () => `${deliveries.length} of 306 delivered` })
  const reads = counted(store)
  const expectCaughtUp = (update: Uint8Array): void => {
    Y.applyUpdate(client, update)
    expect(client.getText('t').toString()).toBe(writer.getText('t').toString())
  }
  /** The updates delivered so far, with their event IDs. */
  const updates = () => deliveries.flatMap(event => event.type === 'update' ? [event] : [])
  return { store, reads, client, clientAt, updates, writer, append, expectCaughtUp, unsubscribe, close: async () => { unsubscribe(); await store.close(); } }
}

describe.each(backends)('log reads: $name', ({ create }) => {
  it('a state-vector resume of a document delivered here and kept merged for its readers reads nothing: the kept document\'s diff', async () => {
    // Short enough that no replay could be much smaller.
    const { store, reads, client, clientAt, updates, expectCaughtUp, close } = await keptDocument(create, { keepTail: 1000 }, () => 'm')
    const sync = await reads.during(() => store.sync('d', { lastEventId: clientAt, stateVector: Y.encodeStateVector(client) }))
    expect(sync.resume).toBe('state-vector')
    expect(sync.eventId).toBe(updates().at(-1)?.eventId)
    expectCaughtUp(sync.update)
    expect([reads.reads, reads.wholeReads]).toEqual([0, 0])
    await close()
  })

  it('a resume at the head delivered here, or a few deliveries back, reads nothing: nothing, or their replay', async () => {
    const { store, reads, updates: delivered, writer, close } = await keptDocument(create, { keepTail: 1000 })
    const updates = delivered()
    const head = updates.at(-1)?.eventId
    const atHead = await reads.during(() => store.sync('d', { lastEventId: head }))
    expect(atHead).toMatchObject({ eventId: head, resume: 'replay' })
    expect(Y.decodeUpdate(atHead.update)).toMatchObject({ structs: [], ds: { clients: new Map() } })
    // A client that has every delivery up to three back, without its state vector.
    const client = new Y.Doc()
    for (const { update } of updates.slice(0, -3)) Y.applyUpdate(client, update)
    const back = await reads.during(() => store.sync('d', { lastEventId: updates.at(-4)?.eventId }))
    expect(back).toMatchObject({ eventId: head, resume: 'replay' })
    expect(back.update).toEqual(Y.mergeUpdates(updates.slice(-3).map(u => u.update)))
    Y.applyUpdate(client, back.update)
    expect(client.getText('t').toString()).toBe(writer.getText('t').toString())
    // The state vector a sync event carries is the kept document's, exact.
    expect(Y.decodeStateVector(back.stateVector)).toEqual(Y.decodeStateVector(Y.encodeStateVector(writer)))
    expect([reads.reads, reads.wholeReads]).toEqual([0, 0])
    await close()
  })

  it('replays from memory as many deliveries back as total at most 4 KB, and reads the log beyond', async () => {
    const { store, reads, updates, append, close } = await keptDocument(create, { keepTail: 1000 })
    for (let i = 0; i < 30; i++) await append(`${i} ${'y'.repeat(200)} `)
    await waitFor(() => updates().length === 336)
    const delivered = updates()
    let bytes = 0
    for (let back = 1; back <= 30; back++) {
      bytes += delivered.at(-back)?.update.length ?? NaN
      const before = reads.reads
      await reads.during(() => store.sync('d', { lastEventId: delivered.at(-1 - back)?.eventId }))
      expect(reads.reads - before, `${back} back, ${bytes} bytes`).toBe(bytes <= RECENT_BYTES ? 0 : 1)
    }
    expect(bytes).toBeGreaterThan(RECENT_BYTES)
    await close()
  })

  it('a client holding what the kept document lacks, or behind what it remembers without a state vector, is answered from the log', async () => {
    const { store, reads, client, clientAt, expectCaughtUp, close } = await keptDocument(create, { keepTail: 1000 })
    // An edit of the client's own, not stored: from the kept document alone, the sync event could not
    // tell whether the store has it.
    const withOwnEdit = new Y.Doc()
    Y.applyUpdate(withOwnEdit, Y.encodeStateAsUpdate(client))
    withOwnEdit.getText('t').insert(0, 'mine ')
    const withOwn = await reads.during(() => store.sync('d', { lastEventId: clientAt, stateVector: Y.encodeStateVector(withOwnEdit) }))
    expect(withOwn.resume).toBe('state-vector')
    expectCaughtUp(withOwn.update)
    expect(reads.reads).toBe(1)
    // 300 deliveries back is past what the kept document remembers: the log replays them.
    const far = await reads.during(() => store.sync('d', { lastEventId: clientAt }))
    expect(far.resume).toBe('replay')
    expect(reads.reads).toBe(2)
    await close()
  })

  it('a state-vector resume of a document nobody reads here reads the log once, and uses that read to bring the kept document to its head', async () => {
    const { store, reads, client, clientAt, expectCaughtUp, unsubscribe, close } = await keptDocument(create, { keepTail: 1000 })
    unsubscribe()
    const sync = await reads.during(() => store.sync('d', { lastEventId: clientAt, stateVector: Y.encodeStateVector(client) }))
    expect(sync.resume).toBe('state-vector')
    expectCaughtUp(sync.update)
    expect([reads.reads, reads.wholeReads]).toEqual([1, 0])
    await close()
  })

  it('a diff from memory a replay might beat goes by the log: the smaller of the two, the diff made once', async () => {
    // Many deletions: every diff carries them all, a replay of what came after only that.
    const deleting = (i: number): string => i % 2 === 0 ? `${i} ${'x'.repeat(40)} ` : ''
    const { store, reads, client, clientAt, writer, updates, expectCaughtUp, close } = await keptDocument(create, { keepTail: 1000 }, deleting)
    for (let i = 0; i < 400; i++) writer.getText('t').delete(i, 1)
    const deletions = Y.encodeStateAsUpdate(writer, Y.encodeStateVector(client))
    await store.append('d', { bytes: deletions, ranges: validateUpdate(deletions) })
    Y.applyUpdate(client, deletions)
    // The client misses 6 KB after that: more than the kept document remembers, less than the diff.
    await waitFor(() => updates().length === 307)
    const at = updates().at(-1)?.eventId
    // Each as Yjs emits it, without the delete set a diff would carry.
    const emitted: Uint8Array[] = []
    writer.on('update', (update: Uint8Array) => emitted.push(update))
    for (let i = 0; i < 10; i++) writer.getText('t').insert(0, `${i} ${'y'.repeat(600)} `)
    for (const update of emitted) await store.append('d', { bytes: update, ranges: validateUpdate(update) })
    await waitFor(() => updates().length === 317)
    const stateVector = Y.encodeStateVector(client)
    const diffBytes = Y.diffUpdate(Y.encodeStateAsUpdate(writer), stateVector).length
    // Diffs of the kept document, counted.
    const kept = (store as unknown as { merged: { get(docId: string): { diff(sv: Uint8Array): Uint8Array } } }).merged.get('d')
    if (kept === undefined) throw new Error('not kept')
    const diff = kept.diff.bind(kept)
    let diffs = 0
    kept.diff = sv => { diffs++; return diff(sv) }
    const sync = await reads.during(() => store.sync('d', { lastEventId: at, stateVector }))
    expect(diffs).toBe(1)
    expect(sync.resume).toBe('replay')
    expect(sync.update.length).toBeLessThan(diffBytes)
    expectCaughtUp(sync.update)
    expect([reads.reads, reads.wholeReads]).toEqual([1, 0])
    expect(clientAt).not.toBe(at)
    await close()
  })

  it('a state-vector resume with more than 64 KB of entries after its point reads none of them and is sent the diff of the kept document', async () => {
    // 300 appends of 1 KB each after the client's point, still in the log: more than 64 KB.
    const { store, reads, client, clientAt, expectCaughtUp, unsubscribe, close } = await keptDocument(create, { keepTail: 1000 }, i => `${i} ${'x'.repeat(1000)} `)
    // Nobody reads it here any more: the store is asked.
    unsubscribe()
    const sync = await reads.during(() => store.sync('d', { lastEventId: clientAt, stateVector: Y.encodeStateVector(client) }))
    expect(sync.resume).toBe('state-vector')
    expectCaughtUp(sync.update)
    // The capped read returns no entries, and the kept document is at its head: nothing more to read.
    expect([reads.reads, reads.wholeReads]).toEqual([1, 0])
    expect(reads.entryBytes).toEqual([0])
    await close()
  })

  it('a state-vector resume from the very point a document is kept merged at, with more than 64 KB after it, gets everything', async () => {
    // Nobody reads here, so nothing moves the kept document on: it stays where the last read left it.
    const store = create({ compactAfterUpdates: 1e9, compactAfterBytes: 1e12, keepTail: 1000 })
    const writer = new Y.Doc()
    const append = async (text: string): Promise<string> => {
      const before = Y.encodeStateVector(writer)
      writer.getText('t').insert(writer.getText('t').length, text)
      const update = Y.encodeStateAsUpdate(writer, before)
      return store.append('d', { bytes: update, ranges: validateUpdate(update) })
    }
    const clientAt = await append('seen by the client ')
    const client = new Y.Doc()
    Y.applyUpdate(client, Y.encodeStateAsUpdate(writer))
    expect(await store.getDocument('d')).not.toBeNull() // merges the document at the client's point and keeps it
    for (let i = 0; i < 100; i++) await append(`${i} ${'x'.repeat(1000)} `)
    const sync = await store.sync('d', { lastEventId: clientAt, stateVector: Y.encodeStateVector(client) })
    Y.applyUpdate(client, sync.update)
    expect(client.getText('t').toString()).toBe(writer.getText('t').toString())
    await store.close()
  })

  it('a resume far behind without a state vector is replayed whole', async () => {
    const { store, reads, clientAt, expectCaughtUp, close } = await keptDocument(create, { keepTail: 1000 }, i => `${i} ${'x'.repeat(1000)} `)
    const sync = await reads.during(() => store.sync('d', { lastEventId: clientAt }))
    expect(sync.resume).toBe('replay')
    expectCaughtUp(sync.update)
    expect(reads.reads).toBe(1)
    expect(reads.entryBytes[0]).toBeGreaterThan(300_000)
    await close()
  })

  it('a resume from a point compacted away diffs the kept document from the checkpoint that one read brought', async () => {
    const { store, reads, clientAt, expectCaughtUp, close } = await keptDocument(create, { keepTail: 10 })
    const sync = await reads.during(() => store.sync('d', { lastEventId: clientAt }))
    expect(sync.resume).toBe('checkpoint')
    expectCaughtUp(sync.update)
    expect([reads.reads, reads.wholeReads]).toEqual([1, 0])
    await close()
  })
})
