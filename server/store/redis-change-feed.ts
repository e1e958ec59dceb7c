/**
 * The change feed of {@link RedisStore} on one Redis: a stream per prefix, appended by the APPEND
 * script itself (redis-scripts.ts). Not on Redis Cluster: the feed's keys cannot share a slot with
 * every document, so no script could write both atomically.
 */
import type { Redis } from 'ioredis'
import type { StreamId } from './history.js'
import type { ChangeFeed, FeedEntry, FeedRead } from './change-feed.js'
import type { ChangesKeys } from './redis-keys.js'
import { READ_CHANGES } from './redis-scripts.js'

type Reply = string | number | null | Reply[]

const text = (reply: Reply | undefined): string => String(reply ?? '')

export class RedisChangeFeed implements ChangeFeed {
  private readonly listeners = new Set<() => void>()

  /**
   * @param subscriber - the store's subscriber connection; the store hands this feed's channel's
   *   messages and its reconnections to {@link notify}.
   * @param guard - the store's error handling for Redis calls.
   */
  constructor (
    private readonly redis: Redis,
    private readonly subscriber: Redis,
    readonly keys: ChangesKeys,
    private readonly guard: <T>(work: Promise<T>) => Promise<T>
  ) {
    redis.defineCommand('ysseReadChanges', { lua: READ_CHANGES, numberOfKeys: 2 })
  }

  async read (after: StreamId, count: number): Promise<FeedRead> {
    const call = (this.redis as unknown as { ysseReadChanges: (...args: string[]) => Promise<Reply> })
      .ysseReadChanges(this.keys.log, this.keys.meta, after, String(count))
    const [epoch, trimmed, head, entries] = await this.guard(call) as Reply[]
    return {
      epoch: text(epoch) === '' ? null : text(epoch),
      trimmed: text(trimmed),
      head: text(head),
      entries: (entries as Reply[]).map((item): FeedEntry => {
        const [id, fields] = item as [Reply, Reply[]]
        const values = new Map<string, string>()
        for (let i = 0; i + 1 < fields.length; i += 2) values.set(text(fields[i]), text(fields[i + 1]))
        return { id: text(id), docId: values.get('d') ?? '', eventId: values.get('e') ?? '' }
      })
    }
  }

  async changedDocs (sinceMs: number | null): Promise<string[]> {
    return this.guard(this.redis.zrangebyscore(this.keys.docs, sinceMs ?? '-inf', '+inf'))
  }

  async watch (listener: () => void): Promise<() => void> {
    const own = (): void => listener()
    if (this.listeners.size === 0) await this.guard(this.subscriber.subscribe(this.keys.channel))
    this.listeners.add(own)
    return () => {
      if (!this.listeners.delete(own) || this.listeners.size > 0) return
      this.subscriber.unsubscribe(this.keys.channel).catch(() => {
        // The subscriber is closing or reconnecting: a stale subscription only costs a wasted read.
      })
    }
  }

  /** A change was published, or notifications may have been lost: every watcher reads again. */
  notify (): void {
    for (const listener of this.listeners) listener()
  }
}
