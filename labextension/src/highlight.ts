/**
 * YAML highlighting for `%%polyaxon_*` YAML cells. JupyterLab highlights every notebook cell with
 * the kernel language and has no per-magic registry, so each Python editor gets a compartment
 * that holds YAML (from Lab's own language registry, nothing bundled) while the first line is a
 * YAML magic, and nothing otherwise so Lab's Python applies.
 */

import {
  EditorExtensionRegistry,
  IEditorExtensionFactory,
  IEditorExtensionRegistry,
  IEditorLanguageRegistry
} from '@jupyterlab/codemirror';
import { Compartment, EditorState, Extension, Prec, Text } from '@codemirror/state';

import { linesOf, yamlMagic } from './magic';

export const EXTENSION_NAME = 'polynb:yaml-magic';

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

export async function registerYamlMagic(
  extensions: IEditorExtensionRegistry,
  languages: IEditorLanguageRegistry
): Promise<void> {
  let yaml: Extension | undefined;
  try {
    yaml = (await languages.getLanguage('yaml'))?.support;
  } catch (reason) {
    yaml = undefined;
  }
  if (!yaml) {
    console.warn('polynb: no YAML language in this JupyterLab');
    return;
  }
  const support = yaml;
  extensions.addExtension(
    Object.freeze({
      name: EXTENSION_NAME,
      factory: (options: IEditorExtensionFactory.IOptions) => {
        const model = options.model;
        // notebook and console cells of IPython kernels only
        const isPython = () => model.mimeType === 'text/x-ipython';
        return EditorExtensionRegistry.createImmutableExtension(
          yamlMagicExtension(support, model.sharedModel.getSource(), isPython)
        );
      }
    })
  );
}
