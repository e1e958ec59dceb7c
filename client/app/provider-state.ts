/** React views of an {@link SseProvider}'s state: connection, unsaved changes, who is here. */
import { useCallback, useSyncExternalStore } from 'react'
import type { UserState } from '@lexical/yjs'
import type { ProviderStatus, SseProvider } from '../index.js'
import type { User } from './user.js'

/** The provider of the editor; presence states are what CollaborationPlugin publishes. */
export type EditorProvider = SseProvider<UserState>

/** Someone with the document open. */
export interface Peer extends User {
  clientId: number
  isMe: boolean
}

/** `'connecting'` until a provider exists. */
export const useConnectionStatus = (provider: EditorProvider | null): ProviderStatus => {
  const subscribe = useCallback((changed: () => void) => {
    provider?.on('status', changed)
    return () => provider?.off('status', changed)
  }, [provider])
  return useSyncExternalStore(subscribe, () => provider?.status ?? 'connecting')
}

/** Local changes the server has not acknowledged yet. */
export const useUnsyncedChanges = (provider: EditorProvider | null): number => {
  const subscribe = useCallback((changed: () => void) => {
    provider?.on('sync-status', changed)
    return () => provider?.off('sync-status', changed)
  }, [provider])
  return useSyncExternalStore(subscribe, () => provider?.unsyncedChanges ?? 0)
}

/** Everyone with the document open (me first), from the provider's presence. */
export const usePeers = (provider: EditorProvider | null): Peer[] => {
  // useSyncExternalStore wants the same snapshot until something changes: keep the list per change.
  const subscribe = useCallback((changed: () => void) => {
    provider?.awareness.on('change', changed)
    return () => provider?.awareness.off('change', changed)
  }, [provider])
  const snapshot = useCallback(() => provider === null ? NO_PEERS : peersOf(provider), [provider])
  return useSyncExternalStore(subscribe, snapshot)
}

const NO_PEERS: Peer[] = []
const peerLists = new WeakMap<Map<number, UserState>, { key: string; peers: Peer[] }>()

const peersOf = (provider: EditorProvider): Peer[] => {
  const states = provider.awareness.getStates()
  const me = provider.awareness.clientID
  const peers: Peer[] = []
  for (const [clientId, state] of states) {
    // Presence is whatever peers send: skip states that are not an editor's (or not announced yet).
    if (typeof state.name !== 'string' || typeof state.color !== 'string') continue
    peers.push({ clientId, name: state.name, color: state.color, isMe: clientId === me })
  }
  peers.sort((a, b) => Number(b.isMe) - Number(a.isMe) || a.name.localeCompare(b.name) || a.clientId - b.clientId)
  const key = JSON.stringify(peers)
  const previous = peerLists.get(states)
  if (previous?.key === key) return previous.peers
  peerLists.set(states, { key, peers })
  return peers
}
