import { describe, expect, it } from 'vitest'
import { foldRepeats, type Logger } from '../../server/logger.js'
import { waitFor } from '../helpers/wait.js'

interface Line {
  level: keyof Logger
  message: string
  fields: Record<string, unknown> | undefined
}

/** A logger that keeps its lines. */
const recording = (): { logger: Logger; lines: Line[] } => {
  const lines: Line[] = []
  const record = (level: keyof Logger) => (message: string, fields?: Record<string, unknown>): void => { lines.push({ level, message, fields }) }
  return { logger: { debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error') }, lines }
}

describe('foldRepeats', () => {
  it('writes the first of repeated warnings at once and their count when the window closes', async () => {
    const { logger, lines } = recording()
    const folding = foldRepeats(logger, 100)
    for (let i = 0; i < 500; i++) folding.warn('presence renewal failed', { docId: `d${i}`, error: 'Error: Connection is closed.' })
    expect(lines).toEqual([{ level: 'warn', message: 'presence renewal failed', fields: { docId: 'd0', error: 'Error: Connection is closed.' } }])
    await waitFor(() => lines.length > 1)
    expect(lines[1]).toEqual({
      level: 'warn',
      message: 'presence renewal failed (repeated)',
      fields: { docId: 'd499', error: 'Error: Connection is closed.', repeated: 499, windowMs: 100 }
    })
    // A new window: its first line goes out at once again.
    folding.warn('presence renewal failed', { docId: 'd500', error: 'Error: Connection is closed.' })
    expect(lines).toHaveLength(3)
  })

  it('keeps apart messages, errors and levels, passes debug and info through, and reports nothing for a single line', async () => {
    const { logger, lines } = recording()
    const folding = foldRepeats(logger, 100)
    folding.warn('reading updates failed', { error: 'Error: a' })
    folding.warn('reading updates failed', { error: 'Error: b' })
    folding.error('reading updates failed', { error: 'Error: a' })
    folding.warn('presence renewal failed', { error: 'Error: a' })
    for (let i = 0; i < 3; i++) folding.info('y-sse listening')
    folding.debug('detail')
    folding.debug('detail')
    expect(lines.map(l => `${l.level} ${l.message} ${String(l.fields?.error)}`)).toEqual([
      'warn reading updates failed Error: a',
      'warn reading updates failed Error: b',
      'error reading updates failed Error: a',
      'warn presence renewal failed Error: a',
      'info y-sse listening undefined',
      'info y-sse listening undefined',
      'info y-sse listening undefined',
      'debug detail undefined',
      'debug detail undefined'
    ])
    folding.warn('reading updates failed', { error: 'Error: a' })
    await waitFor(() => lines.length > 9)
    expect(lines.slice(9).map(l => [l.message, l.fields?.repeated])).toEqual([['reading updates failed (repeated)', 1]])
    folding.flush()
    expect(lines).toHaveLength(10)
  })

  it('writes what it holds back on flush, before its window closes', () => {
    const { logger, lines } = recording()
    const folding = foldRepeats(logger, 60_000)
    for (let i = 0; i < 3; i++) folding.error('request failed', { error: 'Error: x' })
    folding.flush()
    expect(lines.map(l => [l.message, l.fields?.repeated])).toEqual([['request failed', undefined], ['request failed (repeated)', 2]])
    folding.flush()
    expect(lines).toHaveLength(2)
  })
})
