/**
 * Browser tests: Debian's Chromium driven by playwright-core, against a test server that serves
 * the built editor (dist/app, built by the global set-up).
 */
import { mkdir } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll } from 'vitest'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import { serveStatic } from '../../server/static.js'
import { appOutDir } from '../../scripts/build-app.js'
import type { User } from '../../client/app/user.js'
import { onCleanup, startServer, type StartOptions, type TestServer } from './server.js'
import { waitFor } from './wait.js'

const CHROMIUM = '/usr/bin/chromium'
// Without the background-networking flags Chromium's own connections are refused on a closed network, and it says so.
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']

/** Where tests put their screenshots (gitignored with the rest of .test-results). */
export const screenshotDir = fileURLToPath(new URL('../../.test-results/screenshots/', import.meta.url))

/** One Chromium for the test file, launched before its tests and closed after them. */
export const useBrowser = (): (() => Browser) => {
  let browser: Browser | undefined
  beforeAll(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS })
    await mkdir(screenshotDir, { recursive: true })
  })
  afterAll(async () => browser?.close())
  return () => {
    if (browser === undefined) throw new Error('the browser is not launched yet')
    return browser
  }
}

/** A test server (port 0, test Redis unless `memory`) that also serves the built editor. */
export const startEditorServer = (options: StartOptions = {}): Promise<TestServer> =>
  startServer({ ...options, after: serveStatic(appOutDir) })

export interface EditorPage {
  page: Page
  context: BrowserContext
  /** Console errors and warnings, and uncaught exceptions, in order. */
  problems: string[]
  /** The document's text as shown, one line per top-level block. */
  text(): Promise<string>
  /** Clicks at the end of the document and types. */
  typeAtEnd(text: string): Promise<void>
  /** Waits until the page is connected and the server has every local change. */
  saved(): Promise<void>
  /** The status line, e.g. "Offline" and "3 changes not yet saved". */
  status(): Promise<{ connection: string; saved: string }>
}

export interface OpenOptions {
  /** The user the page remembers (as if chosen earlier); a random one otherwise. */
  user?: User
  viewport?: { width: number; height: number }
  /** Open the page in this context (tabs sharing storage, locks and channels) instead of a fresh one. */
  context?: BrowserContext
  /** Share one event stream with the context's other tabs (the editor's `?tabs`). */
  tabs?: boolean
}

/**
 * Lets what the last key did reach Lexical and React: a frame, then a task. Lexical learns of a
 * caret move from 'selectionchange', which the browser fires later; a key pressed before then
 * acts where the caret was.
 */
export const settle = (page: Page): Promise<unknown> => page.evaluate(() => new Promise(resolve => requestAnimationFrame(() => setTimeout(resolve))))

/** Opens the editor on `docId` in a fresh browser context (its own storage) unless given one, closed after the test. */
export const openEditor = async (browser: Browser, serverUrl: string, docId: string, options: OpenOptions = {}): Promise<EditorPage> => {
  let context = options.context
  if (context === undefined) {
    const own = await browser.newContext({ viewport: options.viewport ?? { width: 1100, height: 720 } })
    onCleanup(() => own.close())
    context = own
  }
  if (options.user !== undefined) {
    // Init scripts run on every load: only the first may set it, or a reload would undo a rename.
    await context.addInitScript(user => {
      if (localStorage.getItem('y-sse:user') === null) localStorage.setItem('y-sse:user', JSON.stringify(user))
    }, options.user)
  }
  const page = await context.newPage()
  // Within the test's own timeout, so a missing element fails with its selector rather than a test timeout.
  page.setDefaultTimeout(10_000)
  const problems: string[] = []
  page.on('console', message => {
    if (message.type() === 'error' || message.type() === 'warning') problems.push(`${message.type()}: ${message.text()}`)
  })
  page.on('pageerror', error => problems.push(`uncaught: ${error.message}`))
  const input = page.locator('.editor-input')
  const editor: EditorPage = {
    page,
    context,
    problems,
    // Blocks' text, one a line (innerText would add blank lines between paragraphs, and one for an empty one).
    text: async () => (await input.locator(':scope > *').allTextContents()).join('\n'),
    async typeAtEnd (text) {
      // Under load, a remote update can re-render the paragraph between the click and the keys:
      // let Lexical take the selection before typing, or the keys land nowhere. A person types in
      // the tab in front (and a hidden tab runs no animation frames to settle on).
      await page.bringToFront()
      await input.click()
      await settle(page)
      await page.keyboard.press('Control+End')
      await settle(page)
      await page.keyboard.type(text)
    },
    async saved () {
      await settle(page)
      await waitFor(async () => (await page.locator('.sync-status[data-status="connected"] .saved[data-unsynced="0"]').count()) === 1, {
        message: () => `page not saved; problems: ${problems.join(' | ')}`
      })
    },
    async status () {
      return { connection: await page.locator('.connection').innerText(), saved: await page.locator('.saved').innerText() }
    }
  }
  await page.goto(`${serverUrl}/?doc=${encodeURIComponent(docId)}${options.tabs === true ? '&tabs' : ''}`)
  await editor.saved()
  // The seed (or the document's content) is in the editor: it can take input now.
  await waitFor(async () => (await input.locator(':scope > *').count()) > 0, { message: 'the editor never showed the document' })
  return editor
}

/** Waits until every page shows `expected`. */
export const waitForText = async (pages: EditorPage[], expected: string): Promise<void> => {
  let seen: string[] = []
  await waitFor(async () => {
    seen = await Promise.all(pages.map(p => p.text()))
    return seen.every(text => text === expected)
  }, { message: () => `expected ${JSON.stringify(expected)}, pages show ${JSON.stringify(seen)}` })
}
