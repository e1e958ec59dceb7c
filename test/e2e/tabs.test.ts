/** Tabs of one origin sharing one event stream (`multiplex: 'tabs'`, the editor's `?tabs`). */
import { randomUUID } from 'node:crypto'
import type { Middleware } from 'koa'
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { routes } from '../../shared/protocol.js'
import { openEditor, startEditorServer, useBrowser, waitForText, type EditorPage } from '../helpers/browser.js'
import { onCleanup } from '../helpers/server.js'
import { waitFor } from '../helpers/wait.js'

const browser = useBrowser()
const newDoc = (): string => `tabs-${randomUUID().slice(0, 8)}`

/**
 * Counts the streams the server is asked for. When the leader reopens its stream for a new set of
 * documents, it aborts the old one before asking for the new one, but the server may see the new
 * request some milliseconds before the old connection's end: `overlaps` counts what goes beyond
 * that, a stream opened while two were open, or one that ends while an older one stays open.
 */
const streamCounter = (): { middleware: Middleware; opened: () => number; open: () => number; overlaps: () => string[]; ownStreams: () => number; last: () => { docs: number; lastEventId: boolean } } => {
  let opened = 0
  let ownStreams = 0
  let last = { docs: 0, lastEventId: false }
  const open: number[] = []
  const overlaps: string[] = []
  const middleware: Middleware = async (ctx, next) => {
    if (ctx.method === 'GET' && ctx.path === routes.multiplexedEvents()) {
      const n = ++opened
      if (open.length >= 2) overlaps.push(`stream ${n} opened while ${open.join(', ')} were open`)
      open.push(n)
      last = { docs: String(ctx.query.docs).split(',').length, lastEventId: ctx.query.lastEventId !== undefined }
      ctx.res.once('close', () => {
        if (open[0] !== n) overlaps.push(`stream ${n} ended while ${open[0] ?? '?'} stayed open`)
        open.splice(open.indexOf(n), 1)
      })
    } else if (ctx.method === 'GET' && /^\/docs\/[^/]+\/events$/.test(ctx.path)) {
      ownStreams++
    }
    await next()
  }
  return { middleware, opened: () => opened, open: () => open.length, overlaps: () => overlaps, ownStreams: () => ownStreams, last: () => last }
}

/** The text of the server's copy of a document, as the editor stores it. */
const storedText = async (serverUrl: string, docId: string): Promise<string> => {
  const doc = new Y.Doc()
  Y.applyUpdate(doc, new Uint8Array(await (await fetch(serverUrl + routes.document(docId))).arrayBuffer()))
  return doc.get('root', Y.XmlText).toString()
}

describe('tabs of one origin', () => {
  it('share one stream, and closing the leader tab loses no update', async () => {
    const streams = streamCounter()
    const server = await startEditorServer({ before: streams.middleware })
    const context = await browser().newContext({ viewport: { width: 1100, height: 720 } })
    onCleanup(() => context.close())
    const docs = Array.from({ length: 10 }, newDoc)
    const pages: EditorPage[] = []
    // One after the other: the first is the leader (it asked for the lock first).
    for (const docId of docs) pages.push(await openEditor(browser(), server.url, docId, { context, tabs: true }))
    await waitFor(() => streams.open() === 1, { message: () => `${streams.open()} streams open` })

    for (const [i, page] of pages.entries()) await page.typeAtEnd(`tab ${i}.`)
    await Promise.all(pages.map(page => page.saved()))
    for (const [i, docId] of docs.entries()) expect(await storedText(server.url, docId)).toContain(`tab ${i}.`)
    expect(streams.overlaps()).toEqual([])

    // Someone outside the tabs edits the second document while the stream changes hands.
    const outsider = await openEditor(browser(), server.url, docs[1] ?? '')
    await waitForText([outsider, pages[1] as EditorPage], 'tab 1.')
    const openedBefore = streams.opened()
    const [leader, ...rest] = pages as [EditorPage, ...EditorPage[]]
    await leader.page.close()
    await Promise.all([
      // At the start, so its letters cannot interleave with the tab's at the end.
      (async () => {
        await outsider.page.locator('.editor-input').click()
        await outsider.page.keyboard.press('Control+Home')
        await outsider.page.keyboard.type('Outside. ')
      })(),
      ...rest.map(async (page, i) => page.typeAtEnd(` After ${i + 1}.`))
    ])
    await Promise.all([outsider.saved(), ...rest.map(page => page.saved())])
    // Another tab took the stream over, and it is still the only one.
    expect(streams.opened()).toBeGreaterThan(openedBefore)
    await waitFor(() => streams.open() === 1, { message: () => `${streams.open()} streams open` })
    expect(streams.overlaps()).toEqual([])
    expect(streams.ownStreams()).toBe(1) // the outsider's
    // Without the closed tab's document, resumed from the last event ID the new leader saw.
    expect(streams.last()).toEqual({ docs: 9, lastEventId: true })

    for (const i of rest.keys()) {
      const docId = docs[i + 1] ?? ''
      await waitFor(async () => (await storedText(server.url, docId)).includes(`After ${i + 1}.`), { message: `tab ${i + 1}'s edit never reached the server` })
    }
    // Every tab shows what the server has; the second one also the outsider's edit.
    await waitFor(async () => {
      const [a, b] = await Promise.all([outsider.text(), rest[0]?.text()])
      return a === b && a.includes('Outside.') && a.includes('After 1.')
    }, { message: 'the outsider and the tab did not converge' })
    for (const [i, page] of rest.entries()) expect(await page.text()).toContain(`tab ${i + 1}.`)
    expect([...pages.flatMap(page => page.problems), ...outsider.problems]).toEqual([])
  })
})
