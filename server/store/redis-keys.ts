/**
 * Every Redis key and channel name y-sse uses, built in this one place. All names of one
 * document share the hash tag `{docId}`, so they live in one Redis Cluster slot and multi-key
 * scripts stay legal there.
 */
export interface DocKeys {
  /** Hash: epoch, head, compacted, floor, pendingUpdates, pendingBytes. */
  meta: string
  /** Stream of updates (field `u`); its IDs are the stream part of event IDs. */
  log: string
  /** String: the compacted state as one Yjs update. */
  state: string
  /** Hash: client ID → clock, the state vector at the head. */
  stateVector: string
  /** List, newest first: `<streamId> <state vector bytes>` per compaction. */
  checkpoints: string
  /** Hash: awareness client ID → JSON `{clock, state, at}`. */
  awareness: string
  /** Sorted set: `<clientID>:<connectionId>` of open streams, scored by expiry time. */
  presence: string
  /**
   * Pub/sub channel: `U<epoch>\n<previous streamId>\n<streamId>\n<update>` a new update of up to
   * 16 KB, `u<epoch>\n<streamId>` a larger one, `a<bytes>` awareness, `r` reset.
   */
  channel: string
}

/** The keys of one document under `prefix`. */
export const docKeys = (prefix: string, docId: string): DocKeys => {
  const base = `${prefix}doc:{${docId}}`
  return {
    meta: `${base}:meta`,
    log: `${base}:log`,
    state: `${base}:state`,
    stateVector: `${base}:sv`,
    checkpoints: `${base}:checkpoints`,
    awareness: `${base}:awareness`,
    presence: `${base}:presence`,
    channel: `${base}:events`
  }
}

/** The document ID of a channel name built by {@link docKeys}, or `null`. */
export const docIdOfChannel = (prefix: string, channel: string): string | null => {
  const head = `${prefix}doc:{`
  const tail = '}:events'
  if (!channel.startsWith(head) || !channel.endsWith(tail)) return null
  return channel.slice(head.length, channel.length - tail.length)
}

/** Hash of a multiplexed stream's position snapshots: `seq` → JSON `{docId: eventId}`. */
export const streamPositionsKey = (prefix: string, streamKey: string): string => `${prefix}stream:{${streamKey}}`

/** The change feed's names under `prefix`: one per prefix, so on Redis Cluster not in any document's slot. */
export interface ChangesKeys {
  /** Stream of changes: fields `d` (document ID) and `e` (its event ID). */
  log: string
  /** Hash: epoch, head, trimmed (the newest entry removed by retention). */
  meta: string
  /** Sorted set: document ID → milliseconds of its last change. */
  docs: string
  /** Pub/sub channel: `c` after every change. */
  channel: string
}

/** The change feed's keys under `prefix`. */
export const changesKeys = (prefix: string): ChangesKeys => ({
  log: `${prefix}changes`,
  meta: `${prefix}changes:meta`,
  docs: `${prefix}changes:docs`,
  channel: `${prefix}changes:events`
})
