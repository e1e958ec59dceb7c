/**
 * Reads one `GET /docs/:docId/events` (or multiplexed `GET /events`) response with
 * eventsource-parser and hands its events to the provider. Fetch-based rather than `EventSource`, so the provider can send headers, read status
 * codes and choose its own resume point.
 */
import { createParser, type EventSourceMessage } from 'eventsource-parser'
import { SseEvent, type SyncEventData } from '../../shared/protocol.js'
import { fromBase64 } from '../../shared/codec.js'
import type { ByteStream } from './http.js'

/** What the provider does with the stream's events. Handlers may throw: that ends the stream. */
export interface EventStreamHandlers {
  /** The first event: the update that brings the client to the head, and the server's state vector. */
  sync(update: Uint8Array, stateVector: Uint8Array, eventId: string): void
  update(update: Uint8Array, eventId: string): void
  awareness(update: Uint8Array): void
  /** The server's reconnection delay (`retry:`). */
  retry(ms: number): void
}

/**
 * The server comments every 15 s; a stream silent for three of those periods is dead even if TCP
 * did not notice (a laptop that slept, a NAT that forgot us), so it is dropped and resumed.
 */
export const STREAM_IDLE_TIMEOUT_MS = 45_000

const syncDataOf = (data: string): SyncEventData => {
  const parsed = JSON.parse(data) as Partial<SyncEventData>
  if (typeof parsed.update !== 'string' || typeof parsed.stateVector !== 'string') throw new TypeError('sync event without update or stateVector')
  return parsed as SyncEventData
}

/** Hands one event to `handlers`; throws when the event lacks the `id:` the protocol requires. */
const dispatch = (handlers: EventStreamHandlers, event: string | undefined, id: string | undefined, data: string): void => {
  switch (event) {
    case SseEvent.sync: {
      if (id === undefined) throw new TypeError('sync event without id')
      const sync = syncDataOf(data)
      handlers.sync(fromBase64(sync.update), fromBase64(sync.stateVector), id)
      return
    }
    case SseEvent.update:
      if (id === undefined) throw new TypeError('update event without id')
      handlers.update(fromBase64(data), id)
      return
    case SseEvent.awareness:
      handlers.awareness(fromBase64(data))
    // Unknown events are skipped: a newer server may send more kinds.
  }
}

/**
 * Reads `body` until the server ends it (resolves) or the network, a handler or `abort` ends it
 * (rejects). Events without the `id:` the protocol requires end the stream as malformed.
 */
export const readEventStream = (body: ByteStream, handlers: EventStreamHandlers, abort: AbortController): Promise<void> =>
  readEvents(body, ({ event, id, data }) => dispatch(handlers, event, id, data), ms => handlers.retry(ms), abort)

/**
 * Hands one event of a multiplexed stream to the handlers of the document it is tagged with, then
 * tells `moved` (if given) the stream's event ID; throws on a malformed event or when a handler throws.
 */
export const dispatchMultiplexed = (
  { event, id, data }: EventSourceMessage,
  handlersOf: (docId: string) => EventStreamHandlers | undefined,
  moved?: (streamEventId: string) => void
): void => {
  // `<docId>[ <document event ID>]`, a line break, then the single-document stream's data.
  const lineEnd = data.indexOf('\n')
  if (lineEnd < 0) throw new TypeError(`${event ?? 'message'} event without a document tag`)
  const [docId = '', docEventId] = data.slice(0, lineEnd).split(' ')
  const handlers = handlersOf(docId)
  if (handlers !== undefined) dispatch(handlers, event, docEventId, data.slice(lineEnd + 1))
  if (id !== undefined) moved?.(id)
}

/**
 * Reads any event stream of the protocol (also `GET /changes`) until the server ends it (resolves)
 * or the network, `onEvent` or `abort` ends it (rejects); a stream silent for
 * {@link STREAM_IDLE_TIMEOUT_MS} is aborted.
 */
export const readEvents = async (
  body: ByteStream,
  onEvent: (message: EventSourceMessage) => void,
  onRetry: (ms: number) => void,
  abort: AbortController
): Promise<void> => {
  let failure: unknown = null
  const parser = createParser({
    onRetry,
    onEvent: message => {
      // After an abort (disconnect, a failed handler), the rest of the chunk must not reach the document.
      if (failure !== null || abort.signal.aborted) return
      try {
        onEvent(message)
      } catch (error) {
        failure = error
        abort.abort(error)
      }
    }
  })
  const reader = body.getReader()
  const decoder = new TextDecoder()
  let idle: ReturnType<typeof setTimeout> | undefined
  const touch = (): void => {
    clearTimeout(idle)
    idle = setTimeout(() => abort.abort(new Error(`no data for ${STREAM_IDLE_TIMEOUT_MS} ms`)), STREAM_IDLE_TIMEOUT_MS)
  }
  try {
    touch()
    for (;;) {
      const { done, value } = await reader.read()
      if (failure !== null) throw failure
      if (done) return
      touch()
      parser.feed(decoder.decode(value, { stream: true }))
      if (failure !== null) throw failure
    }
  } finally {
    clearTimeout(idle)
    reader.releaseLock()
  }
}
