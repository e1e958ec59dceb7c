/**
 * Starts each benchmarked server in its own child process on the server core and measures it from
 * /proc: CPU time (utime + stime) and resident memory. y-sse's CPU time includes its Redis, which
 * runs on the same core: the peers keep documents in their own heap, y-sse in Redis.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { startRedisServer, type RedisServer } from '../test/helpers/redis-process.js'
import type { StoreOptions } from '../server/store/log-store.js'
import { cpuSeconds, memory, onServerCore, pin } from './proc.js'

/** The systems compared. */
export const SYSTEMS = ['y-sse', 'y-websocket', 'hocuspocus'] as const
export type System = typeof SYSTEMS[number]

/** What a server child can run: a compared system, or the floor of event streams on Node (`sse-floor.ts`). */
export type ServerKind = System | 'sse-floor'

/** The name a server of `kind` goes by in rows and logs: the floor's is `floor`. */
export const rowSystem = (kind: ServerKind): System | 'floor' => kind === 'sse-floor' ? 'floor' : kind

/** y-sse store options a workload may set (deployment settings, the same for every document). */
export type StoreTuning = Partial<Omit<StoreOptions, 'logger'>>

/** What a server child starts (its argv[2], as JSON). */
export type ServerSpec =
  | { system: 'y-sse'; redisUrl: string; prefix: string; store: StoreTuning }
  | { system: 'y-websocket' | 'hocuspocus' | 'sse-floor' }

type Request = { type: 'gc' } | { type: 'compact'; docId: string } | { type: 'traffic' }

/** A request from the parent to a server child. */
export type ServerRequest = { id: number } & Request

/** Bytes a server read from and wrote to its client connections. */
export interface Traffic {
  read: number
  written: number
}

/** What a server child says with every answer: its traffic so far and the JavaScript heap it uses now. */
export interface ServerState {
  traffic: Traffic
  /** `process.memoryUsage().heapUsed` once the request was done (after the collection of `gc`). */
  heapUsed: number
  /** Client connections open now. */
  sockets: number
}

/** A server child's messages to the parent. */
export type ServerReply = { type: 'ready'; port: number } | ({ type: 'done'; id: number; error?: string } & ServerState)

/** CPU and memory of a server at one moment. */
export interface Usage {
  /** CPU seconds used since start (server process, plus Redis for y-sse). */
  cpu: number
  /** Resident memory now, bytes (server process only). */
  rss: number
  /** Peak resident memory since start, bytes (server process only). */
  peak: number
}

/** A running benchmarked server. */
export interface BenchServer {
  system: ServerKind
  /** `http://127.0.0.1:<port>` */
  url: string
  /** `ws://127.0.0.1:<port>` */
  wsUrl: string
  pid: number
  usage(): Usage
  /**
   * Runs a full garbage collection in the server, so memory readings are not left-over garbage;
   * resolves with the bytes of JavaScript heap in use after it.
   */
  gc(): Promise<number>
  /** Compacts a document now (y-sse; a no-op for the peers, which hold one merged Y.Doc). */
  compact(docId: string): Promise<void>
  /** Bytes on the wire between the server and its clients so far. */
  traffic(): Promise<Traffic>
  /** Resolves once the server holds no client connection (clients that closed are gone on its side too). */
  clientsGone(): Promise<void>
  stop(): Promise<void>
}

/** The private Redis of a benchmark run, on the server core. */
export interface BenchRedis {
  server: RedisServer
  pid: number
}

export const startBenchRedis = async (): Promise<BenchRedis> => {
  const server = await startRedisServer()
  const client = new Redis(server.url)
  try {
    const info = await client.info('server')
    const pid = Number(/^process_id:(\d+)/m.exec(info)?.[1])
    pin(pid, 'server')
    return { server, pid }
  } finally {
    client.disconnect()
  }
}

const ENTRY = fileURLToPath(new URL('./server-entry.js', import.meta.url))
let prefixes = 0

/** Where `--profile` makes y-sse servers write CPU profiles (`node --cpu-prof`); `null`: no profiling. */
let profileDir: string | null = null

/** Profiles every y-sse server started from now on into `dir`. */
export const profileServersInto = (dir: string): void => {
  profileDir = dir
}

/** How long a server may take to see closed clients go. */
const CLIENTS_GONE_TIMEOUT_MS = 10_000

/** How long a stopping server may take to write its profile before it is killed. */
const EXIT_TIMEOUT_MS = 10_000

/** Starts `system` in a child process; `store` tunes y-sse's store (compaction, tail). */
export const startServer = async (system: ServerKind, redis: BenchRedis, store: StoreTuning = {}): Promise<BenchServer> => {
  const spec: ServerSpec = system === 'y-sse'
    ? { system, redisUrl: redis.server.url, prefix: `bench:${process.pid}:${++prefixes}:`, store }
    : { system }
  const profile = system === 'y-sse' && profileDir !== null ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []
  const [command, args] = onServerCore(process.execPath, ['--expose-gc', ...profile, ENTRY, JSON.stringify(spec)])
  const child = spawn(command, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject)
    child.once('exit', code => reject(new Error(`${system} server exited with code ${code} before listening`)))
    child.on('message', (message: ServerReply) => { if (message.type === 'ready') resolve(message.port) })
  })
  const pid = child.pid as number
  const redisCpuAtStart = system === 'y-sse' ? cpuSeconds(redis.pid) : 0
  const request = requester(child, system)
  return {
    system,
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}`,
    pid,
    usage: () => {
      const { rss, peak } = memory(pid)
      const redisCpu = system === 'y-sse' ? cpuSeconds(redis.pid) - redisCpuAtStart : 0
      return { cpu: cpuSeconds(pid) + redisCpu, rss, peak }
    },
    gc: async () => (await request({ type: 'gc' })).heapUsed,
    compact: async docId => { await request({ type: 'compact', docId }) },
    traffic: async () => (await request({ type: 'traffic' })).traffic,
    clientsGone: async () => {
      const deadline = performance.now() + CLIENTS_GONE_TIMEOUT_MS
      while ((await request({ type: 'traffic' })).sockets > 0) {
        if (performance.now() > deadline) throw new Error(`${system} server still holds client connections after ${CLIENTS_GONE_TIMEOUT_MS / 1000} s`)
        await new Promise(resolve => setTimeout(resolve, 10))
      }
    },
    stop: async () => {
      if (child.exitCode !== null) return
      const exited = new Promise(resolve => child.once('exit', resolve))
      // Closing the IPC channel makes the child exit by itself, so a CPU profile gets written.
      const killer = setTimeout(() => child.kill('SIGKILL'), profile.length > 0 ? EXIT_TIMEOUT_MS : 0)
      child.disconnect()
      await exited
      clearTimeout(killer)
    }
  }
}

const requester = (child: ChildProcess, system: ServerKind): (request: Request) => Promise<ServerState> => {
  let ids = 0
  const pending = new Map<number, { resolve: (state: ServerState) => void; reject: (error: Error) => void }>()
  child.on('message', (message: ServerReply) => {
    if (message.type !== 'done') return
    const waiter = pending.get(message.id)
    pending.delete(message.id)
    if (message.error === undefined) waiter?.resolve(message)
    else waiter?.reject(new Error(`${system} server: ${message.error}`))
  })
  child.once('exit', () => {
    for (const waiter of pending.values()) waiter.reject(new Error(`${system} server exited`))
    pending.clear()
  })
  return request => new Promise((resolve, reject) => {
    const id = ++ids
    pending.set(id, { resolve, reject })
    child.send({ ...request, id } satisfies ServerRequest)
  })
}
