/**
 * The Yjs provider: one document synced with a y-sse server over HTTP POST and Server-Sent Events.
 * This class owns the lifecycle (connect, reconnect, stop, destroy) and wires the document, the
 * outbox, presence and the event stream together.
 */
import * as Y from 'yjs'
import { Awareness } from 'y-protocols/awareness'
import { ObservableV2 } from 'lib0/observable'
import { Param, type UpdateEncoding } from '../../shared/protocol.js'
import { toBase64Url } from '../../shared/codec.js'
import { sleep } from './backoff.js'
import { ReconnectPolicy } from './reconnect.js'
import { readEventStream, type EventStreamHandlers } from './event-stream.js'
import { StreamHub, type HubIdentity, type HubMember, type ResumePoint } from './stream-hub.js'
import { TabStreamHub, tabSharingAvailable } from './tab-stream.js'
import { Outbox } from './outbox.js'
import { AwarenessSync } from './awareness-sync.js'
import { defaultFetch, type Fetch, type HttpResponse } from './http.js'
import { Transport, failureOf, networkFailure, settleWhileOpening, type ConnectionError, type DocumentSnapshot, type RequestFailure, type TokenSource } from './transport.js'

/** Connection status, as in y-websocket. */
export type ProviderStatus = 'connecting' | 'connected' | 'disconnected'

/** Events of {@link SseProvider}. */
export interface SseProviderEvents {
  /** The connection status changed. */
  status: (event: { status: ProviderStatus }) => void
  /** `true` once the server's state has been applied to the document; `false` when the stream is lost. */
  sync: (synced: boolean) => void
  /** A request failed; `retryIn` says whether and when the provider tries again. */
  'connection-error': (error: ConnectionError) => void
  /** The number of local changes the server has not acknowledged yet changed (once per synchronous step). */
  'sync-status': (event: { unsyncedChanges: number }) => void
  /** Never emitted: declared so the provider has exactly the events of Lexical's `Provider` type. */
  update: (update: unknown) => void
  /** Never emitted (the document is never replaced): declared for Lexical's `Provider` type. */
  reload: (doc: Y.Doc) => void
}

/**
 * y-protocols' `Awareness` with the state type it leaves open made explicit. It is still an
 * `Awareness` (pass it to editor bindings as usual).
 */
export type TypedAwareness<State> = {
  getLocalState(): State | null
  setLocalState(state: State | null): void
  getStates(): Map<number, State>
} & Awareness

/** Options of {@link SseProvider}; every key is optional, see {@link sseProviderDefaults}. */
export interface SseProviderOptions {
  /** Connect at once. Default `true`. */
  connect: boolean
  /** The presence instance to sync. Default: a new `Awareness` of the document, destroyed with the provider. */
  awareness: Awareness | undefined
  /** Query parameters added to every request. */
  params: Record<string, string>
  /** Headers added to every request. */
  headers: Record<string, string>
  /**
   * Sent as `Authorization: Bearer <token>`. A function is called before every connection attempt
   * and after every 401, so tokens rotate without re-creating the provider.
   */
  token: TokenSource | undefined
  /**
   * The `fetch` to use, e.g. one that adds cookies or goes through a proxy. Default:
   * {@link defaultFetch}, the global `fetch` in browsers and a leaner client on `node:http` in Node.
   */
  fetch: Fetch | undefined
  /** Upper bound of the backoff delay after failures, in milliseconds. Default 10 000. */
  maxBackoffTime: number
  /** Minimum interval between two presence POSTs, in milliseconds. Default 100. */
  awarenessThrottle: number
  /** Largest merged update the outbox sends in one POST, in bytes (a single larger update still goes alone). Default 1 MiB. */
  maxBatchBytes: number
  /**
   * Least time between the starts of two POSTs of updates, in milliseconds; edits made meanwhile
   * go out merged in the next. An edit is held back only when the last POST began less than this
   * long ago, and then for the rest of that time at most beyond the wait for the POST in flight,
   * so typing and steady writers are not slowed; a burst (a bot, a replayed trace) costs a request
   * per interval or per round trip, whichever is longer, for the client and the server. Browsers
   * run a hidden tab's timers about once a second, so there a held edit may wait that long. `0`:
   * the next POST leaves as soon as the last is answered. Default 4.
   */
  updateThrottle: number
  /**
   * Share one event stream (`GET /events`) with the other providers of this server that have the
   * same `params`, `headers`, `token` and `fetch`. Default `true`; `false` gives the provider a
   * stream of its own (`GET /docs/:docId/events`). `'tabs'` also shares it with the other tabs of
   * the origin that use `'tabs'` (one tab reads the stream for all), where the browser has Web
   * Locks and `BroadcastChannel`; elsewhere it means `true`.
   */
  multiplex: boolean | 'tabs'
  /**
   * While the document is empty and was never synced, GET it as one binary, gzip-compressed update
   * before opening the event stream, which then replays only what came after. Large documents load
   * three times lighter than as base64 in the stream's first event, and do not hold up the other
   * documents of a shared stream; an empty or small one costs one extra request. Default `true`.
   */
  fetchSnapshot: boolean
}

/** Defaults of {@link SseProviderOptions}. */
export const sseProviderDefaults: SseProviderOptions = {
  connect: true,
  awareness: undefined,
  params: {},
  headers: {},
  token: undefined,
  fetch: undefined,
  maxBackoffTime: 10_000,
  awarenessThrottle: 100,
  maxBatchBytes: 1024 * 1024,
  updateThrottle: 4,
  multiplex: true,
  fetchSnapshot: true
}

/** A state vector longer than this goes unsent: a long URL risks a 414, and the event ID usually suffices. */
const MAX_STATE_VECTOR_PARAM = 2048

/** Delay before resuming a stream the server ended, when it sent no `retry:`. */
const DEFAULT_RETRY_MS = 1000

/** Abort reason of `disconnect()` and stops, told apart from the aborts of the idle watchdog and failed handlers. */
const CLOSED_BY_CLIENT = new Error('closed by the client')

/** Abort reason of a stream opened from a snapshot that turned out to be no update: it is opened again at once. */
const SNAPSHOT_REFUSED = new Error('the document\'s snapshot was no Yjs update')

/**
 * How one stream attempt ended: a synced stream ended (by the server or the network), a failure,
 * or an abort (`disconnect()`, or a stream to open again at once).
 */
type AttemptEnd =
  | { kind: 'ended' }
  | { kind: 'failed'; failure: RequestFailure }
  | { kind: 'aborted' }

interface Deferred {
  resolve(): void
  reject(error: Error): void
}

/** The promise `connect()` returns: its callbacks run only while no later `connect()` superseded it. */
class ConnectAttempt extends Promise<void> {
  // Chained promises are plain ones: only this attempt's own callbacks are guarded.
  static override get [Symbol.species] (): PromiseConstructor {
    return Promise
  }

  isCurrent: () => boolean = () => true

  override then<A = void, B = never> (
    onFulfilled?: ((value: void) => A | PromiseLike<A>) | null,
    onRejected?: ((reason: unknown) => B | PromiseLike<B>) | null
  ): Promise<A | B> {
    const isCurrent = this.isCurrent
    const guarded = onFulfilled == null ? onFulfilled : (value: void): A | PromiseLike<A> => isCurrent() ? onFulfilled(value) : new Promise<A>(() => {})
    return super.then(guarded, onRejected)
  }
}

/**
 * Syncs a `Y.Doc` with a y-sse server: local updates are POSTed (merged while one is in flight or
 * less than `updateThrottle` ago, kept until acknowledged), the server's updates and presence
 * arrive over Server-Sent Events.
 * Modelled on y-websocket's `WebsocketProvider` and assignable to `@lexical/yjs`'s `Provider`.
 *
 * @typeParam State - shape of awareness states; the default leaves them as untyped as y-protocols does.
 *
 * @example
 * ```ts
 * const doc = new Y.Doc()
 * const provider = new SseProvider('https://sync.example.com', 'my-doc', doc, { token: getToken })
 * await provider.whenSynced()
 * ```
 */
// `any` like y-protocols' own state type: a narrower default would not fit Lexical's `UserState`.
export class SseProvider<State extends object = any> extends ObservableV2<SseProviderEvents> {
  /** The server's base URL, as given. */
  readonly serverUrl: string
  /** The document's ID on the server. */
  readonly docName: string
  readonly doc: Y.Doc
  readonly awareness: TypedAwareness<State>
  private readonly transport: Transport
  private readonly outbox: Outbox
  private readonly presence: AwarenessSync
  private readonly ownsAwareness: boolean
  private readonly maxBackoffTime: number
  private readonly fetchSnapshot: boolean
  private currentStatus: ProviderStatus = 'disconnected'
  private isSynced = false
  private wantsConnection = false
  private destroyed = false
  /** Whether the connection loop runs; cleared in the same tick it decides to exit, so `connect()` never misses it. */
  private running = false
  /** Aborts the current stream attempt or backoff wait. */
  private attempt: AbortController | null = null
  private lastEventId: string | null = null
  /** A snapshot fetched for the next stream, applied once that stream's request is on its way. */
  private fetched: DocumentSnapshot | null = null
  /** Set when a snapshot was no Yjs update: the stream sends the whole document instead. */
  private snapshotRefused = false
  private retryMs = DEFAULT_RETRY_MS
  private pendingConnect: (() => void) | null = null
  /** Counts `connect()` calls, so an attempt knows when a later one superseded it. */
  private connects = 0
  private syncWaiters: Deferred[] = []
  /** Whether a `sync-status` event is queued for the end of the current step. */
  private unsyncedReported = false
  /** Who this provider may share a stream with; `null` once it reads a stream of its own. */
  private shared: HubIdentity | null
  /** Whether the shared stream is shared with the other tabs too. */
  private readonly acrossTabs: boolean
  /** The stream's events, whether the provider reads a stream of its own or a shared one. */
  private readonly handlers: EventStreamHandlers = {
    sync: (update, stateVector, eventId) => {
      this.applyRemote(update, eventId)
      this.onSynced(stateVector)
    },
    update: (update, eventId) => this.applyRemote(update, eventId),
    awareness: update => this.presence.applyRemote(update),
    retry: ms => { this.retryMs = ms }
  }

  /** This provider as a member of a shared stream. */
  private readonly member: HubMember

  /**
   * @param serverUrl - the server's base URL (`http://host:port`, plus the base path if the server
   *   is mounted under one); the protocol's routes are appended to it.
   * @param docName - the document ID (1–128 characters of `A-Z a-z 0-9 . _ ~ -`).
   * @param doc - the document to sync.
   */
  constructor (serverUrl: string, docName: string, doc: Y.Doc, options: Partial<SseProviderOptions> = {}) {
    super()
    const resolved: SseProviderOptions = { ...sseProviderDefaults, ...options }
    this.serverUrl = serverUrl
    this.docName = docName
    this.doc = doc
    this.ownsAwareness = resolved.awareness === undefined
    // y-protocols leaves the state type open; State only names it.
    this.awareness = (resolved.awareness ?? new Awareness(doc)) as TypedAwareness<State>
    this.maxBackoffTime = resolved.maxBackoffTime
    this.fetchSnapshot = resolved.fetchSnapshot
    this.transport = new Transport(serverUrl, docName, { params: resolved.params, headers: resolved.headers, token: resolved.token, fetch: resolved.fetch ?? defaultFetch() })
    this.member = {
      docName,
      awarenessId: () => this.awareness.clientID,
      resumePoint: () => this.resumePoint(),
      prepare: signal => this.loadSnapshot(signal),
      settle: () => this.applyFetched(),
      handlers: this.handlers,
      connecting: () => {
        // As between two attempts of a stream of its own: a synced provider goes through 'disconnected'.
        if (this.isSynced) this.dropConnection()
        this.setStatus('connecting')
      },
      failed: error => this.reportRetry(error)
    }
    this.acrossTabs = resolved.multiplex === 'tabs' && tabSharingAvailable()
    this.shared = resolved.multiplex !== false ? { serverUrl, params: resolved.params, headers: resolved.headers, token: resolved.token, fetch: resolved.fetch } : null
    this.outbox = new Outbox({
      post: update => this.transport.post('updates', update),
      failed: error => this.emit('connection-error', [error]),
      stop: error => this.stop(error),
      changed: () => this.reportUnsynced()
    }, { maxBackoffMs: resolved.maxBackoffTime, maxBatchBytes: resolved.maxBatchBytes, updateThrottle: resolved.updateThrottle })
    this.presence = new AwarenessSync(this.awareness, {
      post: update => this.transport.post('awareness', update),
      failed: failure => this.emit('connection-error', [{ ...failure, retryIn: null }])
    }, resolved.awarenessThrottle)
    doc.on('update', this.onDocUpdate)
    doc.on('destroy', this.onDocDestroy)
    if (resolved.connect) void this.connect()
  }

  /** The connection status. */
  get status (): ProviderStatus {
    return this.currentStatus
  }

  /** Whether the server's state has been applied to the document on the current connection. */
  get synced (): boolean {
    return this.isSynced
  }

  /** Whether the provider is trying to stay connected (false after `disconnect()` or a stop). */
  get shouldConnect (): boolean {
    return this.wantsConnection
  }

  /**
   * Emits `sync-status` once for all the changes of one synchronous step (a burst of keystrokes,
   * a replayed paste, several acknowledgements), with the count at the end of it.
   */
  private reportUnsynced (): void {
    if (this.unsyncedReported) return
    this.unsyncedReported = true
    queueMicrotask(() => {
      this.unsyncedReported = false
      this.emit('sync-status', [{ unsyncedChanges: this.outbox.unsynced }])
    })
  }

  /** Local changes the server has not acknowledged yet (also reported by the `sync-status` event). */
  get unsyncedChanges (): number {
    return this.outbox.unsynced
  }

  /**
   * Resolves once the server's state has been applied; rejects when the provider stops (403, 404,
   * 204, see `connection-error`) or is destroyed before that.
   */
  whenSynced (): Promise<void> {
    if (this.isSynced) return Promise.resolve()
    if (this.destroyed) return Promise.reject(new Error('the provider was destroyed'))
    return new Promise((resolve, reject) => this.syncWaiters.push({ resolve, reject }))
  }

  /**
   * Starts (or restarts, after a stop) syncing. Resolves when this call's first attempt has an
   * outcome: synced, failed (the provider keeps retrying, see `connection-error`), stopped, or
   * `disconnect()` called; it never rejects. Use {@link whenSynced} to wait for the content.
   *
   * A promise overtaken by a later `connect()` stays pending, and callbacks chained on it before
   * are dropped even if it had resolved: Lexical's `CollaborationPlugin` chains `disconnect()` on
   * the previous promise right before it calls `connect()` again (React StrictMode, and every
   * change of the user's name or colour), and that must not undo the newer connection.
   */
  connect (): Promise<void> {
    if (this.destroyed) return Promise.reject(new Error('the provider was destroyed'))
    this.wantsConnection = true
    const generation = ++this.connects
    const connected = new ConnectAttempt(resolve => { this.pendingConnect = resolve })
    connected.isCurrent = () => this.connects === generation
    if (!this.running) {
      this.running = true
      void this.run()
    } else if (this.isSynced) {
      // Already connected: that is this call's outcome.
      this.settleConnect()
    }
    return connected
  }

  /**
   * Closes the stream, sends the removal of the local presence, and stops reconnecting. Local
   * changes are still recorded and sent on the next `connect()`.
   */
  disconnect (): void {
    this.wantsConnection = false
    this.attempt?.abort(CLOSED_BY_CLIENT)
    this.dropConnection()
    this.settleConnect()
  }

  /** Disconnects and releases every listener, timer and stream; the provider cannot be used again. */
  override destroy (): void {
    if (this.destroyed) return
    this.disconnect()
    this.destroyed = true
    this.fetched = null
    this.doc.off('update', this.onDocUpdate)
    this.doc.off('destroy', this.onDocDestroy)
    this.outbox.destroy()
    this.presence.destroy()
    if (this.ownsAwareness) this.awareness.destroy()
    for (const waiter of this.syncWaiters.splice(0)) waiter.reject(new Error('the provider was destroyed'))
    super.destroy()
  }

  private readonly onDocUpdate = (update: Uint8Array, origin: unknown, _doc: Y.Doc, transaction: Y.Transaction): void => {
    // Updates this provider applied came from the server: never echo them back.
    if (origin !== this) this.outbox.add(update, transaction)
  }

  private readonly onDocDestroy = (): void => this.destroy()

  /** The connection loop: one stream at a time, with backoff between failures, until told to stop. */
  private async run (): Promise<void> {
    const policy = new ReconnectPolicy(this.maxBackoffTime)
    try {
      while (this.wantsConnection) {
        const attempt = new AbortController()
        this.attempt = attempt
        this.setStatus('connecting')
        const end = this.shared === null ? await this.openStream(attempt) : await this.joinSharedStream(this.shared, attempt)
        this.dropConnection()
        if (end.kind === 'aborted') continue
        const next = policy.after(end.kind === 'failed' ? end.failure : null, this.retryMs)
        if (next.kind === 'stop') {
          this.stop(next.error)
          break
        }
        if (next.error !== null) this.reportRetry(next.error)
        if (next.delay > 0 && this.wantsConnection) await sleep(next.delay, attempt.signal)
      }
    } finally {
      // In the same tick as the exit decision: a connect() after it starts a new loop.
      this.running = false
      this.attempt = null
      this.setStatus('disconnected')
    }
  }

  /**
   * With `fetchSnapshot`, a document that is empty and was never synced is first fetched whole
   * (binary, compressed), and its stream resumes from that event ID: the stream's request goes
   * out first, and the snapshot is applied while it travels ({@link applyFetched}). Any failure
   * (no such document yet, no access, no network) leaves it to the stream, which reports it.
   */
  private async loadSnapshot (signal: AbortSignal): Promise<boolean> {
    // One fetched for an attempt that was abandoned before applying it (a shared stream reopened
    // for another member) is still this document's state: no need to fetch it again.
    if (this.fetched !== null && this.lastEventId === null) return true
    this.fetched = null
    if (!this.fetchSnapshot || this.snapshotRefused || this.lastEventId !== null || this.doc.store.clients.size > 0) return false
    const snapshot = await this.transport.getDocument(signal)
    if (snapshot === null || signal.aborted || this.lastEventId !== null) return false
    this.fetched = snapshot
    return true
  }

  /**
   * Applies the snapshot {@link loadSnapshot} fetched, if any; false when it was no Yjs update (a
   * proxy that rewrote the body): the stream was then opened from a point the document does not
   * hold, and must be opened again, for the whole document.
   */
  private applyFetched (): boolean {
    const snapshot = this.fetched
    this.fetched = null
    if (snapshot === null) return true
    try {
      this.applyRemote(snapshot.update, snapshot.eventId, snapshot.encoding)
      return true
    } catch {
      this.snapshotRefused = true
      return false
    }
  }

  /** A failed attempt that will be retried: that is the outcome of a pending `connect()`. */
  private reportRetry (error: ConnectionError): void {
    this.emit('connection-error', [error])
    this.settleConnect()
  }

  /**
   * Follows the document on the stream shared with other providers until that ends for this one;
   * when the hub sends it away, it goes on with a stream of its own, for good.
   */
  private async joinSharedStream (identity: HubIdentity, attempt: AbortController): Promise<AttemptEnd> {
    const hub = this.acrossTabs ? TabStreamHub.for(identity, this.transport, this.maxBackoffTime) : StreamHub.for(identity, this.transport, this.maxBackoffTime)
    const end = await hub.attach(this.member, attempt.signal)
    if (end.kind !== 'solo') return end
    this.shared = null
    return this.openStream(attempt)
  }

  /** One stream attempt: fetch, check the response, read events until the stream ends. */
  private async openStream (attempt: AbortController): Promise<AttemptEnd> {
    const tokenFailure = await this.transport.refreshToken('events')
    if (tokenFailure !== null) return { kind: 'failed', failure: tokenFailure }
    const fetched = await this.loadSnapshot(attempt.signal)
    if (attempt.signal.aborted) return { kind: 'aborted' }
    let response: HttpResponse
    try {
      const opening = this.transport.openEvents(this.resumeQuery(), attempt.signal)
      if (fetched && !(await settleWhileOpening(opening, attempt, () => this.applyFetched(), SNAPSHOT_REFUSED))) return { kind: 'aborted' }
      response = await opening
    } catch (error) {
      return attempt.signal.reason === CLOSED_BY_CLIENT ? { kind: 'aborted' } : { kind: 'failed', failure: networkFailure('events', error) }
    }
    if (response.status !== 200 || response.body === null) {
      // 204 is the server's deliberate "stop"; it has no error body.
      return { kind: 'failed', failure: await failureOf('events', response) }
    }
    try {
      await readEventStream(response.body, this.handlers, attempt)
      // The server ends the stream before syncing when its store fails: that is a failure, not a resume.
      return this.isSynced ? { kind: 'ended' } : { kind: 'failed', failure: networkFailure('events', new Error('the stream ended before its sync event')) }
    } catch (error) {
      if (attempt.signal.reason === CLOSED_BY_CLIENT) return { kind: 'aborted' }
      return this.isSynced ? { kind: 'ended' } : { kind: 'failed', failure: networkFailure('events', attempt.signal.reason ?? error) }
    }
  }

  /** Where this client stands: the last event ID, its awareness ID, and its state vector when short enough. */
  private resumeQuery (): Record<string, string> {
    const { lastEventId, stateVector } = this.resumePoint()
    const query: Record<string, string> = { [Param.awareness]: String(this.awareness.clientID) }
    if (lastEventId !== null) query[Param.lastEventId] = lastEventId
    if (stateVector !== null) query[Param.stateVector] = stateVector
    return query
  }

  /**
   * The last event ID applied, and the state vector (base64url) unless it is too long for a URL;
   * with a snapshot fetched but not yet applied, the snapshot's event ID (the document's own state
   * vector says nothing yet).
   */
  private resumePoint (): ResumePoint {
    if (this.fetched !== null) return { lastEventId: this.fetched.eventId, stateVector: null }
    const stateVector = toBase64Url(Y.encodeStateVector(this.doc))
    return { lastEventId: this.lastEventId, stateVector: stateVector.length <= MAX_STATE_VECTOR_PARAM ? stateVector : null }
  }

  /**
   * Applies an update from the server without our `update` listener: Yjs encodes every applied
   * transaction again for `update` listeners, a third of the time it takes to apply a document's
   * snapshot, and the provider would only drop what came from the server anyway.
   */
  private applyRemote (update: Uint8Array, eventId: string, encoding: UpdateEncoding = 'v1'): void {
    this.doc.off('update', this.onDocUpdate)
    this.doc.on('afterTransaction', this.onTransactionWhileApplying)
    try {
      if (encoding === 'v2') Y.applyUpdateV2(this.doc, update, this)
      else Y.applyUpdate(this.doc, update, this)
    } finally {
      this.doc.off('afterTransaction', this.onTransactionWhileApplying)
      this.listenToLocalUpdates()
    }
    this.lastEventId = eventId
  }

  /**
   * A transaction of someone else inside {@link applyRemote} (an observer answering the remote
   * change): Yjs emits its `update` after `afterTransaction`, so listening again now hears it and
   * every later one, while the server's transaction, cleaned up first, stays unheard.
   */
  private readonly onTransactionWhileApplying = (transaction: Y.Transaction): void => {
    if (transaction.origin !== this) this.listenToLocalUpdates()
  }

  /**
   * Listens to the document's updates again, unless the provider was destroyed meanwhile (from an
   * observer). The listener comes back last among the document's `update` listeners.
   */
  private listenToLocalUpdates (): void {
    if (!this.destroyed) this.doc.on('update', this.onDocUpdate)
  }

  private onSynced (serverStateVector: Uint8Array): void {
    this.setStatus('connected')
    this.outbox.resume(this.doc, serverStateVector)
    this.presence.resume()
    this.isSynced = true
    this.emit('sync', [true])
    for (const waiter of this.syncWaiters.splice(0)) waiter.resolve()
    this.settleConnect()
  }

  /** Undoes what a live stream set up; after every attempt and on `disconnect()`, so it is idempotent. */
  private dropConnection (): void {
    this.outbox.pause()
    this.presence.pause()
    if (this.isSynced) {
      // Leaving on purpose: tell the peers now rather than when the server notices the closed stream.
      if (!this.wantsConnection) void this.presence.leave()
      this.isSynced = false
      this.emit('sync', [false])
    }
    this.setStatus('disconnected')
  }

  /** Stops for good (until `connect()`), saying why. */
  private stop (error: ConnectionError): void {
    this.wantsConnection = false
    this.attempt?.abort(CLOSED_BY_CLIENT)
    this.emit('connection-error', [error])
    const reason = new Error(`${error.request}: ${error.message} (HTTP ${error.status})`)
    for (const waiter of this.syncWaiters.splice(0)) waiter.reject(reason)
    this.settleConnect()
  }

  private settleConnect (): void {
    this.pendingConnect?.()
    this.pendingConnect = null
  }

  private setStatus (status: ProviderStatus): void {
    if (this.currentStatus === status) return
    this.currentStatus = status
    this.emit('status', [{ status }])
  }
}
