/** Presence: appears at peers, leaves with the provider, and never lingers as a ghost. */
import { describe, expect, it } from 'vitest'
import { waitFor } from '../helpers/wait.js'
import { RequestLog, provider, startServer, uniqueDocId } from './harness.js'

describe('awareness', () => {
  it('appears at a peer and is removed as soon as the peer disconnects', async () => {
    const server = await startServer()
    const docId = uniqueDocId('presence')
    const a = provider(server, docId)
    const b = provider(server, docId)
    a.awareness.setLocalStateField('user', { name: 'Ada' })
    await waitFor(() => b.awareness.getStates().get(a.awareness.clientID)?.user?.name === 'Ada')

    // A late joiner gets the current states right after its sync.
    const c = provider(server, docId)
    await waitFor(() => c.awareness.getStates().get(a.awareness.clientID)?.user?.name === 'Ada')

    const started = Date.now()
    a.disconnect()
    await waitFor(() => !b.awareness.getStates().has(a.awareness.clientID) && !c.awareness.getStates().has(a.awareness.clientID))
    // Well within y-protocols' 30 s timeout: no ghost cursor.
    expect(Date.now() - started).toBeLessThan(5000)
    // The local state is kept, and announced again on reconnect.
    expect(a.awareness.getLocalState()?.user?.name).toBe('Ada')
    await a.connect()
    await waitFor(() => b.awareness.getStates().get(a.awareness.clientID)?.user?.name === 'Ada')
  })

  it('is retracted by the server when a peer vanishes without a word', async () => {
    const server = await startServer()
    const docId = uniqueDocId('vanish')
    // The peer's network dies: the stream is cut and nothing it sends gets through any more.
    const cut = new AbortController()
    const dying: typeof fetch = async (input, init) => {
      if (cut.signal.aborted) throw new TypeError('network down')
      const signals = [cut.signal, init?.signal].filter(s => s != null)
      return fetch(input, { ...init, signal: AbortSignal.any(signals) })
    }
    const a = provider(server, docId, { fetch: dying })
    const b = provider(server, docId)
    a.awareness.setLocalStateField('user', { name: 'Ghost' })
    await waitFor(() => b.awareness.getStates().get(a.awareness.clientID)?.user?.name === 'Ghost')
    cut.abort()
    await waitFor(() => !b.awareness.getStates().has(a.awareness.clientID))
    expect(a.awareness.getLocalState()?.user?.name).toBe('Ghost')
  })

  it('throttles presence POSTs and delivers the latest state', async () => {
    const server = await startServer()
    const docId = uniqueDocId('throttle')
    const log = new RequestLog()
    const a = provider(server, docId, { fetch: log.fetch, awarenessThrottle: 50 })
    const b = provider(server, docId)
    await Promise.all([a.whenSynced(), b.whenSynced()])
    const before = log.count('POST', '/awareness')
    for (let i = 1; i <= 100; i++) a.awareness.setLocalStateField('cursor', i)
    await waitFor(() => b.awareness.getStates().get(a.awareness.clientID)?.cursor === 100)
    expect(log.count('POST', '/awareness') - before).toBeLessThanOrEqual(3)
  })

  it('shows a peer again after it reconnects through a server restart', async () => {
    const server = await startServer()
    const docId = uniqueDocId('presence-restart')
    const a = provider(server, docId, { maxBackoffTime: 300 })
    const b = provider(server, docId, { maxBackoffTime: 300 })
    a.awareness.setLocalStateField('user', { name: 'Ada' })
    await waitFor(() => b.awareness.getStates().get(a.awareness.clientID)?.user?.name === 'Ada')
    await server.restart()
    await waitFor(() => !b.synced)
    await waitFor(() => a.synced && b.synced, { timeout: 15_000 })
    await waitFor(() => b.awareness.getStates().get(a.awareness.clientID)?.user?.name === 'Ada')
  })
})
