/**
 * The server's entry point, and the only module that reads the environment.
 *
 * PORT (default 8080), HOST (default all interfaces), REDIS_URL (unset: in-memory store),
 * REDIS_PREFIX, LOG_LEVEL (debug|info|warn|error|silent), MAX_UPDATE_BYTES,
 * COMPACT_AFTER_UPDATES, COMPACT_AFTER_BYTES.
 */
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { createJsonLogger, isLogLevel } from './logger.js'
import { createSyncServer } from './index.js'
import { MemoryStore } from './store/memory-store.js'
import { RedisStore } from './store/redis-store.js'
import type { StoreOptions } from './store/log-store.js'
import { serveStatic } from './static.js'

const env = process.env

const integer = (name: string, min = 1): number | undefined => {
  const raw = env[name]
  if (raw === undefined || raw === '') return undefined
  const value = Number(raw)
  if (!Number.isSafeInteger(value) || value < min) {
    process.stderr.write(`${name} must be an integer of at least ${min}, got "${raw}"\n`)
    process.exit(2)
  }
  return value
}

const level = env.LOG_LEVEL ?? 'info'
if (!isLogLevel(level)) {
  process.stderr.write(`LOG_LEVEL must be one of debug, info, warn, error, silent; got "${level}"\n`)
  process.exit(2)
}
const logger = createJsonLogger(level)

const storeOptions: Partial<StoreOptions> = { logger }
const compactAfterUpdates = integer('COMPACT_AFTER_UPDATES')
const compactAfterBytes = integer('COMPACT_AFTER_BYTES')
if (compactAfterUpdates !== undefined) storeOptions.compactAfterUpdates = compactAfterUpdates
if (compactAfterBytes !== undefined) storeOptions.compactAfterBytes = compactAfterBytes

const redisUrl = env.REDIS_URL
const store = redisUrl === undefined || redisUrl === ''
  ? new MemoryStore(storeOptions)
  : new RedisStore({ redis: redisUrl, prefix: env.REDIS_PREFIX ?? 'y-sse:', ...storeOptions })

if (store instanceof MemoryStore) {
  logger.warn('REDIS_URL is not set: using the in-memory store (documents are lost on restart, one instance only)')
}

const maxUpdateBytes = integer('MAX_UPDATE_BYTES')
const sync = createSyncServer({ store, logger, ...(maxUpdateBytes === undefined ? {} : { maxUpdateBytes }) })

// The editor, built by `npm run build` next to this file (dist/app), on the API's origin and port.
const appDir = fileURLToPath(new URL('../app/', import.meta.url))
if (existsSync(appDir + 'index.html')) sync.app.use(serveStatic(appDir))
else logger.warn('the editor is not built: run `npm run build` to serve it', { appDir })

try {
  await store.ping()
} catch (error) {
  logger.error('cannot reach the document store', { error: String(error) })
  process.exit(1)
}

const { url } = await sync.listen(integer('PORT', 0) ?? 8080, env.HOST === '' ? undefined : env.HOST)
logger.info('y-sse listening', { url, store: store instanceof MemoryStore ? 'memory' : 'redis' })

let stopping = false
const stop = (signal: string): void => {
  if (stopping) return
  stopping = true
  logger.info('shutting down', { signal })
  // The last resort: whatever happens, exit within 10 s.
  setTimeout(() => process.exit(1), 10_000).unref()
  sync.close().then(() => process.exit(0), error => {
    logger.error('shutdown failed', { error: String(error) })
    process.exit(1)
  })
}
process.on('SIGTERM', () => stop('SIGTERM'))
process.on('SIGINT', () => stop('SIGINT'))
