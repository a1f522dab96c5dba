import { EditorState, Text } from '@codemirror/state';
import { EditorView } from '@codemirror/view';
import { forEachDiagnostic } from '@codemirror/lint';

import { showDiagnostics, toDiagnostics } from '../diagnostics';
import { ICellError } from '../protocol';

const cell = [
  '%%polyaxon_dag experiment',
  'kind: dag',
  'operations:',
  '  - name: experiment',
  '    hubRef: experimnt'
];

const err = (line: number, column: number, message = 'm'): ICellError => ({
  line,
  column,
  message,
  severity: 'error'
});

function text(ranges: { from: number; to: number }[], doc: Text): string[] {
  return ranges.map(r => doc.sliceString(r.from, r.to));
}

describe('toDiagnostics', () => {
  const doc = Text.of(cell);

  it('counts lines from the magic line and marks the word at the column', () => {
    const d = toDiagnostics(doc, [err(5, 13, 'no component `experimnt`')]);
    expect(text(d, doc)).toEqual(['experimnt']);
    expect(d[0]).toMatchObject({
      severity: 'error',
      message: 'no component `experimnt`',
      source: 'polynb'
    });
  });

  it('marks the line without its indent when the column is unknown', () => {
    expect(text(toDiagnostics(doc, [err(4, 0)]), doc)).toEqual([
      '- name: experiment'
    ]);
    expect(text(toDiagnostics(doc, [err(2, 0)]), doc)).toEqual(['kind: dag']);
  });

  it('clamps lines past the end and columns past the line', () => {
    expect(text(toDiagnostics(doc, [err(99, 0)]), doc)).toEqual([
      'hubRef: experimnt'
    ]);
    expect(text(toDiagnostics(doc, [err(2, 80)]), doc)).toEqual(['kind: dag']);
    expect(text(toDiagnostics(doc, [err(0, 0)]), doc)).toEqual([
      '%%polyaxon_dag experiment'
    ]);
  });

  it('follows leading blank lines before the magic, and a cell whose magic line is gone', () => {
    const shifted = Text.of(['', '', ...cell]);
    expect(text(toDiagnostics(shifted, [err(2, 1)]), shifted)).toEqual([
      'kind:'
    ]);
    const bare = Text.of(cell.slice(1));
    expect(text(toDiagnostics(bare, [err(1, 1)]), bare)).toEqual(['kind:']);
  });

  it('marks an empty line as an empty range', () => {
    const d = Text.of(['%%polyaxon_dag', '']);
    expect(toDiagnostics(d, [err(2, 0)])[0]).toMatchObject({
      from: 15,
      to: 15
    });
  });
});

describe('showDiagnostics', () => {
  it('sets and clears lint diagnostics of an editor', () => {
    const view = new EditorView({
      state: EditorState.create({ doc: cell.join('\n') })
    });
    showDiagnostics(view, [err(5, 13, 'typo'), err(2, 0, 'other')]);
    const found: string[] = [];
    forEachDiagnostic(view.state, d => found.push(d.message));
    expect(found.sort()).toEqual(['other', 'typo']);
    showDiagnostics(view, []);
    let n = 0;
    forEachDiagnostic(view.state, () => n++);
    expect(n).toBe(0);
    view.destroy();
  });
});
