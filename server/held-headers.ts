/**
 * Headers the middleware decides for every response of a request (its request ID, CORS), held
 * until the response starts instead of set on it at once. Over HTTP/1.x, Node keeps the header
 * map of a response whose headers were set before its head was written for as long as the
 * response is open: 1 KB of heap for each event stream, which may be held for hours (HTTP/2's
 * responses keep their headers either way). An event stream writes these with its head
 * ({@link takeHeldHeaders}); every other response gets them just before Koa sends it
 * ({@link setHeldHeaders}), so middleware added after the protocol's routes must let Koa send its
 * responses to have them.
 */
import type { Context } from 'koa'

/** One request's held headers, and the fields its `Vary` must name. */
interface Held {
  headers: Record<string, string>
  vary: string[]
}

const heldByRequest = new WeakMap<Context, Held>()

const heldOf = (ctx: Context): Held => {
  let held = heldByRequest.get(ctx)
  if (held === undefined) {
    held = { headers: {}, vary: [] }
    heldByRequest.set(ctx, held)
  }
  return held
}

/** Holds a header for the request's response. */
export const holdHeader = (ctx: Context, name: string, value: string): void => {
  heldOf(ctx).headers[name] = value
}

/** Holds a field for the response's `Vary`, added to whatever the route varies on. */
export const holdVary = (ctx: Context, field: string): void => {
  heldOf(ctx).vary.push(field)
}

/**
 * Sets the held headers on a response Koa is about to send (nothing once its head is out); a
 * header a later middleware or route set itself stays as it set it.
 */
export const setHeldHeaders = (ctx: Context): void => {
  const held = heldByRequest.get(ctx)
  if (held === undefined || ctx.headerSent) return
  for (const [name, value] of Object.entries(held.headers)) if (!ctx.res.hasHeader(name)) ctx.set(name, value)
  for (const field of held.vary) ctx.vary(field)
}

/** The held headers, for a head written without Koa (an event stream's); they are not held any longer. */
export const takeHeldHeaders = (ctx: Context): Record<string, string> => {
  const held = heldByRequest.get(ctx)
  if (held === undefined) return {}
  heldByRequest.delete(ctx)
  return held.vary.length === 0 ? held.headers : { ...held.headers, Vary: held.vary.join(', ') }
}
