/** The provider fits `@lexical/yjs`'s `Provider` type as it is: no cast, no adapter. */
import * as Y from 'yjs'
import type { Provider, UserState } from '@lexical/yjs'
import { Awareness } from 'y-protocols/awareness'
import { describe, expect, expectTypeOf, it } from 'vitest'
import { SseProvider } from '../../client/index.js'

describe('Lexical Provider type', () => {
  it('is satisfied by SseProvider, with or without a state type', () => {
    expectTypeOf<SseProvider>().toExtend<Provider>()
    expectTypeOf<SseProvider<UserState>>().toExtend<Provider>()
    // Still a y-protocols Awareness for every other binding.
    expectTypeOf<SseProvider['awareness']>().toExtend<Awareness>()

    const doc = new Y.Doc()
    const provider: Provider = new SseProvider('http://127.0.0.1:1', 'lexical', doc, { connect: false })
    expect(provider.awareness.getLocalState()).toEqual({})
    ;(provider as SseProvider).destroy()
    doc.destroy()
  })
})
