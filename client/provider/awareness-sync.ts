/**
 * Presence over the protocol: local awareness changes are POSTed (throttled, latest state wins),
 * remote ones arrive on the event stream. On leaving, the removal of the local state is sent at
 * once, so peers drop the cursor within a round trip instead of after y-protocols' 30 s timeout.
 */
import { applyAwarenessUpdate, encodeAwarenessUpdate, removeAwarenessStates, type Awareness } from 'y-protocols/awareness'
import { encodeAwarenessEntries } from '../../shared/awareness.js'
import type { RequestFailure } from './transport.js'

interface AwarenessChanges {
  added: number[]
  updated: number[]
  removed: number[]
}

/** What the awareness sync needs from the provider. */
export interface AwarenessSyncHooks {
  post(update: Uint8Array): Promise<RequestFailure | null>
  /** Reports a failed POST; presence is not retried, the next change or renewal replaces it. */
  failed(failure: RequestFailure): void
}

export class AwarenessSync {
  /** Whether the event stream is synced, so the server relays what we POST. */
  private live = false
  /** A change arrived while a POST was in flight or the throttle window was open. */
  private dirty = false
  private sending = false
  private throttle: ReturnType<typeof setTimeout> | undefined

  constructor (private readonly awareness: Awareness, private readonly hooks: AwarenessSyncHooks, private readonly throttleMs: number) {
    awareness.on('update', this.onUpdate)
  }

  // Every change to the local client counts, whatever its origin: a remote "you left" for our own
  // ID makes y-protocols bump our clock, and that bump must reach the peers to keep us visible.
  private readonly onUpdate = ({ added, updated, removed }: AwarenessChanges): void => {
    const self = this.awareness.clientID
    if (added.includes(self) || updated.includes(self) || removed.includes(self)) this.schedule()
  }

  /** Applies presence relayed by the server. */
  applyRemote (update: Uint8Array): void {
    applyAwarenessUpdate(this.awareness, update, this)
  }

  /** The stream is synced: announce the local state, newer than any retraction the server made. */
  resume (): void {
    this.live = true
    this.bumpClock()
    this.dirty = false
    this.schedule()
  }

  /**
   * The stream is gone. The server retracts our presence with the next clock when it sees the
   * stream close; mirror that, so the next announcement has a clock the peers accept. Peers we can
   * no longer hear from are dropped now; the next sync brings the current ones back.
   */
  pause (): void {
    if (!this.live) return
    this.live = false
    this.dirty = false
    clearTimeout(this.throttle)
    this.throttle = undefined
    this.bumpClock()
    const self = this.awareness.clientID
    const remote = [...this.awareness.getStates().keys()].filter(id => id !== self)
    if (remote.length > 0) removeAwarenessStates(this.awareness, remote, this)
  }

  /**
   * Sends the removal of the local state without changing it (it comes back on reconnect). Call
   * after {@link pause}; the clock is then the one the server's own retraction would carry.
   */
  leave (): Promise<void> {
    const meta = this.awareness.meta.get(this.awareness.clientID)
    if (meta === undefined) return Promise.resolve()
    const removal = encodeAwarenessEntries([{ clientID: this.awareness.clientID, clock: meta.clock, state: 'null' }])
    return this.hooks.post(removal).then(failure => {
      if (failure !== null) this.hooks.failed(failure)
    })
  }

  private bumpClock (): void {
    const meta = this.awareness.meta.get(this.awareness.clientID)
    if (meta !== undefined) meta.clock++
  }

  /** Leading and trailing throttle: the first change goes at once, later ones at most every `throttleMs`. */
  private schedule (): void {
    if (!this.live) return
    if (this.sending || this.throttle !== undefined) {
      this.dirty = true
      return
    }
    this.dirty = false
    this.sending = true
    const update = encodeAwarenessUpdate(this.awareness, [this.awareness.clientID])
    void this.hooks.post(update).then(failure => {
      this.sending = false
      if (failure !== null) this.hooks.failed(failure)
      if (!this.live) return
      this.throttle = setTimeout(() => {
        this.throttle = undefined
        if (this.dirty) this.schedule()
      }, this.throttleMs)
    })
  }

  /** Removes the listener and the timer. */
  destroy (): void {
    this.live = false
    clearTimeout(this.throttle)
    this.throttle = undefined
    this.awareness.off('update', this.onUpdate)
  }
}
