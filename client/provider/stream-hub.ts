/**
 * One event stream shared by every provider of the same server and credentials
 * (`GET /events?docs=a,b,c`), so an app with many documents open holds one connection instead of
 * one per document (browsers allow about six per origin over HTTP/1.1, shared by all tabs).
 *
 * The hub runs the connection loop for its members. A member that joins or leaves makes it
 * reopen the stream with the new set; every document resumes from its provider's own last event ID
 * and state vector, so none of them loses an update and none gets more than it lacks.
 */
import { Param } from '../../shared/protocol.js'
import { sleep } from './backoff.js'
import type { EventSourceMessage } from 'eventsource-parser'
import { dispatchMultiplexed, readEvents, type EventStreamHandlers } from './event-stream.js'
import { ReconnectPolicy } from './reconnect.js'
import type { Fetch, HttpResponse } from './http.js'
import { failureOf, networkFailure, settleWhileOpening, type ConnectionError, type RequestFailure, type TokenSource, type Transport } from './transport.js'

/** Where a member's document stands, as sent when a stream (re)opens. */
export interface ResumePoint {
  /** The document's last event ID the member applied. */
  lastEventId: string | null
  /** Its state vector, base64url; `null` when too long for a URL. */
  stateVector: string | null
}

/** A provider's share of a hub. */
export interface HubMember {
  docName: string
  /** The awareness client ID reading the document, for the server's presence retraction. */
  awarenessId(): number
  /** Where the document stands: every (re)opened stream resumes each document from its own point. */
  resumePoint(): ResumePoint
  /**
   * Called before a stream is opened with the member, which may fetch its document meanwhile (see
   * `fetchSnapshot`); true when it did, to apply once the stream's request is on its way.
   */
  prepare(signal: AbortSignal): Promise<boolean>
  /**
   * Called once the stream's request is on its way: applies what `prepare` fetched. False when
   * that was no update: the stream then resumes the member from a point its document lacks.
   */
  settle(): boolean
  handlers: EventStreamHandlers
  /** The shared stream is being (re)opened: the member is not synced until its next sync event. */
  connecting(): void
  /** The shared stream failed and will be retried. */
  failed(error: ConnectionError): void
}

/**
 * Why a member's {@link StreamHub.attach} ended: its signal aborted; the server refused the
 * stream of this member alone (it stops as on a stream of its own); or it must open a stream of
 * its own: its document is on the hub already, or the server refused a stream of several
 * documents, and only a stream of its own tells which document the server refused and why.
 */
export type HubEnd = { kind: 'aborted' } | { kind: 'failed'; failure: RequestFailure } | { kind: 'solo' }

/** What makes two providers' requests interchangeable, so they may share a stream. */
export interface HubIdentity {
  serverUrl: string
  params: Record<string, string>
  headers: Record<string, string>
  token: TokenSource | undefined
  /** The `fetch` the user gave (not the default), compared by identity. */
  fetch: Fetch | undefined
}

interface Attached {
  member: HubMember
  leave: (end: HubEnd) => void
}

/** Reason of the abort that reopens the stream for a new set of members. */
export const MEMBERS_CHANGED = new Error('the set of documents changed')

/** The `svs` parameter is left out beyond this length: a request line of a few KB passes every proxy. */
const MAX_STATE_VECTORS_PARAM = 4096

/** The per-document resume points of a multiplexed stream's query (`lastEventIds`, and `svs` while the URL stays short). */
export const resumeQuery = (points: readonly ResumePoint[]): Record<string, string> => {
  const query: Record<string, string> = { [Param.lastEventIds]: points.map(p => p.lastEventId ?? '').join(',') }
  const stateVectors = points.map(p => p.stateVector ?? '').join(',')
  if (stateVectors.length <= MAX_STATE_VECTORS_PARAM) query[Param.stateVectors] = stateVectors
  return query
}

/**
 * Reads the response of `GET /events` (`opening`, started by the caller) and hands each event to
 * `onEvent` until the stream ends; resolves `null` when a synced stream ended, else why it failed.
 * The first event with an ID is a sync event: from then on, an end is a resume, not a failure.
 */
export const followMultiplexedStream = async (
  opening: Promise<HttpResponse>,
  onEvent: (message: EventSourceMessage) => void,
  onRetry: (ms: number) => void,
  attempt: AbortController
): Promise<RequestFailure | null> => {
  let response: HttpResponse
  try {
    response = await opening
  } catch (error) {
    return networkFailure('events', error)
  }
  if (response.status !== 200 || response.body === null) return failureOf('events', response)
  let synced = false
  try {
    await readEvents(response.body, message => {
      onEvent(message)
      if (message.id !== undefined) synced = true
    }, onRetry, attempt)
  } catch (error) {
    if (!synced) return networkFailure('events', attempt.signal.reason ?? error)
  }
  // The server ends the stream before syncing when its store fails: that is a failure, not a resume.
  return synced ? null : networkFailure('events', new Error('the stream ended before its sync event'))
}

/** Delay before resuming a stream the server ended, when it sent no `retry:`. */
export const DEFAULT_RETRY_MS = 1000

/** Whether two providers may share a stream: same server, parameters and credentials. */
export const sameIdentity = (a: HubIdentity, b: HubIdentity): boolean =>
  a.serverUrl === b.serverUrl && a.token === b.token && a.fetch === b.fetch &&
  JSON.stringify(a.params) === JSON.stringify(b.params) && JSON.stringify(a.headers) === JSON.stringify(b.headers)

/** Hubs with members; a hub leaves this list when its last member does. */
const hubs: StreamHub[] = []

/** The documents following a shared stream, each until its provider lets go or the stream sends it away. */
export abstract class MemberSet {
  protected readonly members = new Map<string, Attached>()

  /** Follows the member's document on the shared stream until `signal` aborts or the hub sends it away. */
  attach (member: HubMember, signal: AbortSignal): Promise<HubEnd> {
    if (this.members.has(member.docName) || signal.aborted) return Promise.resolve(signal.aborted ? { kind: 'aborted' } : { kind: 'solo' })
    return new Promise(resolve => {
      const onAbort = (): void => this.detach(member.docName, { kind: 'aborted' })
      const attached: Attached = {
        member,
        leave: end => {
          signal.removeEventListener('abort', onAbort)
          resolve(end)
        }
      }
      this.members.set(member.docName, attached)
      signal.addEventListener('abort', onAbort)
      this.membersChanged()
    })
  }

  protected detach (docName: string, end: HubEnd): void {
    const attached = this.members.get(docName)
    if (attached === undefined) return
    this.members.delete(docName)
    attached.leave(end)
    this.membersChanged()
  }

  /** Reacts to a member joining or leaving. */
  protected abstract membersChanged (): void
}

/** Shares one multiplexed event stream among the providers of one server and credentials. */
export class StreamHub extends MemberSet {
  private retryMs = DEFAULT_RETRY_MS
  private attempt: AbortController | null = null
  /** Whether the current attempt is opening or reading a stream (not waiting to retry). */
  private streaming = false
  private running = false
  private reopenQueued = false

  private constructor (
    private readonly identity: HubIdentity,
    private readonly transport: Transport,
    private readonly maxBackoffTime: number
  ) {
    super()
  }

  /**
   * The hub for `identity`, created on first use with the transport and backoff bound of the
   * provider that asks first (providers with the same identity send the same requests).
   */
  static for (identity: HubIdentity, transport: Transport, maxBackoffTime: number): StreamHub {
    let hub = hubs.find(h => sameIdentity(h.identity, identity))
    if (hub === undefined) {
      hub = new StreamHub(identity, transport, maxBackoffTime)
      hubs.push(hub)
    }
    return hub
  }

  /**
   * Reopens the stream with the new set, once for all the members that join or leave in the same
   * tick (providers created together share the first connection). A hub waiting to retry after a
   * failure keeps waiting: new members join its next attempt.
   */
  protected membersChanged (): void {
    if (this.members.size === 0) {
      this.attempt?.abort(MEMBERS_CHANGED)
      const index = hubs.indexOf(this)
      if (index >= 0) hubs.splice(index, 1)
      return
    }
    if (this.reopenQueued) return
    this.reopenQueued = true
    // A microtask, not a timer: providers created in one synchronous step all attach before it
    // runs, and a timer would add a millisecond or more to every (re)connection.
    queueMicrotask(() => {
      this.reopenQueued = false
      if (this.members.size === 0) return
      if (!this.running) {
        this.running = true
        void this.run()
      } else if (this.streaming) {
        this.attempt?.abort(MEMBERS_CHANGED)
      }
    })
  }

  private async run (): Promise<void> {
    const policy = new ReconnectPolicy(this.maxBackoffTime)
    try {
      while (this.members.size > 0) {
        const attempt = new AbortController()
        this.attempt = attempt
        for (const { member } of this.members.values()) member.connecting()
        this.streaming = true
        const failure = await this.openStream(attempt)
        this.streaming = false
        if (this.members.size === 0) break
        if (attempt.signal.reason === MEMBERS_CHANGED) continue
        const next = policy.after(failure, this.retryMs)
        if (next.kind === 'stop') {
          const end: HubEnd = this.members.size === 1 ? { kind: 'failed', failure: next.error } : { kind: 'solo' }
          for (const docName of [...this.members.keys()]) this.detach(docName, end)
          break
        }
        if (next.error !== null) for (const { member } of this.members.values()) member.failed(next.error)
        if (next.delay > 0) await sleep(next.delay, attempt.signal)
      }
    } finally {
      // In the same tick as the exit decision: a member attaching after it starts a new loop.
      this.running = false
      this.attempt = null
    }
  }

  /** One stream attempt; resolves `null` when a synced stream ended, else why it failed. */
  private async openStream (attempt: AbortController): Promise<RequestFailure | null> {
    const tokenFailure = await this.transport.refreshToken('events')
    if (tokenFailure !== null || attempt.signal.aborted) return tokenFailure
    const attached = [...this.members.values()]
    const fetched = await Promise.all(attached.map(a => a.member.prepare(attempt.signal)))
    if (attempt.signal.aborted) return null
    // Every provider knows its own position exactly (the tag line names each document's event ID),
    // so the stream's own last event ID is not needed.
    const query: Record<string, string> = {
      [Param.docs]: attached.map(a => a.member.docName).join(','),
      [Param.awareness]: attached.map(a => String(a.member.awarenessId())).join(','),
      ...resumeQuery(attached.map(a => a.member.resumePoint()))
    }
    const opening = this.transport.openMultiplexedEvents(query, attempt.signal)
    // Every member applies what it fetched; one whose snapshot was no update needs the stream
    // opened again at once, as for a change of members.
    const settleAll = (): boolean => attached.map(a => a.member.settle()).every(Boolean)
    if (fetched.some(Boolean) && !(await settleWhileOpening(opening, attempt, settleAll, MEMBERS_CHANGED))) return null
    return followMultiplexedStream(opening, message => dispatchMultiplexed(message, docId => this.members.get(docId)?.member.handlers),
      ms => { this.retryMs = ms }, attempt)
  }
}
