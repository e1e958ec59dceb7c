/**
 * `npm run bench [-- options]`: y-sse side by side with y-websocket and Hocuspocus on one machine.
 * Each run writes `bench/results/<date>.md` and `.json` (and `latest.md`/`latest.json`).
 *
 *   --quick                   small sizes, every workload (about 2 minutes)
 *   --only replay,fanout      workloads: floor, replay (with cold sync), resume, fanout, idle, connections
 *   --systems y-sse,hocuspocus
 *   --edits N                 trace edits to replay (default: the whole trace)
 *   --burst N                 edits between yields to the event loop while replaying (default 10)
 *   --subscribers 200,1000    fan-out subscriber counts
 *   --fanout-writers 1,4      fan-out writer counts (default 1)
 *   --fanout-seconds N        seconds the fan-out writers publish, each at 100 updates/s
 *   --fanout-warmup N         seconds they publish before that, not measured (default 3)
 *   --missed 10,1000,100000   missed edits of the resume workload
 *   --rooms N                 documents of the idle-rooms workload (two clients each)
 *   --connections N           idle streams the connections workload tries to hold
 *   --profile                 y-sse servers write CPU profiles (node --cpu-prof) to bench/results/profiles/
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, totalmem } from 'node:os'
import { parseArgs } from 'node:util'
import { join } from 'node:path'
import { loadTrace, repoRoot } from '../test/helpers/traces.js'
import { SYSTEMS, profileServersInto, startBenchRedis, type System } from './servers.js'
import { cores, pin } from './proc.js'
import { markdown, type RunInfo } from './report.js'
import type { BenchSettings, Workload, WorkloadResult } from './workload.js'
import { floor } from './workloads/floor.js'
import { replay } from './workloads/replay.js'
import { resume } from './workloads/resume.js'
import { fanout } from './workloads/fanout.js'
import { idleRooms } from './workloads/idle.js'
import { connections } from './workloads/connections.js'

const WORKLOADS: readonly Workload[] = [floor, replay, resume, fanout, idleRooms, connections]

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    systems: { type: 'string' },
    edits: { type: 'string' },
    burst: { type: 'string' },
    subscribers: { type: 'string' },
    'fanout-writers': { type: 'string' },
    'fanout-seconds': { type: 'string' },
    'fanout-warmup': { type: 'string' },
    missed: { type: 'string' },
    rooms: { type: 'string' },
    connections: { type: 'string' },
    profile: { type: 'boolean', default: false }
  }
})

const numbers = (raw: string | undefined, fallback: number[]): number[] => {
  if (raw === undefined) return fallback
  const parsed = raw.split(',').map(Number)
  if (parsed.some(n => !Number.isSafeInteger(n) || n < 0)) throw new Error(`not a list of integers: ${raw}`)
  return parsed
}
const number = (raw: string | undefined, fallback: number): number => numbers(raw, [fallback])[0] as number

const trace = loadTrace('automerge-paper')
const quick = values.quick
const settings: BenchSettings = {
  quick,
  systems: values.systems === undefined ? [...SYSTEMS] : values.systems.split(',').map(s => {
    if (!(SYSTEMS as readonly string[]).includes(s)) throw new Error(`unknown system ${s}; known: ${SYSTEMS.join(', ')}`)
    return s as System
  }),
  edits: Math.min(trace.txns.length, number(values.edits, quick ? 20_000 : trace.txns.length)),
  burst: number(values.burst, 10),
  subscribers: numbers(values.subscribers, quick ? [200] : [200, 1000]),
  fanoutWriters: numbers(values['fanout-writers'], [1]),
  fanoutSeconds: number(values['fanout-seconds'], quick ? 3 : 10),
  fanoutWarmupSeconds: number(values['fanout-warmup'], quick ? 1 : 3),
  missed: numbers(values.missed, quick ? [10, 1000] : [10, 1000, 100_000]),
  rooms: number(values.rooms, quick ? 100 : 500),
  connections: number(values.connections, quick ? 2000 : 10_000)
}
if (settings.fanoutWriters.some(writers => writers < 1)) throw new Error('--fanout-writers: every row needs at least one writer')
const only = values.only?.split(',')
for (const id of only ?? []) if (!WORKLOADS.some(w => w.id === id)) throw new Error(`unknown workload ${id}; known: ${WORKLOADS.map(w => w.id).join(', ')}`)

const resultsDir = join(repoRoot(), 'bench', 'results')
if (values.profile) profileServersInto(join(resultsDir, 'profiles'))

// The clients run here, on the client core; servers go to the other one.
pin(process.pid, 'client')
const log = (message: string): void => { process.stderr.write(`${message}\n`) }
const redis = await startBenchRedis()
const results: WorkloadResult[] = []
const started = performance.now()
const loadAtStart = loadavg()[0] as number
try {
  for (const workload of WORKLOADS) {
    if (only !== undefined && !only.includes(workload.id)) continue
    log(`${workload.id}…`)
    results.push(...await workload.run({ settings, redis, trace, log }))
  }
} finally {
  await redis.server.stop()
}

const info: RunInfo = {
  date: new Date().toISOString(),
  command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
  cpuModel: /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpus()[0]?.model ?? 'unknown',
  cores: cpus().length,
  pinned: cores !== null,
  node: process.version,
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  load: [loadAtStart, loadavg()[0] as number]
}

/** The replay against the floor, for every system: how far each is from the physical limit. */
const floorLines = (): string[] => {
  const floorSeconds = results.find(r => r.id === 'floor')?.rows[0]?.values.seconds
  const replayRows = results.find(r => r.id === 'replay')?.rows ?? []
  if (typeof floorSeconds !== 'number') return []
  return replayRows.filter(r => typeof r.values.seconds === 'number')
    .map(r => `trace replay vs the floor: ${r.system} ${((r.values.seconds as number) / floorSeconds).toFixed(2)}× the floor's ${floorSeconds.toFixed(2)} s`)
}

/**
 * `key` of every system's row in workload `id` against the floor row of the same variant (the bare
 * `node:http` event streams of `sse-floor.ts`): for y-sse, how far it is from the least an SSE
 * server on Node pays; for the peers, which need not pay it, how they compare with that least.
 */
const vsFloorLines = (id: string, key: string, what: string, format: (value: number) => string): string[] => {
  const rows = results.find(r => r.id === id)?.rows ?? []
  return rows.flatMap(row => {
    const floor = rows.find(r => r.system === 'floor' && r.variant === row.variant)?.values[key]
    const value = row.values[key]
    if (row.system === 'floor' || typeof floor !== 'number' || typeof value !== 'number') return []
    const where = row.variant === undefined ? '' : ` (${row.variant})`
    return [`${what}${where} vs the node:http SSE floor: ${row.system} ${(value / floor).toFixed(2)}× the floor's ${format(floor)}`]
  })
}

const report = markdown(info, results, [
  ...floorLines(),
  ...vsFloorLines('cold', 'ms', 'cold sync time', value => `${value.toFixed(1)} ms`),
  ...vsFloorLines('resume', 'ms', 'resume time', value => `${value.toFixed(2)} ms`),
  ...vsFloorLines('fanout', 'cpuPerDelivery', 'server CPU per delivery', value => `${value.toFixed(1)} µs`),
  ...vsFloorLines('connections', 'perStreamBytes', 'RSS per stream', value => `${(value / 1000).toFixed(1)} KB`),
  ...vsFloorLines('connections', 'heapPerStreamBytes', 'heap per stream', value => `${(value / 1000).toFixed(1)} KB`),
  `whole run: ${((performance.now() - started) / 1000).toFixed(0)} s`])
mkdirSync(resultsDir, { recursive: true })
const stamp = info.date.replaceAll(':', '-').replace(/\.\d+Z$/, 'Z')
const json = JSON.stringify({ info, settings, results }, null, 2)
for (const name of [stamp, 'latest']) {
  writeFileSync(join(resultsDir, `${name}.md`), report)
  writeFileSync(join(resultsDir, `${name}.json`), json)
}
process.stdout.write(`${report}\nwritten to bench/results/${stamp}.md and .json\n`)

// A y-sse client that did not converge, or a y-sse workload that crashed, fails the run.
const failed = results.flatMap(r => r.rows.filter(row => row.system === 'y-sse' && row.failure !== undefined).map(row => `${r.id}: ${row.failure}`))
if (failed.length > 0) {
  process.stderr.write(`y-sse FAILED:\n${failed.join('\n')}\n`)
  process.exitCode = 1
}
// Open handles of the clients' libraries (agents, timers) must not keep the run alive.
process.exit()
