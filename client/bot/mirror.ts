/**
 * `mirrorDocuments` (the `y-sse mirror` command): keeps one file per document in a directory up to
 * date from the server's change feed. A changed document is read in full with the bot library
 * once its changes pause, and written atomically (temp file, then rename). The feed's cursor is
 * kept in the directory and only moves past a change once its document was written after it, so
 * a mirror stopped at any moment resumes without missing an edit.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { watchChanges, type ChangeNotice } from '../changes.js'
import { openLexicalDocument, renderDocument } from './lexical-document.js'

/** The file in the mirror's directory that holds its feed cursor. */
export const CURSOR_FILE = '.y-sse-cursor'

/** Options of {@link mirrorDocuments}. */
export interface MirrorOptions {
  server: string
  dir: string
  /** Only documents whose ID starts with this. */
  prefix?: string
  /** `markdown` (files `<docId>.md`, the default) or `json` (Lexical's serialized state, `<docId>.json`). */
  format?: 'markdown' | 'json'
  token?: string
  /** Stops the mirror; edits already seen but not yet written are read again on the next start. */
  signal: AbortSignal
  /** Quiet time after a document's last change before it is read, in ms. Default 100. */
  debounceMs?: number
  /** Deadline of each document read, in ms. Default 10 000. */
  timeoutMs?: number
  /** Told what the mirror does and what fails, in sentences for people. */
  log?: (message: string) => void
}

/** Changes seen under one cursor, each waiting for its document to be written. */
interface Pending {
  seq: number
  cursor: string
  docs: Set<string>
}

/** Wait before reading a document again after a failed read. */
const RETRY_MS = 1000

interface DocState {
  timer: NodeJS.Timeout | null
  writing: boolean
  /** A change arrived while writing: write again afterwards. */
  again: boolean
}

/** Writes `text` to `file` so that readers see the old or the new content, never a part. */
const writeAtomically = async (file: string, text: string): Promise<void> => {
  const temporary = `${file}.${process.pid}.tmp`
  await writeFile(temporary, text)
  await rename(temporary, file)
}

/** Runs until `options.signal` aborts; rejects when the server refuses the feed (`ChangesError`). */
export const mirrorDocuments = async (options: MirrorOptions): Promise<void> => {
  const { server, dir, prefix = '', format = 'markdown', token, signal, debounceMs = 100, timeoutMs = 10_000, log = () => {} } = options
  await mkdir(dir, { recursive: true })
  const cursorFile = join(dir, CURSOR_FILE)
  const saved = (await readFile(cursorFile, 'utf8').catch(() => '')).trim()
  log(saved === '' ? `mirroring ${server} into ${dir} from the start` : `mirroring ${server} into ${dir}, resuming`)

  let seq = 0
  const pending: Pending[] = []
  const docs = new Map<string, DocState>()
  const writes = new Set<Promise<void>>()
  let savingCursor = Promise.resolve()

  /** Saves the cursor of the newest change whose document, and every earlier one's, is written. */
  const advance = (): void => {
    let cursor: string | null = null
    while (pending[0] !== undefined && pending[0].docs.size === 0) cursor = (pending.shift() as Pending).cursor
    if (cursor === null) return
    const value = cursor
    savingCursor = savingCursor.then(() => writeAtomically(cursorFile, value + '\n'))
      .catch(error => log(`cannot save the cursor in ${cursorFile}: ${(error as Error).message}`))
  }

  /** Reads and writes the document; resolves whether it did. */
  const write = async (docId: string): Promise<boolean> => {
    // Everything seen so far is in the server's document by now: the feed is written with it.
    const covered = seq
    const document = openLexicalDocument(server, docId, { name: 'bot: y-sse mirror', timeoutMs, ...(token === undefined ? {} : { token }) })
    try {
      await document.whenSynced()
      await writeAtomically(join(dir, `${docId}.${format === 'json' ? 'json' : 'md'}`), renderDocument(document, format) + '\n')
      for (const item of pending) if (item.seq <= covered) item.docs.delete(docId)
      advance()
      return true
    } catch (error) {
      log(`cannot mirror ${docId}: ${(error as Error).message}; trying again in ${RETRY_MS / 1000} s`)
      return false
    } finally {
      await document.close().catch(() => {})
    }
  }

  const schedule = (docId: string, delayMs: number): void => {
    const state = docs.get(docId) ?? { timer: null, writing: false, again: false }
    docs.set(docId, state)
    if (state.timer !== null) clearTimeout(state.timer)
    state.timer = setTimeout(() => {
      state.timer = null
      if (state.writing) {
        state.again = true
        return
      }
      state.writing = true
      const work = write(docId).then(written => {
        state.writing = false
        writes.delete(work)
        if ((state.again || !written) && !signal.aborted) {
          state.again = false
          schedule(docId, written ? debounceMs : RETRY_MS)
        }
      })
      writes.add(work)
    }, delayMs)
  }

  const onNotice = (notice: ChangeNotice): void => {
    const changed = notice.type === 'change' ? [notice.docId] : notice.docs
    if (notice.type === 'reset') log(`the feed could not resume exactly: reading ${changed.length} document(s) again`)
    pending.push({ seq: ++seq, cursor: notice.cursor, docs: new Set(changed) })
    for (const docId of changed) schedule(docId, debounceMs)
    advance()
  }

  try {
    for await (const notice of watchChanges(server, {
      prefix,
      signal,
      ...(saved === '' ? {} : { lastEventId: saved }),
      ...(token === undefined ? {} : { token }),
      onError: error => { if (error.status !== 0 || !signal.aborted) log(`change feed: ${error.message}`) }
    })) onNotice(notice)
  } finally {
    for (const state of docs.values()) if (state.timer !== null) clearTimeout(state.timer)
    await Promise.allSettled(writes)
    await savingCursor
  }
}
