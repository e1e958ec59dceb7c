/** Presence in a real browser: remote carets with names, the list of who is here, renaming. */
import { randomUUID } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { openEditor, startEditorServer, useBrowser, type EditorPage } from '../helpers/browser.js'
import { waitFor } from '../helpers/wait.js'

const browser = useBrowser()
const newDoc = (): string => `e2e-${randomUUID().slice(0, 8)}`

/** Remote carets are drawn by CollaborationPlugin in the editor's container, next to the content. */
const caretsNamed = ({ page }: EditorPage, name: string) => page.locator('.editor > div:not(.editor-input) span', { hasText: name })
const listed = ({ page }: EditorPage, name: string) => page.locator('.peers .peer-name', { hasText: name })

describe('presence', () => {
  it("shows the other user's caret and name, and removes them when that page closes", async () => {
    const server = await startEditorServer()
    const docId = newDoc()
    const ada = await openEditor(browser(), server.url, docId, { user: { name: 'Ada', color: '#6e56cf' } })
    const bob = await openEditor(browser(), server.url, docId, { user: { name: 'Bob', color: '#30a46c' } })

    await waitFor(async () => (await listed(bob, 'Ada').count()) === 1 && (await listed(ada, 'Bob').count()) === 1, { message: 'the users never listed each other' })
    expect(await bob.page.locator('.peer-count').innerText()).toBe('1 other here')

    await ada.typeAtEnd('Ada is typing')
    await waitFor(async () => (await caretsNamed(bob, 'Ada').count()) > 0, { message: "Ada's caret never showed on Bob's page" })

    await ada.page.close()
    await waitFor(async () => (await caretsNamed(bob, 'Ada').count()) === 0 && (await listed(bob, 'Ada').count()) === 0, {
      message: "Ada's caret or name stayed after her page closed"
    })
    expect(await bob.page.locator('.peer-count').innerText()).toBe('Only you')
    expect([...ada.problems, ...bob.problems]).toEqual([])
  })

  it('lets me change my name and colour, tells the others, and remembers them', async () => {
    const server = await startEditorServer()
    const docId = newDoc()
    const ada = await openEditor(browser(), server.url, docId, { user: { name: 'Ada', color: '#6e56cf' } })
    const bob = await openEditor(browser(), server.url, docId, { user: { name: 'Bob', color: '#30a46c' } })
    await bob.typeAtEnd('Hi')

    await bob.page.locator('.peer-me .avatar').click()
    await bob.page.locator('.user-form input[aria-label="Your name"]').fill('Robert')
    await bob.page.locator('.user-form input[value="#e5484d"]').check()
    await bob.page.locator('.user-form button[type="submit"]').click()

    await waitFor(async () => (await listed(ada, 'Robert').count()) === 1 && (await listed(ada, 'Bob').count()) === 0, { message: 'Ada never saw the new name' })
    expect(await ada.page.locator('.peer:not(.peer-me)').getAttribute('style')).toContain('#e5484d')
    // Still connected: renaming must not take the provider down.
    await bob.typeAtEnd(' there')
    await bob.saved()

    await bob.page.reload()
    await bob.saved()
    expect(await bob.page.locator('.peer-me .peer-name').innerText()).toBe('Robert (you)')
    expect([...ada.problems, ...bob.problems]).toEqual([])
  })
})
