import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  IEditorExtensionRegistry,
  IEditorLanguageRegistry
} from '@jupyterlab/codemirror';
import { INotebookTracker } from '@jupyterlab/notebook';

import { registerYamlMagic } from './highlight';
import { PolynbManager } from './manager';
import { RunsPanel } from './panel';
import { VERSION } from './version';

const highlightPlugin: JupyterFrontEndPlugin<void> = {
  id: 'polynb:yaml-magic',
  description: 'Highlight %%polyaxon_* YAML cells as YAML.',
  autoStart: true,
  requires: [IEditorExtensionRegistry, IEditorLanguageRegistry],
  activate: (
    app: JupyterFrontEnd,
    extensions: IEditorExtensionRegistry,
    languages: IEditorLanguageRegistry
  ): Promise<void> => registerYamlMagic(extensions, languages)
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
