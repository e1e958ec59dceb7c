/** Timer limits both the server and the client run into. */

/** The longest delay `setTimeout` honours: past it (about 24.8 days), timers fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1

/** `ms` as a delay `setTimeout` honours: at least 0, at most about 24.8 days. */
export const timerDelay = (ms: number): number => Math.min(MAX_TIMER_MS, Math.max(0, ms))
