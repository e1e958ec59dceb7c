/**
 * Property: providers making random concurrent edits, with random disconnects and reconnects and
 * a server restart in the middle, all converge to the server's content, and nothing the server
 * acknowledged is lost.
 */
import * as Y from 'yjs'
import fc from 'fast-check'
import { setImmediate as nextTick } from 'node:timers/promises'
import { describe, expect, it } from 'vitest'
import type { SseProvider } from '../../client/index.js'
import { waitFor } from '../helpers/wait.js'
import { provider, serverDoc, startServer, uniqueDocId } from './harness.js'

const PEERS = 3

type Op =
  | { kind: 'insert'; who: number; at: number; text: string }
  | { kind: 'delete'; who: number; at: number; length: number }
  | { kind: 'map'; who: number; key: string; value: number }
  | { kind: 'disconnect'; who: number }
  | { kind: 'connect'; who: number }
  | { kind: 'tick' }

const who = fc.nat(PEERS - 1)
const fraction = fc.double({ min: 0, max: 1, noNaN: true })
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('insert' as const), who, at: fraction, text: fc.string({ minLength: 1, maxLength: 6 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), who, at: fraction, length: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('map' as const), who, key: fc.constantFrom('a', 'b', 'c'), value: fc.nat(1000) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('disconnect' as const), who }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('connect' as const), who }) },
  { weight: 3, arbitrary: fc.constant({ kind: 'tick' as const }) }
)

/** Whether state vector `a` covers everything in `b`. */
const covers = (a: Uint8Array, b: Uint8Array): boolean => {
  const have = Y.decodeStateVector(a)
  return [...Y.decodeStateVector(b)].every(([client, clock]) => (have.get(client) ?? 0) >= clock)
}

/** The map's entries in key order, comparable as text. */
const mapText = (doc: Y.Doc): string => JSON.stringify([...doc.getMap('m').entries()].sort(([a], [b]) => a.localeCompare(b)))

const apply = (p: SseProvider, o: Op): void => {
  const text = p.doc.getText('t')
  switch (o.kind) {
    case 'insert':
      text.insert(Math.floor(o.at * text.length), o.text)
      return
    case 'delete': {
      const start = Math.floor(o.at * text.length)
      const length = Math.min(o.length, text.length - start)
      if (length > 0) text.delete(start, length)
      return
    }
    case 'map':
      p.doc.getMap('m').set(o.key, o.value)
      return
    case 'disconnect':
      p.disconnect()
      return
    case 'connect':
      void p.connect()
  }
}

describe('convergence', () => {
  it('converges with the server through disconnects and a server restart, losing nothing acknowledged', async () => {
    await fc.assert(fc.asyncProperty(fc.array(op, { minLength: 20, maxLength: 50 }), async ops => {
      const server = await startServer()
      const docId = uniqueDocId('prop')
      const peers = Array.from({ length: PEERS }, () => provider(server, docId, { maxBackoffTime: 300 }))
      // Every time a peer has nothing unacknowledged, all it holds must be on the server for good.
      const acknowledged: Uint8Array[] = []
      const syncs = peers.map(() => 0)
      peers.forEach((p, i) => {
        p.on('sync-status', ({ unsyncedChanges }) => {
          if (unsyncedChanges === 0 && p.synced) acknowledged.push(Y.encodeStateVector(p.doc))
        })
        p.on('sync', synced => { if (synced) syncs[i] = (syncs[i] ?? 0) + 1 })
      })
      await Promise.all(peers.map(p => p.whenSynced()))

      let restarting: Promise<void> | null = null
      let syncsBeforeRestart = [...syncs]
      for (const [index, o] of ops.entries()) {
        // The restart runs concurrently with the edits that follow it.
        if (index === Math.floor(ops.length / 2)) {
          syncsBeforeRestart = [...syncs]
          restarting = server.restart()
        }
        if (o.kind === 'tick') await nextTick()
        else apply(peers[o.who] as SseProvider, o)
      }
      await restarting
      for (const p of peers) void p.connect()
      // Every peer must come back through the new server, not merely still look synced to the old one.
      await waitFor(() => syncs.every((n, i) => n > (syncsBeforeRestart[i] ?? 0)), { timeout: 20_000, message: () => `syncs ${syncs} before restart ${syncsBeforeRestart}; ${peers.map(p => `${p.status}/${p.shouldConnect}/${p.synced}`).join(" ")}` })

      let debugServer = ''
      await waitFor(() => peers.every(p => p.synced && p.unsyncedChanges === 0), { timeout: 20_000, message: () => peers.map(p => `${p.status}/${p.synced}/${p.unsyncedChanges}`).join(' ') })
      await waitFor(async () => {
        const stored = await serverDoc(server, docId)
        const sv = Y.encodeStateVector(stored)
        debugServer = JSON.stringify([stored.getText('t').toString(), [...Y.decodeStateVector(sv)], mapText(stored)])
        return peers.every(p => covers(sv, Y.encodeStateVector(p.doc)) && covers(Y.encodeStateVector(p.doc), sv) &&
          p.doc.getText('t').toString() === stored.getText('t').toString() &&
          mapText(p.doc) === mapText(stored))
      }, { timeout: 20_000, message: () => peers.map(p => JSON.stringify([p.doc.getText('t').toString(), [...Y.decodeStateVector(Y.encodeStateVector(p.doc))], mapText(p.doc)])).join(' | ') + ` vs server ${debugServer}` })

      const stored = Y.encodeStateVector(await serverDoc(server, docId))
      for (const sv of acknowledged) expect(covers(stored, sv)).toBe(true)
      for (const p of peers) p.destroy()
      await server.close()
    }), { seed: 424_242, numRuns: 12 })
  }, 180_000)
})
