/**
 * The Lexical node types of a y-sse rich-text document. The browser editor and the headless bot
 * register the same list, so what one writes the other can read (an unregistered node type in the
 * shared Yjs document would break the other side).
 */
import type { Klass, LexicalNode } from 'lexical'
import { HeadingNode, QuoteNode } from '@lexical/rich-text'
import { ListItemNode, ListNode } from '@lexical/list'
import { AutoLinkNode, LinkNode } from '@lexical/link'
import { CodeHighlightNode, CodeNode } from '@lexical/code'

/** Node classes to pass as `nodes` to every editor of a y-sse document. */
export const documentNodes: readonly Klass<LexicalNode>[] = [
  HeadingNode, QuoteNode, ListNode, ListItemNode, LinkNode, AutoLinkNode, CodeNode, CodeHighlightNode
]
