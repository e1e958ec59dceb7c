/**
 * `y-sse/bot`: documents for Node scripts, bots and automations, plain (`openDocument`) or as
 * Lexical rich text shared with the browser editor (`openLexicalDocument`).
 */
export { openDocument, DocumentError, type OpenDocument, type OpenDocumentOptions } from './open-document.js'
export { openLexicalDocument, type LexicalDocument, type LexicalDocumentOptions } from './lexical-document.js'
export { documentNodes } from '../lexical-nodes.js'
