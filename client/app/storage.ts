/**
 * JSON in localStorage. Storage can be unavailable (disabled, full, a sandboxed frame): the editor
 * then works the same and only forgets its preferences.
 */

export const readStored = <T>(key: string): T | null => {
  try {
    const raw = localStorage.getItem(key)
    return raw === null ? null : JSON.parse(raw) as T
  } catch {
    return null
  }
}

export const writeStored = (key: string, value: unknown): void => {
  try {
    localStorage.setItem(key, JSON.stringify(value))
  } catch {
    // Unavailable storage: nothing to keep the value in, and nothing the user can do about it.
  }
}
