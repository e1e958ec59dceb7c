import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { onCleanup } from './server.js'

const root = fileURLToPath(new URL('../../', import.meta.url))

/** A running `dist/server/main.js`. */
export interface MainProcess {
  child: ChildProcess
  /** Log lines so far: JSON objects, or `{msg}` for plain lines (configuration errors). */
  logs: Record<string, unknown>[]
  /** The URL it listens on, once it logged it (else ''). */
  url: () => string
  exit: Promise<number | null>
}

/** Starts the built entry point (built by the global set-up) the way `npm start` does, with `env` added; killed after the test. */
export const startMain = (env: Record<string, string>): MainProcess => {
  const child = spawn(process.execPath, ['dist/server/main.js'], { cwd: root, env: { ...process.env, PORT: '0', HOST: '127.0.0.1', ...env }, stdio: ['ignore', 'ignore', 'pipe'] })
  const logs: Record<string, unknown>[] = []
  let buffered = ''
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk
    const lines = buffered.split('\n')
    buffered = lines.pop() ?? ''
    // Configuration errors are plain sentences for people, the rest is JSON.
    for (const line of lines) logs.push(line.startsWith('{') ? JSON.parse(line) as Record<string, unknown> : { msg: line })
  })
  // 'close', not 'exit': the last lines on stderr may still be on their way at 'exit'.
  const exit = new Promise<number | null>(resolve => child.once('close', code => resolve(code)))
  onCleanup(async () => {
    child.kill('SIGKILL')
    await exit
  })
  return { child, logs, exit, url: () => String(logs.find(l => l.msg === 'y-sse listening')?.url ?? '') }
}
