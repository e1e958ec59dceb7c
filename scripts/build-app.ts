/**
 * `node dist/scripts/build-app.js [--force]`: builds the editor (client/app) into dist/app with
 * Vite, unless the build is newer than every file it is made from, so a second `npm start` takes
 * seconds instead of a full Vite build. Run by `npm run build` and by the tests' global set-up.
 */
import { readdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'vite'

/** The repository, found from this file whether it runs as source (scripts/) or compiled (dist/scripts/). */
const root = fileURLToPath(new URL(import.meta.url.includes('/dist/scripts/') ? '../../' : '../', import.meta.url))

/** Where the built editor goes; the server serves it from there. */
export const appOutDir = join(root, 'dist/app')

/** Written after a complete build: a build that failed half-way leaves none, so it counts as stale. */
const stamp = join(appOutDir, '.built')

/** What the editor is built from. The app imports the provider (client/) and the protocol (shared/). */
const sources = ['client', 'shared', 'vite.config.ts', 'package-lock.json'].map(path => join(root, path))

const newestMtime = async (path: string): Promise<number> => {
  const info = await stat(path)
  if (!info.isDirectory()) return info.mtimeMs
  const entries = await readdir(path)
  const times = await Promise.all(entries.map(entry => newestMtime(join(path, entry))))
  return Math.max(info.mtimeMs, ...times)
}

/** Whether dist/app is missing or older than one of its sources. */
const appIsStale = async (): Promise<boolean> => {
  let built: number
  try {
    built = (await stat(stamp)).mtimeMs
  } catch {
    return true
  }
  const newest = await Promise.all(sources.map(newestMtime))
  return Math.max(...newest) > built
}

// Imported (by the browser tests, for `appOutDir`), it only describes; run, it builds.
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  if (process.argv.includes('--force') || await appIsStale()) {
    const started = Date.now()
    await build({ configFile: join(root, 'vite.config.ts'), mode: 'production', logLevel: 'warn' })
    await writeFile(stamp, `${new Date().toISOString()}\n`)
    process.stderr.write(`editor built into ${appOutDir} in ${Date.now() - started} ms\n`)
  } else {
    process.stderr.write('editor is up to date\n')
  }
}
