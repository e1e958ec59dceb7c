/** The document picker (open by ID, recent ones, a new one) and the "copy link" button. */
import { useEffect, useRef, useState, type FormEvent, type JSX } from 'react'
import { isValidDocId } from '../../../shared/protocol.js'
import { docUrl, newDocId, recentDocs } from '../documents.js'

/** How long the button says "Copied". */
const COPIED_MS = 2000

export const DocPicker = ({ docId }: { docId: string }): JSX.Element => {
  const [recent] = useState(recentDocs)
  return (
    <div className="doc-picker">
      {/* A plain GET form: opening a document is a page load of /?doc=<id>, so Back and links just work. */}
      <form action="/" method="get" className="doc-form" onSubmit={checkDocId}>
        <input
          name="doc"
          aria-label="Document"
          defaultValue={docId}
          list="recent-docs"
          required
          onInput={event => event.currentTarget.setCustomValidity('')}
          spellCheck={false}
          autoCapitalize="off"
          autoComplete="off"
        />
        <datalist id="recent-docs">
          {recent.filter(id => id !== docId).map(id => <option key={id} value={id} />)}
        </datalist>
        <button type="submit" className="button">Open</button>
      </form>
      <a className="button button-quiet" href={docUrl('', newDocId())}>New</a>
      <CopyLinkButton docId={docId} />
    </div>
  )
}

/** Says what is wrong with a document ID rather than letting the page open a new document instead. */
const checkDocId = (event: FormEvent<HTMLFormElement>): void => {
  const field = event.currentTarget.elements.namedItem('doc')
  if (!(field instanceof HTMLInputElement) || isValidDocId(field.value)) return
  event.preventDefault()
  field.setCustomValidity('Use 1–128 letters, digits, dots, dashes, underscores or tildes.')
  field.reportValidity()
}

const CopyLinkButton = ({ docId }: { docId: string }): JSX.Element => {
  const [copied, setCopied] = useState(false)
  const timer = useRef<ReturnType<typeof setTimeout>>(undefined)
  useEffect(() => () => clearTimeout(timer.current), [])

  const copy = async (): Promise<void> => {
    const url = docUrl(window.location.origin, docId)
    if (!(await copyText(url))) {
      window.prompt('Copy this link:', url)
      return
    }
    setCopied(true)
    clearTimeout(timer.current)
    timer.current = setTimeout(() => setCopied(false), COPIED_MS)
  }

  return (
    <button type="button" className="button button-primary copy-link" onClick={() => void copy()} aria-live="polite">
      {copied ? 'Copied ✓' : 'Copy link'}
    </button>
  )
}

/** The Clipboard API exists only in secure contexts (not on http://<LAN address>): fall back to a selection copy there. */
const copyText = async (text: string): Promise<boolean> => {
  try {
    await navigator.clipboard.writeText(text)
    return true
  } catch {
    const field = document.createElement('textarea')
    field.value = text
    field.setAttribute('readonly', '')
    field.style.position = 'fixed'
    field.style.opacity = '0'
    document.body.append(field)
    field.select()
    const copied = document.execCommand('copy')
    field.remove()
    return copied
  }
}
