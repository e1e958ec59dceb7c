/** Losing the server in a real browser: edits made meanwhile are kept, sent once, never duplicated. */
import { randomUUID } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { openEditor, startEditorServer, useBrowser, waitForText, type EditorPage } from '../helpers/browser.js'
import { waitFor } from '../helpers/wait.js'

const browser = useBrowser()

/** While the server is away the browser reports the failed requests; nothing else may appear. */
const unexpected = (page: EditorPage): string[] =>
  page.problems.filter(problem => !/Failed to load resource|net::ERR_/.test(problem))

describe('losing the server', () => {
  it('keeps typing offline through a server restart and syncs on reconnect: nothing lost, nothing doubled', async () => {
    const server = await startEditorServer()
    const docId = `e2e-${randomUUID().slice(0, 8)}`
    const ada = await openEditor(browser(), server.url, docId)
    const bob = await openEditor(browser(), server.url, docId)
    await ada.typeAtEnd('Ada:\nBob:')
    await waitForText([ada, bob], 'Ada:\nBob:')
    await ada.saved()

    // Ada loses the server: her requests fail, and the restart ends her stream.
    await ada.context.route('**/docs/**', route => route.abort('internetdisconnected'))
    await server.restart()
    await waitFor(async () => (await ada.status()).connection !== 'Connected', { message: 'Ada still looks connected' })

    await ada.page.locator('.editor-input').click()
    await ada.page.keyboard.press('Control+Home')
    await ada.page.keyboard.press('End')
    await ada.page.keyboard.type(' typed while offline')
    await bob.saved()
    await bob.typeAtEnd(' typed meanwhile')
    await bob.saved()
    await waitFor(async () => /not yet saved/.test((await ada.status()).saved), { message: 'Ada is not told her changes are unsaved' })
    expect(await ada.text()).toBe('Ada: typed while offline\nBob:')

    await ada.context.unroute('**/docs/**')
    // The provider retries with backoff (up to 10 s between attempts).
    await waitFor(async () => (await ada.status()).saved === 'All changes saved', { timeout: 20_000, message: 'Ada never caught up' })
    await waitForText([ada, bob], 'Ada: typed while offline\nBob: typed meanwhile')
    expect(await ada.status()).toEqual({ connection: 'Connected', saved: 'All changes saved' })
    expect([...unexpected(ada), ...unexpected(bob)]).toEqual([])
  })
})
