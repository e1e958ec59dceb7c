/**
 * Which snapshots of a multiplexed stream's positions a store keeps, shared by every store. The
 * snapshot at `seq` 0 (where the stream started) is valid for every event ID of the stream, so it
 * always stays; a few recent ones spare a resuming client most of the replay.
 */

/** Recent snapshots kept besides the one at `seq` 0. */
export const RECENT_SNAPSHOTS_KEPT = 4

/** The newest of `seqs` at or before `seq`, or `null`. */
export const snapshotFor = (seqs: Iterable<number>, seq: number): number | null => {
  let best: number | null = null
  for (const s of seqs) if (s <= seq && (best === null || s > best)) best = s
  return best
}

/** The snapshots of `seqs` to drop: all but `0` and the newest {@link RECENT_SNAPSHOTS_KEPT}. */
export const snapshotsToDrop = (seqs: Iterable<number>): number[] =>
  [...seqs].filter(s => s !== 0).sort((a, b) => b - a).slice(RECENT_SNAPSHOTS_KEPT)
