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
 * Lines of a `diagnostics` message count from the magic line (line 1 = `%%polyaxon_…`), as in the
 * error text the kernel prints (`<cell polyaxon_dag x>:6:3`) and Jupyter's line numbers.
 * docs/comm-protocol.md says body lines (line 1 = the line after the magic); the kernel sends
 * cell lines (polynb/notebook/cellspec.py BODY_OFFSET). Follow the kernel; if the protocol wins
 * instead, this becomes 1.
 */
export const FIRST_LINE_OFFSET = 0;

/**
 * Editor ranges for the kernel's positions. IPython drops blank lines before the `%%` line, so
 * positions count from the magic line wherever it is; with no magic line (the user edited it
 * away) they count from the first line. A column of 0 (unknown) marks the line from its first
 * non-blank character; a known column marks the word there, so the underline sits under the
 * offending key or value.
 */
export function toDiagnostics(doc: Text, errors: ICellError[]): Diagnostic[] {
  const magic = findPolyaxonMagic(docLines(doc));
  const offset = (magic ? magic.index : 0) + FIRST_LINE_OFFSET;
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
