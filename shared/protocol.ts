/**
 * The y-sse wire protocol, version 1: routes, event names, headers and limits shared by the
 * server and every client. Dependency-free on purpose: both sides import it. The prose contract
 * lives in docs/protocol.md; this module is its executable half.
 */

/** Protocol version, for diagnostics and future negotiation. */
export const PROTOCOL_VERSION = 1

/** Document IDs: 1–128 characters of the RFC 3986 unreserved set. */
export const DOC_ID_PATTERN = /^[A-Za-z0-9._~-]{1,128}$/

/** Event IDs are opaque to clients: at most 128 bytes of CORS-safe characters. */
export const EVENT_ID_PATTERN = /^[A-Za-z0-9._-]{1,128}$/

/** @returns whether `docId` is a well-formed document ID. */
export const isValidDocId = (docId: string): boolean => DOC_ID_PATTERN.test(docId)

/** @returns whether `eventId` is a well-formed event ID. */
export const isValidEventId = (eventId: string): boolean => EVENT_ID_PATTERN.test(eventId)

/** Paths of the protocol's routes, relative to the server's base URL. */
export const routes = {
  updates: (docId: string): string => `/docs/${encodeURIComponent(docId)}/updates`,
  events: (docId: string): string => `/docs/${encodeURIComponent(docId)}/events`,
  awareness: (docId: string): string => `/docs/${encodeURIComponent(docId)}/awareness`,
  document: (docId: string): string => `/docs/${encodeURIComponent(docId)}`,
  /** Several documents on one stream: `?docs=a,b,c`. */
  multiplexedEvents: (): string => '/events',
  /** Every document's changes as one stream: `?prefix=`. */
  changes: (): string => '/changes',
  health: (): string => '/healthz'
} as const

/** Names of the SSE events the server sends on `GET /docs/:docId/events`. */
export const SseEvent = {
  /** First event of every stream: brings the client from its resume point to the head. */
  sync: 'sync',
  /** One stored update (or several coalesced for a slow reader); carries an `id:`. */
  update: 'update',
  /** Presence; never carries an `id:`, so it never moves the resume point. */
  awareness: 'awareness'
} as const

/** How the server built the `update` of a sync event. */
export type ResumeKind =
  /** The exact updates after the client's event ID, replayed from the retained log. */
  | 'replay'
  /** A diff against the state vector of a compaction checkpoint at or before the client's event ID. */
  | 'checkpoint'
  /** A diff against the state vector the client sent (`sv`). */
  | 'state-vector'
  /** The whole document: the resume point was absent, unknown or from an earlier life of the document. */
  | 'full'

/** JSON payload of the `sync` event. */
export interface SyncEventData {
  /** Base64 Yjs update (v1) that brings a client at the resume point up to the head. */
  update: string
  /** Base64 Yjs state vector of the server's state at the head. */
  stateVector: string
  /** How `update` was made. */
  resume: ResumeKind
}

/** JSON body of a successful `POST /docs/:docId/updates`. */
export interface PostUpdateResponse {
  /** Event ID of the stored update; the stream delivers it under the same ID. */
  eventId: string
}

/** Request headers and query parameters the protocol reads. */
export const Param = {
  lastEventIdHeader: 'last-event-id',
  lastEventId: 'lastEventId',
  stateVector: 'sv',
  awareness: 'awareness',
  /** The documents of a multiplexed stream, comma-separated. */
  docs: 'docs',
  /** Per document of a multiplexed stream, in the order of `docs`: its own last event ID (empty for none). */
  lastEventIds: 'lastEventIds',
  /** Per document of a multiplexed stream, in the order of `docs`: its state vector, base64url (empty for none). */
  stateVectors: 'svs',
  /** `GET /docs/:docId?missing=empty`: a document never written is the empty document, not a 404. */
  missing: 'missing',
  /** `GET /docs/:docId?encoding=v2`: the state in Yjs's update format v2, marked by {@link UPDATE_ENCODING_HEADER}. */
  encoding: 'encoding'
} as const

/** Yjs's two update formats: v1 (`Y.applyUpdate`) and v2 (`Y.applyUpdateV2`, smaller for text). */
export type UpdateEncoding = 'v1' | 'v2'

/**
 * Response header of `GET /docs/:docId` naming the body's update format when it is not v1: a
 * client applies v2 only when the server says so (a server that ignores `encoding` sends v1).
 */
export const UPDATE_ENCODING_HEADER = 'X-Yjs-Encoding'

/** Most documents one multiplexed stream (`GET /events`) may carry. */
export const MAX_STREAM_DOCS = 100

/** Content type of update and awareness bodies. */
export const BINARY_CONTENT_TYPE = 'application/octet-stream'

/** Content type of the event stream. */
export const EVENT_STREAM_CONTENT_TYPE = 'text/event-stream'

/** Default maximum size of one posted update, in bytes (servers may configure another). */
export const DEFAULT_MAX_UPDATE_BYTES = 10 * 1024 * 1024

/** Maximum size of one posted awareness update, in bytes. */
export const MAX_AWARENESS_BYTES = 64 * 1024

/** Names of the SSE events of `GET /changes`. */
export const ChangesEvent = {
  /** A stored update of one document; `id:` is the feed cursor. */
  change: 'change',
  /** The feed cannot resume from the reader's cursor: re-read the listed documents in full. */
  reset: 'reset'
} as const

/** JSON payload of a `change` event. */
export interface ChangeEventData {
  docId: string
  /** The document's event ID of the stored update. */
  eventId: string
}

/** JSON payload of a `reset` event. */
export interface ResetEventData {
  /** Documents (under the stream's prefix) that may have changed since the reader's cursor. */
  docs: string[]
}

/** The query parameter of `GET /changes` that keeps documents whose ID starts with it. */
export const CHANGES_PREFIX_PARAM = 'prefix'
