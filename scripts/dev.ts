/**
 * `npm run dev`: the API server (dist/server/main.js, in a child process, with the environment
 * passed through: REDIS_URL etc.) on a free port, and Vite's dev server for the editor with hot
 * reload, proxying the API's routes to it. PORT (default 5173) is the dev server's port.
 */
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { createServer } from 'vite'

const root = fileURLToPath(new URL('../../', import.meta.url))

/** Starts the API on a free port and resolves with its URL, read from its "listening" log line. */
const startApi = (): Promise<{ url: string; stop: () => void }> => new Promise((resolve, reject) => {
  const child = spawn(process.execPath, ['dist/server/main.js'], {
    cwd: root,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1' },
    stdio: ['ignore', 'inherit', 'pipe']
  })
  child.once('error', reject)
  child.once('exit', code => reject(new Error(`the API server exited with code ${code}`)))
  createInterface({ input: child.stderr }).on('line', line => {
    process.stderr.write(line + '\n')
    if (!line.startsWith('{')) return
    const entry = JSON.parse(line) as { msg?: string; url?: string }
    if (entry.msg === 'y-sse listening' && entry.url !== undefined) resolve({ url: entry.url, stop: () => child.kill('SIGTERM') })
  })
})

const api = await startApi()
const target = { target: api.url, changeOrigin: false }
const vite = await createServer({
  configFile: root + 'vite.config.ts',
  server: {
    port: Number(process.env.PORT ?? 5173),
    // The API's routes; everything else is the editor, served by Vite.
    proxy: { '/docs': target, '/events': target, '/healthz': target }
  }
})
await vite.listen()
vite.printUrls()

const stop = (): void => {
  api.stop()
  void vite.close().then(() => process.exit(0))
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
