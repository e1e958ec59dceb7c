/**
 * One benchmarked server in its own process (started by `servers.ts`, pinned to the server core):
 * y-sse (createSyncServer over a RedisStore), the y-websocket reference server (`bin/utils.js`
 * on ws 8), or Hocuspocus. It listens on a free loopback port, reports it over IPC, and answers
 * the parent's requests: bytes on the wire so far, collect garbage (for memory readings; every
 * answer also says how much JavaScript heap is in use) and, for y-sse, compact a document.
 */
import { createServer } from 'node:http'
import type { AddressInfo, Server, Socket } from 'node:net'
import { createRequire } from 'node:module'
import { WebSocketServer, type WebSocket } from 'ws'
import { Server as HocuspocusServer } from '@hocuspocus/server'
import { createSyncServer, RedisStore } from '../server/index.js'
import { createSseFloor } from './sse-floor.js'
import type { ServerRequest, ServerReply, ServerSpec, ServerState, Traffic } from './servers.js'

const HOST = '127.0.0.1'

type SetupWSConnection = (conn: WebSocket, req: import('node:http').IncomingMessage, options?: { docName?: string; gc?: boolean }) => void

const send = (message: ServerReply): void => {
  process.send?.(message)
}

interface Started {
  http: Server
  compact: (docId: string) => Promise<unknown>
}

/** Starts the server; resolves with its HTTP server and the handler of `compact` requests. */
const start = async (spec: ServerSpec): Promise<Started> => {
  switch (spec.system) {
    case 'y-sse': {
      const store = new RedisStore({ redis: spec.redisUrl, prefix: spec.prefix, ...spec.store })
      // Every benchmark client comes from 127.0.0.1: per-client limits would count them as one client.
      const sync = createSyncServer({ store, rateLimitPerSecond: 0, maxStreamsPerClient: 0 })
      const { server } = await sync.listen(0, HOST)
      return { http: server, compact: docId => store.compact(docId) }
    }
    case 'y-websocket': {
      // CommonJS, without typings: its documented entry point for custom servers.
      const { setupWSConnection } = createRequire(import.meta.url)('y-websocket/bin/utils') as { setupWSConnection: SetupWSConnection }
      const wss = new WebSocketServer({ noServer: true })
      const http = createServer((_req, res) => res.writeHead(200).end('y-websocket'))
      wss.on('connection', setupWSConnection)
      http.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head, ws => wss.emit('connection', ws, req)))
      await new Promise<void>(resolve => http.listen(0, HOST, resolve))
      return { http, compact: async () => false }
    }
    case 'sse-floor': {
      const http = createSseFloor()
      await new Promise<void>(resolve => http.listen(0, HOST, resolve))
      return { http, compact: async () => false }
    }
    case 'hocuspocus': {
      const server = new HocuspocusServer({ port: 0, address: HOST, quiet: true, stopOnSignals: false })
      await server.listen()
      return { http: server.httpServer, compact: async () => false }
    }
  }
}

const spec = JSON.parse(process.argv[2] ?? '{}') as ServerSpec
const { http, compact } = await start(spec)

// Bytes read and written on client connections: TCP payload, so HTTP headers and WebSocket framing count.
const open = new Set<Socket>()
const closed = { read: 0, written: 0 }
http.on('connection', (socket: Socket) => {
  open.add(socket)
  socket.once('close', () => {
    open.delete(socket)
    closed.read += socket.bytesRead
    closed.written += socket.bytesWritten
  })
})
const traffic = (): Traffic => {
  const total = { ...closed }
  for (const socket of open) {
    total.read += socket.bytesRead
    total.written += socket.bytesWritten
  }
  return total
}

/** What every answer carries. */
const state = (): ServerState => ({ traffic: traffic(), heapUsed: process.memoryUsage().heapUsed, sockets: open.size })

process.on('message', (request: ServerRequest) => {
  const work = request.type === 'gc'
    ? Promise.resolve(globalThis.gc?.())
    : request.type === 'compact' ? compact(request.docId) : Promise.resolve()
  work.then(
    () => send({ type: 'done', id: request.id, ...state() }),
    error => send({ type: 'done', id: request.id, ...state(), error: String(error) })
  )
})
// The parent going away (crash, Ctrl-C) ends this server too.
process.on('disconnect', () => process.exit(0))
send({ type: 'ready', port: (http.address() as AddressInfo).port })
