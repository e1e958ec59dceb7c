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

/** A pino logger writing one JSON object per line to stderr, dropping messages below `level`. */
export const createJsonLogger = (level: LogLevel = 'info'): Logger => {
  const log = pino({
    level,
    base: undefined,
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: label => ({ level: label }) }
  }, pino.destination({ dest: 2, sync: true }))
  return {
    debug: (message, fields) => log.debug(fields ?? {}, message),
    info: (message, fields) => log.info(fields ?? {}, message),
    warn: (message, fields) => log.warn(fields ?? {}, message),
    error: (message, fields) => log.error(fields ?? {}, message)
  }
}

/** A logger that drops everything (tests, embedding apps that log elsewhere). */
export const silentLogger: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} }
