import { pino } from 'pino'

/** The logging the server needs: levelled, structured, replaceable by any pino-like logger. */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void
  info(message: string, fields?: Record<string, unknown>): void
  warn(message: string, fields?: Record<string, unknown>): void
  error(message: string, fields?: Record<string, unknown>): void
}

export type LogLevel = keyof Logger | 'silent'

const LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error', 'silent']

/** @returns whether `value` names a log level. */
export const isLogLevel = (value: string): value is LogLevel => (LEVELS as readonly string[]).includes(value)

/** A logger that folds repeated warnings and errors ({@link foldRepeats}); `flush` writes what it holds back. */
export interface FoldingLogger extends Logger {
  /** Writes the count of every repeat held back now (before exit). */
  flush(): void
}

/** How long {@link foldRepeats} counts a repeated warning or error before it reports the count. */
export const REPEAT_WINDOW_MS = 10_000

/** Repeats are counted per message and error for at most this many of them; past it, lines go out as they come. */
const MAX_FOLDED = 1000

interface Repeats {
  level: 'warn' | 'error'
  message: string
  count: number
  last: Record<string, unknown> | undefined
  timer: NodeJS.Timeout
}

/**
 * Folds repeats of a warning or error: the first line of a message (with the same `error` field)
 * goes out at once, the next ones within `windowMs` are counted, and one line with the count
 * (`repeated`) and the last one's fields closes the window. When Redis is down, every held stream
 * fails its presence renewal at every heartbeat: ten thousand streams would write over a thousand
 * identical lines a second, which buries the one that says what happened. Debug and info lines
 * pass through.
 */
export const foldRepeats = (logger: Logger, windowMs = REPEAT_WINDOW_MS): FoldingLogger => {
  const folded = new Map<string, Repeats>()
  const report = (key: string): void => {
    const repeats = folded.get(key)
    if (repeats === undefined) return
    clearTimeout(repeats.timer)
    folded.delete(key)
    if (repeats.count > 0) logger[repeats.level](`${repeats.message} (repeated)`, { ...repeats.last, repeated: repeats.count, windowMs })
  }
  const fold = (level: 'warn' | 'error') => (message: string, fields?: Record<string, unknown>): void => {
    const key = `${level}\0${message}\0${String(fields?.error ?? '')}`
    const repeats = folded.get(key)
    if (repeats !== undefined) {
      repeats.count++
      repeats.last = fields
      return
    }
    logger[level](message, fields)
    if (folded.size >= MAX_FOLDED) return
    const timer = setTimeout(() => report(key), windowMs)
    timer.unref()
    folded.set(key, { level, message, count: 0, last: fields, timer })
  }
  return {
    debug: (message, fields) => logger.debug(message, fields),
    info: (message, fields) => logger.info(message, fields),
    warn: fold('warn'),
    error: fold('error'),
    flush: () => {
      for (const key of [...folded.keys()]) report(key)
    }
  }
}

/**
 * A pino logger writing one JSON object per line to stderr, dropping messages below `level`,
 * with repeated warnings and errors folded ({@link foldRepeats}).
 */
export const createJsonLogger = (level: LogLevel = 'info'): FoldingLogger => {
  const log = pino({
    level,
    base: undefined,
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: label => ({ level: label }) }
  }, pino.destination({ dest: 2, sync: true }))
  return foldRepeats({
    debug: (message, fields) => log.debug(fields ?? {}, message),
    info: (message, fields) => log.info(fields ?? {}, message),
    warn: (message, fields) => log.warn(fields ?? {}, message),
    error: (message, fields) => log.error(fields ?? {}, message)
  })
}

/** A logger that drops everything (tests, embedding apps that log elsewhere). */
export const silentLogger: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} }
