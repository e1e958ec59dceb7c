/** Who is here (avatars, names), and my own name and colour, editable. */
import { useState, type CSSProperties, type FormEvent, type JSX } from 'react'
import { usePeers, type EditorProvider, type Peer } from '../provider-state.js'
import { cleanName, MAX_NAME_LENGTH, USER_COLORS, type User } from '../user.js'

interface PresenceProps {
  provider: EditorProvider | null
  user: User
  onChange: (user: User) => void
}

const initials = (name: string): string =>
  name.split(' ').filter(Boolean).slice(0, 2).map(word => word[0]?.toUpperCase()).join('') || '?'

const colorStyle = (color: string): CSSProperties => ({ '--peer-color': color } as CSSProperties)

export const Presence = ({ provider, user, onChange }: PresenceProps): JSX.Element => {
  const peers = usePeers(provider)
  const [editing, setEditing] = useState(false)
  // Until the provider has announced me, I am still here.
  const everyone: Peer[] = peers.some(peer => peer.isMe) ? peers : [{ clientId: -1, ...user, isMe: true }, ...peers]
  const others = everyone.length - 1

  return (
    <div className="presence">
      <ul className="peers" aria-label="Who is here">
        {everyone.map(peer => (
          <li key={peer.clientId} className={peer.isMe ? 'peer peer-me' : 'peer'} style={colorStyle(peer.color)} title={peer.isMe ? `${peer.name} (you)` : peer.name}>
            {peer.isMe
              ? <button type="button" className="avatar" onClick={() => setEditing(!editing)} aria-expanded={editing} aria-label="Change your name and colour">{initials(peer.name)}</button>
              : <span className="avatar" aria-hidden="true">{initials(peer.name)}</span>}
            <span className="peer-name">{peer.name}{peer.isMe && <span className="you"> (you)</span>}</span>
          </li>
        ))}
      </ul>
      <span className="peer-count">{others === 0 ? 'Only you' : `${others} other${others === 1 ? '' : 's'} here`}</span>
      {editing && <UserForm user={user} onDone={next => { if (next !== null) onChange(next); setEditing(false) }} />}
    </div>
  )
}

const UserForm = ({ user, onDone }: { user: User; onDone: (user: User | null) => void }): JSX.Element => {
  const [name, setName] = useState(user.name)
  const [color, setColor] = useState(user.color)
  const submit = (event: FormEvent): void => {
    event.preventDefault()
    const cleaned = cleanName(name)
    onDone({ name: cleaned === '' ? user.name : cleaned, color })
  }
  return (
    <form className="user-form" onSubmit={submit} onKeyDown={event => { if (event.key === 'Escape') onDone(null) }}>
      <label>
        Your name
        <input autoFocus value={name} maxLength={MAX_NAME_LENGTH} onChange={event => setName(event.target.value)} aria-label="Your name" />
      </label>
      <fieldset className="swatches">
        <legend>Colour</legend>
        {USER_COLORS.map(swatch => (
          <label key={swatch} className="swatch" style={colorStyle(swatch)}>
            <input type="radio" name="color" value={swatch} checked={color === swatch} onChange={() => setColor(swatch)} aria-label={swatch} />
          </label>
        ))}
      </fieldset>
      <div className="user-form-actions">
        <button type="button" className="button button-quiet" onClick={() => onDone(null)}>Cancel</button>
        <button type="submit" className="button button-primary">Save</button>
      </div>
    </form>
  )
}
