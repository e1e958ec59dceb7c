import { DEFAULT_MAX_UPDATE_BYTES } from '../shared/protocol.js'
import type { DocumentStore } from './store/types.js'
import type { Logger } from './logger.js'

/** Options of {@link createSyncServer}; every key has a default in {@link serverDefaults}. */
export interface SyncServerOptions {
  /** Where documents live. Default: a new in-memory store (single process only). */
  store: DocumentStore
  /** Largest accepted update body, in bytes (413 above). */
  maxUpdateBytes: number
  /** Interval of heartbeat comments on event streams; proxies drop idle streams at ~60 s. */
  heartbeatMs: number
  /** Base reconnection delay sent as `retry:`; each stream adds up to as much again at random. */
  retryMs: number
  /** Bytes of updates held for one slow reader before its stream is closed (it resumes by ID). */
  maxBufferedBytes: number
  /** `Access-Control-Allow-Origin` for browsers on other origins; `null` sends no CORS headers. */
  corsOrigin: string | null
  /** How long `close()` waits for in-flight requests before closing the store anyway. */
  shutdownTimeoutMs: number
  logger: Logger
}

/** Defaults of {@link SyncServerOptions} (the store and logger are created when not given). */
export const serverDefaults: Omit<SyncServerOptions, 'store' | 'logger'> = {
  maxUpdateBytes: DEFAULT_MAX_UPDATE_BYTES,
  heartbeatMs: 15_000,
  retryMs: 1_000,
  maxBufferedBytes: 4 * 1024 * 1024,
  corsOrigin: '*',
  shutdownTimeoutMs: 8_000
}
