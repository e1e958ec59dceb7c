import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { freePort } from './redis-process.js'
import { onCleanup } from './server.js'
import { waitFor } from './wait.js'

const DEPLOY_CONFIG = fileURLToPath(new URL('../../deploy/nginx.conf', import.meta.url))

export interface Nginx {
  url: string
  stop(): Promise<void>
}

/**
 * Runs Debian's nginx with deploy/nginx.conf as shipped, only its upstream servers and listen port
 * replaced, in front of the given instance ports. Stopped after the test.
 */
export const startNginx = async (upstreamPorts: readonly number[]): Promise<Nginx> => {
  const dir = await mkdtemp(join(tmpdir(), 'y-sse-nginx-'))
  const port = await freePort()
  const deploy = await readFile(DEPLOY_CONFIG, 'utf8')
  const servers = upstreamPorts.map(p => `    server 127.0.0.1:${p} max_fails=1 fail_timeout=2s;`).join('\n')
  const site = deploy
    .replace(/(upstream y_sse \{\n)(?:.*\n)*?(?= {4}# Reuse)/, (_all, head: string) => `${head}${servers}\n`)
    .replace('listen 80;', `listen 127.0.0.1:${port};`)
  if (!site.includes(servers)) throw new Error('deploy/nginx.conf no longer has the upstream block this helper rewrites')
  await writeFile(join(dir, 'site.conf'), site)
  await writeFile(join(dir, 'nginx.conf'), `
daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  include ${dir}/site.conf;
}
`)
  const child = spawn('nginx', ['-p', dir, '-c', join(dir, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  let exited = false
  const exit = once(child, 'exit').then(() => { exited = true })
  const url = `http://127.0.0.1:${port}`
  await waitFor(async () => {
    if (exited) throw new Error(`nginx exited: ${stderr}`)
    return fetch(url + '/healthz').then(() => true, () => false)
  }, { message: () => `nginx did not start: ${stderr}` })
  let stopped: Promise<void> | null = null
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      if (!exited) {
        child.kill('SIGQUIT')
        await exit
      }
      await rm(dir, { recursive: true, force: true })
    })()
    return stopped
  }
  onCleanup(stop)
  return { url, stop }
}
