/**
 * What the client tests share beyond test/helpers/server.ts: providers that are destroyed after
 * each test, a fetch that counts requests, and the server's view of a document.
 */
import * as Y from 'yjs'
import { routes } from '../../shared/protocol.js'
import { SseProvider, defaultFetch, type Fetch, type SseProviderOptions } from '../../client/index.js'
import { onCleanup } from '../helpers/server.js'
import { waitFor } from '../helpers/wait.js'

export { intercept, startServer, type TestServer } from '../helpers/server.js'

/** Counts the requests a provider makes, by method and route, and notes when each started. */
export class RequestLog {
  readonly requests: { method: string; url: string; path: string; status: number | null; startedAt: number }[] = []

  /** The provider's default `fetch` (in Node, its `node:http` client), recording every request. */
  readonly fetch: Fetch = async (url, init) => {
    const entry = { method: init.method ?? 'GET', url, path: new URL(url).pathname, status: null as number | null, startedAt: performance.now() }
    this.requests.push(entry)
    const response = await defaultFetch()(url, init)
    entry.status = response.status
    return response
  }

  count (method: string, suffix: string): number {
    return this.matching(method, suffix).length
  }

  /** When each matching request started (`performance.now()`), in order. */
  starts (method: string, suffix: string): number[] {
    return this.matching(method, suffix).map(r => r.startedAt)
  }

  private matching (method: string, suffix: string): RequestLog['requests'] {
    return this.requests.filter(r => r.method === method && r.path.endsWith(suffix))
  }
}

let docCounter = 0

/** A document ID no other test uses. */
export const uniqueDocId = (name: string): string => `${name}-${process.pid}-${++docCounter}-${Math.random().toString(36).slice(2, 8)}`

/** How many sync events of each kind (`replay`, `full`, …) the server sent, from its metrics. */
export const resumes = async (server: { url: string }): Promise<Record<string, number>> => {
  const text = await (await fetch(`${server.url}/metrics`)).text()
  return Object.fromEntries([...text.matchAll(/^ysse_resumes_total\{kind="([a-z-]+)"\} (\d+)$/gm)].map(m => [m[1], Number(m[2])]))
}

/** Creates a provider that is destroyed after the test. */
export const provider = (server: { url: string }, docId: string, options: Partial<SseProviderOptions> = {}, doc = new Y.Doc()): SseProvider => {
  const created = new SseProvider(server.url, docId, doc, options)
  onCleanup(() => {
    created.destroy()
    doc.destroy()
  })
  return created
}

/** Two providers of a new document named after `name`, with the same `options`, both synced. */
export const syncedPair = async (server: { url: string }, name: string, options: Partial<SseProviderOptions> = {}): Promise<{ docId: string; a: SseProvider; b: SseProvider }> => {
  const docId = uniqueDocId(name)
  const a = provider(server, docId, options)
  const b = provider(server, docId, options)
  await Promise.all([a.whenSynced(), b.whenSynced()])
  return { docId, a, b }
}

/** The document as the server stores it (empty when it was never written). */
export const serverDoc = async (server: { url: string }, docId: string, headers: Record<string, string> = {}): Promise<Y.Doc> => {
  const doc = new Y.Doc()
  const response = await fetch(`${server.url}${routes.document(docId)}`, { headers })
  if (response.status === 200) Y.applyUpdate(doc, new Uint8Array(await response.arrayBuffer()))
  else if (response.status !== 404) throw new Error(`GET document: HTTP ${response.status}`)
  return doc
}

/** Waits until the provider's server has acknowledged every local change. */
export const waitAcked = (p: SseProvider, timeout = 15_000): Promise<void> =>
  waitFor(() => p.synced && p.unsyncedChanges === 0, { timeout, message: () => `synced=${p.synced} unsynced=${p.unsyncedChanges}` })
