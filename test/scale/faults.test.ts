/**
 * Faults that must lose nothing: Redis going away and coming back under live clients, and
 * compactions racing with appends from several instances. Two instances compacting the same
 * document at once is in the store contract (test/contract/document-store.test.ts, "concurrency"),
 * which runs on standalone Redis and on Redis Cluster.
 */
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { SseProvider } from '../../client/index.js'
import { RedisStore } from '../../server/index.js'
import type { DocEvent } from '../../server/store/types.js'
import { validateUpdate } from '../../server/validate.js'
import { routes } from '../../shared/protocol.js'
import { followDoc, onCleanup, openEvents, postUpdate, startServer, type TestServer } from '../helpers/server.js'
import { redisUrl, startRedisServer, uniquePrefix } from '../helpers/redis.js'
import { waitFor } from '../helpers/wait.js'

const health = async (server: TestServer): Promise<number> => (await fetch(server.url + routes.health())).status

/** An update from a writer of its own, so it never depends on another that may have been refused. */
const independentUpdate = (key: string): Uint8Array => {
  const doc = new Y.Doc()
  doc.getMap('m').set(key, true)
  return Y.encodeStateAsUpdate(doc)
}

describe('Redis stops and comes back', () => {
  it('POSTs and /healthz answer 503 while it is down, nothing acknowledged is lost, streams recover and clients converge', { timeout: 60_000 }, async () => {
    // Durable: an append Redis acknowledged is on disk before the POST answers 200.
    const redis = await startRedisServer({ durable: true })
    onCleanup(() => redis.stop())
    const prefix = uniquePrefix('faults')
    const servers = [await startServer({ prefix, redis: redis.url }), await startServer({ prefix, redis: redis.url })] as const
    const docId = 'outage'

    const providers = servers.map(server => {
      const provider = new SseProvider(server.url, docId, new Y.Doc(), { maxBackoffTime: 200 })
      onCleanup(() => provider.destroy())
      return provider
    })
    await Promise.all(providers.map(p => p.whenSynced()))
    const reader = await openEvents(servers[1].url, docId)
    const followed = followDoc(reader)
    await reader.sync()
    providers[0]?.doc.getText('t').insert(0, 'before ')
    await waitFor(() => providers[1]?.doc.getText('t').toString() === 'before ')

    // A writer POSTing independent updates to both instances, back to back, through the outage.
    const statuses = new Map<string, number>()
    let writing = true
    const writer = (async () => {
      for (let i = 0; writing; i++) {
        const key = `k${i}`
        const res = await postUpdate((servers[i % 2] as TestServer).url, docId, independentUpdate(key))
        statuses.set(key, res.status)
        await res.body?.cancel()
      }
    })()
    const answered = (status: number): number => [...statuses.values()].filter(s => s === status).length

    await waitFor(() => answered(200) >= 5)
    await redis.stop()
    await waitFor(() => answered(503) >= 3, { message: () => `statuses: ${[...statuses.values()].join(',')}` })
    for (const server of servers) expect(await health(server)).toBe(503)
    // Edits made while Redis is down wait in the providers' outboxes.
    providers[0]?.doc.getText('t').insert(0, 'during ')
    providers[1]?.doc.getText('t').insert(providers[1].doc.getText('t').length, 'outage')

    await redis.restart()
    for (const server of servers) await waitFor(async () => (await health(server)) === 200, { message: 'healthz never recovered' })
    const acceptedBefore = answered(200)
    await waitFor(() => answered(200) >= acceptedBefore + 5, { message: 'POSTs never succeeded again' })
    writing = false
    await writer
    // Nothing but 200 and 503: no POST hung or failed otherwise.
    expect(answered(200) + answered(503)).toBe(statuses.size)

    const converged = async (expected: string): Promise<void> => {
      for (const provider of providers) {
        await waitFor(() => provider.doc.getText('t').toString() === expected && provider.unsyncedChanges === 0, {
          timeout: 15_000, message: () => `${provider.doc.getText('t').toString()} (${provider.unsyncedChanges} unsynced)`
        })
      }
    }
    await converged('during before outage')
    // And live editing goes on.
    providers[1]?.doc.getText('t').insert(0, '> ')
    const expected = '> during before outage'
    await converged(expected)
    // The stream opened before the outage stayed open: its instance subscribed again and went on reading the log.
    await waitFor(() => followed.getText('t').toString() === expected, { message: () => followed.getText('t').toString() })
    expect(reader.ended).toBe(false)

    const stored = await servers[0].sync.options.store.getDocument(docId)
    const final = new Y.Doc()
    Y.applyUpdate(final, stored?.update as Uint8Array)
    expect(final.getText('t').toString()).toBe(expected)
    // Every acknowledged update is stored. (A 503 does not prove the opposite: Redis may have run an
    // append whose reply the kill cut off.)
    const keys = final.getMap('m')
    const acknowledged = [...statuses].filter(([, status]) => status === 200).map(([key]) => key)
    expect(acknowledged.filter(key => !keys.has(key))).toEqual([])
  })
})

describe('compaction racing with appends', () => {
  it('three instances appending and compacting one document at once lose nothing, deliver everything once, and merge each update once', async () => {
    const prefix = uniquePrefix('race')
    let merged = 0
    const observer = { compacted: (_seconds: number, updates: number) => { merged += updates }, failed: () => {}, mergedFromLog: () => {} }
    // Small thresholds: every instance compacts in the background every few appends.
    const stores = [0, 1, 2].map(() => new RedisStore({ redis: redisUrl(), prefix, compactAfterUpdates: 3, keepTail: 50, observer }))
    onCleanup(async () => { await Promise.all(stores.map(store => store.close())) })
    const docId = 'race'
    const delivered = await Promise.all(stores.map(async store => {
      const events: DocEvent[] = []
      await store.subscribe(docId, event => events.push(event))
      return events
    }))

    // Four writers per instance, each awaiting its own appends, all at once; bounded in time and count.
    const writers = Array.from({ length: 12 }, () => new Y.Doc())
    const acknowledged: string[] = []
    const deadline = Date.now() + 3_000
    await Promise.all(writers.map(async (doc, w) => {
      const store = stores[w % 3] as RedisStore
      const updates: Uint8Array[] = []
      doc.on('update', (update: Uint8Array) => updates.push(update))
      for (let i = 0; i < 150 && Date.now() < deadline; i++) {
        const text = doc.getText('t')
        text.insert(i % 3 === 0 ? 0 : text.length, String.fromCharCode(97 + w))
        const update = updates.at(-1) as Uint8Array
        acknowledged.push(await store.append(docId, { bytes: update, ranges: validateUpdate(update) }))
      }
    }))
    // Let background compactions settle: until no instance has anything left to merge.
    await waitFor(async () => (await Promise.all(stores.map(store => store.compact(docId)))).every(done => !done))

    const expected = new Y.Doc()
    for (const doc of writers) Y.applyUpdate(expected, Y.encodeStateAsUpdate(doc))
    for (const store of stores) {
      const stored = await store.getDocument(docId)
      const doc = new Y.Doc()
      Y.applyUpdate(doc, stored?.update as Uint8Array)
      expect(doc.getText('t').toString()).toBe(expected.getText('t').toString())
    }
    // Each stored update was merged by exactly one committed compaction: racing commits lost, none twice.
    expect(merged).toBe(acknowledged.length)
    const inOrder = [...acknowledged].sort((a, b) => (stores[0]?.isAfter(a, b) === true ? 1 : -1))
    for (const events of delivered) {
      await waitFor(() => events.length >= acknowledged.length, { message: () => `${events.length}/${acknowledged.length} delivered` })
      expect(events.map(e => (e.type === 'update' ? e.eventId : e.type))).toEqual(inOrder)
    }
  })
})
