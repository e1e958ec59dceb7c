/**
 * Idle rooms: many small documents, two quiet clients each. The server's resident memory is read
 * (after a full GC) with no client, with one client per document (each writes a small update),
 * and with two: the step from one to two clients is the cost of a connection, the rest the cost
 * of a document. Every second client must have received its document's content.
 */
import * as Y from 'yjs'
import { subscriber, type Subscriber } from '../clients.js'
import { startServer, type BenchServer } from '../servers.js'
import { ConvergenceError, perSystem, type BenchContext, type WorkloadResult } from '../workload.js'

const OPEN_BATCH = 50
/** Lets late allocations (timers, buffers) settle before memory is read. */
const SETTLE_MS = 1000

const settledRss = async (server: BenchServer): Promise<number> => {
  await new Promise(resolve => setTimeout(resolve, SETTLE_MS))
  await server.gc()
  return server.usage().rss
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
        const empty = await settledRss(server)
        const open = async (second: boolean): Promise<void> => {
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
                if (!got) throw new ConvergenceError(`${system}: the second client of room ${room} did not get its content`)
              }))
            }
            await Promise.all(batch)
          }
        }
        await open(false)
        const one = await settledRss(server)
        await open(true)
        const two = await settledRss(server)
        const perConnection = (two - one) / rooms
        const perDoc = (one - empty - perConnection * rooms) / rooms
        context.log(`  ${system}: ${(perConnection / 1000).toFixed(1)} KB per connection, ${(perDoc / 1000).toFixed(1)} KB per document`)
        return [{
          system,
          values: { perConnectionBytes: perConnection, perDocBytes: perDoc, totalBytes: two - empty, rss: two, peakRss: server.usage().peak }
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
        { key: 'rss', label: 'server RSS', better: 'lower' },
        { key: 'peakRss', label: 'server peak RSS' }
      ],
      rows,
      headline: ['perConnectionBytes', 'totalBytes'],
      notes: [
        'Resident memory of the server process after a full GC: empty, with one client per document (which writes a small update), with two. Per connection = the step from one to two clients per document; per document = the rest.',
        'y-sse stores documents in Redis; per document the server holds its subscription and, for a document being read, the document merged in memory (a `Y.Doc`, within the store\'s `mergedDocsBytes` budget).'
      ]
    }]
  }
}
