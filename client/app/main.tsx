/** The editor's entry point: picks the document from the URL (a new one when it names none) and renders. */
import { StrictMode } from 'react'
import { createRoot } from 'react-dom/client'
import { App } from './App.js'
import { docIdFromUrl, docUrl, newDocId } from './documents.js'
import './styles.css'

let docId = docIdFromUrl(new URL(window.location.href))
if (docId === null) {
  docId = newDocId()
  // Replace, not push: Back should not return to a URL that makes yet another new document.
  window.history.replaceState(null, '', docUrl(window.location.origin, docId))
}

const container = document.getElementById('root')
if (container === null) throw new Error('index.html has no #root element')
createRoot(container).render(
  <StrictMode>
    <App docId={docId} />
  </StrictMode>
)
