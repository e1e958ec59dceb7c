/** Formatting: block type, bold, italic, link, and undo/redo (CollaborationPlugin's Yjs undo manager: only my own edits). */
import { useEffect, useState, type FormEvent, type JSX } from 'react'
import { useLexicalComposerContext } from '@lexical/react/LexicalComposerContext'
import { $createHeadingNode, $createQuoteNode, $isHeadingNode, $isQuoteNode } from '@lexical/rich-text'
import { $isListNode, INSERT_ORDERED_LIST_COMMAND, INSERT_UNORDERED_LIST_COMMAND } from '@lexical/list'
import { $isLinkNode, TOGGLE_LINK_COMMAND } from '@lexical/link'
import { $setBlocksType } from '@lexical/selection'
import { $findMatchingParent, mergeRegister } from '@lexical/utils'
import {
  $createParagraphNode,
  $getSelection,
  $isRangeSelection,
  $isRootOrShadowRoot,
  CAN_REDO_COMMAND,
  CAN_UNDO_COMMAND,
  COMMAND_PRIORITY_LOW,
  FORMAT_TEXT_COMMAND,
  REDO_COMMAND,
  UNDO_COMMAND,
  type LexicalEditor
} from 'lexical'
import { toLinkUrl } from '../links.js'
import { LinkIcon, RedoIcon, UndoIcon } from './icons.js'

const BLOCK_TYPES = {
  paragraph: 'Normal text',
  h1: 'Heading 1',
  h2: 'Heading 2',
  h3: 'Heading 3',
  bullet: 'Bulleted list',
  number: 'Numbered list',
  quote: 'Quote'
} as const

type BlockType = keyof typeof BLOCK_TYPES

const isBlockType = (value: string): value is BlockType => Object.hasOwn(BLOCK_TYPES, value)

/** What the toolbar shows for the current selection. */
interface Formats {
  block: BlockType
  bold: boolean
  italic: boolean
  /** The URL of the link the selection is in, or null. */
  link: string | null
}

const NO_FORMATS: Formats = { block: 'paragraph', bold: false, italic: false, link: null }

/** Reads the formats at the selection; call inside an editor read or update. */
const $currentFormats = (): Formats => {
  const selection = $getSelection()
  if (!$isRangeSelection(selection)) return NO_FORMATS
  const anchor = selection.anchor.getNode()
  const block = anchor.getKey() === 'root'
    ? null
    : $findMatchingParent(anchor, node => {
      const parent = node.getParent()
      return parent !== null && $isRootOrShadowRoot(parent)
    })
  let blockType: BlockType = 'paragraph'
  if ($isListNode(block)) {
    // The outermost list decides, as in the block menu of most editors.
    blockType = block.getListType() === 'number' ? 'number' : 'bullet'
  } else if ($isHeadingNode(block)) {
    const tag = block.getTag()
    blockType = tag === 'h1' || tag === 'h2' || tag === 'h3' ? tag : 'h3'
  } else if ($isQuoteNode(block)) {
    blockType = 'quote'
  }
  const linkNode = $findMatchingParent(anchor, $isLinkNode)
  return {
    block: blockType,
    bold: selection.hasFormat('bold'),
    italic: selection.hasFormat('italic'),
    link: $isLinkNode(linkNode) ? linkNode.getURL() : null
  }
}

const setBlockType = (editor: LexicalEditor, type: BlockType): void => {
  if (type === 'bullet') {
    editor.dispatchCommand(INSERT_UNORDERED_LIST_COMMAND, undefined)
    return
  }
  if (type === 'number') {
    editor.dispatchCommand(INSERT_ORDERED_LIST_COMMAND, undefined)
    return
  }
  editor.update(() => {
    const selection = $getSelection()
    if (type === 'paragraph') $setBlocksType(selection, () => $createParagraphNode())
    else if (type === 'quote') $setBlocksType(selection, () => $createQuoteNode())
    else $setBlocksType(selection, () => $createHeadingNode(type))
  })
}

export const Toolbar = (): JSX.Element => {
  const [editor] = useLexicalComposerContext()
  const [formats, setFormats] = useState<Formats>(NO_FORMATS)
  const [canUndo, setCanUndo] = useState(false)
  const [canRedo, setCanRedo] = useState(false)
  /** The link being edited: the URL field's text, or null when the field is closed. */
  const [linkDraft, setLinkDraft] = useState<string | null>(null)

  useEffect(() => mergeRegister(
    editor.registerUpdateListener(({ editorState }) => setFormats(editorState.read($currentFormats))),
    editor.registerCommand(CAN_UNDO_COMMAND, can => { setCanUndo(can); return false }, COMMAND_PRIORITY_LOW),
    editor.registerCommand(CAN_REDO_COMMAND, can => { setCanRedo(can); return false }, COMMAND_PRIORITY_LOW)
  ), [editor])

  const applyLink = (event: FormEvent): void => {
    event.preventDefault()
    const url = toLinkUrl(linkDraft ?? '')
    if (url === null) return
    editor.dispatchCommand(TOGGLE_LINK_COMMAND, url)
    setLinkDraft(null)
    editor.focus()
  }

  const removeLink = (): void => {
    editor.dispatchCommand(TOGGLE_LINK_COMMAND, null)
    setLinkDraft(null)
    editor.focus()
  }

  return (
    <div className="toolbar" role="toolbar" aria-label="Formatting">
      <div className="toolbar-group">
        <button type="button" className="tool" disabled={!canUndo} onClick={() => editor.dispatchCommand(UNDO_COMMAND, undefined)} title="Undo my last change (Ctrl+Z)" aria-label="Undo"><UndoIcon /></button>
        <button type="button" className="tool" disabled={!canRedo} onClick={() => editor.dispatchCommand(REDO_COMMAND, undefined)} title="Redo (Ctrl+Shift+Z)" aria-label="Redo"><RedoIcon /></button>
      </div>
      <select
        className="block-type"
        aria-label="Block type"
        value={formats.block}
        onChange={event => { if (isBlockType(event.target.value)) setBlockType(editor, event.target.value) }}
      >
        {Object.entries(BLOCK_TYPES).map(([type, label]) => <option key={type} value={type}>{label}</option>)}
      </select>
      <div className="toolbar-group">
        <button type="button" className="tool tool-bold" aria-pressed={formats.bold} onClick={() => editor.dispatchCommand(FORMAT_TEXT_COMMAND, 'bold')} title="Bold (Ctrl+B)" aria-label="Bold">B</button>
        <button type="button" className="tool tool-italic" aria-pressed={formats.italic} onClick={() => editor.dispatchCommand(FORMAT_TEXT_COMMAND, 'italic')} title="Italic (Ctrl+I)" aria-label="Italic">I</button>
        <button
          type="button"
          className="tool"
          aria-pressed={formats.link !== null}
          onClick={() => setLinkDraft(linkDraft === null ? formats.link ?? '' : null)}
          title="Link"
          aria-label="Link"
        ><LinkIcon /></button>
      </div>
      {linkDraft !== null && (
        <form className="link-form" onSubmit={applyLink}>
          <input
            autoFocus
            type="text"
            inputMode="url"
            placeholder="https://example.com"
            aria-label="Link URL"
            value={linkDraft}
            onChange={event => setLinkDraft(event.target.value)}
            onKeyDown={event => { if (event.key === 'Escape') setLinkDraft(null) }}
          />
          <button type="submit" className="button" disabled={toLinkUrl(linkDraft) === null}>Apply</button>
          {formats.link !== null && <button type="button" className="button button-quiet" onClick={removeLink}>Remove</button>}
        </form>
      )}
    </div>
  )
}
