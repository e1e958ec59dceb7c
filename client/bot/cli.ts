#!/usr/bin/env node
/**
 * The `y-sse` command line: read and write documents on a y-sse server from a shell.
 * Stdout carries only document content; every message for people goes to stderr.
 */
import { readFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { isValidDocId } from '../../shared/protocol.js'
import { issueToken, type SigningKey } from '../../server/auth.js'
import { DocumentError } from './open-document.js'
import { ChangesError } from '../changes.js'
import { mirrorDocuments } from './mirror.js'
import { openLexicalDocument, renderDocument as render, type LexicalDocument } from './lexical-document.js'

const USAGE = `Usage: y-sse <command> --server URL --doc ID [options]
       y-sse mirror --server URL --dir DIR [--prefix P] [--format markdown|json] [--token TOKEN]
       y-sse token --docs IDS [--access read|write] [--ttl SECS] [--sub NAME] [--private-key FILE --algorithm ES256|RS256]

Commands:
  export [--format text|markdown|json]   print the document (default: text)
  watch                                  print the document's text each time it changes, until Ctrl-C
  append "TEXT"                          add a paragraph at the end
  import FILE.md                         replace the content with a Markdown file
  mirror                                 keep one file per document (DIR/<docId>.md or .json) up
                                         to date from the server's change feed, until Ctrl-C;
                                         the feed's cursor is kept in DIR/.y-sse-cursor, so it
                                         resumes where it stopped
  token                                  print a token for servers with JWT auth: signed with the
                                         AUTH_JWT_SECRET environment variable (HS256), or with
                                         --private-key (PEM, PKCS#8); --docs is a comma-separated
                                         list of document IDs or prefixes ending in *

Options:
  --server URL     the server's base URL, e.g. http://localhost:8080
  --doc ID         the document ID (1-128 characters of A-Z a-z 0-9 . _ ~ -)
  --token TOKEN    sent as "Authorization: Bearer TOKEN"
  --timeout SECS   give up when the server does not answer in time (default 10)
  --help           show this help

Exit codes: 0 done, 2 usage error, 3 access refused (401/403), 4 document refused or not
found (400/404), 5 server unreachable or too slow.`

/** Exit codes, one per kind of failure a script may want to tell apart. */
const Exit = { ok: 0, usage: 2, auth: 3, refused: 4, unreachable: 5 } as const

/** A failure with its message for people and its exit code. */
class CliError extends Error {
  constructor (message: string, readonly exitCode: number) {
    super(message)
  }
}

const FORMATS = ['text', 'markdown', 'json'] as const
type Format = (typeof FORMATS)[number]

interface Command {
  name: 'export' | 'watch' | 'append' | 'import'
  server: string
  doc: string
  token: string | undefined
  timeoutMs: number
  format: Format
  argument: string | undefined
}

const checkServer = (server: string): void => {
  try {
    const url = new URL(server)
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError('not http(s)')
  } catch {
    throw new CliError(`--server must be an http(s) URL, got "${server}"`, Exit.usage)
  }
}

const parseCommand = (argv: string[]): Command | 'help' => {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        server: { type: 'string' },
        doc: { type: 'string' },
        token: { type: 'string' },
        timeout: { type: 'string' },
        format: { type: 'string' },
        help: { type: 'boolean' }
      }
    })
  } catch (error) {
    throw new CliError(`${(error as Error).message}\n\n${USAGE}`, Exit.usage)
  }
  const { values, positionals } = parsed
  if (values.help === true || positionals.length === 0) return 'help'
  const [name, argument, ...extra] = positionals
  if (name !== 'export' && name !== 'watch' && name !== 'append' && name !== 'import') throw new CliError(`unknown command "${name}"\n\n${USAGE}`, Exit.usage)
  if (values.server === undefined || values.doc === undefined) throw new CliError(`${name} needs --server and --doc\n\n${USAGE}`, Exit.usage)
  checkServer(values.server)
  if (!isValidDocId(values.doc)) throw new CliError(`--doc must be 1-128 characters of A-Z a-z 0-9 . _ ~ -, got "${values.doc}"`, Exit.usage)
  const seconds = values.timeout === undefined ? 10 : Number(values.timeout)
  if (!Number.isFinite(seconds) || seconds <= 0) throw new CliError(`--timeout must be a positive number of seconds, got "${values.timeout}"`, Exit.usage)
  const format = values.format ?? 'text'
  if (!(FORMATS as readonly string[]).includes(format)) throw new CliError(`--format must be text, markdown or json, got "${format}"`, Exit.usage)
  if ((name === 'append' || name === 'import') && argument === undefined) throw new CliError(`${name} needs ${name === 'append' ? 'the text' : 'a Markdown file'}\n\n${USAGE}`, Exit.usage)
  if ((name === 'export' || name === 'watch' ? argument : extra[0]) !== undefined) throw new CliError(`too many arguments for ${name}\n\n${USAGE}`, Exit.usage)
  return { name, server: values.server.replace(/\/+$/, ''), doc: values.doc, token: values.token, timeoutMs: seconds * 1000, format: format as Format, argument }
}

/** Turns what went wrong while talking to the server into a message and an exit code. */
const explain = (error: unknown, command: Command): CliError => {
  if (error instanceof CliError) return error
  if (!(error instanceof DocumentError)) return new CliError(String((error as Error).message ?? error), 1)
  const where = `${command.doc} on ${command.server}`
  if (error.status === 401 || error.status === 403) return new CliError(`access to ${where} was refused (HTTP ${error.status}): check --token`, Exit.auth)
  if (error.status === 400 || error.status === 404) return new CliError(`the server refused ${where} (HTTP ${error.status}): ${error.message}`, Exit.refused)
  if (error.reason === 'timeout') return new CliError(`cannot reach ${command.server} in ${command.timeoutMs / 1000} s: ${error.message}`, Exit.unreachable)
  return new CliError(`${where}: ${error.message}`, Exit.unreachable)
}

const run = async (command: Command): Promise<void> => {
  const markdown = command.name === 'import' ? await readFile(command.argument as string, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new CliError(`cannot read ${command.argument}: ${error.code === 'ENOENT' ? 'no such file' : error.message}`, Exit.usage)
  }) : ''
  const document = openLexicalDocument(command.server, command.doc, {
    name: `bot: y-sse ${command.name}`,
    timeoutMs: command.timeoutMs,
    ...(command.token === undefined ? {} : { token: command.token })
  })
  try {
    await document.whenSynced()
    switch (command.name) {
      case 'export':
        process.stdout.write(render(document, command.format) + '\n')
        break
      case 'append':
        await document.appendParagraph(command.argument as string)
        break
      case 'import':
        await document.replaceWithMarkdown(markdown)
        break
      case 'watch':
        await watch(document, command.format)
        break
    }
    await document.close()
  } catch (error) {
    await document.close().catch(() => {})
    throw error
  }
}

/** Prints the document now and after every change, until SIGINT or SIGTERM. */
const watch = (document: LexicalDocument, format: Format): Promise<void> => new Promise(resolve => {
  let last = render(document, format)
  process.stdout.write(last + '\n')
  const stop = document.onRemoteChange(() => {
    const current = render(document, format)
    if (current === last) return
    last = current
    process.stdout.write(current + '\n')
  })
  const finish = (): void => {
    stop()
    resolve()
  }
  process.once('SIGINT', finish)
  process.once('SIGTERM', finish)
})

/** `y-sse mirror`: mirrors the documents into a directory until SIGINT or SIGTERM. */
const mirror = async (argv: string[]): Promise<void> => {
  let values
  try {
    values = parseArgs({
      args: argv,
      options: {
        server: { type: 'string' },
        dir: { type: 'string' },
        prefix: { type: 'string', default: '' },
        format: { type: 'string', default: 'markdown' },
        token: { type: 'string' },
        timeout: { type: 'string', default: '10' }
      }
    }).values
  } catch (error) {
    throw new CliError(`${(error as Error).message}\n\n${USAGE}`, Exit.usage)
  }
  if (values.server === undefined || values.dir === undefined) throw new CliError(`mirror needs --server and --dir\n\n${USAGE}`, Exit.usage)
  checkServer(values.server)
  if (values.format !== 'markdown' && values.format !== 'json') throw new CliError(`--format must be markdown or json, got "${values.format}"`, Exit.usage)
  const seconds = Number(values.timeout)
  if (!Number.isFinite(seconds) || seconds <= 0) throw new CliError(`--timeout must be a positive number of seconds, got "${values.timeout}"`, Exit.usage)
  const stop = new AbortController()
  process.once('SIGINT', () => stop.abort())
  process.once('SIGTERM', () => stop.abort())
  try {
    await mirrorDocuments({
      server: values.server.replace(/\/+$/, ''),
      dir: values.dir,
      prefix: values.prefix,
      format: values.format,
      timeoutMs: seconds * 1000,
      signal: stop.signal,
      log: message => process.stderr.write(`y-sse: ${message}\n`),
      ...(values.token === undefined ? {} : { token: values.token })
    })
  } catch (error) {
    if (!(error instanceof ChangesError)) throw new CliError(`cannot mirror into ${values.dir}: ${(error as Error).message}`, 1)
    const { status, message } = error.failure
    if (status === 401 || status === 403) throw new CliError(`the change feed of ${values.server} was refused (HTTP ${status}): check --token`, Exit.auth)
    throw new CliError(`the change feed of ${values.server} was refused (HTTP ${status}): ${message}`, status === 400 ? Exit.usage : Exit.refused)
  }
}

/** `y-sse token`: signs a token the way the server's JWT mode checks it. */
const printToken = async (argv: string[]): Promise<void> => {
  let values
  try {
    values = parseArgs({
      args: argv,
      options: {
        docs: { type: 'string' },
        access: { type: 'string', default: 'write' },
        ttl: { type: 'string', default: '3600' },
        sub: { type: 'string' },
        'private-key': { type: 'string' },
        algorithm: { type: 'string', default: 'ES256' }
      }
    }).values
  } catch (error) {
    throw new CliError(`${(error as Error).message}\n\n${USAGE}`, Exit.usage)
  }
  const docs = (values.docs ?? '').split(',').map(d => d.trim()).filter(d => d !== '')
  if (docs.length === 0) throw new CliError('token needs --docs, e.g. --docs "team-*,notes"', Exit.usage)
  if (values.access !== 'read' && values.access !== 'write') throw new CliError(`--access must be read or write, got "${values.access}"`, Exit.usage)
  const ttlSeconds = Number(values.ttl)
  if (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0) throw new CliError(`--ttl must be a positive number of seconds, got "${values.ttl}"`, Exit.usage)
  let key: SigningKey
  if (values['private-key'] !== undefined) {
    if (values.algorithm !== 'ES256' && values.algorithm !== 'RS256') throw new CliError(`--algorithm must be ES256 or RS256, got "${values.algorithm}"`, Exit.usage)
    const file = values['private-key']
    const privateKey = await readFile(file, 'utf8').catch(() => { throw new CliError(`cannot read ${file}`, Exit.usage) })
    key = { privateKey, algorithm: values.algorithm }
  } else {
    const secret = process.env.AUTH_JWT_SECRET
    if (secret === undefined || secret === '') throw new CliError('set AUTH_JWT_SECRET (the server\'s secret) or pass --private-key', Exit.usage)
    key = { secret }
  }
  try {
    process.stdout.write(await issueToken(key, { docs, access: values.access, ttlSeconds, subject: values.sub }) + '\n')
  } catch (error) {
    throw new CliError(`cannot sign: ${(error as Error).message}`, Exit.usage)
  }
}

const main = async (): Promise<number> => {
  // Commands with options of their own (no --doc).
  const own = new Map([['token', printToken], ['mirror', mirror]]).get(process.argv[2] ?? '')
  if (own !== undefined) {
    try {
      await own(process.argv.slice(3))
      return Exit.ok
    } catch (error) {
      process.stderr.write(`y-sse: ${(error as Error).message}\n`)
      return error instanceof CliError ? error.exitCode : 1
    }
  }
  let command: Command | 'help'
  try {
    command = parseCommand(process.argv.slice(2))
  } catch (error) {
    process.stderr.write(`y-sse: ${(error as Error).message}\n`)
    return (error as CliError).exitCode
  }
  if (command === 'help') {
    process.stdout.write(USAGE + '\n')
    return Exit.ok
  }
  try {
    await run(command)
    return Exit.ok
  } catch (error) {
    const failure = explain(error, command)
    process.stderr.write(`y-sse: ${failure.message}\n`)
    return failure.exitCode
  }
}

process.exitCode = await main()
