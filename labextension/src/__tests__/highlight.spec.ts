import { EditorState, Facet } from '@codemirror/state';

import { isYamlDoc, yamlMagicExtension } from '../highlight';

// stands in for Lab's YAML language support: present in the state iff YAML is on
const yamlOn = Facet.define<boolean>();
const yaml = yamlOn.of(true);

function editor(doc: string, python = () => true): EditorState {
  return EditorState.create({
    doc,
    extensions: yamlMagicExtension(yaml, doc, python)
  });
}

const isOn = (s: EditorState) => s.facet(yamlOn).length > 0;

describe('yamlMagicExtension', () => {
  it('starts in YAML for a %%polyaxon_dag cell and in Python otherwise', () => {
    expect(isOn(editor('%%polyaxon_dag x\nkind: dag'))).toBe(true);
    expect(isOn(editor('%%polyaxon_python s\nx = 1'))).toBe(false);
    expect(isOn(editor('x = 1'))).toBe(false);
  });

  it('switches live when the first line changes', () => {
    let s = editor('x = 1');
    s = s.update({
      changes: { from: 0, insert: '%%polyaxon_component c\n' }
    }).state;
    expect(isOn(s)).toBe(true);
    // typing in the body keeps YAML
    s = s.update({
      changes: { from: s.doc.length, insert: '\ninputs: []' }
    }).state;
    expect(isOn(s)).toBe(true);
    // turning it into a Python step switches back
    s = s.update({
      changes: { from: 2, to: 20, insert: 'polyaxon_python' }
    }).state;
    expect(s.doc.line(1).text).toBe('%%polyaxon_python c');
    expect(isOn(s)).toBe(false);
    s = s.update({
      changes: { from: 0, to: s.doc.line(1).to, insert: '%%polyaxon_dag d' }
    }).state;
    expect(isOn(s)).toBe(true);
    s = s.update({ changes: { from: 0, to: s.doc.length, insert: '' } }).state;
    expect(isOn(s)).toBe(false);
  });

  it('only applies to Python cells, re-checked when the MIME type changes', () => {
    let python = false;
    let s = editor('%%polyaxon_dag x', () => python);
    expect(isOn(s)).toBe(false);
    python = true;
    // any transaction re-evaluates (Lab reconfigures the editor when the MIME type changes)
    s = s.update({ selection: { anchor: 1 } }).state;
    expect(isOn(s)).toBe(true);
  });
});

describe('isYamlDoc', () => {
  it('reads the magic line through leading blank lines', () => {
    expect(isYamlDoc(EditorState.create({ doc: '\n%%polyaxon_dag' }).doc)).toBe(
      true
    );
    expect(
      isYamlDoc(EditorState.create({ doc: 'a\n%%polyaxon_dag' }).doc)
    ).toBe(false);
  });
});
