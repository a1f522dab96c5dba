/**
 * The runs panel model: a pure reducer over comm messages, so the panel can be rebuilt from a
 * `runs` snapshot after a page reload and unit-tested without a browser.
 */

import { IRunSummary, ISourceSummary } from './protocol';

/** Polyaxon's final statuses (polynb/lifecycle.py FINAL): nothing can be stopped there. */
const FINAL = new Set([
  'succeeded',
  'failed',
  'upstream_failed',
  'stopped',
  'skipped',
  'done'
]);

export type StatusCategory =
  | 'pending'
  | 'running'
  | 'succeeded'
  | 'failed'
  | 'stopped'
  | 'skipped'
  | 'warning';

const CATEGORY: Record<string, StatusCategory> = {
  created: 'pending',
  resuming: 'pending',
  on_schedule: 'pending',
  compiled: 'pending',
  queued: 'pending',
  retrying: 'pending',
  scheduled: 'running',
  starting: 'running',
  running: 'running',
  processing: 'running',
  stopping: 'stopped',
  succeeded: 'succeeded',
  done: 'succeeded',
  failed: 'failed',
  upstream_failed: 'failed',
  stopped: 'stopped',
  skipped: 'skipped',
  warning: 'warning',
  unschedulable: 'warning',
  unknown: 'warning'
};

export function isFinal(status: string): boolean {
  return FINAL.has(status);
}

/** Colour class of a status; unknown future statuses read as warnings rather than breaking. */
export function statusCategory(status: string): StatusCategory {
  return CATEGORY[status] ?? 'warning';
}

export interface IRunsState {
  /** Newest first (by `created_at`, then arrival). */
  runs: IRunSummary[];
  /** uuids a stop was sent for and whose status has not changed since. */
  stopping: ReadonlySet<string>;
  /** uuids an approval (or invalidation) was sent for, still awaiting it. */
  approving: ReadonlySet<string>;
  /** Last `error` from the kernel, shown until the next change. */
  error: string | null;
  /** Whether a kernel with polynb is connected on the comm. */
  connected: boolean;
}

export type RunsAction =
  | { type: 'runs'; runs: IRunSummary[] }
  | { type: 'run_update'; run: IRunSummary }
  | { type: 'stop_sent'; uuid: string }
  | { type: 'approve_sent'; uuid: string }
  | { type: 'error'; message: string }
  | { type: 'connected' }
  | { type: 'reset' };

export const EMPTY: IRunsState = {
  runs: [],
  stopping: new Set(),
  approving: new Set(),
  error: null,
  connected: false
};

function newestFirst(a: IRunSummary, b: IRunSummary): number {
  // ISO 8601 UTC strings sort as text; runs without a time go first (just created)
  const ta = a.created_at ?? '\uffff';
  const tb = b.created_at ?? '\uffff';
  return ta < tb ? 1 : ta > tb ? -1 : 0;
}

/** Statuses of a run and its ops, to notice that a stop took effect. */
function statusesOf(run: IRunSummary): Map<string, string> {
  const m = new Map<string, string>([[run.uuid, run.status]]);
  for (const op of run.ops) {
    m.set(op.uuid, op.status);
  }
  return m;
}

function settleStops(
  stopping: ReadonlySet<string>,
  before: IRunSummary | undefined,
  after: IRunSummary
): ReadonlySet<string> {
  if (stopping.size === 0) {
    return stopping;
  }
  const old = before ? statusesOf(before) : new Map<string, string>();
  const now = statusesOf(after);
  let next: Set<string> | null = null;
  for (const [uuid, status] of now) {
    if (stopping.has(uuid) && (old.get(uuid) !== status || isFinal(status))) {
      next ??= new Set(stopping);
      next.delete(uuid);
    }
  }
  return next ?? stopping;
}

/** Whether a run or op (by uuid) still waits for an approval in `run`. */
export function awaitsApproval(run: IRunSummary, uuid: string): boolean {
  if (uuid === run.uuid) {
    return run.awaiting_approval === true;
  }
  return run.ops.some(o => o.uuid === uuid && o.awaiting_approval === true);
}

/** Approvals sent whose target no longer waits (approved, invalidated, gone). */
function settleApprovals(
  approving: ReadonlySet<string>,
  runs: IRunSummary[]
): ReadonlySet<string> {
  if (approving.size === 0) {
    return approving;
  }
  const still = [...approving].filter(u =>
    runs.some(r => awaitsApproval(r, u))
  );
  return still.length === approving.size ? approving : new Set(still);
}

/** One external source as the panel lists it: `connections.repo → retrain · 2 events`. */
export function sourceLabel(source: ISourceSummary): string {
  const to = source.awaited_by.length
    ? ` → ${source.awaited_by.join(', ')}`
    : '';
  const n = source.events;
  const events = n === 0 ? 'waiting' : `${n} event${n === 1 ? '' : 's'}`;
  return `${source.name}${to} · ${events}`;
}

export function runsReducer(state: IRunsState, action: RunsAction): IRunsState {
  switch (action.type) {
    case 'runs': {
      // a snapshot replaces everything (page reload, kernel restart)
      const runs = [...action.runs].sort(newestFirst);
      const known = new Set(runs.flatMap(r => [...statusesOf(r).keys()]));
      const stopping = new Set([...state.stopping].filter(u => known.has(u)));
      const approving = settleApprovals(state.approving, runs);
      return {
        ...state,
        runs,
        stopping,
        approving,
        error: null,
        connected: true
      };
    }
    case 'run_update': {
      const i = state.runs.findIndex(r => r.uuid === action.run.uuid);
      const before = i >= 0 ? state.runs[i] : undefined;
      const runs =
        i >= 0
          ? state.runs.map((r, j) => (j === i ? action.run : r))
          : [...state.runs, action.run].sort(newestFirst);
      return {
        ...state,
        runs,
        stopping: settleStops(state.stopping, before, action.run),
        approving: settleApprovals(state.approving, runs),
        connected: true
      };
    }
    case 'approve_sent': {
      const approving = new Set(state.approving);
      approving.add(action.uuid);
      return { ...state, approving };
    }
    case 'stop_sent': {
      const stopping = new Set(state.stopping);
      stopping.add(action.uuid);
      return { ...state, stopping };
    }
    case 'error':
      // a failed stop must not leave the button disabled forever
      return {
        ...state,
        error: action.message,
        stopping: new Set(),
        approving: new Set()
      };
    case 'connected':
      return state.connected ? state : { ...state, connected: true };
    case 'reset':
      return EMPTY;
  }
}

/** `2 running · 1 succeeded` */
export function countsLabel(counts: Record<string, number>): string {
  return Object.entries(counts)
    .filter(([, n]) => n > 0)
    .map(([status, n]) => `${n} ${status.replace('_', ' ')}`)
    .join(' · ');
}
