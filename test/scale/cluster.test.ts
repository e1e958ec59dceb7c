/**
 * y-sse on a real three-node Redis Cluster: server instances on the cluster deliver each other's
 * updates for documents on every node, over sharded pub/sub, with a bounded number of connections;
 * resume by Last-Event-ID works after compaction. The store's whole contract also runs on the
 * cluster (test/contract/document-store.test.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { Cluster } from 'ioredis'
import { appendUpdate, followDoc, onCleanup, openEvents, startServer, type TestServer } from '../helpers/server.js'
import { startRedisCluster, uniquePrefix, type RedisCluster } from '../helpers/redis.js'
import { waitFor } from '../helpers/wait.js'

let cluster: RedisCluster
beforeAll(async () => {
  cluster = await startRedisCluster()
})
afterAll(() => cluster.stop())

/** Server instances sharing one key prefix on the cluster. */
const instances = async (count: number, store: { compactAfterUpdates?: number; keepTail?: number } = {}): Promise<TestServer[]> => {
  const prefix = uniquePrefix('cluster')
  const servers: TestServer[] = []
  for (let i = 0; i < count; i++) servers.push(await startServer({ prefix, redis: { cluster: cluster.urls }, store }))
  return servers
}

/** A client of the cluster for looking at it from outside: slots, nodes, connections. */
const probe = (): Cluster => {
  const client = new Cluster([...cluster.urls])
  onCleanup(() => client.disconnect())
  return client
}

/** The port of the master that holds `docId`'s keys (all in the slot of the hash tag `{docId}`). */
const nodeOf = async (client: Cluster, docId: string): Promise<number> => {
  const slot = Number(await client.cluster('KEYSLOT', docId))
  const range = (await client.cluster('SLOTS')).find(([from, to]) => from <= slot && slot <= to)
  const port = range?.[2]?.[1]
  if (port === undefined) throw new Error(`no node serves slot ${slot}`)
  return port
}

/** Subscriber-mode connections per master port. */
const pubsubConnections = async (client: Cluster): Promise<Map<number, number>> => {
  const counts = new Map<number, number>()
  for (const node of client.nodes('master')) {
    const list = String(await node.call('CLIENT', 'LIST', 'TYPE', 'pubsub'))
    counts.set(Number(node.options.port), list.split('\n').filter(line => line.trim() !== '').length)
  }
  return counts
}

/** A Y.Doc whose updates are recorded, one per edit. */
const writerDoc = (): { doc: Y.Doc; updates: Uint8Array[] } => {
  const doc = new Y.Doc()
  const updates: Uint8Array[] = []
  doc.on('update', (update: Uint8Array) => updates.push(update))
  return { doc, updates }
}

describe('on a three-node Redis Cluster', () => {
  it('two instances deliver each other\'s updates for documents on every node, with one subscriber connection per node each', async () => {
    const client = probe()
    const [a, b] = (await instances(2)) as [TestServer, TestServer]
    const docIds = Array.from({ length: 24 }, (_, i) => `spread-${i}`)
    const nodes = await Promise.all(docIds.map(docId => nodeOf(client, docId)))
    expect(new Set(nodes).size).toBe(3)

    // Every document followed on both instances, written through either.
    const followers = await Promise.all(docIds.map(async docId => {
      const readers = await Promise.all([a, b].map(server => openEvents(server.url, docId)))
      await Promise.all(readers.map(reader => reader.sync()))
      return readers.map(followDoc)
    }))
    const writers = docIds.map(writerDoc)
    await Promise.all(docIds.map(async (docId, i) => {
      const writer = writers[i] as ReturnType<typeof writerDoc>
      for (let n = 0; n < 5; n++) {
        writer.doc.getText('t').insert(0, `${n}`)
        // Alternate instances: each follower gets updates stored by the other instance too.
        await appendUpdate((n % 2 === 0 ? a : b).url, docId, writer.updates.at(-1) as Uint8Array)
      }
    }))
    for (const [i, docs] of followers.entries()) {
      const expected = (writers[i] as ReturnType<typeof writerDoc>).doc.getText('t').toString()
      for (const doc of docs) {
        await waitFor(() => doc.getText('t').toString() === expected, { message: () => `${docIds[i]}: ${doc.getText('t').toString()}` })
      }
    }

    // Sharded pub/sub: each instance holds one subscriber connection per node, however many documents.
    const counts = await pubsubConnections(client)
    expect([...counts.values()]).toEqual([2, 2, 2])
  })

  it('resumes by Last-Event-ID after compaction, on another instance than the one that stored the updates', async () => {
    const [a, b] = (await instances(2, { compactAfterUpdates: 1e9, keepTail: 5 })) as [TestServer, TestServer]
    const docId = 'resumed'
    const writer = writerDoc()
    const ids: string[] = []
    for (let i = 0; i < 40; i++) {
      writer.doc.getText('t').insert(i, String(i % 10))
      ids.push(await appendUpdate(a.url, docId, writer.updates.at(-1) as Uint8Array))
      // A checkpoint every 10 updates, the log trimmed to the last 5 before it.
      if (i % 10 === 9) expect(await a.sync.options.store.compact(docId)).toBe(true)
    }

    const clientAt = (received: number): Y.Doc => {
      const doc = new Y.Doc()
      for (const update of writer.updates.slice(0, received)) Y.applyUpdate(doc, update)
      return doc
    }
    for (const [received, resume] of [[10, 'checkpoint'], [38, 'replay']] as const) {
      const reader = await openEvents(b.url, docId, { lastEventId: ids[received - 1] })
      const sync = await reader.sync()
      expect(sync.resume).toBe(resume)
      expect(sync.id).toBe(ids.at(-1))
      const doc = clientAt(received)
      Y.applyUpdate(doc, Buffer.from(sync.update, 'base64'))
      expect(doc.getText('t').toString()).toBe(writer.doc.getText('t').toString())
    }

    // The resumed stream goes on live with updates stored through the other instance.
    const live = followDoc(await openEvents(b.url, docId, { lastEventId: ids.at(-1) }))
    Y.applyUpdate(live, Y.encodeStateAsUpdate(writer.doc))
    writer.doc.getText('t').insert(0, '!')
    await appendUpdate(a.url, docId, writer.updates.at(-1) as Uint8Array)
    await waitFor(() => live.getText('t').toString() === writer.doc.getText('t').toString())
  })

  it('answers the change feed with 501: its keys cannot share a slot with every document', async () => {
    const [a] = await instances(1) as [TestServer]
    const res = await fetch(`${a.url}/changes`)
    expect(res.status).toBe(501)
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('not-implemented')
  })
})
