/** How the provider acts on HTTP errors: token rotation, stops, backoff, Retry-After. */
import type { Context } from 'koa'
import { describe, expect, it } from 'vitest'
import type { ConnectionError } from '../../client/index.js'
import { BASE_BACKOFF_MS } from '../../client/provider/backoff.js'
import { waitFor } from '../helpers/wait.js'
import { RequestLog, intercept, provider, serverDoc, startServer, uniqueDocId, waitAcked } from './harness.js'

const isEvents = (ctx: Context): boolean => ctx.method === 'GET' && ctx.path.endsWith('/events')

const collectErrors = (p: { on(name: 'connection-error', f: (e: ConnectionError) => void): unknown }): ConnectionError[] => {
  const errors: ConnectionError[] = []
  p.on('connection-error', e => errors.push(e))
  return errors
}

describe('tokens', () => {
  it('refreshes the token after a 401 on the stream and connects with the new one', async () => {
    let valid = 'token-2'
    const server = await startServer({
      before: intercept(ctx => {
        if (ctx.get('authorization') === `Bearer ${valid}`) return false
        ctx.status = 401
        ctx.body = { error: { code: 'unauthorized', message: 'bad token' } }
        return true
      })
    })
    let issued = 0
    const token = async (): Promise<string> => `token-${++issued}`
    const log = new RequestLog()
    // Without the snapshot GET, which would take the first token's 401 before the stream does.
    const p = provider(server, uniqueDocId('auth'), { token, fetch: log.fetch, fetchSnapshot: false })
    const errors = collectErrors(p)
    await p.whenSynced()
    expect(issued).toBe(2)
    expect(log.count('GET', '/events')).toBe(2)
    expect(errors.map(e => [e.status, e.retryIn])).toEqual([[401, 0]])

    // The token rotates while the stream is open: the next POST gets a 401, refreshes and retries.
    valid = 'token-3'
    p.doc.getText('t').insert(0, 'after rotation')
    await waitAcked(p)
    expect(issued).toBe(3)
    expect(log.requests.filter(r => r.method === 'POST' && r.path.endsWith('/updates')).map(r => r.status)).toEqual([401, 200])
    expect((await serverDoc(server, p.docName, { Authorization: 'Bearer token-3' })).getText('t').toString()).toBe('after rotation')
  })
})

describe('stopping', () => {
  for (const status of [403, 404, 204]) {
    it(`stops without retrying on ${status} and says why`, async () => {
      const server = await startServer({
        before: intercept(ctx => {
          if (!isEvents(ctx)) return false
          ctx.status = status
          if (status !== 204) ctx.body = { error: { code: status === 403 ? 'forbidden' : 'not-found', message: `refused with ${status}` } }
          return true
        })
      })
      const log = new RequestLog()
      const p = provider(server, uniqueDocId('stop'), { fetch: log.fetch, connect: false, maxBackoffTime: 20 })
      const errors = collectErrors(p)
      const synced = p.whenSynced()
      await p.connect()
      await expect(synced).rejects.toThrow(String(status))
      expect(errors).toHaveLength(1)
      expect(errors[0]).toMatchObject({ request: 'events', status, retryIn: null })
      if (status !== 204) expect(errors[0]?.message).toBe(`refused with ${status}`)
      expect(p.shouldConnect).toBe(false)
      await waitFor(() => p.status === 'disconnected')
      expect(log.count('GET', '/events')).toBe(1)

      // Local edits are kept for a later connect(), e.g. with other credentials.
      p.doc.getText('t').insert(0, 'kept')
      expect(p.unsyncedChanges).toBe(1)
    })
  }
})

describe('backoff', () => {
  it('backs off with growing, jittered delays while the server fails, then connects', async () => {
    let failures = 6
    const server = await startServer({
      before: intercept(ctx => {
        if (!isEvents(ctx) || failures === 0) return false
        failures--
        ctx.status = 503
        ctx.body = { error: { code: 'store-unavailable', message: 'down' } }
        return true
      })
    })
    const max = 1000
    const p = provider(server, uniqueDocId('backoff'), { maxBackoffTime: max })
    const errors = collectErrors(p)
    await p.whenSynced()
    const delays = errors.map(e => e.retryIn)
    expect(delays).toHaveLength(6)
    delays.forEach((delay, attempt) => {
      expect(delay).toBeGreaterThanOrEqual(0)
      expect(delay).toBeLessThan(Math.min(max, BASE_BACKOFF_MS * 2 ** attempt))
    })
    expect(new Set(delays).size).toBeGreaterThan(1)
  })

  it('honours Retry-After on 429', async () => {
    let refused = false
    const server = await startServer({
      before: intercept(ctx => {
        if (!isEvents(ctx) || refused) return false
        refused = true
        ctx.status = 429
        ctx.set('Retry-After', '1')
        return true
      })
    })
    const p = provider(server, uniqueDocId('429'))
    const errors = collectErrors(p)
    const started = Date.now()
    await p.whenSynced()
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000)
    expect(errors).toHaveLength(1)
    expect(errors[0]).toMatchObject({ status: 429, retryAfterMs: 1000 })
    expect(errors[0]?.retryIn).toBeGreaterThanOrEqual(1000)
  })

  it('retries a POST the server could not store, joined with the edits made meanwhile', async () => {
    let unavailable = 2
    const server = await startServer({
      before: intercept(ctx => {
        if (ctx.method !== 'POST' || !ctx.path.endsWith('/updates') || unavailable === 0) return false
        // The first retry waits a second, so the edits below are surely typed before it goes.
        if (unavailable-- === 2) ctx.set('Retry-After', '1')
        ctx.status = 503
        return true
      })
    })
    const p = provider(server, uniqueDocId('post-retry'), { maxBackoffTime: 200 })
    const errors = collectErrors(p)
    await p.whenSynced()
    const t = p.doc.getText('t')
    t.insert(0, 'eventually')
    // Typed while the failed POST waits for its retry: the retry carries them too.
    await waitFor(() => errors.length === 1)
    t.insert(10, ', all')
    t.delete(0, 1)
    t.insert(0, 'E')
    await waitAcked(p)
    expect(errors.map(e => [e.request, e.status])).toEqual([['updates', 503], ['updates', 503]])
    expect(errors.every(e => typeof e.retryIn === 'number')).toBe(true)
    expect((await serverDoc(server, p.docName)).getText('t').toString()).toBe('Eventually, all')
  })

  it('drops an update the server refuses as such, and heals the server on the next connection', async () => {
    let refuse = true
    const server = await startServer({
      before: intercept(ctx => {
        if (ctx.method !== 'POST' || !ctx.path.endsWith('/updates') || !refuse) return false
        refuse = false
        ctx.status = 413
        ctx.body = { error: { code: 'too-large', message: 'the body exceeds 1 bytes' } }
        return true
      })
    })
    const p = provider(server, uniqueDocId('drop'))
    const errors = collectErrors(p)
    await p.whenSynced()
    p.doc.getText('t').insert(0, 'refused once')
    await waitFor(() => errors.length === 1 && p.unsyncedChanges === 0)
    expect(errors[0]).toMatchObject({ request: 'updates', status: 413, code: 'too-large', retryIn: null })
    expect(p.status).toBe('connected')
    expect((await serverDoc(server, p.docName)).getText('t').toString()).toBe('')
    // The next sync shows the server lacks the content: the provider sends the difference.
    p.disconnect()
    await p.connect()
    await waitAcked(p)
    await waitFor(async () => (await serverDoc(server, p.docName)).getText('t').toString() === 'refused once')
  })

  it('does not storm a server that is down: attempts stay few and spread out', async () => {
    const server = await startServer()
    const log = new RequestLog()
    const docId = uniqueDocId('down')
    const p = provider(server, docId, { fetch: log.fetch, maxBackoffTime: 400 })
    await p.whenSynced()
    await server.sync.close()
    const errors = collectErrors(p)
    await waitFor(() => errors.length >= 8, { timeout: 15_000 })
    // Each attempt waited a full-jitter delay; none went out back to back without one.
    expect(errors.every(e => e.retryIn !== null && e.retryIn < 400)).toBe(true)
    const attempts = log.count('GET', '/events')
    expect(attempts).toBeLessThanOrEqual(errors.length + 2)
  })
})
