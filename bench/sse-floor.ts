/**
 * The floor of event streams on Node's HTTP server: a bare `node:http` server that starts each
 * stream as y-sse does (the same headers, socket settings and event writer), and fans every POSTed
 * body out to the streams of its document as an `update` event framed once. No Koa, no store, no
 * validation: what any SSE server on Node pays per held stream and per delivery, which a WebSocket
 * server sheds at the upgrade.
 *
 * For the floors of a join and a resume, a document can be given its answer ahead of time: `PUT
 * /docs/:docId` keeps the body, which `GET /docs/:docId` then sends as it is and a stream's sync
 * event carries (base64) in place of the empty document's: the server does no work on the request
 * but frame it, so what remains is the request, the transfer and the client's own.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http'
import * as Y from 'yjs'
import { startEventStream, toFrame, type SseWriter } from '../server/sse.js'
import { toBase64 } from '../shared/codec.js'
import { BINARY_CONTENT_TYPE, SseEvent, type PostUpdateResponse, type SyncEventData } from '../shared/protocol.js'

const ROUTE = /^\/docs\/([^/?]+)(?:\/(events|updates))?(?:\?|$)/

/** The method each kind of request must use (`''`: the document itself, `PUT` or `GET`). */
const METHODS: Record<string, readonly string[]> = { events: ['GET'], updates: ['POST'], '': ['PUT', 'GET'] }

/** The sync event every stream starts with (what a light reader waits for): `update`, else the empty document. */
const syncOf = (update: Uint8Array = Y.encodeStateAsUpdate(new Y.Doc())): string => JSON.stringify({
  update: toBase64(update),
  stateVector: toBase64(Y.encodeStateVector(new Y.Doc())),
  resume: 'full'
} satisfies SyncEventData)

const EMPTY_SYNC = syncOf()

const readBody = (req: IncomingMessage): Promise<Buffer> => new Promise((resolve, reject) => {
  const chunks: Buffer[] = []
  req.on('data', (chunk: Buffer) => chunks.push(chunk)).on('end', () => resolve(Buffer.concat(chunks))).on('error', reject)
})

/** Creates the floor server (not listening yet). */
export const createSseFloor = (): Server => {
  const streams = new Map<string, Set<SseWriter>>()
  /** Answers given ahead of time (`PUT`): the body as it came, and its sync event's data. */
  const answers = new Map<string, { body: Buffer; sync: string }>()
  let sequence = 0
  return createServer((req, res) => {
    const [, docId, kind = ''] = ROUTE.exec(req.url ?? '') ?? []
    if (docId === undefined) {
      res.writeHead(404).end()
      return
    }
    if (!(METHODS[kind] ?? []).includes(req.method ?? '')) {
      res.writeHead(405).end()
      return
    }
    if (kind === '' && req.method === 'GET') {
      const answer = answers.get(docId)
      if (answer === undefined) res.writeHead(404).end()
      else res.writeHead(200, { 'Content-Type': BINARY_CONTENT_TYPE }).end(answer.body)
      return
    }
    if (kind === 'events') {
      const writer = startEventStream(req, res, null)
      // In one write with the sync event, as y-sse sends them.
      writer.sendWithNext({ retry: 1000 })
      writer.send({ event: SseEvent.sync, id: '0', data: answers.get(docId)?.sync ?? EMPTY_SYNC })
      const held = streams.get(docId) ?? new Set()
      streams.set(docId, held.add(writer))
      res.once('close', () => {
        held.delete(writer)
        if (held.size === 0) streams.delete(docId)
      })
      return
    }
    readBody(req).then(body => {
      if (kind === '') {
        answers.set(docId, { body, sync: syncOf(body) })
        res.writeHead(204).end()
        return
      }
      const eventId = String(++sequence)
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ eventId } satisfies PostUpdateResponse))
      const frame = toFrame({ event: SseEvent.update, id: eventId, data: toBase64(body) })
      for (const writer of streams.get(docId) ?? []) writer.sendFrame(frame)
    }, () => res.destroy())
  })
}
