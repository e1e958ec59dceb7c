/** The collaborative rich-text editor: Lexical, synced through CollaborationPlugin and our provider. */
import { useCallback, useEffect, useRef, useState, type JSX } from 'react'
import * as Y from 'yjs'
import type { Provider } from '@lexical/yjs'
import { LexicalCollaboration } from '@lexical/react/LexicalCollaborationContext'
import { CollaborationPlugin } from '@lexical/react/LexicalCollaborationPlugin'
import { LexicalComposer, type InitialConfigType } from '@lexical/react/LexicalComposer'
import { ContentEditable } from '@lexical/react/LexicalContentEditable'
import { LexicalErrorBoundary } from '@lexical/react/LexicalErrorBoundary'
import { RichTextPlugin } from '@lexical/react/LexicalRichTextPlugin'
import { ListPlugin } from '@lexical/react/LexicalListPlugin'
import { LinkPlugin } from '@lexical/react/LexicalLinkPlugin'
import { ClickableLinkPlugin } from '@lexical/react/LexicalClickableLinkPlugin'
import { MarkdownShortcutPlugin } from '@lexical/react/LexicalMarkdownShortcutPlugin'
import { TRANSFORMERS } from '@lexical/markdown'
import { SseProvider } from '../../index.js'
import { documentNodes } from '../../lexical-nodes.js'
import { seedIfEmpty } from '../bootstrap.js'
import { tokenFromUrl } from '../documents.js'
import type { EditorProvider } from '../provider-state.js'
import type { User } from '../user.js'
import { isSafeUrl } from '../links.js'
import { Toolbar } from './Toolbar.js'
import { theme } from './theme.js'

interface EditorProps {
  docId: string
  user: User
  /** Called with the provider CollaborationPlugin asked for, so the page can show its state. */
  onProvider: (provider: EditorProvider) => void
}

const initialConfig: InitialConfigType = {
  namespace: 'y-sse',
  nodes: [...documentNodes],
  theme,
  // The content comes from the shared document: an initial state here would be written into it.
  editorState: null,
  onError: error => { throw error }
}

export const Editor = ({ docId, user, onProvider }: EditorProps): JSX.Element => {
  const cursorsContainer = useRef<HTMLDivElement>(null)
  const [provider, setProvider] = useState<EditorProvider | null>(null)
  // CollaborationPlugin re-runs its connect/disconnect effect whenever `username` or `cursorColor`
  // change, and chains that disconnect on a connect promise which has long resolved: the provider
  // would end up disconnected. So it gets the user as it was at mount, and later changes go to the
  // awareness directly (PresencePublisher below).
  const [initialUser] = useState(user)

  // Stable: CollaborationPlugin makes a new provider whenever the factory changes.
  const providerFactory = useCallback((id: string, yjsDocMap: Map<string, Y.Doc>): Provider => {
    const doc = new Y.Doc()
    yjsDocMap.set(id, doc)
    const token = tokenFromUrl(new URL(window.location.href))
    // One document per page, so nothing to share a stream with; a stream of its own also resumes
    // with the document's state vector, which a shared stream does not take. `?tabs` shares one
    // stream among the tabs instead, for many tabs open at once (browsers allow about six
    // connections per origin over HTTP/1.1).
    const multiplex = new URL(window.location.href).searchParams.has('tabs') ? 'tabs' : false
    const provider: EditorProvider = new SseProvider(window.location.origin, id, doc, { connect: false, multiplex, ...(token === undefined ? {} : { token }) })
    // Checked on every sync (reconnects too): seeding a document that has content does nothing.
    provider.on('sync', synced => { if (synced) seedIfEmpty(doc) })
    setProvider(provider)
    return provider
  }, [])

  useEffect(() => {
    if (provider !== null) onProvider(provider)
  }, [provider, onProvider])

  return (
    <LexicalCollaboration>
      <LexicalComposer initialConfig={initialConfig}>
        <Toolbar />
        <div className="editor-scroller">
          <div className="editor" ref={cursorsContainer}>
            <RichTextPlugin
              contentEditable={
                <ContentEditable
                  className="editor-input"
                  aria-label="Document"
                  aria-placeholder="Start writing…"
                  placeholder={<div className="editor-placeholder">Start writing…</div>}
                />
              }
              ErrorBoundary={LexicalErrorBoundary}
            />
          </div>
        </div>
        <ListPlugin />
        <LinkPlugin validateUrl={isSafeUrl} />
        <ClickableLinkPlugin />
        {/* The transformers of the document's nodes (the plugin's default also wants a horizontal-rule node). */}
        <MarkdownShortcutPlugin transformers={TRANSFORMERS} />
        <CollaborationPlugin
          id={docId}
          providerFactory={providerFactory}
          // The seed above bootstraps new documents, identically on every client.
          shouldBootstrap={false}
          username={initialUser.name}
          cursorColor={initialUser.color}
          cursorsContainerRef={cursorsContainer}
        />
        <PresencePublisher provider={provider} user={user} />
      </LexicalComposer>
    </LexicalCollaboration>
  )
}

/** Publishes name and colour changes made after mount (see `initialUser`) in the local presence. */
const PresencePublisher = ({ provider, user }: { provider: EditorProvider | null; user: User }): null => {
  useEffect(() => {
    const state = provider?.awareness.getLocalState()
    // Null until CollaborationPlugin announces the user, which it does with the user at mount.
    if (provider == null || state == null || (state.name === user.name && state.color === user.color)) return
    provider.awareness.setLocalState({ ...state, name: user.name, color: user.color })
  }, [provider, user])
  return null
}
