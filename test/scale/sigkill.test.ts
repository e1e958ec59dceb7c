import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { EventSource } from 'eventsource'
import { SseProvider } from '../../client/index.js'
import { routes, type SyncEventData } from '../../shared/protocol.js'
import { fromBase64 } from '../../shared/codec.js'
import { startMain, type MainProcess } from '../helpers/main-process.js'
import { startNginx } from '../helpers/nginx.js'
import { redisUrl, uniquePrefix } from '../helpers/redis.js'
import { onCleanup } from '../helpers/server.js'
import { waitFor } from '../helpers/wait.js'

/** A reader through nginx with the `eventsource` package: it reconnects by itself with Last-Event-ID. */
const reader = (url: string, docId: string): { doc: Y.Doc; ids: string[]; syncs: () => number } => {
  const doc = new Y.Doc()
  const ids: string[] = []
  let syncs = 0
  const source = new EventSource(url + routes.events(docId))
  source.addEventListener('sync', event => {
    syncs++
    Y.applyUpdate(doc, fromBase64((JSON.parse(event.data) as SyncEventData).update))
  })
  source.addEventListener('update', event => {
    ids.push(event.lastEventId)
    Y.applyUpdate(doc, fromBase64(event.data))
  })
  onCleanup(async () => source.close())
  return { doc, ids, syncs: () => syncs }
}

describe('an instance killed with SIGKILL behind nginx', () => {
  it('loses no acknowledged update, and no client gets an update twice', async () => {
    const env = { REDIS_URL: redisUrl(), REDIS_PREFIX: uniquePrefix('kill'), LOG_LEVEL: 'info', COMPACT_AFTER_UPDATES: '50' }
    const instances: MainProcess[] = [startMain(env), startMain(env), startMain(env)]
    await waitFor(() => instances.every(i => i.url() !== ''))
    const nginx = await startNginx(instances.map(i => Number(new URL(i.url()).port)))

    const readers = [reader(nginx.url, 'doc'), reader(nginx.url, 'doc'), reader(nginx.url, 'doc')]
    await waitFor(() => readers.every(r => r.syncs() === 1))
    const writers = [0, 1].map(() => {
      const doc = new Y.Doc()
      const provider = new SseProvider(nginx.url, 'doc', doc, { maxBackoffTime: 300 })
      onCleanup(() => provider.destroy())
      return provider
    })
    await Promise.all(writers.map(w => w.whenSynced()))

    let typed = 0
    const type = (count: number): void => {
      for (let i = 0; i < count; i++) {
        const writer = writers[typed % 2] as SseProvider
        const text = writer.doc.getText('t')
        text.insert(text.length, String.fromCharCode(97 + (typed % 26)))
        typed++
      }
    }
    type(100)
    await waitFor(() => writers.every(w => w.unsyncedChanges === 0))
    // Kill one instance in the middle of the traffic, without a chance to say goodbye.
    type(50)
    const victim = instances[1] as MainProcess
    victim.child.kill('SIGKILL')
    await victim.exit
    type(100)

    await waitFor(() => writers.every(w => w.unsyncedChanges === 0 && w.synced), { timeout: 20_000, message: 'writers did not get every update acknowledged' })
    // Each writer has its own updates acknowledged, but may still be receiving the other's.
    const texts = (): string[] => writers.map(w => w.doc.getText('t').toString())
    await waitFor(() => texts().every(t => t.length === 250 && t === texts()[0]), { timeout: 20_000, message: () => `writers hold ${texts().map(t => t.length).join(' and ')} characters` })
    const expected = texts()[0] ?? ''
    expect(expected.length).toBe(250)
    for (const r of readers) {
      await waitFor(() => r.doc.getText('t').toString() === expected, { timeout: 20_000, message: () => `reader has ${r.doc.getText('t').length} of 250` })
      expect(new Set(r.ids).size).toBe(r.ids.length)
    }
    // At least the readers on the killed instance reconnected and resumed.
    expect(readers.some(r => r.syncs() > 1)).toBe(true)
  })
})
