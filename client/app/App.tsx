/** The page: a header (document, status, who is here) above the editor. */
import { useCallback, useEffect, useState, type JSX } from 'react'
import { Editor } from './components/Editor.js'
import { DocPicker } from './components/DocPicker.js'
import { SyncStatus } from './components/SyncStatus.js'
import { Presence } from './components/Presence.js'
import { rememberDoc } from './documents.js'
import { useUnsyncedChanges, type EditorProvider } from './provider-state.js'
import { loadUser, saveUser, type User } from './user.js'

export const App = ({ docId }: { docId: string }): JSX.Element => {
  const [user, setUser] = useState<User>(loadUser)
  const [provider, setProvider] = useState<EditorProvider | null>(null)
  const hasUnsavedChanges = useUnsyncedChanges(provider) > 0

  useEffect(() => {
    rememberDoc(docId)
    document.title = `${docId} · y-sse`
  }, [docId])

  // Edits live in this page until the server has them (also while offline): ask before dropping them.
  useEffect(() => {
    if (!hasUnsavedChanges) return
    const warn = (event: BeforeUnloadEvent): void => event.preventDefault()
    window.addEventListener('beforeunload', warn)
    return () => window.removeEventListener('beforeunload', warn)
  }, [hasUnsavedChanges])

  const changeUser = useCallback((next: User) => {
    saveUser(next)
    setUser(next)
  }, [])

  return (
    <div className="app">
      <header className="topbar">
        <a className="brand" href="/" title="New document">y-sse</a>
        <DocPicker docId={docId} />
        <div className="topbar-end">
          <SyncStatus provider={provider} />
          <Presence provider={provider} user={user} onChange={changeUser} />
        </div>
      </header>
      <main className="page">
        <Editor docId={docId} user={user} onProvider={setProvider} />
      </main>
    </div>
  )
}
