import { execFile } from 'node:child_process'
import { writeFile, mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { spawn } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { openLexicalDocument } from '../../client/bot/index.js'
import { createJwtAuthorizer } from '../../server/index.js'
import { intercept, onCleanup, startServer } from '../helpers/server.js'
import { waitFor } from '../helpers/wait.js'

const cli = fileURLToPath(new URL('../../dist/client/bot/cli.js', import.meta.url))

interface Result { code: number; stdout: string; stderr: string }

/** Runs the built CLI (built by the global set-up). */
const ysse = (...args: string[]): Promise<Result> => ysseWith({}, ...args)

const ysseWith = (env: Record<string, string>, ...args: string[]): Promise<Result> => new Promise(resolve => {
  execFile(process.execPath, [cli, ...args], { timeout: 20_000, env: { ...process.env, ...env } }, (error, stdout, stderr) => {
    resolve({ code: error === null ? 0 : Number(error.code ?? 1), stdout, stderr })
  })
})

describe('the y-sse command line', () => {
  it('imports Markdown, appends, and exports as text, Markdown and JSON', async () => {
    const { url } = await startServer()
    const dir = await mkdtemp(join(tmpdir(), 'y-sse-cli-'))
    const file = join(dir, 'notes.md')
    await writeFile(file, '# Notes\n\n- alpha\n- beta\n')
    expect(await ysse('import', '--server', url, '--doc', 'notes', file)).toEqual({ code: 0, stdout: '', stderr: '' })
    expect((await ysse('append', '--server', url, '--doc', 'notes', 'added by the CLI')).code).toBe(0)
    const markdown = await ysse('export', '--server', url, '--doc', 'notes', '--format', 'markdown')
    expect(markdown).toEqual({ code: 0, stdout: '# Notes\n\n- alpha\n- beta\n\nadded by the CLI\n', stderr: '' })
    const text = await ysse('export', '--server', url, '--doc', 'notes')
    expect(text.stdout).toBe('Notes\n\nalpha\n\nbeta\n\nadded by the CLI\n')
    const json = await ysse('export', '--server', url, '--doc', 'notes', '--format', 'json')
    const parsed = JSON.parse(json.stdout) as { root: { children: { type: string }[] } }
    expect(parsed.root.children.map(c => c.type)).toEqual(['heading', 'list', 'paragraph'])
  })

  it('exports what an editor model wrote, and watch prints every change until SIGINT', async () => {
    const { url } = await startServer()
    const person = openLexicalDocument(url, 'live', { name: 'person' })
    onCleanup(() => person.close())
    await person.whenSynced()
    await person.appendParagraph('first')
    await waitFor(() => person.provider.unsyncedChanges === 0)
    const watcher = spawn(process.execPath, [cli, 'watch', '--server', url, '--doc', 'live'])
    let out = ''
    watcher.stdout.setEncoding('utf8').on('data', (chunk: string) => { out += chunk })
    const exited = new Promise<number | null>(resolve => watcher.once('exit', code => resolve(code)))
    onCleanup(async () => { watcher.kill('SIGKILL') })
    await waitFor(() => out === 'first\n', { message: () => JSON.stringify(out) })
    await person.appendParagraph('second')
    await waitFor(() => out === 'first\nfirst\n\nsecond\n', { message: () => JSON.stringify(out) })
    watcher.kill('SIGINT')
    expect(await exited).toBe(0)
  })

  it('explains usage errors, refusals, missing documents and unreachable servers with distinct exit codes', async () => {
    const { url } = await startServer({ before: intercept(ctx => {
      if (ctx.path.startsWith('/docs/gone/')) {
        ctx.status = 404
        ctx.body = { error: { code: 'not-found', message: 'no such document' } }
        return true
      }
      if (ctx.path.startsWith('/docs/secret/') && ctx.get('authorization') !== 'Bearer good') {
        ctx.status = 403
        ctx.body = { error: { code: 'forbidden', message: 'no access' } }
        return true
      }
      return false
    }) })
    const help = await ysse('--help')
    expect(help.code).toBe(0)
    expect(help.stdout).toContain('Usage: y-sse <command>')

    const cases: [string[], number, RegExp][] = [
      [['frobnicate', '--server', url, '--doc', 'd'], 2, /unknown command "frobnicate"/],
      [['export', '--doc', 'd'], 2, /needs --server and --doc/],
      [['export', '--server', url, '--doc', 'bad id'], 2, /--doc must be 1-128 characters/],
      [['export', '--server', 'ftp://x', '--doc', 'd'], 2, /--server must be an http\(s\) URL/],
      [['export', '--server', url, '--doc', 'd', '--format', 'pdf'], 2, /--format must be text, markdown or json/],
      [['import', '--server', url, '--doc', 'd', '/nonexistent.md'], 2, /cannot read \/nonexistent.md: no such file/],
      [['export', '--server', url, '--doc', 'secret', '--token', 'bad'], 3, /access to secret .* was refused \(HTTP 403\)/],
      [['export', '--server', url, '--doc', 'gone'], 4, /refused gone .* \(HTTP 404\)/],
      [['export', '--server', 'http://127.0.0.1:9', '--doc', 'd', '--timeout', '0.5'], 5, /cannot reach http:\/\/127.0.0.1:9 in 0.5 s/]
    ]
    for (const [args, code, message] of cases) {
      const result = await ysse(...args)
      expect({ args, code: result.code }).toEqual({ args, code })
      expect(result.stderr).toMatch(message)
      expect(result.stderr).not.toMatch(/\n\s+at /) // never a stack trace
      expect(result.stdout).toBe('')
    }
    const allowed = await ysse('export', '--server', url, '--doc', 'secret', '--token', 'good')
    expect(allowed.code).toBe(0)
  })

  it('issues tokens that a server with JWT auth accepts, for the documents they name', async () => {
    const secret = 'cli-secret-long-enough-for-hs256-signing'
    const { url } = await startServer({ server: { authorize: await createJwtAuthorizer({ secret }) } })
    const issued = await ysseWith({ AUTH_JWT_SECRET: secret }, 'token', '--docs', 'team-*', '--access', 'write', '--ttl', '60', '--sub', 'ci')
    expect(issued.code).toBe(0)
    const token = issued.stdout.trim()
    expect(token.split('.')).toHaveLength(3)
    expect((await ysse('append', '--server', url, '--doc', 'team-x', '--token', token, 'hello')).code).toBe(0)
    expect((await ysse('export', '--server', url, '--doc', 'team-x', '--token', token)).stdout).toBe('hello\n')
    expect((await ysse('export', '--server', url, '--doc', 'other', '--token', token)).code).toBe(3)
    const missing = await ysseWith({ AUTH_JWT_SECRET: '' }, 'token', '--docs', 'x')
    expect([missing.code, missing.stderr]).toEqual([2, "y-sse: set AUTH_JWT_SECRET (the server's secret) or pass --private-key\n"])
  })
})
