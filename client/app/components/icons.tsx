/** Toolbar icons, inline: no icon font to load, and no emoji that some systems draw as a box. */
import type { JSX } from 'react'

const Icon = ({ d }: { d: string }): JSX.Element => (
  <svg viewBox="0 0 24 24" width="18" height="18" fill="none" stroke="currentColor" strokeWidth="2" strokeLinecap="round" strokeLinejoin="round" aria-hidden="true">
    <path d={d} />
  </svg>
)

export const UndoIcon = (): JSX.Element => <Icon d="M9 14 4 9l5-5M4 9h11a5 5 0 0 1 0 10h-3" />
export const RedoIcon = (): JSX.Element => <Icon d="m15 14 5-5-5-5M20 9H9a5 5 0 0 0 0 10h3" />
export const LinkIcon = (): JSX.Element => <Icon d="M10 13a5 5 0 0 0 7.5.5l3-3a5 5 0 0 0-7-7l-1.7 1.7M14 11a5 5 0 0 0-7.5-.5l-3 3a5 5 0 0 0 7 7l1.7-1.7" />
