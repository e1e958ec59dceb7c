import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import type { Context, Next } from 'koa'
import { SseProvider } from '../../client/index.js'
import { appendUpdate, followDoc, onCleanup, openEvents, startServer, type TestServer } from '../helpers/server.js'
import { startNginx } from '../helpers/nginx.js'
import { uniquePrefix } from '../helpers/redis.js'
import { waitFor } from '../helpers/wait.js'

interface Instance {
  server: TestServer
  /** Requests this instance served, as `METHOD path`. */
  seen: string[]
}

/** Three instances on one Redis prefix, each recording the requests it serves, behind deploy/nginx.conf. */
const cluster = async (): Promise<{ instances: Instance[]; url: string }> => {
  const prefix = uniquePrefix('nginx')
  const instances: Instance[] = []
  for (let i = 0; i < 3; i++) {
    const seen: string[] = []
    const server = await startServer({
      prefix,
      server: { retryMs: 50 },
      before: async (ctx: Context, next: Next) => {
        seen.push(`${ctx.method} ${ctx.path}`)
        await next()
      }
    })
    instances.push({ server, seen })
  }
  const nginx = await startNginx(instances.map(i => i.server.port))
  return { instances, url: nginx.url }
}

describe('behind nginx with deploy/nginx.conf', () => {
  it('streams without buffering and spreads requests over the instances', async () => {
    const { instances, url } = await cluster()
    const reader = await openEvents(url, 'd')
    const doc = followDoc(reader)
    await reader.sync()
    const writer = new Y.Doc()
    const updates: Uint8Array[] = []
    writer.on('update', (u: Uint8Array) => updates.push(u))
    writer.getText('t').insert(0, 'x')
    await appendUpdate(url, 'd', updates[0] as Uint8Array)
    // One small event arrives at once: nginx does not hold it in a buffer.
    await waitFor(() => doc.getText('t').toString() === 'x', { timeout: 3_000, message: 'the update is stuck in a proxy buffer' })
    for (let i = 1; i <= 30; i++) {
      writer.getText('t').insert(0, 'y')
      await appendUpdate(url, 'd', updates[i] as Uint8Array)
    }
    await waitFor(() => doc.getText('t').length === 31)
    const posts = instances.map(i => i.seen.filter(r => r.startsWith('POST')).length)
    expect(posts.filter(n => n > 0).length).toBe(3)
    expect(reader.headers.get('content-type')).toBe('text/event-stream; charset=utf-8')
  })

  it('moves clients to the other instances when one goes away, and they converge', async () => {
    const { instances, url } = await cluster()
    const providers = [0, 1].map(() => {
      const doc = new Y.Doc()
      const provider = new SseProvider(url, 'd', doc, { maxBackoffTime: 500 })
      onCleanup(() => provider.destroy())
      return provider
    })
    await Promise.all(providers.map(p => p.whenSynced()))
    providers[0]?.doc.getText('t').insert(0, 'before ')
    await waitFor(() => providers[1]?.doc.getText('t').toString() === 'before ')
    // Stop the instance that serves the first provider's stream.
    const streaming = instances.find(i => i.seen.some(r => r === 'GET /docs/d/events')) as Instance
    await streaming.server.close()
    providers[0]?.doc.getText('t').insert(7, 'after')
    providers[1]?.doc.getText('t').insert(0, '> ')
    for (const provider of providers) {
      await waitFor(() => provider.doc.getText('t').toString() === '> before after' && provider.unsyncedChanges === 0, {
        timeout: 15_000, message: () => provider.doc.getText('t').toString()
      })
    }
  })
})
