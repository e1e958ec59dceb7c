import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import * as Y from 'yjs'
import { Awareness, encodeAwarenessUpdate } from 'y-protocols/awareness'
import { createParser, type EventSourceMessage } from 'eventsource-parser'
import { fromBase64, fromBase64Url, toBase64, toBase64Url } from '../../shared/codec.js'
import { decodeAwarenessEntries, encodeAwarenessEntries, removalOf } from '../../shared/awareness.js'
import { isValidDocId, isValidEventId } from '../../shared/protocol.js'
import { compareStreamIds, formatEventId, newEpoch, parseEventId } from '../../server/store/history.js'
import { formatEvent } from '../../server/sse.js'

describe('codecs', () => {
  it('round-trip base64 and base64url with or without padding', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 100 }), bytes => {
      expect(fromBase64(toBase64(bytes))).toEqual(bytes)
      const url = toBase64Url(bytes)
      expect(url).toMatch(/^[A-Za-z0-9_-]*$/)
      expect(fromBase64Url(url)).toEqual(bytes)
      expect(fromBase64Url(url + '='.repeat((4 - (url.length % 4)) % 4))).toEqual(bytes)
    }), { seed: 1, numRuns: 300 })
    expect(() => fromBase64Url('a+b')).toThrow(TypeError)
    expect(() => fromBase64('a_b')).toThrow(TypeError)
  })
})

describe('identifiers', () => {
  it('accept exactly the documented syntax', () => {
    expect(isValidDocId('a')).toBe(true)
    expect(isValidDocId('A-z_0.9~')).toBe(true)
    expect(isValidDocId('x'.repeat(128))).toBe(true)
    expect(isValidDocId('x'.repeat(129))).toBe(false)
    expect(isValidDocId('')).toBe(false)
    expect(isValidDocId('a/b')).toBe(false)
    expect(isValidEventId('abc.123-4')).toBe(true)
    expect(isValidEventId('a:b')).toBe(false)
  })

  it('format, parse and order event IDs', () => {
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: 2n ** 48n }), fc.nat(), fc.bigInt({ min: 0n, max: 2n ** 48n }), fc.nat(), (ms1, s1, ms2, s2) => {
      const a = `${ms1}-${s1}`
      const b = `${ms2}-${s2}`
      const id = formatEventId('epoch1', a)
      expect(isValidEventId(id)).toBe(true)
      expect(parseEventId(id)).toEqual(a === '0-0' ? { epoch: null, id: '0-0' } : { epoch: 'epoch1', id: a })
      const expected = ms1 === ms2 ? Math.sign(s1 - s2) : ms1 < ms2 ? -1 : 1
      expect(compareStreamIds(a, b)).toBe(expected)
    }), { seed: 2, numRuns: 300 })
    expect(parseEventId('nodot')).toBeNull()
    expect(parseEventId('e.1-x')).toBeNull()
    expect(parseEventId(`e.${2n ** 64n}-0`)).toBeNull()
  })

  it('include epochs that are distinct, also across refills of their random bytes', () => {
    const epochs = Array.from({ length: 1000 }, newEpoch)
    for (const epoch of epochs) expect(epoch).toMatch(/^[a-z0-9]{12}$/)
    expect(new Set(epochs).size).toBe(epochs.length)
  })
})

describe('awareness codec', () => {
  it('reads what y-protocols writes and writes what it reads', () => {
    const awareness = new Awareness(new Y.Doc())
    awareness.setLocalState({ user: { name: 'ä', color: '#fff' } })
    const update = encodeAwarenessUpdate(awareness, [awareness.clientID])
    const entries = decodeAwarenessEntries(update)
    expect(entries).toEqual([{ clientID: awareness.clientID, clock: 1, state: JSON.stringify(awareness.getLocalState()) }])
    expect(encodeAwarenessEntries(entries)).toEqual(update)
    const removal = removalOf(entries[0] as (typeof entries)[number])
    expect(removal).toEqual({ clientID: awareness.clientID, clock: 2, state: 'null' })
  })

  it('refuses truncated, oversized-count and non-JSON updates', () => {
    const good = encodeAwarenessEntries([{ clientID: 1, clock: 1, state: '{}' }])
    expect(() => decodeAwarenessEntries(good.slice(0, -1))).toThrow()
    expect(() => decodeAwarenessEntries(new Uint8Array([200, 1]))).toThrow(/count/)
    expect(() => decodeAwarenessEntries(encodeAwarenessEntries([{ clientID: 1, clock: 1, state: '{' }]))).toThrow()
    expect(() => decodeAwarenessEntries(new Uint8Array([...good, 0]))).toThrow(/trailing/)
  })
})

describe('SSE framing', () => {
  it('round-trips through eventsource-parser, multi-line data included', () => {
    fc.assert(fc.property(fc.string(), fc.stringMatching(/^[A-Za-z0-9._-]{1,20}$/), fc.stringMatching(/^[a-z]{1,10}$/), (data, id, event) => {
      const parsed: EventSourceMessage[] = []
      const parser = createParser({ onEvent: e => parsed.push(e) })
      // eventsource-parser, like browsers, normalises CRLF and CR in data to LF.
      parser.feed(formatEvent({ event, id, data }))
      expect(parsed).toEqual([{ event, id, data: data.replace(/\r\n|\r/g, '\n') }])
    }), { seed: 4, numRuns: 300 })
  })

  it('refuses line breaks in event names and IDs (field injection)', () => {
    expect(() => formatEvent({ event: 'a\ndata: x' })).toThrow()
    expect(() => formatEvent({ id: '1\r2' })).toThrow()
    expect(formatEvent({ retry: 1500 })).toBe('retry: 1500\n\n')
  })
})
