/** The y-sse wire protocol, shared by the server and the clients. */
export * from './protocol.js'
export * from './errors.js'
export * from './codec.js'
export * from './awareness.js'
