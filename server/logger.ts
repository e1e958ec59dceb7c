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

/** A logger that folds repeated warnings and errors ({@link foldRepeats}). */
export interface FoldingLogger extends Logger {
  /** Writes the count of every repeat held back now; call it before the process exits. */
  flush(): void
}

/** How long {@link foldRepeats} counts repeats by default before it writes their count. */
const REPEAT_WINDOW_MS = 10_000

/** Kinds of warning or error counted at once; past this many, lines of new kinds go out as they come. */
const MAX_FOLDED = 1000

interface Repeats {
  level: 'warn' | 'error'
  message: string
  count: number
  last: Record<string, unknown> | undefined
  timer: NodeJS.Timeout
}

/**
 * Folds repeated warnings and errors. A kind of line is its level, message and `error` (or
 * `cause`) field. Its first line goes out at once; repeats are counted, and every `windowMs`
 * while they keep coming one line carries their count: the message with ` (repeated)`, the last
 * repeat's fields, `repeated` and `windowMs`. A window without repeats ends the kind's folding,
 * so its next line goes out at once again. At most 1,000 kinds are counted at a time. When Redis
 * is down, every held stream fails its presence renewal at every heartbeat: ten thousand streams
 * would write over a thousand identical lines a second, which buries the one that says what
 * happened. Debug and info lines pass through. The counting timers do not keep the process alive:
 * call {@link FoldingLogger.flush} before it exits.
 */
export const foldRepeats = (logger: Logger, windowMs = REPEAT_WINDOW_MS): FoldingLogger => {
  const folded = new Map<string, Repeats>()
  const report = (repeats: Repeats): void => {
    logger[repeats.level](`${repeats.message} (repeated)`, { ...repeats.last, repeated: repeats.count, windowMs })
    repeats.count = 0
  }
  const tick = (key: string): void => {
    const repeats = folded.get(key)
    if (repeats === undefined) return
    if (repeats.count === 0) {
      folded.delete(key)
      return
    }
    report(repeats)
    repeats.timer.refresh()
  }
  const fold = (level: 'warn' | 'error') => (message: string, fields?: Record<string, unknown>): void => {
    const key = `${level}\0${message}\0${String(fields?.error ?? fields?.cause ?? '')}`
    const repeats = folded.get(key)
    if (repeats !== undefined) {
      repeats.count++
      repeats.last = fields
      return
    }
    logger[level](message, fields)
    if (folded.size >= MAX_FOLDED) return
    const timer = setTimeout(() => tick(key), windowMs)
    timer.unref()
    folded.set(key, { level, message, count: 0, last: fields, timer })
  }
  return {
    debug: (message, fields) => logger.debug(message, fields),
    info: (message, fields) => logger.info(message, fields),
    warn: fold('warn'),
    error: fold('error'),
    flush: () => {
      for (const repeats of folded.values()) {
        clearTimeout(repeats.timer)
        if (repeats.count > 0) report(repeats)
      }
      folded.clear()
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
  const folding = foldRepeats({
    debug: (message, fields) => log.debug(fields ?? {}, message),
    info: (message, fields) => log.info(fields ?? {}, message),
    warn: (message, fields) => log.warn(fields ?? {}, message),
    error: (message, fields) => log.error(fields ?? {}, message)
  })
  // Lines of a level that is off are not counted either: they would only take room from the others.
  const drop = (): void => {}
  return {
    ...folding,
    warn: log.isLevelEnabled('warn') ? folding.warn : drop,
    error: log.isLevelEnabled('error') ? folding.error : drop
  }
}

/** A logger that drops everything (tests, embedding apps that log elsewhere). */
export const silentLogger: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} }
