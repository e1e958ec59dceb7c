/** Class names Lexical puts on the nodes it renders; styled in styles.css. */
import type { EditorThemeClasses } from 'lexical'

export const theme: EditorThemeClasses = {
  paragraph: 'ed-paragraph',
  heading: { h1: 'ed-h1', h2: 'ed-h2', h3: 'ed-h3' },
  quote: 'ed-quote',
  list: {
    ul: 'ed-ul',
    ol: 'ed-ol',
    listitem: 'ed-li',
    nested: { listitem: 'ed-li-nested' }
  },
  link: 'ed-link',
  code: 'ed-code',
  text: {
    bold: 'ed-bold',
    italic: 'ed-italic',
    code: 'ed-inline-code',
    strikethrough: 'ed-strike',
    underline: 'ed-underline'
  }
}
