/** How a Redis store turns its channel's notifications into deliveries (the format is in docs/redis-cluster.md). */
import type { Socket } from 'node:net'
import { Redis } from 'ioredis'
import * as Y from 'yjs'
import { describe, expect, it } from 'vitest'
import { RedisStore, type RedisStoreOptions } from '../../server/store/redis-store.js'
import { silentLogger } from '../../server/logger.js'
import { docKeys } from '../../server/store/redis-keys.js'
import { parseEventId } from '../../server/store/history.js'
import type { DocEvent } from '../../server/store/types.js'
import { validateUpdate } from '../../server/validate.js'
import { redisUrl, startRedisServer, uniquePrefix } from '../helpers/redis.js'
import { onCleanup } from '../helpers/server.js'
import { waitFor } from '../helpers/wait.js'

/** The update `change` makes to `doc`. */
const captureUpdate = (doc: Y.Doc, change: () => void): Uint8Array => {
  let captured: Uint8Array | null = null
  const capture = (update: Uint8Array): void => { captured = update }
  doc.on('update', capture)
  change()
  doc.off('update', capture)
  if (captured === null) throw new Error('no update')
  return captured
}

const textUpdate = (doc: Y.Doc, text: string): Uint8Array => captureUpdate(doc, () => doc.getText('t').insert(doc.getText('t').length, text))

/** The store's internals the catch-up tests set their races up on. */
interface Internals {
  script: (name: string, ...rest: unknown[]) => Promise<unknown>
  pull: (docId: string) => void
  subscriber: { stream: Socket; status: string; once(event: 'close', listener: () => void): void }
}

/** Two instances on one Redis prefix, the first following document `d`, its first update delivered. */
const twoInstances = async (name: string, redis = redisUrl(), options: Partial<RedisStoreOptions> = {}) => {
  const prefix = uniquePrefix(name)
  const store = new RedisStore({ redis, prefix, ...options })
  const other = new RedisStore({ redis, prefix })
  onCleanup(() => Promise.all([store.close(), other.close()]).then(() => undefined))
  const events: DocEvent[] = []
  await store.subscribe('d', event => events.push(event))
  const writer = new Y.Doc()
  const append = (on: RedisStore, text: string): Promise<string> => {
    const update = textUpdate(writer, text)
    return on.append('d', { bytes: update, ranges: validateUpdate(update) })
  }
  const first = await append(store, 'first')
  await waitFor(() => events.length === 1)
  const internals = store as unknown as Internals
  return { store, other, events, writer, append, first, prefix, internals, eventIds: () => events.map(e => e.type === 'update' ? e.eventId : e.type) }
}


describe('notifications of a Redis store', () => {
  it('delivers an update carried by a notification only when it follows the delivered position; otherwise reads the log', async () => {
    const prefix = uniquePrefix('notify')
    const store = new RedisStore({ redis: redisUrl(), prefix })
    const publisher = new Redis(redisUrl())
    onCleanup(async () => {
      publisher.disconnect()
      await store.close()
    })
    const events: DocEvent[] = []
    await store.subscribe('d', event => events.push(event))
    const writer = new Y.Doc()
    const first = textUpdate(writer, 'stored')
    const firstId = await store.append('d', { bytes: first, ranges: validateUpdate(first) })
    await waitFor(() => events.length === 1)
    const parsed = parseEventId(firstId)
    if (parsed === null || parsed.epoch === null) throw new Error('bad event ID')

    // A notification whose update does not follow what was delivered (here: forged, after an entry
    // that does not exist) is not taken at its word: the log has nothing new, so nothing is delivered.
    const forged = textUpdate(new Y.Doc(), 'forged')
    const channel = docKeys(prefix, 'd').channel
    await publisher.publish(channel, Buffer.concat([Buffer.from(`U${parsed.epoch}\n1-1\n${Date.now() + 1000}-0\n`), forged]))
    const second = textUpdate(writer, ' and more')
    const secondId = await store.append('d', { bytes: second, ranges: validateUpdate(second) })
    await waitFor(() => events.length >= 2)
    expect(events.map(e => e.type === 'update' ? e.eventId : e.type)).toEqual([firstId, secondId])
  })
})

describe('an update appended on the instance that delivers it', () => {
  it('is delivered once, and its notification neither delivers it again nor makes the instance read the log', async () => {
    // A Redis of its own, and every other client ready before MONITOR starts: ioredis takes a
    // command logged in the same read as MONITOR's answer for a reply ("Command queue state
    // error"), and other test files' clients, or these ones' ready checks, could send one then.
    const redis = await startRedisServer()
    onCleanup(() => redis.stop())
    const { store, other, events, append, first, prefix, eventIds } = await twoInstances('own', redis.url)
    const publisher = new Redis(redis.url)
    onCleanup(async () => { publisher.disconnect() })
    await Promise.all([store.ping(), other.ping(), publisher.ping()])
    // MONITOR runs on a connection of its own, beside the client that asked for it: both go.
    const monitored = new Redis(redis.url)
    const monitor = await monitored.monitor()
    onCleanup(async () => {
      monitor.disconnect()
      monitored.disconnect()
    })
    const reads: string[] = []
    const log = docKeys(prefix, 'd').log
    // A read of what follows the cursor (a catch-up's XRANGE with COUNT; the background merge of
    // a document with readers reads the whole log without one).
    monitor.on('monitor', (_time: string, args: string[]) => {
      if (args[0]?.toUpperCase() === 'XRANGE' && args[1] === log && args.includes('COUNT')) reads.push(args.join(' '))
    })
    const ids = [first]
    for (let i = 0; i < 10; i++) ids.push(await append(store, ` ${i}`))
    // An update too large to travel in its notification is only announced (`u<epoch>\n<ID>`);
    // one already delivered here (forged, as its announcement could come before the append's
    // answer, and then rightly makes the instance read) is not read again either.
    const parsed = parseEventId(ids[5] as string)
    await publisher.publish(docKeys(prefix, 'd').channel, `u${parsed?.epoch ?? ''}\n${parsed?.id ?? ''}`)
    // Notifications arrive in publishing order: once the other instance's update is delivered
    // (from its notification, which follows the cursor), every earlier one has been handled.
    ids.push(await append(other, ' from the other instance'))
    await waitFor(() => events.length === ids.length)
    expect(eventIds()).toEqual(ids)
    expect(reads).toEqual([])
  })
})

describe('catch-up reads of a Redis store', () => {
  it('does not deliver what a read of the log brought from before the document was deleted', async () => {
    const { other, events, append, first, internals, eventIds } = await twoInstances('deleted')
    // The race, set up by hand: the store's read of the log comes back only after the deletion's
    // reset was handled.
    const script = internals.script.bind(internals)
    let release = (): void => {}
    const gate = new Promise<void>(resolve => { release = resolve })
    let held = false
    internals.script = async (name, ...rest) => {
      const reply = await script(name, ...rest)
      if (name === 'ysseTail' && !held) {
        held = true
        await gate
      }
      return reply
    }
    internals.subscriber.stream.pause()
    await append(other, ' second')
    internals.pull('d') // reads ' second', held at the gate
    await waitFor(() => held)
    await other.deleteDocument('d')
    internals.subscriber.stream.resume()
    await waitFor(() => events.some(e => e.type === 'reset'))
    release()
    const after = await append(other, 'a new life')
    await waitFor(() => events.some(e => e.type === 'update' && e.eventId === after))
    expect(eventIds()).toEqual([first, 'reset', after])
  })

  it('delivers an update whose notification came before the head that starts a watch', async () => {
    const prefix = uniquePrefix('watching')
    const store = new RedisStore({ redis: redisUrl(), prefix })
    const other = new RedisStore({ redis: redisUrl(), prefix })
    // A third instance that only reads: its deliveries come from notifications.
    const probe = new RedisStore({ redis: redisUrl(), prefix })
    onCleanup(() => Promise.all([store.close(), other.close(), probe.close()]).then(() => undefined))
    const writer = new Y.Doc()
    const append = (text: string): Promise<string> => {
      const update = textUpdate(writer, text)
      return other.append('d', { bytes: update, ranges: validateUpdate(update) })
    }
    const seenByProbe: DocEvent[] = []
    await probe.subscribe('d', event => seenByProbe.push(event))
    await append('first')
    // The race, set up by hand on the store's main connection: the head its watch starts from is
    // read, and the answer held back until the next update's notification has come.
    const redis = (store as unknown as { redis: { hmget: (...args: unknown[]) => Promise<unknown> } }).redis
    const hmget = redis.hmget.bind(redis)
    let release = (): void => {}
    const gate = new Promise<void>(resolve => { release = resolve })
    let read = false
    redis.hmget = async (...args) => {
      const head = await hmget(...args)
      read = true
      await gate
      return head
    }
    const events: DocEvent[] = []
    const subscribed = store.subscribe('d', event => events.push(event))
    await waitFor(() => read)
    const second = await append(' second')
    // Every instance gets the notification at once: the probe's delivery says it has come.
    await waitFor(() => seenByProbe.length === 2)
    release()
    await subscribed
    await waitFor(() => events.length === 1, { message: () => `${events.length} of 1 delivered` })
    expect(events.map(e => e.type === 'update' ? e.eventId : e.type)).toEqual([second])
  })

  it('reads the log again after a catch-up read failed, without waiting for another notification', async () => {
    const { other, events, append, first, internals, eventIds } = await twoInstances('retry')
    // Set up by hand: the store's notifications held back, and its next read of the log failing
    // once (a timeout, a failover), as after a notification lost on a reconnect.
    const script = internals.script.bind(internals)
    let failed = false
    internals.script = async (name, ...rest) => {
      if (name === 'ysseTail' && !failed) {
        failed = true
        throw new Error('the read failed')
      }
      return script(name, ...rest)
    }
    internals.subscriber.stream.pause()
    const second = await append(other, ' second')
    internals.pull('d')
    await waitFor(() => events.length === 2, { message: () => `${events.length} of 2 delivered` })
    expect(failed).toBe(true)
    internals.subscriber.stream.resume()
    const third = await append(other, ' third')
    await waitFor(() => events.length === 3)
    expect(eventIds()).toEqual([first, second, third])
  })
})

describe('resumes answered by a Redis store', () => {
  it('come from the log, not from the document kept here, for a client ahead of what was delivered here', async () => {
    const { store, other, writer, events, first, internals } = await twoInstances('ahead')
    // The document kept merged here, at what was delivered.
    expect((await store.getDocument('d'))?.eventId).toBe(first)
    internals.subscriber.stream.pause()
    // A deletion leaves the state vector as it was: only the client's event ID says it is ahead.
    const deletion = captureUpdate(writer, () => writer.getText('t').delete(0, 1))
    const deleted = await other.append('d', { bytes: deletion, ranges: validateUpdate(deletion) })
    const sync = await store.sync('d', { lastEventId: deleted, stateVector: Y.encodeStateVector(writer) })
    expect(sync.eventId).toBe(deleted)
    internals.subscriber.stream.resume()
    await waitFor(() => events.length === 2)
  })

  it('answered from memory while a notification is in flight are followed by its update', async () => {
    const { store, other, events, append, first, internals } = await twoInstances('in-flight')
    expect((await store.getDocument('d'))?.eventId).toBe(first)
    internals.subscriber.stream.pause()
    const second = await append(other, ' second')
    // Stored, not yet delivered here: the sync stops at what was, the subscription brings the rest.
    const sync = await store.sync('d', { lastEventId: first })
    expect(sync).toMatchObject({ eventId: first, resume: 'replay' })
    internals.subscriber.stream.resume()
    await waitFor(() => events.length === 2)
    expect(events[1]).toMatchObject({ type: 'update', eventId: second })
  })

  it('come from the log while a catch-up read that failed waits to be tried again', async () => {
    const warnings: string[] = []
    const logger = { ...silentLogger, warn: (message: string) => { warnings.push(message) } }
    const { store, other, events, append, first, internals } = await twoInstances('failed-read', redisUrl(), { logger })
    expect((await store.getDocument('d'))?.eventId).toBe(first)
    let reads = 0
    let failed = false
    const script = internals.script.bind(internals)
    internals.script = async (name, ...rest) => {
      if (name === 'ysseReadAfter') reads++
      if (name === 'ysseTail' && !failed) {
        failed = true
        throw new Error('the read failed')
      }
      return script(name, ...rest)
    }
    internals.subscriber.stream.pause()
    await append(other, ' second')
    internals.pull('d')
    await waitFor(() => warnings.includes('reading updates failed'))
    // The cursor did not catch up: what was delivered here is not the document's head.
    await store.sync('d', { lastEventId: first })
    expect(reads).toBe(1)
    internals.subscriber.stream.resume()
    await waitFor(() => events.length === 2)
  })

  it('come from the log while the subscriber connection is down, and from memory again once it is back', async () => {
    const { store, first, internals } = await twoInstances('subscriber-down')
    expect((await store.getDocument('d'))?.eventId).toBe(first)
    let reads = 0
    const script = internals.script.bind(internals)
    internals.script = async (name, ...rest) => {
      if (name === 'ysseReadAfter') reads++
      return script(name, ...rest)
    }
    await store.sync('d', { lastEventId: first })
    expect(reads).toBe(0)
    // Right after it closed: ioredis connects again only after a delay, and the store counts it as
    // back only once it has answered a PING.
    const closed = new Promise<void>(resolve => internals.subscriber.once('close', () => resolve()))
    internals.subscriber.stream.destroy()
    await closed
    await store.sync('d', { lastEventId: first })
    expect(reads).toBe(1)
    // Back, and caught up by a read of the log: deliveries are live again.
    await waitFor(async () => {
      const before = reads
      await store.sync('d', { lastEventId: first })
      return reads === before
    }, { message: 'resumes still read the log' })
  })
})

describe('the subscriber connection of a Redis store', () => {
  it('is connected again when it goes silent, and what was stored meanwhile is delivered', async () => {
    const prefix = uniquePrefix('silent')
    const store = new RedisStore({ redis: redisUrl(), prefix, subscriberCheckMs: 200 })
    const other = new RedisStore({ redis: redisUrl(), prefix })
    onCleanup(() => Promise.all([store.close(), other.close()]).then(() => undefined))
    const events: DocEvent[] = []
    await store.subscribe('d', event => events.push(event))
    const writer = new Y.Doc()
    const append = async (text: string): Promise<string> => {
      const update = textUpdate(writer, text)
      return other.append('d', { bytes: update, ranges: validateUpdate(update) })
    }
    await append('first')
    await waitFor(() => events.length === 1)
    // Nothing arrives on it any more, and it does not close: only its PING going unanswered tells.
    const internals = store as unknown as Internals
    const silent = internals.subscriber.stream
    silent.pause()
    const second = await append(' second')
    await waitFor(() => events.some(e => e.type === 'update' && e.eventId === second), { message: 'the update stored while the connection was silent never came' })
    expect(internals.subscriber.stream).not.toBe(silent)
  })
})

