/**
 * What every workload shares: its settings, its result shape, replaying trace edits, waiting for
 * convergence, and percentiles.
 */
import { setImmediate as yieldToLoop, setTimeout as sleep } from 'node:timers/promises'
import type * as Y from 'yjs'
import type { SequentialTrace } from '../test/helpers/traces.js'
import type { BenchRedis, System } from './servers.js'

/** Settings of one benchmark run, from the command line. */
export interface BenchSettings {
  quick: boolean
  systems: System[]
  /** Trace edits replayed (the whole automerge-paper trace: 259,778). */
  edits: number
  /** Edits between two yields to the event loop while replaying (the typist's burst). */
  burst: number
  /** Subscriber counts of the fan-out workload. */
  subscribers: number[]
  /** Writer counts of the fan-out workload: a row for each with each subscriber count. */
  fanoutWriters: number[]
  /** Seconds the fan-out writers publish, at 100 updates/s each. */
  fanoutSeconds: number
  fanoutWarmupSeconds: number
  /** Missed edits of the resume workload. */
  missed: number[]
  /** Documents of the idle-rooms workload (two clients each). */
  rooms: number
  /** Idle streams the connections workload tries to hold. */
  connections: number
}

/** What a workload gets to run with. */
export interface BenchContext {
  settings: BenchSettings
  redis: BenchRedis
  trace: SequentialTrace
  log(message: string): void
}

/** One measured quantity, a column of the workload's table. */
export interface Metric {
  key: string
  label: string
  /** Whether smaller is better, for the comparison with the best peer; absent: not compared. */
  better?: 'lower' | 'higher'
}

/** One system's (or one system variant's) measurements. */
export interface Row {
  /**
   * The system measured; `floor` for a limit: the replay in one process (the floor workload), or
   * the bare `node:http` event streams of `sse-floor.ts` (fan-out, connections).
   */
  system: System | 'floor'
  /** Rows with the same variant are compared with each other, e.g. "1,000 missed". */
  variant?: string
  values: Record<string, number | string | null>
  /** Why the row has no numbers: a crash, or a client that did not converge. */
  failure?: string
}

export interface WorkloadResult {
  id: string
  title: string
  metrics: Metric[]
  rows: Row[]
  /** Keys of the metrics compared with the best peer in the summary. */
  headline: string[]
  notes: string[]
}

export interface Workload {
  id: string
  /** Runs every system; one workload may fill several tables (the replay also measures cold sync). */
  run(context: BenchContext): Promise<WorkloadResult[]>
}

/** Thrown when a client ends with content other than expected: the run fails loudly. */
export class ConvergenceError extends Error {
  override readonly name = 'ConvergenceError'
}

/** Applies trace transactions `[from, to)` to `doc`, one Yjs transaction each, yielding every `burst` edits (never when 0). */
export const applyEdits = async (doc: Y.Doc, trace: SequentialTrace, from: number, to: number, burst: number): Promise<void> => {
  const text = doc.getText('t')
  for (let i = from; i < to; i++) {
    const patches = trace.txns[i]?.patches ?? []
    doc.transact(() => {
      for (const [pos, del, ins] of patches) {
        if (del > 0) text.delete(pos, del)
        if (ins !== '') text.insert(pos, ins)
      }
    })
    if (burst > 0 && (i - from) % burst === burst - 1) await yieldToLoop()
  }
}

/** Polls `condition` every millisecond; throws a {@link ConvergenceError} after `timeoutMs`. */
export const waitUntil = async (condition: () => boolean, timeoutMs: number, what: () => string): Promise<void> => {
  const deadline = performance.now() + timeoutMs
  while (!condition()) {
    if (performance.now() > deadline) throw new ConvergenceError(`not converged within ${timeoutMs / 1000} s: ${what()}`)
    await sleep(1)
  }
}

/**
 * Runs `step(seq)` for `seq` from 0 to `count - 1` at `ratePerSecond`, each when its time comes
 * (a late step is not made up for by hurrying the next ones beyond their time).
 */
export const paced = async (count: number, ratePerSecond: number, step: (seq: number) => void | Promise<void>): Promise<void> => {
  const started = performance.now()
  for (let seq = 0; seq < count; seq++) {
    const wait = started + seq * 1000 / ratePerSecond - performance.now()
    if (wait > 0) await sleep(wait)
    await step(seq)
  }
}

/** Waits until `doc`'s text is `expected`; the length check keeps polling cheap on long texts. */
export const waitForText = (doc: Y.Doc, expected: string, timeoutMs: number, who: string): Promise<void> => {
  const text = doc.getText('t')
  return waitUntil(() => text.length === expected.length && text.toString() === expected, timeoutMs,
    () => `${who} has ${text.length} characters, expected ${expected.length}`)
}

/**
 * The number of the `k`-th marker of fan-out writer `index` of `writers`: each writer numbers its
 * own, and all of them together number 0, 1, 2, …
 */
export const markerSeq = (index: number, k: number, writers: number): number => index + k * writers

/** Milliseconds since the epoch with sub-millisecond resolution, comparable between processes. */
export const now = (): number => performance.timeOrigin + performance.now()

/** The value at quantile `q` (0..1) of sorted `values`. */
export const quantile = (sorted: ArrayLike<number>, q: number): number =>
  sorted.length === 0 ? NaN : (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number)

export const median = (values: readonly number[]): number => quantile([...values].sort((a, b) => a - b), 0.5)

/**
 * The row of a floor (`variant`: the row's variant, if any), turning a failure into a row that
 * says why: a floor that cannot be measured leaves the systems' rows as they are.
 */
export const floorRow = async (context: BenchContext, variant: string | undefined, measure: () => Promise<Row['values']>): Promise<Row> => {
  try {
    return { system: 'floor', variant, values: await measure() }
  } catch (error) {
    context.log(`  floor${variant === undefined ? '' : `, ${variant}`}: FAILED: ${(error as Error).message}`)
    return { system: 'floor', variant, values: {}, failure: (error as Error).message }
  }
}

/** Runs `body` for each system, turning a failure into a row that says why (the run then fails if it is y-sse's). */
export const perSystem = async (
  context: BenchContext,
  body: (system: System) => Promise<Row[]>
): Promise<Row[]> => {
  const rows: Row[] = []
  for (const system of context.settings.systems) {
    try {
      rows.push(...await body(system))
    } catch (error) {
      context.log(`  ${system}: FAILED: ${(error as Error).message}`)
      rows.push({ system, values: {}, failure: (error as Error).message })
    }
  }
  return rows
}
