/** Link URLs: only schemes that cannot run script in the page (no `javascript:`, no `data:`). */

const SAFE_PROTOCOLS = new Set(['http:', 'https:', 'mailto:'])

export const isSafeUrl = (url: string): boolean => {
  try {
    return SAFE_PROTOCOLS.has(new URL(url).protocol)
  } catch {
    return false
  }
}

/** What a user typed as a link target, as a safe URL (`example.com` → `https://example.com`), or null. */
export const toLinkUrl = (input: string): string | null => {
  const trimmed = input.trim()
  if (trimmed === '') return null
  const url = /^[a-z][a-z0-9+.-]*:/i.test(trimmed) ? trimmed : `https://${trimmed}`
  return isSafeUrl(url) ? url : null
}
