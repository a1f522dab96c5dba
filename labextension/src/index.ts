import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  EditorExtensionRegistry,
  IEditorExtensionFactory,
  IEditorExtensionRegistry,
  IEditorLanguageRegistry
} from '@jupyterlab/codemirror';
import { INotebookTracker } from '@jupyterlab/notebook';
import { Extension } from '@codemirror/state';

import { yamlMagicExtension } from './highlight';
import { PolynbManager } from './manager';
import { RunsPanel } from './panel';
import { VERSION } from './version';

const highlightPlugin: JupyterFrontEndPlugin<void> = {
  id: 'polynb:yaml-magic',
  description: 'Highlight %%polyaxon_* YAML cells as YAML.',
  autoStart: true,
  requires: [IEditorExtensionRegistry, IEditorLanguageRegistry],
  activate: async (
    app: JupyterFrontEnd,
    extensions: IEditorExtensionRegistry,
    languages: IEditorLanguageRegistry
  ): Promise<void> => {
    // Lab's own YAML (legacy mode): nothing bundled, same colours as .yaml files
    let yaml: Extension | undefined;
    try {
      yaml = (await languages.getLanguage('yaml'))?.support;
    } catch {
      yaml = undefined;
    }
    if (!yaml) {
      console.warn('polynb: no YAML language in this JupyterLab');
      return;
    }
    const support = yaml;
    extensions.addExtension(
      Object.freeze({
        name: 'polynb:yaml-magic',
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
};

const runsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'polynb:runs',
  description:
    'The polynb comm: service tabs (TensorBoard), the runs panel and cell diagnostics.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    restorer: ILayoutRestorer | null
  ): void => {
    const manager = new PolynbManager(app, tracker, VERSION);
    const panel = new RunsPanel(manager);
    app.shell.add(panel, 'right', { rank: 600 });
    // remembers whether the panel was open across reloads
    restorer?.add(panel, panel.id);
  }
};

export default [highlightPlugin, runsPlugin];
