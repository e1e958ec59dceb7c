/**
 * The Redis store: per document a stream of updates, the compacted state, its state vector and
 * checkpoints (see `redis-keys.ts`). Appends and compactions are Lua scripts, so any number of
 * server instances can share one Redis.
 *
 * Fan-out goes through Redis, not process memory: an append publishes a notification on the
 * document's channel, and each instance reads the stream from its own cursor, so every instance
 * delivers every update once and in stream order, including after a lost notification. One
 * subscriber connection per instance serves all of its documents; on Redis Cluster, one per master
 * node, with sharded pub/sub (docs/redis-cluster.md).
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis'
import { encodeAwarenessEntries, type AwarenessEntry } from '../../shared/awareness.js'
import { ErrorCode, ProtocolError } from '../../shared/errors.js'
import {
  STREAM_START, compareStreamIds, decodeClockMap, formatEventId, isStreamId, newEpoch,
  type Checkpoint, type ClockMap, type ClockRange, type HistorySnapshot, type LogEntry, type StreamId
} from './history.js'
import { LogStore, documentTooLarge, storeDefaults, type Appended, type CompactionCommit, type FullRead, type ReplayRead, type StoreOptions } from './log-store.js'
import { changesKeys, docIdOfChannel, docKeys, streamPositionsKey, type DocKeys } from './redis-keys.js'
import { snapshotFor, snapshotsToDrop } from './stream-positions.js'
import type { StreamPositions } from './types.js'
import {
  APPEND, CLOSE_PRESENCE, COMMIT_COMPACTION, DELETE, OPEN_PRESENCE, PUBLISH_AWARENESS, READ_AFTER, READ_FULL, SAVE_POSITIONS, TAIL,
  type PublishCommand
} from './redis-scripts.js'
import { silentLogger } from '../logger.js'
import { RedisChangeFeed } from './redis-change-feed.js'

/** The startup nodes of a Redis Cluster, e.g. `{ cluster: ['redis://10.0.0.1:6379', 'redis://10.0.0.2:6379'] }`. */
export interface RedisClusterNodes {
  /** `redis://` URLs of some of the cluster's nodes: the store discovers the others from them. */
  cluster: readonly string[]
}

/** Options of {@link RedisStore}. */
export interface RedisStoreOptions extends Partial<StoreOptions> {
  /**
   * Where documents are kept:
   * - a Redis URL (`redis://host:6379`);
   * - `{ cluster: [url, …] }`, Redis Cluster (7.0 or later) from some of its nodes' URLs;
   * - an ioredis `Redis` or `Cluster` client to share (the store then leaves it open on close).
   */
  redis: string | RedisClusterNodes | Redis | Cluster
  /** Prefix of every key and channel, so several deployments can share one Redis. Default `y-sse:`. */
  prefix?: string
  /** ioredis options for connections the store creates (on a cluster: for every node). */
  redisOptions?: RedisOptions
  /** ioredis cluster options, when `redis` gives cluster nodes (node connections take `redisOptions`). */
  clusterOptions?: Omit<ClusterOptions, 'redisOptions'>
  /**
   * How often the subscriber connection of a single Redis is checked with a `PING`, in ms (default
   * 15 s; 0: never). One left unanswered when the next check is due drops the connection, and
   * ioredis connects again, after which the store reads every open document's stream from its
   * cursor. A connection that went silent without closing (a half-open TCP connection, a middlebox
   * that stopped forwarding) would otherwise leave every open stream waiting for updates, and
   * resumes answered from memory at a standstill.
   */
  subscriberCheckMs?: number
}

/** Updates read per round trip when a subscriber catches up. */
const TAIL_BATCH = 500

/** How long after a failed catch-up read it is tried again. */
const PULL_RETRY_MS = 1000

/** Default of {@link RedisStoreOptions.subscriberCheckMs}. */
const SUBSCRIBER_CHECK_MS = 15_000

/** Scripts by command name, with their key counts (-1: given per call). */
const SCRIPTS = {
  // 4 document keys, 3 more for the change feed on one Redis.
  ysseAppend: { lua: APPEND, keys: -1 },
  ysseReadAfter: { lua: READ_AFTER, keys: 4 },
  ysseReadFull: { lua: READ_FULL, keys: 5 },
  ysseCommitCompaction: { lua: COMMIT_COMPACTION, keys: 5 },
  ysseTail: { lua: TAIL, keys: 2 },
  ysseDelete: { lua: DELETE, keys: -1 },
  ysseSavePositions: { lua: SAVE_POSITIONS, keys: 1 },
  ysseOpenPresence: { lua: OPEN_PRESENCE, keys: 1 },
  ysseClosePresence: { lua: CLOSE_PRESENCE, keys: 1 },
  ysseAwareness: { lua: PUBLISH_AWARENESS, keys: 2 }
} as const

type ScriptName = keyof typeof SCRIPTS
type Reply = Buffer | number | null | Reply[]
type ScriptClient = Record<`${ScriptName}Buffer`, (...args: (string | Buffer | number)[]) => Promise<Reply>>

interface Cursor {
  epoch: string
  id: StreamId
  pulling: boolean
  again: boolean
}

const text = (reply: Reply | undefined): string => (Buffer.isBuffer(reply) ? reply.toString('utf8') : String(reply ?? ''))
const list = (reply: Reply | undefined): Reply[] => (Array.isArray(reply) ? reply : [])
const bytes = (reply: Reply | undefined): Uint8Array => (Buffer.isBuffer(reply) ? new Uint8Array(reply.buffer, reply.byteOffset, reply.length) : new Uint8Array())

const hash = (reply: Reply | undefined): Map<string, string> => {
  const out = new Map<string, string>()
  const items = list(reply)
  for (let i = 0; i + 1 < items.length; i += 2) out.set(text(items[i]), text(items[i + 1]))
  return out
}

const entriesOf = (reply: Reply | undefined): LogEntry[] =>
  list(reply).map(item => {
    const [id, fields] = list(item)
    const values = list(fields)
    return { id: text(id), update: bytes(values[1]) }
  })

const snapshotOf = (meta: Map<string, string>, stateVector: Map<string, string>): HistorySnapshot => {
  const clocks: ClockMap = new Map()
  for (const [client, clock] of stateVector) clocks.set(Number(client), Number(clock))
  return {
    epoch: meta.get('epoch') ?? null,
    head: meta.get('head') ?? STREAM_START,
    compacted: meta.get('compacted') ?? STREAM_START,
    floor: meta.get('floor') ?? STREAM_START,
    stateVector: clocks
  }
}

const checkpointOf = (reply: Reply): Checkpoint => {
  const raw = Buffer.isBuffer(reply) ? reply : Buffer.alloc(0)
  const space = raw.indexOf(0x20)
  return { id: raw.subarray(0, space).toString('utf8'), stateVector: new Uint8Array(raw.subarray(space + 1)) }
}

/** {@link DocumentStore} on Redis or Redis Cluster (ioredis). */
export class RedisStore extends LogStore {
  private readonly redis: Redis | Cluster
  private readonly subscriber: Redis | Cluster
  /** On a cluster, notifications use sharded pub/sub (SPUBLISH, SSUBSCRIBE): see {@link PublishCommand}. */
  private readonly sharded: boolean
  private readonly ownsClient: boolean
  private readonly prefix: string
  private readonly cursors = new Map<string, Cursor>()
  /**
   * Whether the subscriber connection is up: while it is not, notifications are lost and the
   * cursors stand still, so what was delivered says nothing of the store's head. Never set on a
   * cluster, whose sharded subscribers do not report a lost connection: there every resume reads
   * the store.
   */
  private subscribed = false
  /** Checks the subscriber connection ({@link RedisStoreOptions.subscriberCheckMs}); null when it is not checked. */
  private readonly subscriberCheck: NodeJS.Timeout | null = null
  /** How long a `PING` on the subscriber connection may go unanswered. */
  private readonly subscriberAnswerMs: number
  /** The change feed; `undefined` on Redis Cluster (see redis-change-feed.ts). */
  readonly changes: RedisChangeFeed | undefined

  constructor (options: RedisStoreOptions) {
    const { redis, prefix = 'y-sse:', redisOptions, clusterOptions, subscriberCheckMs = SUBSCRIBER_CHECK_MS, ...storeOptions } = options
    super({ ...storeDefaults, logger: silentLogger, ...storeOptions })
    // A Redis that hangs instead of failing must not hang POSTs: no command (none blocks) waits
    // longer than this before the request gets 503.
    const connectionOptions: RedisOptions = { maxRetriesPerRequest: 1, commandTimeout: 10_000, ...redisOptions }
    const shared = redis instanceof Redis || redis instanceof Cluster
    this.ownsClient = !shared
    this.redis = shared
      ? redis
      : typeof redis === 'string' ? new Redis(redis, connectionOptions) : new Cluster([...redis.cluster], { ...clusterOptions, redisOptions: connectionOptions })
    this.sharded = this.redis instanceof Cluster
    const readMessage = (channel: Buffer, message: Buffer): void => this.onMessage(channel.toString('utf8'), message)
    // Notifications sent while a subscriber connection was down are lost: read every stream again
    // once it is back and subscribed.
    const catchUp = (): void => {
      for (const docId of this.cursors.keys()) this.pull(docId)
      this.changes?.notify()
    }
    if (this.redis instanceof Cluster) {
      // ioredis's sharded subscribers: one connection per master, each SSUBSCRIBE sent to the node
      // of the channel's slot, resubscribed after reconnects and slot moves ('subscribersReady').
      this.subscriber = this.redis.duplicate([], { shardedSubscribers: true })
      this.subscriber.on('smessageBuffer', readMessage)
      this.subscriber.on('subscribersReady', catchUp)
    } else {
      // No ready check: its INFO would fail on a connection that a SUBSCRIBE already put in
      // subscriber mode, and ioredis would drop the connection and its subscriptions.
      const subscriber = this.redis.duplicate({ enableReadyCheck: false })
      this.subscriber = subscriber
      subscriber.on('messageBuffer', readMessage)
      // ioredis is ready once it has sent the subscriptions again, not once Redis has taken them:
      // the answer to a PING comes after theirs. Reads of the streams before then could miss an
      // update stored before a subscription was in place.
      subscriber.on('ready', () => {
        void this.answers(subscriber).then(answered => {
          if (!answered) return
          this.subscribed = true
          catchUp()
        })
      })
      subscriber.on('close', () => { this.subscribed = false })
      if (subscriberCheckMs > 0) {
        // One check at a time: a PING still waiting is the one that decides.
        let checking = false
        this.subscriberCheck = setInterval(() => {
          if (subscriber.status !== 'ready' || checking) return
          checking = true
          void this.answers(subscriber).finally(() => { checking = false })
        }, subscriberCheckMs)
        this.subscriberCheck.unref()
      }
    }
    this.subscriberAnswerMs = subscriberCheckMs > 0 ? subscriberCheckMs : SUBSCRIBER_CHECK_MS
    this.prefix = prefix
    this.changes = this.redis instanceof Redis && this.subscriber instanceof Redis
      ? new RedisChangeFeed(this.redis, this.subscriber, changesKeys(prefix), work => this.unavailableOnError(work))
      : undefined
    const publish: PublishCommand = this.sharded ? 'SPUBLISH' : 'PUBLISH'
    for (const [name, { lua, keys }] of Object.entries(SCRIPTS)) {
      const source = typeof lua === 'string' ? lua : lua(publish)
      // A script without a fixed key count takes the count as its first argument (ioredis: no numberOfKeys).
      this.redis.defineCommand(name, keys < 0 ? { lua: source } : { lua: source, numberOfKeys: keys })
    }
    this.redis.on('error', error => this.options.logger.warn('redis error', { error: String(error) }))
    this.subscriber.on('error', error => this.options.logger.warn('redis subscriber error', { error: String(error) }))
  }

  private keys (docId: string): DocKeys {
    return docKeys(this.prefix, docId)
  }

  /** Runs a script. */
  private async script (name: ScriptName, keys: readonly string[], args: readonly (string | Buffer | number)[]): Promise<Reply> {
    const client = this.redis as unknown as ScriptClient
    const call = SCRIPTS[name].keys < 0 ? client[`${name}Buffer`](keys.length, ...keys, ...args) : client[`${name}Buffer`](...keys, ...args)
    return this.unavailableOnError(call)
  }

  protected async appendEntry (docId: string, update: Uint8Array, ranges: readonly ClockRange[]): Promise<Appended> {
    const k = this.keys(docId)
    const rangeArgs = ranges.flatMap(r => [String(r.client), String(r.from), String(r.to)])
    const feed = this.changes?.keys
    const reply = await this.script('ysseAppend', [k.meta, k.log, k.stateVector, k.state, ...(feed === undefined ? [] : [feed.log, feed.meta, feed.docs])], [
      Buffer.from(update.buffer, update.byteOffset, update.length), newEpoch(), k.channel, String(this.options.maxDocBytes),
      docId, String(this.options.changesRetention), feed?.channel ?? '', ...rangeArgs
    ])
    if (!Array.isArray(reply)) throw documentTooLarge(this.options.maxDocBytes)
    const [epoch, id, pendingUpdates, pendingBytes, previous] = reply
    const appended = { epoch: text(epoch), id: text(id), pendingUpdates: Number(pendingUpdates), pendingBytes: Number(pendingBytes) }
    try {
      this.deliverOwn(docId, appended.epoch, text(previous), appended.id, update)
    } catch (error) {
      // Stored is stored: failing the POST now would only make the client append it again.
      this.options.logger.error('delivering an appended update failed', { docId, error: String(error) })
    }
    return appended
  }

  /**
   * Delivers an update appended here at once, when it directly follows what was delivered: local
   * subscribers then get it before its notification has come back from Redis (which is skipped
   * when it does), and before the writer's acknowledgement. Otherwise its notification or a read
   * of the log delivers it, in order, as for any other instance's update.
   */
  private deliverOwn (docId: string, epoch: string, previous: StreamId, id: StreamId, update: Uint8Array): void {
    const cursor = this.cursors.get(docId)
    if (cursor === undefined || cursor.pulling || cursor.epoch !== epoch || cursor.id !== previous) return
    cursor.id = id
    // A copy, as a delivered notification is: the caller's buffer may be reused.
    this.emit(docId, { type: 'update', eventId: formatEventId(epoch, id), update: update.slice() })
  }

  protected async readAfter (docId: string, after: StreamId, maxBytes = Infinity): Promise<ReplayRead> {
    const k = this.keys(docId)
    const limit = Number.isFinite(maxBytes) ? String(maxBytes) : '-1'
    const [meta, stateVector, entries, complete, exists, checkpoints] = list(await this.script('ysseReadAfter', [k.meta, k.log, k.stateVector, k.checkpoints], [after, limit]))
    return {
      snapshot: snapshotOf(hash(meta), hash(stateVector)),
      entries: entriesOf(entries),
      complete: Number(complete) === 1,
      exists: Number(exists) > 0,
      checkpoints: list(checkpoints).map(checkpointOf)
    }
  }

  protected async readFull (docId: string): Promise<FullRead> {
    const k = this.keys(docId)
    const [meta, stateVector, state, entries, checkpoints] = list(await this.script('ysseReadFull', [k.meta, k.log, k.stateVector, k.state, k.checkpoints], []))
    const stateBytes = bytes(state)
    return {
      snapshot: snapshotOf(hash(meta), hash(stateVector)),
      state: stateBytes.length === 0 ? null : stateBytes,
      entries: entriesOf(entries),
      checkpoints: list(checkpoints).map(checkpointOf)
    }
  }

  protected async commitCompaction (docId: string, commit: CompactionCommit): Promise<boolean> {
    const k = this.keys(docId)
    const checkpoint = Buffer.concat([Buffer.from(`${commit.compacted} `), commit.stateVector])
    const clocks = [...decodeClockMap(commit.stateVector)].flatMap(([client, clock]) => [String(client), String(clock)])
    const committed = await this.script('ysseCommitCompaction', [k.meta, k.state, k.log, k.checkpoints, k.stateVector], [
      commit.expectedEpoch, commit.expectedCompacted, commit.compacted, Buffer.from(commit.state), checkpoint,
      String(this.options.checkpointsKept), String(commit.keepTail),
      String(commit.mergedUpdates), String(commit.mergedBytes), ...clocks
    ])
    return Number(committed) === 1
  }

  protected async watch (docId: string): Promise<void> {
    const k = this.keys(docId)
    // Until the head is read, the cursor counts as catching up: a notification that comes first
    // (its reply and the head's travel on different connections) only asks for a read after it.
    const cursor: Cursor = { epoch: '', id: STREAM_START, pulling: true, again: false }
    this.cursors.set(docId, cursor)
    try {
      await this.unavailableOnError(this.sharded ? this.subscriber.ssubscribe(k.channel) : this.subscriber.subscribe(k.channel))
      // The cursor starts at the head read after subscribing: anything later is notified.
      const [epoch, head] = await this.unavailableOnError(this.redis.hmget(k.meta, 'epoch', 'head'))
      cursor.epoch = epoch ?? ''
      cursor.id = head ?? STREAM_START
    } catch (error) {
      if (this.cursors.get(docId) === cursor) this.cursors.delete(docId)
      throw error
    } finally {
      cursor.pulling = false
    }
    if (cursor.again && this.cursors.get(docId) === cursor) this.pull(docId)
  }

  protected async unwatch (docId: string): Promise<void> {
    this.cursors.delete(docId)
    const { channel } = this.keys(docId)
    await (this.sharded ? this.subscriber.sunsubscribe(channel) : this.subscriber.unsubscribe(channel))
  }

  /**
   * Whether the subscriber connection answers a `PING` within {@link subscriberAnswerMs} (and so has
   * taken every command sent before it). One that does not, and is still the same connection, is
   * dropped: ioredis connects again.
   */
  private async answers (subscriber: Redis): Promise<boolean> {
    const stream = subscriber.stream
    let timer: NodeJS.Timeout | undefined
    const answered = await Promise.race([
      subscriber.ping().then(() => true, () => false),
      new Promise<false>(resolve => { timer = setTimeout(() => resolve(false), this.subscriberAnswerMs) })
    ])
    clearTimeout(timer)
    // An answer, or its absence, says something only of the connection the PING went out on.
    if (subscriber.stream !== stream) return false
    if (!answered && subscriber.status === 'ready') {
      this.options.logger.warn('the redis subscriber connection did not answer: connecting again', { timeoutMs: this.subscriberAnswerMs })
      this.subscribed = false
      subscriber.disconnect(true)
    }
    return answered
  }

  protected deliveredHead (docId: string): { epoch: string; id: StreamId } | null {
    const cursor = this.cursors.get(docId)
    return !this.subscribed || cursor === undefined || cursor.pulling || cursor.epoch === '' ? null : { epoch: cursor.epoch, id: cursor.id }
  }

  private onMessage (channel: string, message: Buffer): void {
    if (channel === this.changes?.keys.channel) return this.changes.notify()
    const docId = docIdOfChannel(this.prefix, channel)
    if (docId === null || !this.cursors.has(docId)) return
    switch (message[0]) {
      case 0x55: // 'U': a new update with its bytes and the entry before it
        this.receive(docId, message)
        return
      case 0x75: // 'u': a new update (`u<epoch>\n<ID>`); read the stream from the cursor
        if (!this.delivered(docId, message)) this.pull(docId)
        return
      case 0x61: // 'a': awareness
        this.emit(docId, { type: 'awareness', update: new Uint8Array(message.subarray(1)) })
        return
      case 0x72: // 'r': the document was deleted
        this.reset(docId, '', STREAM_START)
    }
  }

  private reset (docId: string, epoch: string, id: StreamId): void {
    const cursor = this.cursors.get(docId)
    if (cursor === undefined) return
    cursor.epoch = epoch
    cursor.id = id
    this.emit(docId, { type: 'reset' })
  }

  /**
   * A published update (`U<epoch>\n<previous ID>\n<ID>\n<update>`): emitted at once when it follows
   * the cursor directly, ignored when already delivered (appended here, see {@link deliverOwn});
   * otherwise (a message missed, a read in progress) the log is read instead.
   */
  private receive (docId: string, message: Buffer): void {
    const cursor = this.cursors.get(docId)
    if (cursor === undefined) return
    const first = message.indexOf(0x0a, 1)
    const second = message.indexOf(0x0a, first + 1)
    const third = message.indexOf(0x0a, second + 1)
    if (first < 0 || second < 0 || third < 0) return this.pull(docId)
    if (this.delivered(docId, message.subarray(0, third))) return
    const epoch = message.toString('latin1', 1, first)
    if (cursor.pulling || cursor.epoch !== epoch || cursor.id !== message.toString('latin1', first + 1, second)) return this.pull(docId)
    cursor.id = message.toString('latin1', second + 1, third)
    this.emit(docId, { type: 'update', eventId: formatEventId(epoch, cursor.id), update: new Uint8Array(message.subarray(third + 1)) })
  }

  /**
   * Whether a notification's update (`<type><epoch>\n…\n<ID>`, its last line the entry's ID) was
   * already delivered: of the cursor's life of the document, at or before the cursor.
   */
  private delivered (docId: string, head: Buffer): boolean {
    const cursor = this.cursors.get(docId)
    const newline = head.indexOf(0x0a, 1)
    if (cursor === undefined || newline < 0 || cursor.epoch !== head.toString('latin1', 1, newline)) return false
    const id = head.toString('latin1', head.lastIndexOf(0x0a) + 1)
    return isStreamId(id) && compareStreamIds(id, cursor.id) <= 0
  }

  /** Reads the stream after the cursor and emits each update; one reader per document at a time. */
  private pull (docId: string): void {
    const cursor = this.cursors.get(docId)
    if (cursor === undefined) return
    if (cursor.pulling) {
      cursor.again = true
      return
    }
    cursor.pulling = true
    this.catchUpFrom(docId, cursor)
  }

  /**
   * Reads the log from the cursor until it has caught up. A failed read is tried again shortly:
   * nothing else reads what was missed before the document's next notification, which may never
   * come. Until a read succeeds, the cursor counts as catching up.
   */
  private catchUpFrom (docId: string, cursor: Cursor): void {
    this.pullLoop(docId, cursor).then(() => {
      cursor.pulling = false
    }, error => {
      this.options.logger.warn('reading updates failed', { docId, error: String(error) })
      // A cursor no longer in use (the watch ended) is dropped with its retry.
      setTimeout(() => { if (this.cursors.get(docId) === cursor) this.catchUpFrom(docId, cursor) }, PULL_RETRY_MS).unref()
    })
  }

  private async pullLoop (docId: string, cursor: Cursor): Promise<void> {
    const k = this.keys(docId)
    for (;;) {
      cursor.again = false
      const from = { epoch: cursor.epoch, id: cursor.id }
      const [epoch, floor, reply] = list(await this.script('ysseTail', [k.meta, k.log], [from.id, String(TAIL_BATCH)]))
      const entries = entriesOf(reply)
      const currentEpoch = text(epoch)
      if (this.cursors.get(docId) !== cursor) return
      // The document was deleted while the log was read (its reset moved the cursor): what the
      // read brought is of the life before, which the subscribers were told to forget.
      if (cursor.epoch !== from.epoch || cursor.id !== from.id) continue
      // A new life of the document, or history trimmed past the cursor: subscribers must resync.
      if ((cursor.epoch !== '' && currentEpoch !== cursor.epoch) || compareStreamIds(text(floor), cursor.id) > 0) {
        const last = entries.at(-1)
        this.reset(docId, currentEpoch, last?.id ?? text(floor))
        if (last === undefined) return
        continue
      }
      cursor.epoch = currentEpoch
      for (const entry of entries) {
        cursor.id = entry.id
        this.emit(docId, { type: 'update', eventId: formatEventId(currentEpoch, entry.id), update: entry.update })
      }
      if (entries.length < TAIL_BATCH && !cursor.again) return
    }
  }

  async publishAwareness (docId: string, entries: readonly AwarenessEntry[]): Promise<void> {
    const k = this.keys(docId)
    const at = Date.now()
    const stored = entries.flatMap(entry => [String(entry.clientID), entry.state === 'null' ? '' : JSON.stringify({ clock: entry.clock, state: entry.state, at })])
    const message = Buffer.concat([Buffer.from('a'), encodeAwarenessEntries(entries)])
    await this.script('ysseAwareness', [k.awareness, k.channel], [String(this.options.awarenessTimeoutMs * 2), message, ...stored])
  }

  async awareness (docId: string): Promise<AwarenessEntry[]> {
    const k = this.keys(docId)
    const all = await this.unavailableOnError(this.redis.hgetall(k.awareness))
    const oldest = Date.now() - this.options.awarenessTimeoutMs
    const entries: AwarenessEntry[] = []
    const stale: string[] = []
    for (const [clientID, json] of Object.entries(all)) {
      const { clock, state, at } = JSON.parse(json) as { clock: number; state: string; at: number }
      if (at < oldest) stale.push(clientID)
      else entries.push({ clientID: Number(clientID), clock, state })
    }
    if (stale.length > 0) await this.unavailableOnError(this.redis.hdel(k.awareness, ...stale))
    return entries
  }

  async openPresence (docId: string, clientID: number, connectionId: string): Promise<void> {
    const k = this.keys(docId)
    await this.script('ysseOpenPresence', [k.presence], [`${clientID}:${connectionId}`, String(Date.now() + this.options.presenceTtlMs), String(this.options.presenceTtlMs * 2)])
  }

  async closePresence (docId: string, clientID: number, connectionId: string): Promise<boolean> {
    const k = this.keys(docId)
    const open = list(await this.script('ysseClosePresence', [k.presence], [`${clientID}:${connectionId}`, String(Date.now())])).map(text)
    return !open.some(member => member.startsWith(`${clientID}:`))
  }

  async saveStreamPositions (streamKey: string, seq: number, positions: StreamPositions, ttlMs: number): Promise<void> {
    const key = streamPositionsKey(this.prefix, streamKey)
    const seqs = list(await this.script('ysseSavePositions', [key], [String(seq), JSON.stringify(positions), String(ttlMs)]))
    const drop = snapshotsToDrop(seqs.map(s => Number(text(s))))
    if (drop.length > 0) await this.unavailableOnError(this.redis.hdel(key, ...drop.map(String)))
  }

  async streamPositions (streamKey: string, seq: number): Promise<StreamPositions | null> {
    const all = await this.unavailableOnError(this.redis.hgetall(streamPositionsKey(this.prefix, streamKey)))
    const best = snapshotFor(Object.keys(all).map(Number), seq)
    return best === null ? null : JSON.parse(all[String(best)] as string) as StreamPositions
  }

  async deleteDocument (docId: string): Promise<void> {
    const k = this.keys(docId)
    await this.script('ysseDelete', [k.meta, k.log, k.state, k.stateVector, k.checkpoints, k.awareness, k.presence, k.channel], [])
  }

  async ping (): Promise<void> {
    await this.unavailableOnError(this.redis.ping())
  }

  /** Redis failures become `store-unavailable` errors (503), and are counted. */
  private async unavailableOnError<T> (work: Promise<T>): Promise<T> {
    try {
      return await work
    } catch (cause) {
      this.options.observer?.failed()
      throw new ProtocolError(ErrorCode.storeUnavailable, `the document store is unavailable: ${(cause as Error).message}`, { cause })
    }
  }

  protected async release (): Promise<void> {
    if (this.subscriberCheck !== null) clearInterval(this.subscriberCheck)
    this.cursors.clear()
    this.subscriber.disconnect()
    if (this.ownsClient) await this.redis.quit().catch(() => this.redis.disconnect())
  }
}


