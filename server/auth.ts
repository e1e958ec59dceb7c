/**
 * Who may read or write which document. The server asks an {@link Authorize} hook before every
 * document route; `createJwtAuthorizer` is the built-in one.
 *
 * JWT claims: `docs` — document IDs, or prefixes ending in `*` (`team-*`), or `*` for all;
 * `access` — `read` (stream and fetch) or `write` (also POST); `exp` is honoured; `sub`, when
 * present, names the client for per-client limits.
 */
import type { IncomingHttpHeaders } from 'node:http'
import { SignJWT, errors as joseErrors, importPKCS8, importSPKI, jwtVerify, type JWTPayload } from 'jose'
import { ErrorCode, ProtocolError } from '../shared/errors.js'

/** What a request wants to do with a document. */
export type Access = 'read' | 'write'

/** The parts of a request an authorizer may look at. */
export interface AuthRequest {
  headers: IncomingHttpHeaders
  /** The request's query parameters (the browser's `EventSource` cannot send headers: `?token=`). */
  query: URLSearchParams
}

/** What an authorizer grants. */
export interface Grant {
  /** The client's identity for per-client limits (default: its IP address). */
  subject?: string | undefined
  /** When the grant ends (ms since the epoch): streams close then, and the client reconnects with a fresh token. */
  expiresAt?: number | undefined
}

/**
 * Decides whether a request may have `access` to `docId`. Resolves with a {@link Grant}, or
 * rejects with a `ProtocolError` coded `unauthorized` (401: who are you?) or `forbidden` (403:
 * not you, not this).
 */
export type Authorize = (request: AuthRequest, docId: string, access: Access) => Promise<Grant>

/** The bearer token of a request: the `Authorization` header, else the `token` query parameter. */
export const tokenOf = (request: AuthRequest): string | null => {
  const header = request.headers.authorization
  if (header !== undefined) {
    const match = /^Bearer\s+(\S+)$/i.exec(header)
    return match?.[1] ?? null
  }
  return request.query.get('token')
}

/** Whether a `docs` claim covers a document ID. */
export const docsCover = (docs: unknown, docId: string): boolean => {
  const list = typeof docs === 'string' ? [docs] : Array.isArray(docs) ? docs : []
  return list.some(entry => typeof entry === 'string' && (entry.endsWith('*') ? docId.startsWith(entry.slice(0, -1)) : entry === docId))
}

/** Key material of {@link createJwtAuthorizer}: exactly one of them. */
export type JwtKey =
  /** A shared secret for HS256. */
  | { secret: string }
  /** A PEM public key (SPKI) for ES256 or RS256. */
  | { publicKey: string; algorithm: 'ES256' | 'RS256' }

const unauthorized = (message: string): ProtocolError => new ProtocolError(ErrorCode.unauthorized, message)

/** The built-in authorizer: verifies a JWT and checks its `docs` and `access` claims. */
export const createJwtAuthorizer = async (key: JwtKey): Promise<Authorize> => {
  let verify: (token: string) => Promise<JWTPayload>
  if ('secret' in key) {
    const secret = new TextEncoder().encode(key.secret)
    verify = async token => (await jwtVerify(token, secret, { algorithms: ['HS256'] })).payload
  } else {
    const publicKey = await importSPKI(key.publicKey, key.algorithm)
    verify = async token => (await jwtVerify(token, publicKey, { algorithms: [key.algorithm] })).payload
  }
  return async (request, docId, access) => {
    const token = tokenOf(request)
    if (token === null) throw unauthorized('a token is required: send "Authorization: Bearer <token>" or ?token=')
    let claims: JWTPayload
    try {
      claims = await verify(token)
    } catch (error) {
      throw unauthorized(error instanceof joseErrors.JWTExpired ? 'the token has expired' : 'the token is not valid')
    }
    if (!docsCover(claims.docs, docId)) throw new ProtocolError(ErrorCode.forbidden, `the token does not cover document ${docId}`)
    if (access === 'write' && claims.access !== 'write') throw new ProtocolError(ErrorCode.forbidden, 'the token is read-only')
    if (access === 'read' && claims.access !== 'read' && claims.access !== 'write') throw new ProtocolError(ErrorCode.forbidden, 'the token grants no access')
    return { subject: claims.sub, expiresAt: claims.exp === undefined ? undefined : claims.exp * 1000 }
  }
}

/** Lets everyone do everything: the default when no authorizer is configured. */
export const allowAll: Authorize = async () => ({})

/** What {@link issueToken} puts in a token. */
export interface TokenClaims {
  /** Document IDs, or prefixes ending in `*`. */
  docs: readonly string[]
  access: Access
  /** Lifetime in seconds. */
  ttlSeconds: number
  /** The client's name (for per-client limits and logs). */
  subject?: string | undefined
}

/** Key material to sign with: the HS256 secret, or a PEM private key (PKCS#8) for ES256/RS256. */
export type SigningKey = { secret: string } | { privateKey: string; algorithm: 'ES256' | 'RS256' }

/** Issues a token that {@link createJwtAuthorizer} accepts (for your login endpoint or the `y-sse token` command). */
export const issueToken = async (key: SigningKey, claims: TokenClaims): Promise<string> => {
  const jwt = new SignJWT({ docs: [...claims.docs], access: claims.access }).setIssuedAt().setExpirationTime(`${claims.ttlSeconds}s`)
  if (claims.subject !== undefined) jwt.setSubject(claims.subject)
  if ('secret' in key) return jwt.setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(key.secret))
  return jwt.setProtectedHeader({ alg: key.algorithm }).sign(await importPKCS8(key.privateKey, key.algorithm))
}
