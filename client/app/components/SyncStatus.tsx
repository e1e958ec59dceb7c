/** Connection state and whether the server has all my changes. */
import type { JSX } from 'react'
import { useConnectionStatus, useUnsyncedChanges, type EditorProvider } from '../provider-state.js'

const LABELS = { connected: 'Connected', connecting: 'Connecting…', disconnected: 'Offline' } as const

export const SyncStatus = ({ provider }: { provider: EditorProvider | null }): JSX.Element => {
  const status = useConnectionStatus(provider)
  const unsynced = useUnsyncedChanges(provider)
  return (
    <div className="sync-status" role="status" data-status={status}>
      <span className="connection"><span className="dot" aria-hidden="true" />{LABELS[status]}</span>
      <span className="saved" data-unsynced={unsynced}>
        {unsynced === 0 ? 'All changes saved' : `${unsynced} ${unsynced === 1 ? 'change' : 'changes'} not yet saved`}
      </span>
    </div>
  )
}
