/**
 * YAML highlighting for `%%polyaxon_*` YAML cells. JupyterLab highlights every notebook cell with
 * the kernel language and has no per-magic registry, so each Python editor gets a compartment
 * that holds YAML while the first line is a YAML magic, and nothing otherwise so Lab's Python
 * applies. (Registered with Lab in index.ts; this part is plain CodeMirror, unit-tested.)
 */

import {
  Compartment,
  EditorState,
  Extension,
  Prec,
  Text
} from '@codemirror/state';

import { linesOf, yamlMagic } from './magic';

function* docHead(doc: Text): Generator<string> {
  for (let n = 1; n <= doc.lines; n++) {
    yield doc.line(n).text;
  }
}

export function isYamlDoc(doc: Text): boolean {
  return yamlMagic(docHead(doc)) !== null;
}

/**
 * The CodeMirror extension for one editor: `yaml` is Lab's YAML language support; `isPython`
 * reads the cell's current MIME type (it can change after the editor exists, when the kernel's
 * language arrives), so the decision is made on every transaction, not once.
 */
export function yamlMagicExtension(
  yaml: Extension,
  initialSource: string,
  isPython: () => boolean
): Extension {
  const language = new Compartment();
  const initial = isPython() && yamlMagic(linesOf(initialSource)) !== null;
  const switcher = EditorState.transactionExtender.of(tr => {
    const want = isPython() && isYamlDoc(tr.newDoc);
    const has = language.get(tr.startState) === yaml;
    return want === has
      ? null
      : { effects: language.reconfigure(want ? yaml : []) };
  });
  // highest precedence: the first `language` facet value wins over Lab's Python
  return [Prec.highest(language.of(initial ? yaml : [])), switcher];
}
