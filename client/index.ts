/**
 * The y-sse client: {@link SseProvider} syncs a Yjs document with a y-sse server over HTTP POST
 * and Server-Sent Events, in browsers and in Node 20 without polyfills.
 */
export {
  SseProvider,
  sseProviderDefaults,
  type SseProviderOptions,
  type SseProviderEvents,
  type ProviderStatus,
  type TypedAwareness
} from './provider/sse-provider.js'
export type { ConnectionError, RequestKind, TokenSource } from './provider/transport.js'
export { defaultFetch, type Fetch, type HttpRequestInit, type HttpResponse, type ByteStream, type ChunkRead } from './provider/http.js'
export { watchChanges, ChangesError, type ChangeNotice, type WatchChangesOptions } from './changes.js'
