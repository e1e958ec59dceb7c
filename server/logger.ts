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

/** A logger writing one JSON object per line to stderr, dropping messages below `level`. */
export const createJsonLogger = (level: LogLevel = 'info'): Logger => {
  const threshold = LEVELS.indexOf(level)
  const at = (name: keyof Logger) => (message: string, fields?: Record<string, unknown>): void => {
    if (LEVELS.indexOf(name) < threshold) return
    process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level: name, msg: message, ...fields }) + '\n')
  }
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }
}

/** A logger that drops everything (tests, embedding apps that log elsewhere). */
export const silentLogger: Logger = createJsonLogger('silent')
