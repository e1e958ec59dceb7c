import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { foldRepeats, type Logger } from '../../server/logger.js'

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

const closed = { error: 'Error: Connection is closed.' }

describe('foldRepeats', () => {
  beforeEach(() => { vi.useFakeTimers() })
  afterEach(() => { vi.useRealTimers() })

  it('writes the first line at once, the count of repeats every window while they come, and the next line at once after a quiet window', () => {
    const { logger, lines } = recording()
    const folding = foldRepeats(logger, 100)
    for (let i = 0; i < 500; i++) folding.warn('presence renewal failed', { docId: `d${i}`, ...closed })
    expect(lines).toEqual([{ level: 'warn', message: 'presence renewal failed', fields: { docId: 'd0', ...closed } }])
    vi.advanceTimersByTime(100)
    expect(lines.slice(1)).toEqual([{
      level: 'warn',
      message: 'presence renewal failed (repeated)',
      fields: { docId: 'd499', ...closed, repeated: 499, windowMs: 100 }
    }])
    for (let i = 0; i < 3; i++) folding.warn('presence renewal failed', { docId: 'e', ...closed })
    expect(lines).toHaveLength(2)
    vi.advanceTimersByTime(100)
    expect(lines.slice(2).map(l => [l.message, l.fields?.repeated])).toEqual([['presence renewal failed (repeated)', 3]])
    vi.advanceTimersByTime(100)
    expect(lines).toHaveLength(3)
    folding.warn('presence renewal failed', { docId: 'f', ...closed })
    expect(lines.slice(3).map(l => [l.message, l.fields?.docId])).toEqual([['presence renewal failed', 'f']])
  })

  it('keeps apart levels, messages and errors or causes, and passes debug and info through', () => {
    const { logger, lines } = recording()
    const folding = foldRepeats(logger, 100)
    for (let i = 0; i < 2; i++) {
      folding.warn('reading updates failed', { error: 'Error: a' })
      folding.warn('reading updates failed', { error: 'Error: b' })
      folding.error('reading updates failed', { error: 'Error: a' })
      folding.warn('presence renewal failed', { error: 'Error: a' })
      folding.warn('the document store is unavailable', { cause: 'Error: c' })
      folding.warn('the document store is unavailable', { cause: 'Error: d' })
      folding.info('y-sse listening')
      folding.debug('detail')
    }
    expect(lines.map(l => `${l.level} ${l.message} ${String(l.fields?.error ?? l.fields?.cause)}`)).toEqual([
      'warn reading updates failed Error: a',
      'warn reading updates failed Error: b',
      'error reading updates failed Error: a',
      'warn presence renewal failed Error: a',
      'warn the document store is unavailable Error: c',
      'warn the document store is unavailable Error: d',
      'info y-sse listening undefined',
      'debug detail undefined',
      'info y-sse listening undefined',
      'debug detail undefined'
    ])
    vi.advanceTimersByTime(100)
    expect(lines.slice(10).map(l => `${l.level} ${l.message} ${String(l.fields?.repeated)}`)).toEqual([
      'warn reading updates failed (repeated) 1',
      'warn reading updates failed (repeated) 1',
      'error reading updates failed (repeated) 1',
      'warn presence renewal failed (repeated) 1',
      'warn the document store is unavailable (repeated) 1',
      'warn the document store is unavailable (repeated) 1'
    ])
  })

  it('writes what it holds on flush, once, and counts anew after it', () => {
    const { logger, lines } = recording()
    const folding = foldRepeats(logger, 60_000)
    for (let i = 0; i < 3; i++) folding.error('request failed', { error: 'Error: x' })
    folding.warn('single', { error: 'Error: y' })
    folding.flush()
    expect(lines.map(l => [l.message, l.fields?.repeated])).toEqual([['request failed', undefined], ['single', undefined], ['request failed (repeated)', 2]])
    folding.flush()
    vi.advanceTimersByTime(60_000)
    expect(lines).toHaveLength(3)
    folding.error('request failed', { error: 'Error: x' })
    expect(lines).toHaveLength(4)
  })

  it('counts at most 1,000 kinds at a time: lines of further kinds go out as they come', () => {
    const { logger, lines } = recording()
    const folding = foldRepeats(logger, 100)
    for (let i = 0; i < 1000; i++) folding.warn('failed', { error: `Error: ${i}` })
    for (let i = 0; i < 3; i++) folding.warn('failed', { error: 'Error: one more' })
    folding.warn('failed', { error: 'Error: 0' })
    expect(lines).toHaveLength(1003)
    vi.advanceTimersByTime(100)
    expect(lines.slice(1003).map(l => [l.fields?.error, l.fields?.repeated])).toEqual([['Error: 0', 1]])
  })
})
