/** `Y.Doc`s the server creates for its own work (validation, merging). */
import * as Y from 'yjs'

/**
 * A `Y.Doc` with a fixed guid. Yjs would otherwise draw a random UUID for it through 31 separate
 * `crypto.getRandomValues` calls, which made up 8% of the CPU of a small POST. The guid only
 * names subdocuments, which a server-side document never shares.
 */
export const workDoc = (options: { gc: boolean }): Y.Doc => new Y.Doc({ guid: 'y-sse-server', gc: options.gc })
