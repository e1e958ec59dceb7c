import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { fileURLToPath } from 'node:url'

/** One patch of a sequential trace: `[position, deleteCount, insertText]`. */
export type Patch = [number, number, string]

export interface SequentialTrace {
  startContent: string
  endContent: string
  txns: { patches: Patch[] }[]
}

/** The nearest directory above this module with a package.json: the same from `test/` and from the benchmark's build. */
export const repoRoot = (): string => {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir)
    if (parent === dir) throw new Error('no package.json above the trace loader')
    dir = parent
  }
  return dir
}

/** The editing traces shipped beside the repository (`../shared/data/editing-traces`, CC BY 4.0). */
const TRACES = join(repoRoot(), '..', 'shared', 'data', 'editing-traces')

/** Loads a sequential trace, e.g. `automerge-paper`. */
export const loadTrace = (name: string): SequentialTrace =>
  JSON.parse(gunzipSync(readFileSync(join(TRACES, `${name}.json.gz`))).toString('utf8')) as SequentialTrace

/** The patches of the first `edits` transactions, and the text they produce. */
export const tracePrefix = (trace: SequentialTrace, edits: number): { patches: Patch[]; text: string } => {
  const patches = trace.txns.slice(0, edits).flatMap(t => t.patches)
  let text = trace.startContent
  for (const [pos, del, ins] of patches) text = text.slice(0, pos) + ins + text.slice(pos + del)
  return { patches, text }
}
