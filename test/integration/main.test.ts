import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { appendUpdate, onCleanup, openEvents, postUpdate } from '../helpers/server.js'
import { startMain } from '../helpers/main-process.js'
import { redisUrl, uniquePrefix } from '../helpers/redis.js'
import { startRedisServer } from '../helpers/redis-process.js'
import { waitFor } from '../helpers/wait.js'

describe('server/main.ts', () => {
  it('says in its log that it uses the in-memory store when REDIS_URL is unset', async () => {
    const main = startMain({ REDIS_URL: '' })
    await waitFor(() => main.url() !== '', { message: () => JSON.stringify(main.logs) })
    expect(main.logs.some(l => l.level === 'warn' && String(l.msg).includes('in-memory store'))).toBe(true)
    expect((await fetch(main.url() + '/healthz')).status).toBe(200)
  })

  it('serves from Redis and on SIGTERM ends streams and exits 0 within 10 s', async () => {
    const main = startMain({ REDIS_URL: redisUrl(), REDIS_PREFIX: uniquePrefix('main'), LOG_LEVEL: 'info', COMPACT_AFTER_UPDATES: '5', MERGED_DOCS_BYTES: '0' })
    await waitFor(() => main.url() !== '', { message: () => JSON.stringify(main.logs) })
    expect(main.logs.find(l => l.msg === 'y-sse listening')?.store).toBe('redis')
    const doc = new Y.Doc()
    doc.getText('t').insert(0, 'kept')
    await appendUpdate(main.url(), 'd', Y.encodeStateAsUpdate(doc))
    const reader = await openEvents(main.url(), 'd')
    await reader.sync()
    const started = Date.now()
    main.child.kill('SIGTERM')
    expect(await main.exit).toBe(0)
    expect(Date.now() - started).toBeLessThan(10_000)
    await waitFor(() => reader.ended)
  })

  it('folds repeated warnings while Redis is down, and writes their count when it stops', async () => {
    const redis = await startRedisServer()
    onCleanup(() => redis.stop())
    const main = startMain({ REDIS_URL: redis.url })
    await waitFor(() => main.url() !== '', { message: () => JSON.stringify(main.logs) })
    const doc = new Y.Doc()
    doc.getText('t').insert(0, 'kept')
    const update = Y.encodeStateAsUpdate(doc)
    await appendUpdate(main.url(), 'd', update)
    await redis.stop()
    const failed = await Promise.all(Array.from({ length: 30 }, async () => (await postUpdate(main.url(), 'd', update)).status))
    expect(new Set(failed)).toEqual(new Set([503]))
    const unavailable = (): Record<string, unknown>[] => main.logs.filter(l => String(l.msg).startsWith('the document store is unavailable'))
    await waitFor(() => unavailable().length > 0)
    main.child.kill('SIGTERM')
    await main.exit
    const [first, folded] = unavailable()
    expect(unavailable()).toHaveLength(2)
    expect(first?.repeated).toBeUndefined()
    expect(folded).toMatchObject({ msg: `${String(first?.msg)} (repeated)`, level: 'warn', repeated: 29 })
  })

  it('refuses a bad setting with a clear message and exit code 2', async () => {
    const main = startMain({ COMPACT_AFTER_UPDATES: 'many' })
    expect(await main.exit).toBe(2)
    expect(main.logs.map(l => l.msg)).toContain('COMPACT_AFTER_UPDATES must be an integer of at least 1, got "many"')
  })

  it('turns on JWT auth, CORS allow-list and limits from the environment, and logs JSON lines with pino', async () => {
    const main = startMain({ AUTH_JWT_SECRET: 'a-secret-for-the-entry-point-test-1234', CORS_ORIGINS: 'https://app.example', MAX_STREAMS_PER_CLIENT: '1', RATE_LIMIT_PER_SECOND: '0' })
    await waitFor(() => main.url() !== '', { message: () => JSON.stringify(main.logs) })
    const listening = main.logs.find(l => l.msg === 'y-sse listening')
    expect(listening).toMatchObject({ level: 'info', auth: 'jwt', http2: false })
    expect(typeof listening?.time).toBe('string')
    const res = await fetch(main.url() + '/docs/d', { headers: { origin: 'https://app.example' } })
    expect(res.status).toBe(401)
    expect(res.headers.get('access-control-allow-origin')).toBe('https://app.example')
    expect((await fetch(main.url() + '/metrics')).status).toBe(200)
  })

  it('refuses half a TLS configuration', async () => {
    const main = startMain({ TLS_CERT: '/nonexistent/cert.pem' })
    expect(await main.exit).toBe(2)
    expect(main.logs.some(l => /^TLS_CERT: cannot read \/nonexistent\/cert.pem/.test(String(l.msg)))).toBe(true)
  })
})
