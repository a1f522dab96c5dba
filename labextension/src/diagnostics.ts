/**
 * Place the kernel's `diagnostics` (positions in the magic's body) in a cell editor.
 */

import { Diagnostic, setDiagnostics } from '@codemirror/lint';
import { Text } from '@codemirror/state';
import { EditorView } from '@codemirror/view';

import { findPolyaxonMagic } from './magic';
import { ICellError } from './protocol';

function* docLines(doc: Text): Generator<string> {
  for (let n = 1; n <= doc.lines; n++) {
    yield doc.line(n).text;
  }
}

/**
 * Editor ranges for body positions. Line 1 is the line after the `%%polyaxon_…` line; with no
 * magic line (the user edited it away) positions are taken from the first line. A column of 0
 * (unknown) marks the line from its first non-blank character; a known column marks the word
 * there, so the underline sits under the offending key or value.
 */
export function toDiagnostics(doc: Text, errors: ICellError[]): Diagnostic[] {
  const magic = findPolyaxonMagic(docLines(doc));
  const offset = magic ? magic.index + 1 : 0;
  return errors.map(err => {
    const n = Math.min(Math.max(err.line, 1) + offset, doc.lines);
    const line = doc.line(n);
    const text = line.text;
    let from: number;
    let to: number;
    if (err.column > 0 && err.column <= text.length) {
      from = line.from + err.column - 1;
      const rest = text.slice(err.column - 1);
      const word = /^\S+/.exec(rest);
      to = from + (word ? word[0].length : 1);
    } else {
      const indent = text.length - text.trimStart().length;
      from = line.from + (indent < text.length ? indent : 0);
      to = line.to;
    }
    return {
      from,
      to: Math.max(to, from),
      severity: err.severity,
      message: err.message,
      source: 'polynb'
    };
  });
}

/** Replace the polynb marks of an editor (an empty list clears them). */
export function showDiagnostics(view: EditorView, errors: ICellError[]): void {
  view.dispatch(
    setDiagnostics(view.state, toDiagnostics(view.state.doc, errors))
  );
}
