import { IRunSummary } from '../protocol';
import {
  EMPTY,
  IRunsState,
  RunsAction,
  awaitsApproval,
  countsLabel,
  isFinal,
  runsReducer,
  sourceLabel,
  statusCategory
} from '../runs';

function run(
  uuid: string,
  status: string,
  created: string | null,
  ops: [string, string][] = []
): IRunSummary {
  return {
    uuid,
    name: uuid,
    kind: 'dag',
    status,
    created_at: created,
    finished_at: null,
    counts: {},
    ops: ops.map(([u, s]) => ({
      uuid: u,
      name: u,
      kind: 'job',
      status: s,
      url: null
    }))
  };
}

const reduce = (actions: RunsAction[], state: IRunsState = EMPTY) =>
  actions.reduce(runsReducer, state);

describe('runsReducer', () => {
  it('a snapshot replaces the runs, newest first', () => {
    const s = reduce([
      {
        type: 'run_update',
        run: run('old', 'running', '2026-01-01T00:00:00.000Z')
      },
      {
        type: 'runs',
        runs: [
          run('a', 'succeeded', '2026-01-01T00:00:01.000Z'),
          run('b', 'running', '2026-01-01T00:00:03.000Z'),
          run('c', 'failed', '2026-01-01T00:00:02.000Z')
        ]
      }
    ]);
    expect(s.runs.map(r => r.uuid)).toEqual(['b', 'c', 'a']);
    expect(s.connected).toBe(true);
  });

  it('run_update replaces a run in place or inserts a new one in order', () => {
    const s = reduce([
      {
        type: 'run_update',
        run: run('a', 'created', '2026-01-01T00:00:01.000Z')
      },
      {
        type: 'run_update',
        run: run('b', 'created', '2026-01-01T00:00:02.000Z')
      },
      {
        type: 'run_update',
        run: run('a', 'running', '2026-01-01T00:00:01.000Z')
      }
    ]);
    expect(s.runs.map(r => [r.uuid, r.status])).toEqual([
      ['b', 'created'],
      ['a', 'running']
    ]);
  });

  it('walks a run through its statuses', () => {
    const t = '2026-01-01T00:00:00.000Z';
    const seen: string[] = [];
    let s = EMPTY;
    for (const status of ['created', 'queued', 'running', 'succeeded']) {
      s = runsReducer(s, {
        type: 'run_update',
        run: run('a', status, t, [['o', status]])
      });
      seen.push(`${s.runs[0].status}/${s.runs[0].ops[0].status}`);
    }
    expect(seen).toEqual([
      'created/created',
      'queued/queued',
      'running/running',
      'succeeded/succeeded'
    ]);
  });

  it('a stop stays pending until the status of that run or op changes', () => {
    const t = '2026-01-01T00:00:00.000Z';
    let s = reduce([
      {
        type: 'run_update',
        run: run('d', 'running', t, [
          ['o1', 'running'],
          ['o2', 'queued']
        ])
      },
      { type: 'stop_sent', uuid: 'o1' },
      { type: 'stop_sent', uuid: 'd' }
    ]);
    expect([...s.stopping].sort()).toEqual(['d', 'o1']);
    // an unrelated change keeps both pending
    s = runsReducer(s, {
      type: 'run_update',
      run: run('d', 'running', t, [
        ['o1', 'running'],
        ['o2', 'running']
      ])
    });
    expect([...s.stopping].sort()).toEqual(['d', 'o1']);
    s = runsReducer(s, {
      type: 'run_update',
      run: run('d', 'running', t, [
        ['o1', 'stopping'],
        ['o2', 'running']
      ])
    });
    expect([...s.stopping]).toEqual(['d']);
    s = runsReducer(s, {
      type: 'run_update',
      run: run('d', 'stopped', t, [
        ['o1', 'stopped'],
        ['o2', 'stopped']
      ])
    });
    expect(s.stopping.size).toBe(0);
  });

  it('an error is shown and releases pending stops', () => {
    const s = reduce([
      { type: 'stop_sent', uuid: 'x' },
      { type: 'error', message: 'no run x' }
    ]);
    expect(s.error).toBe('no run x');
    expect(s.stopping.size).toBe(0);
    expect(runsReducer(s, { type: 'runs', runs: [] }).error).toBeNull();
  });

  it('a snapshot forgets stops of runs that are gone', () => {
    const s = reduce([
      { type: 'stop_sent', uuid: 'gone' },
      { type: 'stop_sent', uuid: 'o1' },
      { type: 'runs', runs: [run('d', 'running', null, [['o1', 'running']])] }
    ]);
    expect([...s.stopping]).toEqual(['o1']);
  });

  it('reset empties everything; connected is idempotent', () => {
    const s = reduce([{ type: 'connected' }]);
    expect(s.connected).toBe(true);
    expect(runsReducer(s, { type: 'connected' })).toBe(s);
    expect(reduce([{ type: 'reset' }], s)).toBe(EMPTY);
  });
});

describe('statuses', () => {
  it('colours every polynb status, unknown ones as warnings', () => {
    expect(statusCategory('queued')).toBe('pending');
    expect(statusCategory('running')).toBe('running');
    expect(statusCategory('succeeded')).toBe('succeeded');
    expect(statusCategory('upstream_failed')).toBe('failed');
    expect(statusCategory('stopping')).toBe('stopped');
    expect(statusCategory('skipped')).toBe('skipped');
    expect(statusCategory('unschedulable')).toBe('warning');
    expect(statusCategory('from_the_future')).toBe('warning');
  });

  it('knows the final statuses', () => {
    expect(
      ['succeeded', 'failed', 'upstream_failed', 'stopped', 'skipped'].every(
        isFinal
      )
    ).toBe(true);
    expect(['running', 'stopping', 'warning', 'retrying'].some(isFinal)).toBe(
      false
    );
  });

  it('labels counts', () => {
    expect(
      countsLabel({ succeeded: 1, running: 2, failed: 0, upstream_failed: 1 })
    ).toBe('1 succeeded · 2 running · 1 upstream failed');
  });
});

describe('approvals', () => {
  const t = '2026-01-01T00:00:00.000Z';
  const gated = (waiting: boolean, status = 'created'): IRunSummary => ({
    ...run('d', 'running', t, [['gate', status]]),
    awaiting_approval: waiting,
    ops: [
      {
        uuid: 'gate',
        name: 'gate',
        kind: 'job',
        status,
        url: null,
        awaiting_approval: waiting
      }
    ]
  });

  it('knows which run or op waits for an approval', () => {
    expect(awaitsApproval(gated(true), 'gate')).toBe(true);
    expect(awaitsApproval(gated(true), 'd')).toBe(true);
    expect(awaitsApproval(gated(false), 'gate')).toBe(false);
    expect(awaitsApproval(run('x', 'running', t), 'x')).toBe(false);
  });

  it('an approval stays pending until the op no longer waits for it', () => {
    let s = reduce([
      { type: 'run_update', run: gated(true) },
      { type: 'approve_sent', uuid: 'gate' }
    ]);
    expect([...s.approving]).toEqual(['gate']);
    s = runsReducer(s, { type: 'run_update', run: gated(true) });
    expect([...s.approving]).toEqual(['gate']);
    s = runsReducer(s, { type: 'run_update', run: gated(false, 'running') });
    expect(s.approving.size).toBe(0);
  });

  it('an error releases pending approvals', () => {
    const s = reduce([
      { type: 'approve_sent', uuid: 'gate' },
      { type: 'error', message: 'no run gate' }
    ]);
    expect(s.approving.size).toBe(0);
  });
});

describe('sources', () => {
  it('labels a source with the ops it leads to and its events', () => {
    const source = {
      name: 'connections.repo',
      kind: 'connection' as const,
      awaited_by: ['retrain'],
      events: 0,
      last_event: null
    };
    expect(sourceLabel(source)).toBe('connections.repo → retrain · waiting');
    expect(sourceLabel({ ...source, events: 1 })).toBe(
      'connections.repo → retrain · 1 event'
    );
    expect(sourceLabel({ ...source, awaited_by: [], events: 3 })).toBe(
      'connections.repo · 3 events'
    );
  });
});
