import { setTimeout as delay } from 'node:timers/promises';

export interface WaitForOptions {
  timeout?: number;
  interval?: number;
  /** A function is evaluated at timeout, to report the state at that moment. */
  message?: string | (() => string);
}

/**
 * Polls `condition` until it returns true; tests synchronise on observable
 * state this way instead of sleeping, so they are neither flaky on a slow
 * machine nor slow on a fast one. An exception thrown by `condition` is
 * propagated at once: it means the awaited state can no longer happen.
 */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  { timeout = 10_000, interval = 10, message = 'condition not met' }: WaitForOptions = {},
): Promise<void> {
  const deadline = Date.now() + timeout;
  for (;;) {
    if (await condition()) return;
    if (Date.now() >= deadline) {
      const text = typeof message === 'function' ? message() : message;
      throw new Error(`waitFor timed out after ${timeout}ms: ${text}`);
    }
    await delay(interval);
  }
}
