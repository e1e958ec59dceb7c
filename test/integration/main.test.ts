import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { appendUpdate, onCleanup, openEvents } from '../helpers/server.js'
import { redisUrl, uniquePrefix } from '../helpers/redis.js'
import { waitFor } from '../helpers/wait.js'

const root = fileURLToPath(new URL('../../', import.meta.url))

interface Running {
  child: ChildProcess
  logs: Record<string, unknown>[]
  url: () => string
  exit: Promise<number | null>
}

/** Starts the built entry point (built by the global set-up) the way `npm start` does, with `env` added. */
const startMain = (env: Record<string, string>): Running => {
  const child = spawn(process.execPath, ['dist/server/main.js'], { cwd: root, env: { ...process.env, PORT: '0', HOST: '127.0.0.1', ...env }, stdio: ['ignore', 'ignore', 'pipe'] })
  const logs: Record<string, unknown>[] = []
  let buffered = ''
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk
    const lines = buffered.split('\n')
    buffered = lines.pop() ?? ''
    // Configuration errors are plain sentences for people, the rest is JSON.
    for (const line of lines) logs.push(line.startsWith('{') ? JSON.parse(line) as Record<string, unknown> : { msg: line })
  })
  const exit = new Promise<number | null>(resolve => child.once('exit', code => resolve(code)))
  onCleanup(async () => {
    child.kill('SIGKILL')
    await exit
  })
  return { child, logs, exit, url: () => String(logs.find(l => l.msg === 'y-sse listening')?.url ?? '') }
}

describe('server/main.ts', () => {
  it('says in its log that it uses the in-memory store when REDIS_URL is unset', async () => {
    const main = startMain({ REDIS_URL: '' })
    await waitFor(() => main.url() !== '', { message: () => JSON.stringify(main.logs) })
    expect(main.logs.some(l => l.level === 'warn' && String(l.msg).includes('in-memory store'))).toBe(true)
    expect((await fetch(main.url() + '/healthz')).status).toBe(200)
  })

  it('serves from Redis and on SIGTERM ends streams and exits 0 within 10 s', async () => {
    const main = startMain({ REDIS_URL: redisUrl(), REDIS_PREFIX: uniquePrefix('main'), LOG_LEVEL: 'info', COMPACT_AFTER_UPDATES: '5' })
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

  it('refuses a bad setting with a clear message and exit code 2', async () => {
    const main = startMain({ COMPACT_AFTER_UPDATES: 'many' })
    expect(await main.exit).toBe(2)
    expect(main.logs.map(l => l.msg)).toContain('COMPACT_AFTER_UPDATES must be an integer of at least 1, got "many"')
  })
})
