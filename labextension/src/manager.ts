/**
 * Lab wiring: one `PolynbSession` per notebook kernel, service tabs, log tabs and cell marks.
 */

import { JupyterFrontEnd } from '@jupyterlab/application';
import { DOMUtils, MainAreaWidget } from '@jupyterlab/apputils';
import { Cell } from '@jupyterlab/cells';
import { CodeMirrorEditor } from '@jupyterlab/codemirror';
import { PageConfig } from '@jupyterlab/coreutils';
import {
  INotebookTracker,
  NotebookActions,
  NotebookPanel
} from '@jupyterlab/notebook';
import { Kernel } from '@jupyterlab/services';
import { IFrame } from '@jupyterlab/ui-components';
import { ISignal, Signal } from '@lumino/signaling';
import { DockPanel, Widget } from '@lumino/widgets';

import { showDiagnostics } from './diagnostics';
import {
  COMM_TARGET,
  ICellError,
  IDiagnostics,
  ILogs,
  IOpen
} from './protocol';
import { PolynbSession } from './session';
import { ITabHost, TabReuse } from './tabs';

export type ServiceTab = MainAreaWidget<IFrame>;

/** TensorBoard is a same-origin app behind jupyter-server-proxy: it needs scripts, cookies, XSRF. */
const SANDBOX: IFrame.SandboxExceptions[] = [
  'allow-scripts',
  'allow-forms',
  'allow-same-origin',
  'allow-popups'
];

/** Select a tab in its dock area without focusing it (the user keeps typing in the notebook). */
function reveal(widget: Widget): void {
  const dock = widget.parent;
  if (dock instanceof DockPanel) {
    dock.selectWidget(widget);
  }
}

class LabTabHost implements ITabHost<ServiceTab> {
  constructor(private readonly app: JupyterFrontEnd) {}

  create(
    url: string,
    title: string,
    near: ServiceTab | null,
    anchor: string | null
  ): ServiceTab {
    const content = new IFrame({ sandbox: SANDBOX });
    content.url = url;
    const tab = new MainAreaWidget({ content });
    tab.id = DOMUtils.createDomID();
    tab.title.label = title;
    tab.title.caption = url;
    tab.title.closable = true;
    tab.addClass('polynb-service-tab');
    // activate: false — a kernel message must not take focus from the cell being edited
    if (near && near.isAttached) {
      this.app.shell.add(tab, 'main', {
        mode: 'tab-after',
        ref: near.id,
        activate: false
      });
    } else {
      this.app.shell.add(tab, 'main', {
        mode: 'split-right',
        ref: anchor ?? undefined,
        activate: false
      });
    }
    return tab;
  }

  navigate(tab: ServiceTab, url: string, title: string): void {
    tab.content.url = url;
    tab.title.label = title;
    tab.title.caption = url;
    reveal(tab);
  }

  reveal(tab: ServiceTab): void {
    reveal(tab);
  }
}

export class PolynbManager {
  constructor(
    private readonly app: JupyterFrontEnd,
    private readonly tracker: INotebookTracker,
    private readonly version: string
  ) {
    this.tabs = new TabReuse(new LabTabHost(app));
    tracker.widgetAdded.connect((_, panel) => this.watch(panel));
    tracker.forEach(panel => this.watch(panel));
    tracker.currentChanged.connect(() => this._currentChanged.emit());
    NotebookActions.executionScheduled.connect((_, { cell }) =>
      this.clearMarks(cell)
    );
  }

  readonly tabs: TabReuse<ServiceTab>;

  /** The current notebook changed, or its kernel did. */
  get currentChanged(): ISignal<this, void> {
    return this._currentChanged;
  }

  get currentPanel(): NotebookPanel | null {
    return this.tracker.currentWidget;
  }

  /** The session of the current notebook's kernel. */
  get current(): PolynbSession | null {
    const kernel = this.tracker.currentWidget?.sessionContext.session?.kernel;
    return (kernel && this.sessions.get(kernel)) ?? null;
  }

  /** Open a service page (from the panel: a user click) in the shared tab for that key. */
  openService(key: string, url: string, title: string): ServiceTab {
    return this.tabs.open(key, url, title, this.currentPanel?.id ?? null).tab;
  }

  private watch(panel: NotebookPanel): void {
    const sc = panel.sessionContext;
    sc.kernelChanged.connect((_, args) => {
      this.attach(args.newValue);
      if (panel === this.tracker.currentWidget) {
        this._currentChanged.emit();
      }
    });
    void sc.ready.then(() => {
      this.attach(sc.session?.kernel ?? null);
      if (panel === this.tracker.currentWidget) {
        this._currentChanged.emit();
      }
    });
  }

  private attach(kernel: Kernel.IKernelConnection | null): void {
    if (!kernel || kernel.isDisposed || this.sessions.has(kernel)) {
      return;
    }
    const session = new PolynbSession(
      {
        open: (msg, reply) => this.onOpen(kernel, msg, reply),
        diagnostics: msg => this.onDiagnostics(kernel, msg),
        logs: msg => this.onLogs(msg)
      },
      this.version,
      PageConfig.getOption('baseUrl') || '/'
    );
    this.sessions.set(kernel, session);
    // the registration survives kernel restarts (same connection object)
    kernel.registerCommTarget(COMM_TARGET, (comm, msg) =>
      session.attachKernelComm(comm, msg.content.data)
    );
    kernel.statusChanged.connect((_, status) => {
      if (status === 'restarting' || status === 'autorestarting') {
        session.reset();
      }
    });
    kernel.disposed.connect(() => {
      session.reset();
      this.sessions.delete(kernel);
    });
    void this.reconnect(kernel, session);
  }

  /**
   * After a page reload the kernel still runs and may hold polynb comms of the old page; open
   * our own so the panel gets the state back. Asking first (comm_info) avoids opening a comm on
   * kernels that never loaded polynb, which would log an error in the kernel.
   */
  private async reconnect(
    kernel: Kernel.IKernelConnection,
    session: PolynbSession
  ): Promise<void> {
    try {
      const reply = await kernel.requestCommInfo({ target_name: COMM_TARGET });
      const content = reply.content;
      if (
        content.status !== 'ok' ||
        Object.keys(content.comms).length === 0 ||
        session.isOpen ||
        kernel.isDisposed
      ) {
        return;
      }
      const comm = kernel.createComm(COMM_TARGET);
      session.attachLabComm(comm, data => comm.open(data));
    } catch (reason) {
      console.debug('polynb: no comm info from kernel', reason);
    }
  }

  private panelsOf(kernel: Kernel.IKernelConnection): NotebookPanel[] {
    const panels: NotebookPanel[] = [];
    this.tracker.forEach(p => {
      if (p.sessionContext.session?.kernel === kernel) {
        panels.push(p);
      }
    });
    return panels;
  }

  private onOpen(
    kernel: Kernel.IKernelConnection,
    msg: IOpen,
    reply: (data: Record<string, unknown>) => void
  ): void {
    const panels = this.panelsOf(kernel);
    const anchor =
      panels.find(p => p === this.tracker.currentWidget) ?? panels[0] ?? null;
    this.tabs.open(msg.reuse_key, msg.url, msg.title, anchor?.id ?? null);
    reply({ type: 'opened', reuse_key: msg.reuse_key, where: 'lab-tab' });
  }

  private onDiagnostics(
    kernel: Kernel.IKernelConnection,
    msg: IDiagnostics
  ): void {
    for (const panel of this.panelsOf(kernel)) {
      const cell = panel.content.widgets.find(c => c.model.id === msg.cell_id);
      if (cell) {
        void this.mark(cell, msg.errors);
      }
    }
  }

  private async mark(cell: Cell, errors: ICellError[]): Promise<void> {
    // a cell scrolled out of a windowed notebook has no editor until it is rendered
    await cell.ready;
    const editor = cell.editor;
    if (!(editor instanceof CodeMirrorEditor) || cell.isDisposed) {
      return;
    }
    showDiagnostics(editor.editor, errors);
    if (errors.length > 0) {
      this.marked.add(cell);
    } else {
      this.marked.delete(cell);
    }
  }

  /** A re-run starts clean: the kernel sends new marks if the cell is still wrong. */
  private clearMarks(cell: Cell): void {
    if (this.marked.has(cell)) {
      void this.mark(cell, []);
    }
  }

  private onLogs(msg: ILogs): void {
    let tab = this.logTabs.get(msg.uuid);
    if (!tab || tab.isDisposed) {
      const content = new Widget({ node: document.createElement('pre') });
      content.addClass('polynb-logs');
      tab = new MainAreaWidget({ content });
      tab.id = DOMUtils.createDomID();
      tab.title.label = `Logs · ${msg.uuid.slice(0, 8)}`;
      tab.title.closable = true;
      this.logTabs.set(msg.uuid, tab);
      this.app.shell.add(tab, 'main', {
        mode: 'split-bottom',
        ref: this.currentPanel?.id,
        activate: false
      });
    }
    tab.content.node.textContent =
      msg.text + (msg.truncated ? '\n… (truncated)' : '');
    reveal(tab);
  }

  private readonly sessions = new Map<
    Kernel.IKernelConnection,
    PolynbSession
  >();
  private readonly marked = new WeakSet<Cell>();
  private readonly logTabs = new Map<string, MainAreaWidget<Widget>>();
  private readonly _currentChanged = new Signal<this, void>(this);
}
