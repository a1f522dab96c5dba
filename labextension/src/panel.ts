/**
 * The runs side panel: the current notebook kernel's runs and ops, live, with stop, logs and
 * service links. Plain DOM (a few dozen rows, re-rendered per coalesced update).
 */

import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { PolynbManager } from './manager';
import { IOpSummary, IRunSummary } from './protocol';
import {
  IRunsState,
  awaitsApproval,
  countsLabel,
  isFinal,
  statusCategory
} from './runs';
import { renderSource } from './sources';
import { PolynbSession } from './session';

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16">
<g class="jp-icon3" fill="#616161"><circle cx="5" cy="6" r="3"/><circle cx="5" cy="18" r="3"/>
<circle cx="19" cy="12" r="3"/><path d="M7.5 7.2l9 3.6-.7 1.8-9-3.6zM7.5 16.8l9-3.6.7 1.8-9 3.6z"/></g></svg>`;

export const runsIcon = new LabIcon({ name: 'polynb:runs', svgstr: ICON_SVG });

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  cls: string,
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = cls;
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

function statusPill(status: string): HTMLElement {
  const pill = el(
    'span',
    `polynb-status polynb-status-${statusCategory(status)}`,
    status.replace('_', ' ')
  );
  pill.dataset.status = status;
  return pill;
}

export class RunsPanel extends Widget {
  constructor(private readonly manager: PolynbManager) {
    super();
    this.id = 'polynb-runs-panel';
    this.addClass('polynb-runs-panel');
    this.title.icon = runsIcon;
    this.title.caption = 'polynb runs';
    manager.currentChanged.connect(this.follow, this);
    this.follow();
  }

  /** Show the current notebook's kernel session. */
  private follow(): void {
    const next = this.manager.current;
    if (next !== this.session) {
      this.session?.changed.disconnect(this.render, this);
      this.session = next;
      this.session?.changed.connect(this.render, this);
    }
    this.render();
  }

  private render(): void {
    const node = this.node;
    node.replaceChildren();
    const header = el('div', 'polynb-runs-header');
    header.append(el('span', 'polynb-runs-title', 'polynb runs'));
    const nb = this.manager.currentPanel;
    header.append(
      el('span', 'polynb-runs-notebook', nb ? nb.title.label : 'no notebook')
    );
    node.append(header);

    const state = this.session?.state;
    if (state?.error) {
      node.append(el('div', 'polynb-runs-error', state.error));
    }
    if (!state || state.runs.length === 0) {
      node.append(
        el(
          'div',
          'polynb-runs-empty',
          state?.connected
            ? 'No runs in this kernel yet.'
            : 'No polynb runs: run a %%polyaxon_dag cell in this notebook.'
        )
      );
      return;
    }
    const list = el('ul', 'polynb-runs');
    for (const run of state.runs) {
      list.append(this.renderRun(run, state));
    }
    node.append(list);
  }

  private renderRun(run: IRunSummary, state: IRunsState): HTMLElement {
    const item = el('li', 'polynb-run');
    item.dataset.uuid = run.uuid;
    item.dataset.status = run.status;
    const collapsed = this.collapsed.has(run.uuid);

    const row = el('div', 'polynb-run-row');
    const toggle = el('button', 'polynb-toggle', collapsed ? '▸' : '▾');
    toggle.title = collapsed ? 'Show ops' : 'Hide ops';
    toggle.onclick = () => {
      if (!this.collapsed.delete(run.uuid)) {
        this.collapsed.add(run.uuid);
      }
      this.render();
    };
    row.append(toggle, statusPill(run.status));
    const name = el('span', 'polynb-run-name', run.name);
    name.title = `${run.kind} ${run.uuid}${run.created_at ? '\ncreated ' + run.created_at : ''}`;
    row.append(name);
    item.append(row);
    const meta = el('div', 'polynb-run-meta');
    meta.append(el('span', 'polynb-run-counts', countsLabel(run.counts)));
    meta.append(...this.approvals(run, run.uuid, state));
    meta.append(...this.actions(run.uuid, run.status, null, state));
    item.append(meta);

    const sources = run.sources ?? [];
    if (!collapsed && sources.length > 0) {
      const list = el('ul', 'polynb-sources');
      for (const source of sources) {
        list.append(renderSource(source));
      }
      item.append(list);
    }
    if (!collapsed && run.ops.length > 0) {
      const ops = el('ul', 'polynb-ops');
      for (const op of run.ops) {
        ops.append(this.renderOp(run, op, state));
      }
      item.append(ops);
    }
    return item;
  }

  /** Approve / Invalidate for a run or op waiting for an approval (`isApproved: false`). */
  private approvals(
    run: IRunSummary,
    uuid: string,
    state: IRunsState
  ): HTMLElement[] {
    const session = this.session;
    if (!session?.kernelFeatures.has('approve') || !awaitsApproval(run, uuid)) {
      return [];
    }
    const pending = state.approving.has(uuid);
    const approve = el(
      'button',
      'polynb-action polynb-approve',
      pending ? 'Approving…' : 'Approve'
    );
    approve.title =
      uuid === run.uuid
        ? 'Approve every op of this run waiting for an approval'
        : 'Approve: the op starts once everything else it waits for allows';
    approve.disabled = pending;
    approve.onclick = () => {
      session.approve(uuid, true);
    };
    const invalidate = el(
      'button',
      'polynb-action polynb-invalidate',
      'Invalidate'
    );
    invalidate.title = 'Invalidate: the op is skipped';
    invalidate.disabled = pending;
    invalidate.onclick = () => {
      session.approve(uuid, false);
    };
    return [approve, invalidate];
  }

  private renderOp(
    run: IRunSummary,
    op: IOpSummary,
    state: IRunsState
  ): HTMLElement {
    const item = el('li', 'polynb-op');
    item.dataset.uuid = op.uuid;
    item.dataset.status = op.status;
    item.dataset.name = op.name;
    item.append(statusPill(op.status));
    const name = el('span', 'polynb-op-name', op.name);
    name.title = `${op.kind} ${op.uuid}`;
    item.append(name, el('span', 'polynb-op-kind', op.kind));
    const actions = el('span', 'polynb-actions');
    actions.append(
      ...this.approvals(run, op.uuid, state),
      ...this.actions(op.uuid, op.status, { run, op, url: op.url }, state)
    );
    item.append(actions);
    return item;
  }

  private actions(
    uuid: string,
    status: string,
    service: { run: IRunSummary; op: IOpSummary; url: string | null } | null,
    state: IRunsState
  ): HTMLElement[] {
    const session = this.session;
    const out: HTMLElement[] = [];
    if (service?.url) {
      const url = service.url;
      const open = el('button', 'polynb-action polynb-open', 'Open');
      open.title = `Open ${url} in a Lab tab`;
      open.onclick = () =>
        this.manager.openService(
          `service:${service.op.uuid}`,
          url,
          `${service.op.name} · ${service.run.name}`
        );
      // a real link: a user click may open a browser tab (no popup blocker involved)
      const link = el('a', 'polynb-action polynb-external', '↗');
      link.href = url;
      link.target = '_blank';
      link.rel = 'noopener noreferrer';
      link.title = 'Open in a new browser tab';
      out.push(open, link);
    }
    if (session?.kernelFeatures.has('logs')) {
      const logs = el('button', 'polynb-action polynb-logs-button', 'Logs');
      logs.onclick = () => session.requestLogs(uuid);
      out.push(logs);
    }
    if (session && !isFinal(status)) {
      const pending = state.stopping.has(uuid) || status === 'stopping';
      const stop = el(
        'button',
        'polynb-action polynb-stop',
        pending ? 'Stopping…' : 'Stop'
      );
      stop.disabled = pending;
      stop.title = 'Stop';
      stop.onclick = () => {
        session.stop(uuid);
      };
      out.push(stop);
    }
    return out;
  }

  private session: PolynbSession | null = null;
  /** Runs whose ops the user folded away (survives re-renders, not reloads). */
  private readonly collapsed = new Set<string>();
}
