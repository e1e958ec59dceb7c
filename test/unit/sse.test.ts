import { createServer, get, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, expect, it } from 'vitest'
import { startEventStream, type SseWriter } from '../../server/sse.js'
import { onCleanup } from '../helpers/server.js'

/** The whole body of one event stream that `script` writes on a real HTTP server. */
const bodyOf = async (script: (writer: SseWriter) => void): Promise<string> => {
  const server = createServer((req, res) => script(startEventStream(req, res, null)))
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  onCleanup(() => new Promise<void>(resolve => { server.closeAllConnections(); server.close(() => resolve()) }))
  const { port } = server.address() as AddressInfo
  const res = await new Promise<IncomingMessage>(resolve => get({ host: '127.0.0.1', port, path: '/' }, resolve))
  let body = ''
  for await (const chunk of res) body += String(chunk)
  return body
}

describe('an event held for the next write', () => {
  it('goes out before the next event, or with the end when none comes', async () => {
    expect(await bodyOf(writer => {
      writer.sendWithNext({ retry: 1500 })
      writer.comment('beat')
      writer.send({ event: 'sync', id: '1', data: '{}' })
      writer.end()
    })).toBe('retry: 1500\n\n:beat\n\nevent: sync\nid: 1\ndata: {}\n\n')
    // A stream that fails before its first event still tells the client when to come back.
    expect(await bodyOf(writer => {
      writer.sendWithNext({ retry: 1500 })
      writer.end()
    })).toBe('retry: 1500\n\n')
  })
})
