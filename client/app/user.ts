/** Who I am to the others: a name and a colour, chosen at random once and remembered. */
import { readStored, writeStored } from './storage.js'

export interface User {
  name: string
  color: string
}

const USER_KEY = 'y-sse:user'

/** Colours that stay readable as white-on-colour name labels and as caret colours. */
export const USER_COLORS = ['#e5484d', '#f76b15', '#ca8a04', '#30a46c', '#12a594', '#0090ff', '#6e56cf', '#d6409f'] as const

const ANIMALS = ['Otter', 'Heron', 'Lynx', 'Puffin', 'Badger', 'Gecko', 'Marten', 'Ibis', 'Bison', 'Wren']

const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)] as T

/** The longest name shown; longer ones are cut, so a label never covers a line of text. */
export const MAX_NAME_LENGTH = 32

const isColor = (value: unknown): value is string => typeof value === 'string' && /^#[0-9a-f]{6}$/i.test(value)

/** Cleans a name typed by the user; an empty result means "keep the old one". */
export const cleanName = (name: string): string => name.replace(/\s+/g, ' ').trim().slice(0, MAX_NAME_LENGTH)

/** The remembered user, or a new random one (remembered from now on). */
export const loadUser = (): User => {
  const stored = readStored<Partial<User>>(USER_KEY)
  const name = typeof stored?.name === 'string' ? cleanName(stored.name) : ''
  if (name !== '' && isColor(stored?.color)) return { name, color: stored.color }
  const user = { name: `Anonymous ${pick(ANIMALS)}`, color: pick(USER_COLORS) }
  saveUser(user)
  return user
}

export const saveUser = (user: User): void => writeStored(USER_KEY, user)
