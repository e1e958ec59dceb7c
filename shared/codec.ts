/**
 * Byte codecs of the protocol: standard base64 for SSE payloads, base64url (padding optional)
 * for state vectors in query strings.
 */
import * as buffer from 'lib0/buffer'

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/
const BASE64URL = /^[A-Za-z0-9_-]*={0,2}$/

/** Encodes bytes as standard base64 (with padding). */
export const toBase64 = (bytes: Uint8Array): string => buffer.toBase64(bytes)

/** Decodes standard base64; throws a `TypeError` on characters outside the alphabet. */
export const fromBase64 = (text: string): Uint8Array => {
  if (!BASE64.test(text)) throw new TypeError('invalid base64')
  return buffer.fromBase64(text)
}

/** Encodes bytes as base64url without padding, for URLs. */
export const toBase64Url = (bytes: Uint8Array): string => buffer.toBase64UrlEncoded(bytes)

/** Decodes base64url with or without padding; throws a `TypeError` on characters outside the alphabet. */
export const fromBase64Url = (text: string): Uint8Array => {
  if (!BASE64URL.test(text)) throw new TypeError('invalid base64url')
  const unpadded = text.replace(/=+$/, '')
  return buffer.fromBase64(unpadded.replaceAll('-', '+').replaceAll('_', '/') + '='.repeat((4 - (unpadded.length % 4)) % 4))
}
