/** Which document the page edits (`/?doc=<docId>`), new document IDs, and the recently opened ones. */
import { isValidDocId } from '../../shared/protocol.js'
import { readStored, writeStored } from './storage.js'

const DOC_PARAM = 'doc'
const RECENT_KEY = 'y-sse:recent-docs'
const MAX_RECENT = 8

/** The document named by the URL, or null when it names none (or an invalid one). */
export const docIdFromUrl = (url: URL): string | null => {
  const docId = url.searchParams.get(DOC_PARAM)
  return docId !== null && isValidDocId(docId) ? docId : null
}

/**
 * The access token the page was opened with (`/?doc=…&token=…`), for servers with JWT auth, or
 * undefined. It stays in the page: copied links and the picker do not carry it.
 */
export const tokenFromUrl = (url: URL): string | undefined => url.searchParams.get('token') ?? undefined

/** The URL of the editor on `docId`: what "copy link" copies and what the picker opens. */
export const docUrl = (origin: string, docId: string): string => `${origin}/?${DOC_PARAM}=${encodeURIComponent(docId)}`

/** A fresh, unguessable, short document ID. */
export const newDocId = (): string => `doc-${crypto.randomUUID().slice(0, 8)}`

/** Document IDs opened in this browser, the latest first. */
export const recentDocs = (): string[] => {
  const stored = readStored<unknown>(RECENT_KEY)
  return Array.isArray(stored) ? stored.filter((id): id is string => typeof id === 'string' && isValidDocId(id)) : []
}

/** Puts `docId` first in the recent documents. */
export const rememberDoc = (docId: string): void => {
  writeStored(RECENT_KEY, [docId, ...recentDocs().filter(id => id !== docId)].slice(0, MAX_RECENT))
}
