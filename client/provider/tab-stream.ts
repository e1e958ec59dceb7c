/**
 * One multiplexed event stream shared by the tabs of an origin (`multiplex: 'tabs'`), where the
 * browser has the Web Locks API and `BroadcastChannel`.
 *
 * Every tab's hub joins a `BroadcastChannel` named after the server, `params` and `headers`, and
 * announces its set of documents there. The tab holding the Web Lock of that name (held for the
 * hub's life) is the leader: it opens `GET /events` for the union of every tab's documents and
 * forwards each event on the channel, where the other tabs hand it to their providers. Every tab
 * remembers the stream's last event ID it saw, so when the leader tab closes (its lock is
 * released), the tab that gets the lock next resumes every document from there: no update is
 * lost. POSTs stay per tab.
 */
import { Param } from '../../shared/protocol.js'
import { sleep } from './backoff.js'
import { dispatchMultiplexed } from './event-stream.js'
import { ReconnectPolicy } from './reconnect.js'
import { DEFAULT_RETRY_MS, MEMBERS_CHANGED, MemberSet, followMultiplexedStream, resumeQuery, sameIdentity, type HubIdentity, type ResumePoint } from './stream-hub.js'
import type { ConnectionError, RequestFailure, Transport } from './transport.js'

/** A document a tab follows: who reads it, and where it stood when the tab announced it. */
interface TabDoc {
  docName: string
  awarenessId: number
  resume: ResumePoint
}

/** What tabs tell each other on the channel. */
type TabMessage =
  /** A tab's documents (none: the tab left). */
  | { kind: 'docs'; tab: string; docs: TabDoc[] }
  /** A new tab: the others announce their documents to it. */
  | { kind: 'hello'; tab: string }
  /** The leader (re)opens the stream: providers are not synced until their next sync event. */
  | { kind: 'connecting' }
  /** One event of the stream, as read. */
  | { kind: 'event'; event: string | undefined; id: string | undefined; data: string }
  /** The stream failed and will be retried. */
  | { kind: 'failed'; error: ConnectionError }
  /** The server refused the shared stream: every provider goes on with a stream of its own. */
  | { kind: 'solo' }

/** Whether tabs can share a stream here: false in Node and in browsers without Web Locks or `BroadcastChannel`. */
export const tabSharingAvailable = (): boolean =>
  typeof BroadcastChannel === 'function' && typeof navigator !== 'undefined' &&
  typeof (navigator as Partial<Navigator>).locks?.request === 'function'


/** Tab hubs with members, by identity (token and `fetch` compared by identity within the tab). */
const hubs: { identity: HubIdentity; hub: TabStreamHub }[] = []

/** Shares one multiplexed event stream among the providers of every tab of the origin. */
export class TabStreamHub extends MemberSet {
  private readonly tab = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`
  private readonly name: string
  /** The other tabs' documents. */
  private readonly others = new Map<string, TabDoc[]>()
  private readonly channel: BroadcastChannel
  /** Cancels the lock request (or releases the lock) when the hub closes. */
  private readonly lockRequest = new AbortController()
  private releaseLock: (() => void) | null = null
  private leading = false
  private closed = false
  /** The stream's last event ID this tab saw, whichever tab read it. */
  private lastEventId: string | null = null
  private retryMs = DEFAULT_RETRY_MS
  private attempt: AbortController | null = null
  private streaming = false
  private running = false
  private reopenQueued = false
  /** The documents of the stream being read, as `docs` query value. */
  private streamDocs = ''

  private constructor (identity: HubIdentity, private readonly transport: Transport, private readonly maxBackoffTime: number) {
    super()
    this.name = `y-sse:${JSON.stringify([identity.serverUrl, identity.params, identity.headers])}`
    this.channel = new BroadcastChannel(this.name)
    this.channel.onmessage = (event: MessageEvent<TabMessage>) => this.receive(event.data)
    this.post({ kind: 'hello', tab: this.tab })
    // A lock per tab, held for the hub's life, tells a new leader which tabs are still there.
    navigator.locks.request(`${this.name}#${this.tab}`, { signal: this.lockRequest.signal }, () => this.held()).catch(() => {})
    navigator.locks.request(this.name, { signal: this.lockRequest.signal }, () => this.lead()).catch(() => {})
  }

  /** The tab hub for `identity`, created on first use with the transport of the provider that asks first. */
  static for (identity: HubIdentity, transport: Transport, maxBackoffTime: number): TabStreamHub {
    let entry = hubs.find(h => sameIdentity(h.identity, identity))
    if (entry === undefined) {
      entry = { identity, hub: new TabStreamHub(identity, transport, maxBackoffTime) }
      hubs.push(entry)
    }
    return entry.hub
  }

  protected membersChanged (): void {
    if (this.members.size === 0) {
      this.close()
      return
    }
    this.announce()
    this.setChanged()
  }

  private ownDocs (): TabDoc[] {
    return [...this.members.values()].map(({ member }) => ({ docName: member.docName, awarenessId: member.awarenessId(), resume: member.resumePoint() }))
  }

  private announce (): void {
    this.post({ kind: 'docs', tab: this.tab, docs: this.ownDocs() })
  }

  private post (message: TabMessage): void {
    if (!this.closed) this.channel.postMessage(message)
  }

  /** Leaves the channel and gives up the lead: another tab's hub takes the stream over. */
  private close (): void {
    if (this.closed) return
    this.post({ kind: 'docs', tab: this.tab, docs: [] })
    this.closed = true
    this.leading = false
    const index = hubs.findIndex(h => h.hub === this)
    if (index >= 0) hubs.splice(index, 1)
    this.attempt?.abort(MEMBERS_CHANGED)
    this.lockRequest.abort()
    this.releaseLock?.()
    this.channel.close()
  }

  /** Holds a lock until the hub closes (or the tab does). */
  private held (): Promise<void> {
    return new Promise(resolve => {
      if (this.closed) resolve()
      else this.lockRequest.signal.addEventListener('abort', () => resolve())
    })
  }

  /** Runs while this tab holds the leader's lock: forgets tabs that are gone and opens the stream. */
  private async lead (): Promise<void> {
    if (this.closed) return
    const released = new Promise<void>(resolve => { this.releaseLock = resolve })
    const { held = [] } = await navigator.locks.query()
    const alive = new Set(held.map(lock => lock.name))
    for (const tab of [...this.others.keys()]) if (!alive.has(`${this.name}#${tab}`)) this.others.delete(tab)
    if (this.closed) return
    this.leading = true
    this.setChanged()
    await released
  }

  private receive (message: TabMessage): void {
    if (this.closed) return
    switch (message.kind) {
      case 'hello':
        this.announce()
        return
      case 'docs':
        if (message.docs.length === 0) this.others.delete(message.tab)
        else this.others.set(message.tab, message.docs)
        this.setChanged()
        return
    }
    // The leader's own messages never come back to it; a leader ignores a former leader's late ones.
    if (this.leading) return
    switch (message.kind) {
      case 'connecting':
        for (const { member } of this.members.values()) member.connecting()
        return
      case 'event':
        try {
          this.deliver(message)
        } catch {
          // A document whose handlers failed goes on with a stream of its own, as a provider whose stream failed.
          const docId = message.data.slice(0, message.data.indexOf('\n')).split(' ')[0] ?? ''
          this.detach(docId, { kind: 'solo' })
        }
        return
      case 'failed':
        for (const { member } of this.members.values()) member.failed(message.error)
        return
      case 'solo':
        for (const docName of [...this.members.keys()]) this.detach(docName, { kind: 'solo' })
    }
  }

  private deliver (message: { event: string | undefined; id: string | undefined; data: string }): void {
    dispatchMultiplexed({ event: message.event, id: message.id, data: message.data }, docId => this.members.get(docId)?.member.handlers, id => { this.lastEventId = id })
  }

  /** The documents of every tab, each once (this tab's first: their positions are current). */
  private union (): Map<string, TabDoc> {
    const docs = new Map<string, TabDoc>()
    for (const doc of [...this.ownDocs(), ...[...this.others.values()].flat()]) {
      if (!docs.has(doc.docName)) docs.set(doc.docName, doc)
    }
    return docs
  }

  /** As the leader, reopens the stream when the union of the tabs' documents changed (once per tick). */
  private setChanged (): void {
    if (!this.leading || this.reopenQueued) return
    this.reopenQueued = true
    setTimeout(() => {
      this.reopenQueued = false
      if (!this.leading || this.members.size === 0) return
      if (!this.running) {
        this.running = true
        void this.run()
      } else if (this.streaming && [...this.union().keys()].join(',') !== this.streamDocs) {
        this.attempt?.abort(MEMBERS_CHANGED)
      }
    }, 0)
  }

  private async run (): Promise<void> {
    const policy = new ReconnectPolicy(this.maxBackoffTime)
    try {
      while (this.leading && this.members.size > 0) {
        const attempt = new AbortController()
        this.attempt = attempt
        this.post({ kind: 'connecting' })
        for (const { member } of this.members.values()) member.connecting()
        this.streaming = true
        const failure = await this.openStream(attempt)
        this.streaming = false
        if (!this.leading || this.members.size === 0) break
        if (attempt.signal.reason === MEMBERS_CHANGED) continue
        const next = policy.after(failure, this.retryMs)
        if (next.kind === 'stop') {
          // Only a stream of its own tells a provider whether the server refused its document.
          this.post({ kind: 'solo' })
          for (const docName of [...this.members.keys()]) this.detach(docName, { kind: 'solo' })
          break
        }
        if (next.error !== null) {
          const error = next.error
          this.post({ kind: 'failed', error })
          for (const { member } of this.members.values()) member.failed(error)
        }
        if (next.delay > 0) await sleep(next.delay, attempt.signal)
      }
    } finally {
      this.running = false
      this.attempt = null
    }
  }

  /** One stream attempt for every tab's documents; resolves `null` when a synced stream ended, else why it failed. */
  private async openStream (attempt: AbortController): Promise<RequestFailure | null> {
    const tokenFailure = await this.transport.refreshToken('events')
    if (tokenFailure !== null || attempt.signal.aborted) return tokenFailure
    const docs = [...this.union().values()]
    this.streamDocs = docs.map(doc => doc.docName).join(',')
    // The stream's last event ID resumes the documents it carried; the others (just joined) come
    // from where their tab said they stood.
    const query: Record<string, string> = {
      [Param.docs]: this.streamDocs,
      [Param.awareness]: docs.map(doc => String(doc.awarenessId)).join(','),
      ...resumeQuery(docs.map(doc => doc.resume))
    }
    if (this.lastEventId !== null) query[Param.lastEventId] = this.lastEventId
    return followMultiplexedStream(this.transport.openMultiplexedEvents(query, attempt.signal), ({ event, id, data }) => {
      this.post({ kind: 'event', event, id, data })
      this.deliver({ event, id, data })
    }, ms => { this.retryMs = ms }, attempt)
  }
}
