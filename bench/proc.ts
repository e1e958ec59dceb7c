/**
 * What the benchmark reads about a process from Linux's /proc, and CPU pinning with `taskset`.
 * Servers run on core 0 and clients on core 1, so a server's CPU time is its own and the client
 * side cannot steal it.
 */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (`getconf CLK_TCK`, 100 on Linux). */
const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100

/** User + system CPU time of a process so far, in seconds. */
export const cpuSeconds = (pid: number): number => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // The command name (field 2) may contain spaces: count fields after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
}

/** Resident memory of a process: now (`VmRSS`) and its peak (`VmHWM`), in bytes. */
export const memory = (pid: number): { rss: number; peak: number } => {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024
  return { rss: kib('VmRSS'), peak: kib('VmHWM') }
}

const hasTaskset = ((): boolean => {
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
})()

/** The cores servers and clients run on; `null` when the machine has one core or no `taskset`. */
export const cores = ((): { server: number; client: number } | null => {
  if (!hasTaskset) return null
  const online = readFileSync('/sys/devices/system/cpu/online', 'utf8').trim()
  return /^0-([1-9]\d*)$/.test(online) ? { server: 0, client: 1 } : null
})()

/** The command line that runs `command` pinned to the server core (unchanged without pinning). */
export const onServerCore = (command: string, args: readonly string[]): [string, string[]] =>
  cores === null ? [command, [...args]] : ['taskset', ['-c', String(cores.server), command, ...args]]

/** Pins every thread of a running process to a core (no-op without pinning). */
export const pin = (pid: number, core: 'server' | 'client'): void => {
  if (cores !== null) execFileSync('taskset', ['-a', '-cp', String(cores[core]), String(pid)], { stdio: 'ignore' })
}
