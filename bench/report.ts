/**
 * Turns workload results into the run's markdown (tables, then how y-sse compares with the best
 * peer and the floor on each headline metric) and JSON.
 */
import type { Metric, Row, WorkloadResult } from './workload.js'

/** Where and how the run happened. */
export interface RunInfo {
  date: string
  command: string
  cpuModel: string
  cores: number
  pinned: boolean
  node: string
  memoryGiB: number
  /** 1-minute load average at the start and the end: other work on the machine shows here. */
  load: [number, number]
}

const formatValue = (key: string, value: number | string | null | undefined): string => {
  if (value === null || value === undefined) return '–'
  if (typeof value === 'string') return value
  if (!Number.isFinite(value)) return '–'
  if (/bytes$|Rss$|rss$/i.test(key)) return formatBytes(value)
  if (Number.isInteger(value)) return value.toLocaleString('en-US')
  const digits = Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : Math.abs(value) >= 1 ? 2 : 3
  return value.toFixed(digits)
}

const formatBytes = (bytes: number): string => {
  if (Math.abs(bytes) < 10_000) return `${Math.round(bytes)} B`
  if (Math.abs(bytes) < 10_000_000) return `${(bytes / 1000).toFixed(1)} KB`
  return `${(bytes / 1_000_000).toFixed(1)} MB`
}

const label = (row: Row): string => row.variant === undefined ? row.system : `${row.system} · ${row.variant}`

const table = (result: WorkloadResult): string => {
  const header = ['', ...result.metrics.map(m => m.label)]
  const lines = [`| ${header.join(' | ')} |`, `| ${header.map((_, i) => i === 0 ? '---' : '---:').join(' | ')} |`]
  for (const row of result.rows) {
    const cells = row.failure === undefined
      ? result.metrics.map(m => formatValue(m.key, row.values[m.key]))
      : [`**FAILED**: ${row.failure.replaceAll('|', '/')}`, ...result.metrics.slice(1).map(() => '')]
    lines.push(`| ${label(row)} | ${cells.join(' | ')} |`)
  }
  return lines.join('\n')
}

/** How many times better y-sse is than `other` (above 1: y-sse wins). */
const advantage = (metric: Metric, ysse: number, other: number): number =>
  metric.better === 'higher' ? ysse / other : other / ysse

/** One line per headline metric and variant: y-sse against the best peer. */
export const comparisons = (result: WorkloadResult): string[] => {
  const lines: string[] = []
  const variants = [...new Set(result.rows.map(r => r.variant))]
  for (const key of result.headline) {
    const metric = result.metrics.find(m => m.key === key)
    if (metric?.better === undefined) continue
    for (const variant of variants) {
      const rows = result.rows.filter(r => r.variant === variant && r.failure === undefined && typeof r.values[key] === 'number')
      const ysse = rows.find(r => r.system === 'y-sse')
      const peers = rows.filter(r => r.system !== 'y-sse' && r.system !== 'floor')
      if (ysse === undefined || peers.length === 0) continue
      const value = (r: Row): number => r.values[key] as number
      const best = peers.reduce((a, b) => advantage(metric, value(a), value(b)) >= 1 ? a : b)
      const ratio = advantage(metric, value(ysse), value(best))
      const where = variant === undefined ? '' : ` (${variant})`
      // A reading at or below zero (resident memory that did not grow between two readings) gives no ratio.
      if (rows.some(r => value(r) <= 0)) {
        lines.push(`${metric.label}${where}: y-sse ${formatValue(key, value(ysse))} vs ${peers.map(p => `${p.system} ${formatValue(key, value(p))}`).join(', ')}: no ratio (a reading at or below zero)`)
        continue
      }
      lines.push(`${metric.label}${where}: y-sse ${formatValue(key, value(ysse))} vs best peer ${best.system} ${formatValue(key, value(best))} → **${ratio.toFixed(2)}×** ${ratio >= 1 ? 'better' : 'worse'}`)
    }
  }
  return lines
}

export const markdown = (info: RunInfo, results: readonly WorkloadResult[], extra: readonly string[]): string => {
  const parts = [
    `Run ${info.date}: \`${info.command}\``,
    '',
    `Machine: ${info.cores} cores (${info.cpuModel}), ${info.memoryGiB} GiB, Node ${info.node}; ` +
      (info.pinned ? 'servers (and y-sse\'s Redis) pinned to core 0, clients to core 1' : 'no CPU pinning') +
      `; load average ${info.load[0].toFixed(2)} at the start, ${info.load[1].toFixed(2)} at the end.`,
    ''
  ]
  for (const result of results) {
    parts.push(`### ${result.title}`, '', table(result), '')
    const lines = comparisons(result)
    if (lines.length > 0) parts.push(...lines.map(l => `- ${l}`), '')
    if (result.notes.length > 0) parts.push(...result.notes.map(n => `> ${n}`), '')
  }
  if (extra.length > 0) parts.push(...extra.map(l => `- ${l}`), '')
  return parts.join('\n')
}
