/**
 * Server-Sent Events framing and one writer per response. Every event is written within one
 * synchronous step, so no other event comes between its parts (a reader discards an event cut
 * off before its blank line), and `event:`/`id:` never contain CR or LF (field injection).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Http2ServerResponse } from 'node:http2'
import type { Context } from 'koa'
import { ErrorCode, ProtocolError } from '../shared/errors.js'
import type { Metrics } from './metrics.js'
import type { StreamCounter } from './limits.js'
import { takeHeldHeaders } from './held-headers.js'

/** One SSE event. */
export interface SseMessage {
  event?: string
  id?: string
  data?: string
  retry?: number
}

const NEWLINE = /[\r\n]/

/** Formats an event with LF line endings; throws on CR/LF in `event` or `id`. */
export const formatEvent = ({ event, id, data, retry }: SseMessage): string => {
  let out = ''
  if (event !== undefined) {
    if (NEWLINE.test(event)) throw new TypeError('SSE event name contains a line break')
    out += `event: ${event}\n`
  }
  if (id !== undefined) {
    if (NEWLINE.test(id) || id.includes('\0')) throw new TypeError('SSE id contains a line break or NUL')
    out += `id: ${id}\n`
  }
  if (retry !== undefined) out += `retry: ${Math.max(0, Math.floor(retry))}\n`
  if (data !== undefined) out += dataLines(data)
  return out + '\n'
}

const dataLines = (data: string): string => {
  let out = ''
  for (const line of data.split(/\r\n|\r|\n/)) out += `data: ${line}\n`
  return out
}

/**
 * The `data:` lines of an event and its closing blank line, encoded once, for an event that goes
 * to many streams each under its own ID ({@link SseWriter.sendWithId}).
 */
export const toEventBody = (data: string): Buffer => Buffer.from(dataLines(data) + '\n')

/** An event formatted and encoded once, so one update goes to every stream without formatting it again for each. */
export interface SseFrame {
  /** The event's name (`message` when it has none), for metrics. */
  event: string
  chunk: Buffer
}

/** Formats and encodes an event for {@link SseWriter.sendFrame}; throws like {@link formatEvent}. */
export const toFrame = (message: SseMessage): SseFrame => ({ event: message.event ?? 'message', chunk: Buffer.from(formatEvent(message)) })

/**
 * Headers of an event stream. Over HTTP/1.x the body is delimited by closing the connection, not
 * chunked: an event stream only ends by closing anyway, and each event then goes out as one plain
 * socket write instead of a corked write of chunk size, data and CRLF, which was the largest cost
 * of a delivery. HTTP/2 frames the stream itself.
 */
export const eventStreamHeaders = (httpVersionMajor: number): Record<string, string> => ({
  'Content-Type': 'text/event-stream; charset=utf-8',
  'Cache-Control': 'no-cache, no-transform',
  'X-Accel-Buffering': 'no',
  ...(httpVersionMajor < 2 ? { Connection: 'close' } : {})
})

/**
 * Writes events to one response and knows when the client reads slower than we write.
 * `blocked` is true from a `write()` that returned false until the next `'drain'`.
 */
export class SseWriter {
  private readonly res: ServerResponse
  private isBlocked = false
  private drainListener: (() => void) | null = null
  private ended = false
  /** Events held back to go out with the next one ({@link sendWithNext}). */
  private held: Buffer | null = null

  /** @param metrics - told the name and size of every event written. */
  constructor (res: ServerResponse, private readonly metrics: Metrics | null) {
    this.res = res
    res.on('drain', () => {
      this.isBlocked = false
      this.drainListener?.()
    })
  }

  get blocked (): boolean {
    return this.isBlocked
  }

  get closed (): boolean {
    return this.ended || this.res.destroyed || this.res.writableEnded
  }

  /** Calls `listener` whenever a blocked stream can take more (one listener per writer: the stream's). */
  onDrain (listener: () => void): void {
    this.drainListener = listener
  }

  /** Writes one event; returns false when the client is not keeping up. */
  send (message: SseMessage): boolean {
    return this.sendFrame(toFrame(message))
  }

  /**
   * Holds an event back until the next write (or the end), which takes it along: a stream's
   * `retry:` then goes out with its sync event and the response's head in one write (Node holds
   * the head's write open until the end of the turn), one packet for the client to read instead
   * of two, and one write less per stream opened.
   */
  sendWithNext (message: SseMessage): void {
    const { event, chunk } = toFrame(message)
    this.metrics?.eventSent(event, chunk.length)
    this.held = this.held === null ? chunk : Buffer.concat([this.held, chunk])
  }

  /** Writes an event formatted once for many streams; returns false when the client is not keeping up. */
  sendFrame ({ event, chunk }: SseFrame): boolean {
    this.metrics?.eventSent(event, chunk.length)
    return this.write(chunk)
  }

  /**
   * Writes an event whose data was encoded once for many streams ({@link toEventBody}) under this
   * stream's own ID, which the server made (no line breaks). Both parts go out in one synchronous
   * step, so nothing comes between them; returns false when the client is not keeping up.
   */
  sendWithId (event: string, id: string, body: Buffer): boolean {
    const head = `event: ${event}\nid: ${id}\n`
    this.metrics?.eventSent(event, head.length + body.length)
    this.write(head)
    return this.write(body)
  }

  /** A comment line: keeps proxies from timing out an idle stream. */
  comment (text = ''): boolean {
    return this.write(`:${text}\n\n`)
  }

  private write (chunk: string | Buffer): boolean {
    if (this.closed) return false
    const held = this.held
    if (held !== null) {
      this.held = null
      this.res.write(held)
    }
    const ok = this.res.write(chunk)
    if (!ok) this.isBlocked = true
    return ok
  }

  /** Ends the stream (the client reconnects with its last event ID). */
  end (): void {
    if (this.closed) return
    this.ended = true
    const held = this.held
    this.held = null
    if (held === null) this.res.end()
    else this.res.end(held)
  }
}

/**
 * Starts an event stream on a plain Node response: headers at once (`headers` with the event
 * stream's own), events as they come. Over HTTP/1.x the socket sends each write at once and never
 * times out an idle stream.
 */
export const startEventStream = (req: IncomingMessage, res: ServerResponse, metrics: Metrics | null, headers: Record<string, string> = {}): SseWriter => {
  if (req.httpVersionMajor < 2) {
    // HTTP/2 streams share one socket, which the compatibility API does not let us touch.
    req.socket.setNoDelay(true)
    req.socket.setTimeout(0)
    res.useChunkedEncodingByDefault = false
  }
  res.writeHead(200, { ...headers, ...eventStreamHeaders(req.httpVersionMajor) })
  return new SseWriter(res, metrics)
}

/**
 * Whether to hold an event stream on this request's response, taking one of the client's open
 * streams from `counter` when so; `429` past them. `false` for a client already gone: its
 * response's `close` may have come while the request was being authorized, will not come again,
 * and nothing would ever give the stream back.
 */
export const admitStream = (ctx: Context, counter: StreamCounter, client: string, max: number): boolean => {
  const res = ctx.res as ServerResponse | Http2ServerResponse
  if (res.writableEnded || ('stream' in res ? res.stream.destroyed : res.destroyed)) return false
  if (counter.acquire(client)) return true
  ctx.set('Retry-After', '5')
  throw new ProtocolError(ErrorCode.tooManyRequests, `at most ${max} open streams per client`)
}

/**
 * Takes the response out of Koa's hands and starts an event stream on it ({@link startEventStream})
 * with the headers the middleware held for it.
 */
export const openEventStream = (ctx: Context, metrics: Metrics | null): SseWriter => {
  ctx.respond = false
  return startEventStream(ctx.req, ctx.res, metrics, takeHeldHeaders(ctx))
}
