import * as Y from 'yjs'
import { describe, expect, it } from 'vitest'
import { watchChanges, type ChangeNotice } from '../../client/index.js'
import { createJwtAuthorizer, issueToken } from '../../server/index.js'
import { appendUpdate, onCleanup, startServer } from '../helpers/server.js'
import { waitFor } from '../helpers/wait.js'

const textUpdate = (text: string): Uint8Array => {
  const doc = new Y.Doc()
  doc.getText('t').insert(0, text)
  return Y.encodeStateAsUpdate(doc)
}

/** Follows the feed with the client library, recording every notice, until the test ends. */
const follow = (url: string, options: Parameters<typeof watchChanges>[1] = {}): { notices: ChangeNotice[]; stop: () => Promise<void> } => {
  const abort = new AbortController()
  const notices: ChangeNotice[] = []
  const running = (async () => {
    for await (const notice of watchChanges(url, { ...options, maxBackoffTime: 200, signal: abort.signal })) notices.push(notice)
  })()
  const stop = async (): Promise<void> => {
    abort.abort()
    await running
  }
  onCleanup(stop)
  return { notices, stop }
}

const changesOf = (notices: ChangeNotice[]): Extract<ChangeNotice, { type: 'change' }>[] =>
  notices.filter((n): n is Extract<ChangeNotice, { type: 'change' }> => n.type === 'change')

describe('GET /changes', () => {
  it('delivers every change from two instances in each document\'s order, once, across a reconnect and a restart', async () => {
    const a = await startServer()
    const b = await startServer({ prefix: a.prefix })
    const expected = new Map<string, string[]>()
    const write = async (round: number): Promise<void> => {
      await Promise.all(Array.from({ length: 12 }, async (_, i) => {
        const docId = `doc-${i}`
        const server = (i + round) % 2 === 0 ? a : b
        for (let n = 0; n < 3; n++) {
          const eventId = await appendUpdate(server.url, docId, textUpdate(`${round}.${n}`))
          expected.set(docId, [...(expected.get(docId) ?? []), eventId])
        }
      }))
    }
    const first = follow(a.url)
    await waitFor(() => first.notices.length > 0)
    expect(first.notices[0]).toMatchObject({ type: 'reset', docs: [] })
    await write(0)
    await waitFor(() => changesOf(first.notices).length === 36)
    await first.stop()
    // Across a reconnect: changes made while nobody listened arrive on resume.
    await write(1)
    const cursor = first.notices.at(-1)?.cursor
    const second = follow(a.url, { lastEventId: cursor })
    await waitFor(() => changesOf(second.notices).length === 36)
    // Across a restart of the server the reader is connected to: it reconnects by itself.
    await a.restart()
    await write(2)
    await waitFor(() => changesOf(second.notices).length === 72, { message: () => `${changesOf(second.notices).length} changes` })
    const seen = new Map<string, string[]>()
    for (const { docId, eventId } of [...changesOf(first.notices), ...changesOf(second.notices)]) seen.set(docId, [...(seen.get(docId) ?? []), eventId])
    expect(seen).toEqual(expected)
    expect(second.notices.every(n => n.type === 'change')).toBe(true)
  })

  it('filters by prefix and answers a cursor older than the retained feed with a reset naming the documents', async () => {
    const server = await startServer({ store: { changesRetention: 5 } })
    const first = follow(server.url, { prefix: 'team-' })
    await waitFor(() => first.notices.length > 0)
    await appendUpdate(server.url, 'team-a', textUpdate('a'))
    await appendUpdate(server.url, 'other', textUpdate('o'))
    await waitFor(() => first.notices.length === 2)
    expect(first.notices[1]).toMatchObject({ type: 'change', docId: 'team-a' })
    await first.stop()
    const cursor = first.notices[1]?.cursor
    for (let i = 0; i < 6; i++) await appendUpdate(server.url, `team-${i % 3}`, textUpdate(String(i)))
    await appendUpdate(server.url, 'other', textUpdate('o'))
    const second = follow(server.url, { prefix: 'team-', lastEventId: cursor })
    await waitFor(() => second.notices.length > 0)
    const reset = second.notices[0]
    expect(reset?.type).toBe('reset')
    expect(reset?.type === 'reset' ? reset.docs.sort() : []).toEqual(['team-0', 'team-1', 'team-2', 'team-a'])
    await appendUpdate(server.url, 'team-b', textUpdate('b'))
    await waitFor(() => second.notices.some(n => n.type === 'change' && n.docId === 'team-b'))
  })

  it('gives a cursor of another feed (a restarted memory store) a reset, and refuses bad cursors and prefixes', async () => {
    const server = await startServer({ memory: true })
    await appendUpdate(server.url, 'x', textUpdate('x'))
    const first = follow(server.url)
    await waitFor(() => first.notices.length > 0)
    expect(first.notices[0]).toMatchObject({ type: 'reset', docs: ['x'] })
    await first.stop()
    await server.restart()
    const second = follow(server.url, { lastEventId: first.notices[0]?.cursor })
    await waitFor(() => second.notices.length > 0)
    expect(second.notices[0]).toMatchObject({ type: 'reset', docs: [] })
    expect((await fetch(`${server.url}/changes?lastEventId=nope`)).status).toBe(400)
    expect((await fetch(`${server.url}/changes?prefix=a/b`)).status).toBe(400)
    expect((await fetch(`${server.url}/changes`, { method: 'POST' })).status).toBe(405)
  })

  it('needs a token that covers the whole prefix', async () => {
    const secret = 'changes-secret'
    const server = await startServer({ server: { authorize: await createJwtAuthorizer({ secret }) } })
    const token = (docs: string[]): Promise<string> => issueToken({ secret }, { docs, access: 'read', ttlSeconds: 60 })
    const status = async (prefix: string, docs: string[] | null): Promise<number> => {
      const abort = new AbortController()
      const headers: Record<string, string> = docs === null ? {} : { authorization: `Bearer ${await token(docs)}` }
      const res = await fetch(`${server.url}/changes?prefix=${prefix}`, { headers, signal: abort.signal })
      abort.abort()
      return res.status
    }
    expect(await status('team-', null)).toBe(401)
    expect(await status('team-', ['team-*'])).toBe(200)
    expect(await status('team-', ['*'])).toBe(200)
    expect(await status('team-x', ['team-*'])).toBe(200)
    expect(await status('', ['team-*'])).toBe(403)
    expect(await status('team-', ['team-a'])).toBe(403)
    expect(await status('team-', ['team-a*'])).toBe(403)
  })
})
