/**
 * Error codes of the protocol. Every error response has the JSON body
 * `{"error": {"code": "<code>", "message": "<text>"}}`; clients act on the code and status,
 * people read the message.
 */
export const ErrorCode = {
  badDocId: 'bad-doc-id',
  badEventId: 'bad-event-id',
  badStateVector: 'bad-state-vector',
  badAwarenessId: 'bad-awareness-id',
  badEncoding: 'bad-encoding',
  emptyBody: 'empty-body',
  malformedUpdate: 'malformed-update',
  malformedAwareness: 'malformed-awareness',
  tooLarge: 'too-large',
  documentTooLarge: 'document-too-large',
  unsupportedMediaType: 'unsupported-media-type',
  unauthorized: 'unauthorized',
  forbidden: 'forbidden',
  tooManyRequests: 'too-many-requests',
  requestTimeout: 'request-timeout',
  notFound: 'not-found',
  storeUnavailable: 'store-unavailable',
  shuttingDown: 'shutting-down',
  notImplemented: 'not-implemented',
  internal: 'internal'
} as const

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode]

/** HTTP status of each error code: the one place the mapping lives. */
export const errorStatus: Record<ErrorCode, number> = {
  'bad-doc-id': 400,
  'bad-event-id': 400,
  'bad-state-vector': 400,
  'bad-awareness-id': 400,
  'bad-encoding': 400,
  'empty-body': 400,
  'malformed-update': 400,
  'malformed-awareness': 400,
  'too-large': 413,
  'document-too-large': 413,
  'unsupported-media-type': 415,
  unauthorized: 401,
  forbidden: 403,
  'too-many-requests': 429,
  'request-timeout': 408,
  'not-found': 404,
  'store-unavailable': 503,
  'shutting-down': 503,
  'not-implemented': 501,
  internal: 500
}

/** JSON body of every error response. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string }
}

/** An error with a protocol code; its HTTP status follows from the code. */
export class ProtocolError extends Error {
  readonly code: ErrorCode

  constructor (code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'ProtocolError'
    this.code = code
  }

  /** HTTP status for this error. */
  get status (): number {
    return errorStatus[this.code]
  }

  /** Type guard that also works across realms and bundled copies. */
  static is (value: unknown): value is ProtocolError {
    return value instanceof Error && value.name === 'ProtocolError' && typeof (value as ProtocolError).code === 'string'
  }
}
