import { DEFAULT_MAX_UPDATE_BYTES } from '../shared/protocol.js'
import type { DocumentStore } from './store/types.js'
import type { Logger } from './logger.js'
import type { Authorize } from './auth.js'
import type { Metrics } from './metrics.js'

/** Options of {@link createSyncServer}; every key has a default in {@link serverDefaults}. */
export interface SyncServerOptions {
  /** Where documents live. Default: a new in-memory store (single process only). */
  store: DocumentStore
  /** Who may read and write which document. Default: everyone, everything. */
  authorize: Authorize
  /** Largest accepted update body, in bytes (413 above). */
  maxUpdateBytes: number
  /** Requests per second per client (token subject, else IP), bursts up to twice that; 0: no limit. */
  rateLimitPerSecond: number
  /** Open event streams per client; 0: no limit. */
  maxStreamsPerClient: number
  /** A request body not received within this time gets 408. */
  bodyTimeoutMs: number
  /** Interval of heartbeat comments on event streams; proxies drop idle streams at ~60 s. */
  heartbeatMs: number
  /** Base reconnection delay sent as `retry:`; each stream adds up to as much again at random. */
  retryMs: number
  /** Bytes of updates held for one slow reader before its stream is closed (it resumes by ID). */
  maxBufferedBytes: number
  /**
   * Origins browsers may call from: `'*'` for any, a list for those only (others get no CORS
   * headers), `null` for no CORS headers at all.
   */
  corsOrigins: '*' | readonly string[] | null
  /** Take the client's IP from `X-Forwarded-For` (only behind a proxy you run). */
  trustProxy: boolean
  /** Prometheus metrics served at `GET /metrics`; `null` serves none. Default: a new {@link Metrics}. */
  metrics: Metrics | null
  /** How long `close()` waits for in-flight requests before closing the store anyway. */
  shutdownTimeoutMs: number
  /** On shutdown, streams are told to reconnect after a random delay below this. */
  drainSpreadMs: number
  logger: Logger
}

/** Defaults of {@link SyncServerOptions} (the store, authorizer, metrics and logger are created when not given). */
export const serverDefaults: Omit<SyncServerOptions, 'store' | 'authorize' | 'metrics' | 'logger'> = {
  maxUpdateBytes: DEFAULT_MAX_UPDATE_BYTES,
  // A provider sends at most one POST per round trip, so even a replayed typing trace on
  // localhost stays below this; a flood does not.
  rateLimitPerSecond: 1000,
  // Enough for a browser with many documents open in several tabs.
  maxStreamsPerClient: 100,
  bodyTimeoutMs: 30_000,
  heartbeatMs: 15_000,
  retryMs: 1_000,
  maxBufferedBytes: 4 * 1024 * 1024,
  corsOrigins: '*',
  trustProxy: false,
  shutdownTimeoutMs: 8_000,
  drainSpreadMs: 3_000
}
