/**
 * The server's entry point, and the only module that reads the environment (see the README's
 * configuration table for every variable).
 */
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { createJsonLogger, isLogLevel } from './logger.js'
import { createSyncServer, type SyncServerOptions } from './index.js'
import { MemoryStore } from './store/memory-store.js'
import { RedisStore } from './store/redis-store.js'
import type { StoreOptions } from './store/log-store.js'
import { createJwtAuthorizer, type JwtKey } from './auth.js'
import { Metrics } from './metrics.js'
import { serveStatic } from './static.js'

const env = process.env

/** Stops with a sentence for people: a configuration mistake is not a crash. */
const refuse = (message: string): never => {
  process.stderr.write(message + '\n')
  process.exit(2)
}

const text = (name: string): string | undefined => {
  const raw = env[name]
  return raw === undefined || raw === '' ? undefined : raw
}

const integer = (name: string, min = 1): number | undefined => {
  const raw = text(name)
  if (raw === undefined) return undefined
  const value = Number(raw)
  if (!Number.isSafeInteger(value) || value < min) refuse(`${name} must be an integer of at least ${min}, got "${raw}"`)
  return value
}

const file = (name: string): string | undefined => {
  const path = text(name)
  if (path === undefined) return undefined
  try {
    return readFileSync(path, 'utf8')
  } catch (error) {
    return refuse(`${name}: cannot read ${path}: ${(error as Error).message}`)
  }
}

const level = text('LOG_LEVEL') ?? 'info'
if (!isLogLevel(level)) refuse(`LOG_LEVEL must be one of debug, info, warn, error, silent; got "${level}"`)
const logger = createJsonLogger(level as Parameters<typeof createJsonLogger>[0])
const metrics = new Metrics()

const storeOptions: Partial<StoreOptions> = { logger, observer: metrics }
const compactAfterUpdates = integer('COMPACT_AFTER_UPDATES')
const compactAfterBytes = integer('COMPACT_AFTER_BYTES')
const maxDocBytes = integer('MAX_DOC_BYTES', 0)
if (compactAfterUpdates !== undefined) storeOptions.compactAfterUpdates = compactAfterUpdates
if (compactAfterBytes !== undefined) storeOptions.compactAfterBytes = compactAfterBytes
if (maxDocBytes !== undefined) storeOptions.maxDocBytes = maxDocBytes
const changesRetention = integer('CHANGES_RETENTION')
if (changesRetention !== undefined) storeOptions.changesRetention = changesRetention
const mergedDocsBytes = integer('MERGED_DOCS_BYTES', 0)
if (mergedDocsBytes !== undefined) storeOptions.mergedDocsBytes = mergedDocsBytes

const redisUrl = text('REDIS_URL')
const clusterNodes = text('REDIS_CLUSTER_NODES')?.split(',').map(node => node.trim()).filter(node => node !== '')
if (redisUrl !== undefined && clusterNodes !== undefined) refuse('set REDIS_URL or REDIS_CLUSTER_NODES, not both')
const redis = clusterNodes !== undefined ? { cluster: clusterNodes } : redisUrl
const store = redis === undefined
  ? new MemoryStore(storeOptions)
  : new RedisStore({ redis, prefix: text('REDIS_PREFIX') ?? 'y-sse:', ...storeOptions })
if (store instanceof MemoryStore) {
  logger.warn('REDIS_URL is not set: using the in-memory store (documents are lost on restart, one instance only)')
}

const options: Partial<SyncServerOptions> = { store, logger, metrics, trustProxy: text('TRUST_PROXY') === '1' }
const maxUpdateBytes = integer('MAX_UPDATE_BYTES')
const rateLimitPerSecond = integer('RATE_LIMIT_PER_SECOND', 0)
const maxStreamsPerClient = integer('MAX_STREAMS_PER_CLIENT', 0)
if (maxUpdateBytes !== undefined) options.maxUpdateBytes = maxUpdateBytes
if (rateLimitPerSecond !== undefined) options.rateLimitPerSecond = rateLimitPerSecond
if (maxStreamsPerClient !== undefined) options.maxStreamsPerClient = maxStreamsPerClient
const corsOrigins = text('CORS_ORIGINS')
if (corsOrigins !== undefined) options.corsOrigins = corsOrigins === '*' ? '*' : corsOrigins.split(',').map(origin => origin.trim())

const secret = text('AUTH_JWT_SECRET')
const publicKey = file('AUTH_JWT_PUBLIC_KEY_FILE') ?? text('AUTH_JWT_PUBLIC_KEY')
if (secret !== undefined && publicKey !== undefined) refuse('set AUTH_JWT_SECRET or AUTH_JWT_PUBLIC_KEY, not both')
const algorithm = text('AUTH_JWT_ALGORITHM') ?? 'ES256'
if (algorithm !== 'ES256' && algorithm !== 'RS256') refuse(`AUTH_JWT_ALGORITHM must be ES256 or RS256, got "${algorithm}"`)
const jwtKey: JwtKey | undefined = secret !== undefined
  ? { secret }
  : publicKey !== undefined ? { publicKey, algorithm: algorithm as 'ES256' | 'RS256' } : undefined
if (jwtKey !== undefined) {
  try {
    options.authorize = await createJwtAuthorizer(jwtKey)
  } catch (error) {
    refuse(`AUTH_JWT_PUBLIC_KEY is not a PEM public key for ${algorithm}: ${(error as Error).message}`)
  }
}

const tlsCert = file('TLS_CERT')
const tlsKey = file('TLS_KEY')
if ((tlsCert === undefined) !== (tlsKey === undefined)) refuse('set both TLS_CERT and TLS_KEY (PEM file paths), or neither')

const sync = createSyncServer(options)

// The editor, built by `npm run build` next to this file (dist/app), on the API's origin and port.
const appDir = fileURLToPath(new URL('../app/', import.meta.url))
if (existsSync(appDir + 'index.html')) sync.app.use(serveStatic(appDir))
else logger.warn('the editor is not built: run `npm run build` to serve it', { appDir })

/** Exits with the counts of repeated log lines written first (they are held for up to 10 s). */
const exit = (code: number): never => {
  logger.flush()
  return process.exit(code)
}

try {
  await store.ping()
} catch (error) {
  logger.error('cannot reach the document store', { error: String(error) })
  exit(1)
}

const tls = tlsCert !== undefined && tlsKey !== undefined ? { cert: tlsCert, key: tlsKey } : undefined
const { url } = await sync.listen(integer('PORT', 0) ?? 8080, text('HOST'), tls)
logger.info('y-sse listening', {
  url,
  store: store instanceof MemoryStore ? 'memory' : clusterNodes !== undefined ? 'redis-cluster' : 'redis',
  auth: jwtKey === undefined ? 'none' : 'jwt',
  http2: tls !== undefined
})

let stopping = false
const stop = (signal: string): void => {
  if (stopping) return
  stopping = true
  logger.info('shutting down', { signal })
  // The last resort: whatever happens, exit within 10 s.
  setTimeout(() => exit(1), 10_000).unref()
  sync.close().then(() => exit(0), error => {
    logger.error('shutdown failed', { error: String(error) })
    exit(1)
  })
}
process.on('SIGTERM', () => stop('SIGTERM'))
process.on('SIGINT', () => stop('SIGINT'))
