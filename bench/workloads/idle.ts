/**
 * Idle rooms: many small documents, two quiet clients each. The server's resident memory and the
 * JavaScript heap it uses are read (after a full GC) with no client, with one client per document
 * (each writes a small update), and with two: the step from one to two clients is the cost of a
 * connection, the rest the cost of a document. Every second client must have received its
 * document's content.
 */
import * as Y from 'yjs'
import { subscriber, type Subscriber } from '../clients.js'
import { startServer, type BenchServer } from '../servers.js'
import { ConvergenceError, perSystem, type BenchContext, type WorkloadResult } from '../workload.js'

const OPEN_BATCH = 50
/** Lets late allocations (timers, buffers) settle before memory is read. */
const SETTLE_MS = 1000
/**
 * Rooms opened and closed before the empty reading, so the code a server compiles for its first
 * requests (megabytes of bytecode and optimized code) is not counted as the documents' memory.
 */
const WARM_UP_ROOMS = OPEN_BATCH

/** Memory of a server at rest: resident, and JavaScript heap in use. */
interface Reading {
  rss: number
  heap: number
}

const settledMemory = async (server: BenchServer): Promise<Reading> => {
  await new Promise(resolve => setTimeout(resolve, SETTLE_MS))
  const heap = await server.gc()
  return { rss: server.usage().rss, heap }
}

/**
 * What one connection and one document add to `key`, from the readings with none, one and two
 * clients per document.
 */
const split = (empty: Reading, one: Reading, two: Reading, key: keyof Reading, rooms: number): { perConnection: number; perDoc: number; total: number } => {
  const perConnection = (two[key] - one[key]) / rooms
  return { perConnection, perDoc: (one[key] - empty[key]) / rooms - perConnection, total: two[key] - empty[key] }
}

/**
 * Opens one more client on each of `rooms` rooms (`<prefix>-<room>`), in batches: the first of a
 * room writes the room's update, the second must have got it.
 */
const openClients = async (server: BenchServer, prefix: string, rooms: number, second: boolean, clients: Subscriber[]): Promise<void> => {
  for (let first = 0; first < rooms; first += OPEN_BATCH) {
    const batch: Promise<void>[] = []
    for (let room = first; room < Math.min(rooms, first + OPEN_BATCH); room++) {
      const marker = `room ${room}:`
      let got = false
      const client = subscriber(server, `${prefix}-${room}`, update => {
        got ||= Buffer.from(update).toString('latin1').includes(marker)
      })
      clients.push(client)
      batch.push(client.ready.then(async () => {
        if (!second) return client.write(roomUpdate(room))
        if (!got) throw new ConvergenceError(`${server.system}: the second client of room ${room} did not get its content`)
      }))
    }
    await Promise.all(batch)
  }
}

/** A small update naming its room, as a client would write one. */
const roomUpdate = (room: number): Uint8Array => {
  const doc = new Y.Doc()
  doc.getText('t').insert(0, `room ${room}: a short idle document`)
  return Y.encodeStateAsUpdate(doc)
}

export const idleRooms = {
  id: 'idle',
  async run (context: BenchContext): Promise<WorkloadResult[]> {
    const { rooms } = context.settings
    const rows = await perSystem(context, async system => {
      const server = await startServer(system, context.redis)
      const clients: Subscriber[] = []
      try {
        const prefix = `idle-${Date.now()}`
        const warmUp: Subscriber[] = []
        await openClients(server, `${prefix}-warm-up`, WARM_UP_ROOMS, false, warmUp)
        await openClients(server, `${prefix}-warm-up`, WARM_UP_ROOMS, true, warmUp)
        for (const c of warmUp) c.close()
        await server.clientsGone()
        const empty = await settledMemory(server)
        await openClients(server, prefix, rooms, false, clients)
        const one = await settledMemory(server)
        await openClients(server, prefix, rooms, true, clients)
        const two = await settledMemory(server)
        const rss = split(empty, one, two, 'rss', rooms)
        const heap = split(empty, one, two, 'heap', rooms)
        context.log(`  ${system}: ${(rss.perConnection / 1000).toFixed(1)} KB per connection, ${(rss.perDoc / 1000).toFixed(1)} KB per document (heap: ${(heap.perConnection / 1000).toFixed(1)} KB, ${(heap.perDoc / 1000).toFixed(1)} KB)`)
        return [{
          system,
          values: {
            perConnectionBytes: rss.perConnection,
            perDocBytes: rss.perDoc,
            totalBytes: rss.total,
            heapPerConnectionBytes: heap.perConnection,
            heapPerDocBytes: heap.perDoc,
            heapTotalBytes: heap.total,
            rss: two.rss,
            peakRss: server.usage().peak
          }
        }]
      } finally {
        for (const c of clients) c.close()
        await server.stop()
      }
    })
    return [{
      id: 'idle',
      title: `Idle rooms: ${rooms} documents × 2 clients`,
      metrics: [
        { key: 'perConnectionBytes', label: 'RSS per connection', better: 'lower' },
        { key: 'perDocBytes', label: 'RSS per document', better: 'lower' },
        { key: 'totalBytes', label: 'RSS added in total', better: 'lower' },
        { key: 'heapPerConnectionBytes', label: 'heap per connection', better: 'lower' },
        { key: 'heapPerDocBytes', label: 'heap per document', better: 'lower' },
        { key: 'heapTotalBytes', label: 'heap added in total', better: 'lower' },
        { key: 'rss', label: 'server RSS', better: 'lower' },
        { key: 'peakRss', label: 'server peak RSS' }
      ],
      rows,
      headline: ['perConnectionBytes', 'totalBytes', 'heapTotalBytes'],
      notes: [
        `Resident memory of the server process after a full GC: empty, with one client per document (which writes a small update), with two. Per connection = the step from one to two clients per document; per document = the rest. "Empty" is read after ${WARM_UP_ROOMS} other rooms were opened the same way and closed, so the code a server compiles for its first requests is not counted as the documents' memory.`,
        'heap: the JavaScript heap in use after that GC (`process.memoryUsage().heapUsed`), split the same way: what the server\'s objects hold, without the memory V8 and the allocator keep reserved, which RSS counts (a burst of requests can leave V8\'s young generation grown by megabytes).',
        'y-sse stores documents in Redis; per document the server holds its subscription and, for a document being read, the document merged in memory (a `Y.Doc`, within the store\'s `mergedDocsBytes` budget).'
      ]
    }]
  }
}
