/**
 * The floor of event streams on Node's HTTP server: a bare `node:http` server that starts each
 * stream as y-sse does (the same headers, socket settings and event writer), and fans every POSTed
 * body out to the streams of its document as an `update` event framed once. No Koa, no store, no
 * validation, nothing kept: what any SSE server on Node pays per held stream and per delivery,
 * which a WebSocket server sheds at the upgrade.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http'
import * as Y from 'yjs'
import { startEventStream, toFrame, type SseWriter } from '../server/sse.js'
import { toBase64 } from '../shared/codec.js'
import { SseEvent, type PostUpdateResponse, type SyncEventData } from '../shared/protocol.js'

const ROUTE = /^\/docs\/([^/?]+)\/(events|updates)(?:\?|$)/

/** Every stream starts with the sync event of an empty document, which is what a light reader waits for. */
const SYNC: string = JSON.stringify({
  update: toBase64(Y.encodeStateAsUpdate(new Y.Doc())),
  stateVector: toBase64(Y.encodeStateVector(new Y.Doc())),
  resume: 'full'
} satisfies SyncEventData)

const readBody = (req: IncomingMessage): Promise<Buffer> => new Promise((resolve, reject) => {
  const chunks: Buffer[] = []
  req.on('data', (chunk: Buffer) => chunks.push(chunk)).on('end', () => resolve(Buffer.concat(chunks))).on('error', reject)
})

/** Creates the floor server (not listening yet). */
export const createSseFloor = (): Server => {
  const streams = new Map<string, Set<SseWriter>>()
  let sequence = 0
  return createServer((req, res) => {
    const [, docId, kind] = ROUTE.exec(req.url ?? '') ?? []
    if (docId === undefined) {
      res.writeHead(404).end()
      return
    }
    if (req.method !== (kind === 'events' ? 'GET' : 'POST')) {
      res.writeHead(405).end()
      return
    }
    if (kind === 'events') {
      const writer = startEventStream(req, res, null)
      writer.send({ retry: 1000 })
      writer.send({ event: SseEvent.sync, id: '0', data: SYNC })
      const held = streams.get(docId) ?? new Set()
      streams.set(docId, held.add(writer))
      res.once('close', () => {
        held.delete(writer)
        if (held.size === 0) streams.delete(docId)
      })
      return
    }
    readBody(req).then(body => {
      const eventId = String(++sequence)
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ eventId } satisfies PostUpdateResponse))
      const frame = toFrame({ event: SseEvent.update, id: eventId, data: toBase64(body) })
      for (const writer of streams.get(docId) ?? []) writer.sendFrame(frame)
    }, () => res.destroy())
  })
}
