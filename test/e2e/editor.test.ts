/** The editor in a real browser: typing together, bootstrapping, reloading, undo, layout. */
import { randomUUID } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { routes } from '../../shared/protocol.js'
import { openEditor, screenshotDir, settle, startEditorServer, useBrowser, waitForText } from '../helpers/browser.js'
import { waitFor } from '../helpers/wait.js'

const browser = useBrowser()
const newDoc = (): string => `e2e-${randomUUID().slice(0, 8)}`

describe('the editor', () => {
  it('shows what one page types in the other, and concurrent typing converges', async () => {
    const server = await startEditorServer()
    const docId = newDoc()
    const ada = await openEditor(browser(), server.url, docId, { user: { name: 'Ada', color: '#6e56cf' } })
    const bob = await openEditor(browser(), server.url, docId, { user: { name: 'Bob', color: '#30a46c' } })

    await ada.typeAtEnd('Hello from Ada.')
    await waitForText([ada, bob], 'Hello from Ada.')

    // Both at once, each on a line of their own so the expected text does not depend on timing.
    await ada.page.keyboard.press('Enter')
    await waitForText([ada, bob], 'Hello from Ada.\n')
    await bob.typeAtEnd('Bob types here')
    // Each caret move waits for the other's edit to arrive, so no remote change moves a caret mid-way.
    await waitForText([ada, bob], 'Hello from Ada.\nBob types here')
    await ada.page.keyboard.press('Control+Home')
    await settle(ada.page)
    await ada.page.keyboard.press('Enter')
    await waitForText([ada, bob], '\nHello from Ada.\nBob types here')
    await ada.page.keyboard.press('ArrowUp')
    await settle(ada.page)
    await Promise.all([ada.page.keyboard.type('Ada types here at the same time'), bob.page.keyboard.type(', and more, quickly.')])
    await Promise.all([ada.saved(), bob.saved()])
    await waitForText([ada, bob], 'Ada types here at the same time\nHello from Ada.\nBob types here, and more, quickly.')

    await ada.page.screenshot({ path: `${screenshotDir}two-pages-ada.png` })
    await bob.page.screenshot({ path: `${screenshotDir}two-pages-bob.png` })
    expect([...ada.problems, ...bob.problems]).toEqual([])
  })

  it('bootstraps a new document exactly once when two people open it at the same moment', async () => {
    const server = await startEditorServer()
    const docId = newDoc()
    const [ada, bob] = await Promise.all([openEditor(browser(), server.url, docId), openEditor(browser(), server.url, docId)])
    for (const page of [ada, bob]) expect(await page.page.locator('.editor-input > *').count()).toBe(1)

    await Promise.all([ada.typeAtEnd('one'), bob.typeAtEnd('two')])
    await Promise.all([ada.saved(), bob.saved()])
    // Typed at the same spot at the same time, the letters may interleave; what must hold is that both
    // pages agree, on every letter of both words, each once.
    const letters = (text: string): string => [...text].sort().join('')
    let texts: string[] = []
    let held = ''
    await waitFor(async () => {
      texts = await Promise.all([ada.text(), bob.text()])
      if (texts[0] === texts[1] && letters(texts[0] ?? '') === letters('onetwo')) return true
      // What the server holds tells a page that missed an update from one that did not show it.
      const doc = new Y.Doc()
      Y.applyUpdate(doc, new Uint8Array(await (await fetch(server.url + routes.document(docId))).arrayBuffer()))
      held = doc.get('root', Y.XmlText).toString()
      return false
    }, { message: () => `the pages did not converge on both words: ${JSON.stringify(texts)}; the server holds ${held}` })
    // One paragraph: both seeds were the same one.
    for (const page of [ada, bob]) expect(await page.page.locator('.editor-input > *').count()).toBe(1)
    const stored = new Y.Doc()
    Y.applyUpdate(stored, new Uint8Array(await (await fetch(server.url + routes.document(docId))).arrayBuffer()))
    expect(stored.get('root', Y.XmlText).length).toBe(1)
    expect([...ada.problems, ...bob.problems]).toEqual([])
  })

  for (const memory of [false, true]) {
    it(`keeps the content over a reload (${memory ? 'in-memory store' : 'Redis'})`, async () => {
      const server = await startEditorServer({ memory })
      const docId = newDoc()
      const page = await openEditor(browser(), server.url, docId)
      await page.typeAtEnd('Title')
      await page.page.locator('.block-type').selectOption('h1')
      await page.page.locator('.editor-input').click()
      await page.page.keyboard.press('Control+End')
      await page.page.keyboard.press('Enter')
      await page.page.keyboard.type('Some ')
      await page.page.keyboard.press('Control+b')
      await page.page.keyboard.type('bold')
      await page.saved()
      await page.page.reload()
      await page.saved()
      await waitForText([page], 'Title\nSome bold')
      expect(await page.page.locator('.editor-input h1').innerText()).toBe('Title')
      expect(await page.page.locator('.editor-input .ed-bold').innerText()).toBe('bold')
      expect(page.problems).toEqual([])
    })
  }

  it('undoes only my own changes', async () => {
    const server = await startEditorServer()
    const docId = newDoc()
    const ada = await openEditor(browser(), server.url, docId)
    const bob = await openEditor(browser(), server.url, docId)
    await bob.typeAtEnd("Bob's line")
    await waitForText([ada, bob], "Bob's line")
    await ada.typeAtEnd('\nAda was here')
    await ada.saved()
    await waitForText([bob], "Bob's line\nAda was here")
    // Bob edits after Ada: Ada's undo must still take back only what Ada did.
    await bob.page.keyboard.press('Control+Home')
    await bob.page.keyboard.press('End')
    await bob.page.keyboard.type(', edited')
    await waitForText([ada, bob], "Bob's line, edited\nAda was here")
    await ada.page.locator('button[aria-label="Undo"]').click()
    await waitForText([ada, bob], "Bob's line, edited")
    await ada.page.locator('button[aria-label="Redo"]').click()
    await waitForText([ada, bob], "Bob's line, edited\nAda was here")
    expect([...ada.problems, ...bob.problems]).toEqual([])
  })

  it('fits a phone screen', async () => {
    const server = await startEditorServer()
    const page = await openEditor(browser(), server.url, newDoc(), { viewport: { width: 390, height: 780 } })
    await page.typeAtEnd('Written on a phone.')
    await page.saved()
    const overflow = await page.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
    expect(overflow).toBeLessThanOrEqual(0)
    await page.page.screenshot({ path: `${screenshotDir}phone.png` })
    expect(page.problems).toEqual([])
  })
})
