import {
  FRONTEND_FEATURES,
  PROTOCOL_VERSION,
  isSafeUrl,
  labHello,
  parseKernelMessage
} from '../protocol';

const run = {
  uuid: 'r1',
  name: 'experiment-tensorboard',
  kind: 'dag',
  status: 'running',
  created_at: '2026-11-21T10:00:00.000Z',
  finished_at: null,
  counts: { succeeded: 1, running: 2 },
  ops: [
    {
      uuid: 'o1',
      name: 'experiment',
      kind: 'job',
      status: 'running',
      url: null
    },
    {
      uuid: 'o2',
      name: 'tensorboard',
      kind: 'service',
      status: 'running',
      url: '/proxy/41263/'
    }
  ]
};

describe('parseKernelMessage', () => {
  it('reads the kernel hello', () => {
    expect(
      parseKernelMessage({
        type: 'hello',
        protocol: 1,
        version: '0.1.0',
        features: ['open', 7, 'runs']
      })
    ).toEqual({
      type: 'hello',
      protocol: 1,
      version: '0.1.0',
      features: ['open', 'runs']
    });
  });

  it('reads open with all fields and defaults the optional ones', () => {
    expect(
      parseKernelMessage({
        type: 'open',
        url: '/proxy/41263/',
        title: 'TensorBoard · x',
        run_uuid: 'u',
        reuse_key: 'tensorboard:u',
        kind: 'tensorboard',
        direct_url: 'http://127.0.0.1:41263/',
        extra: 'ignored'
      })
    ).toEqual({
      type: 'open',
      url: '/proxy/41263/',
      title: 'TensorBoard · x',
      run_uuid: 'u',
      reuse_key: 'tensorboard:u',
      kind: 'tensorboard',
      direct_url: 'http://127.0.0.1:41263/'
    });
    expect(
      parseKernelMessage({ type: 'open', url: '/proxy/1/' })
    ).toMatchObject({
      title: '/proxy/1/',
      reuse_key: 'url:/proxy/1/',
      direct_url: null
    });
  });

  it('refuses open with a URL that could run script in the Lab origin', () => {
    for (const url of [
      'javascript:alert(1)',
      'data:text/html,x',
      '//evil.example/',
      '',
      3
    ]) {
      expect(parseKernelMessage({ type: 'open', url })).toBeNull();
    }
  });

  it('reads runs and run_update, dropping malformed runs and ops', () => {
    const msg = parseKernelMessage({
      type: 'runs',
      runs: [run, { name: 'no uuid' }, 'junk']
    });
    expect(msg).toEqual({ type: 'runs', runs: [run] });
    const upd = parseKernelMessage({
      type: 'run_update',
      run: {
        uuid: 'r2',
        status: 'created',
        counts: { running: -1, queued: 2, x: 'y' },
        ops: [
          { uuid: 'o' },
          { uuid: 'p', status: 'queued', url: 'javascript:x' }
        ]
      }
    });
    expect(upd).toEqual({
      type: 'run_update',
      run: {
        uuid: 'r2',
        name: 'r2',
        kind: '',
        status: 'created',
        created_at: null,
        finished_at: null,
        counts: { queued: 2 },
        ops: [{ uuid: 'p', name: 'p', kind: '', status: 'queued', url: null }]
      }
    });
    expect(parseKernelMessage({ type: 'run_update', run: {} })).toBeNull();
    expect(parseKernelMessage({ type: 'runs' })).toBeNull();
  });

  it('reads the external sources of a run and who waits for an approval', () => {
    const upd = parseKernelMessage({
      type: 'run_update',
      run: {
        uuid: 'r3',
        status: 'running',
        awaiting_approval: true,
        ops: [{ uuid: 'g', status: 'created', awaiting_approval: true }],
        sources: [
          {
            name: 'connections.repo',
            kind: 'connection',
            awaited_by: ['retrain', 7],
            events: 2,
            last_event: 'connection_git_commit 1a2b'
          },
          { name: 'polynb approve', kind: 'approval' },
          { name: 'x', kind: 'from_the_future' },
          { kind: 'emit' }
        ]
      }
    });
    expect(upd?.type).toBe('run_update');
    const run = upd?.type === 'run_update' ? upd.run : null;
    expect(run?.awaiting_approval).toBe(true);
    expect(run?.ops[0].awaiting_approval).toBe(true);
    expect(run?.sources).toEqual([
      {
        name: 'connections.repo',
        kind: 'connection',
        awaited_by: ['retrain'],
        events: 2,
        last_event: 'connection_git_commit 1a2b'
      },
      {
        name: 'polynb approve',
        kind: 'approval',
        awaited_by: [],
        events: 0,
        last_event: null
      }
    ]);
  });

  it('reads diagnostics with defaults for column and severity', () => {
    expect(
      parseKernelMessage({
        type: 'diagnostics',
        cell_id: 'c1',
        magic: 'polyaxon_dag',
        errors: [
          { line: 3, column: 9, message: 'no component', severity: 'error' },
          { line: 1, message: 'm', severity: 'warning' },
          { line: 2, column: 1, message: 'n', severity: 'fatal' },
          { line: -1, message: 'bad line' },
          { line: 1 }
        ]
      })
    ).toEqual({
      type: 'diagnostics',
      cell_id: 'c1',
      magic: 'polyaxon_dag',
      errors: [
        { line: 3, column: 9, message: 'no component', severity: 'error' },
        { line: 1, column: 0, message: 'm', severity: 'warning' },
        { line: 2, column: 1, message: 'n', severity: 'error' }
      ]
    });
    expect(parseKernelMessage({ type: 'diagnostics', errors: [] })).toBeNull();
  });

  it('reads error and logs', () => {
    expect(
      parseKernelMessage({
        type: 'error',
        request: 'stop',
        message: 'no run x'
      })
    ).toEqual({ type: 'error', request: 'stop', message: 'no run x' });
    expect(
      parseKernelMessage({ type: 'logs', uuid: 'u', text: 'a\nb' })
    ).toEqual({
      type: 'logs',
      uuid: 'u',
      text: 'a\nb',
      truncated: false
    });
  });

  it('ignores unknown types and non-objects', () => {
    for (const data of [null, 'x', [], {}, { type: 'later_feature' }]) {
      expect(parseKernelMessage(data)).toBeNull();
    }
  });
});

describe('isSafeUrl', () => {
  it('accepts same-origin paths and http(s)', () => {
    expect(isSafeUrl('/proxy/6006/')).toBe(true);
    expect(isSafeUrl('/user/ada/proxy/6006/#scalars')).toBe(true);
    expect(isSafeUrl('http://127.0.0.1:6006/')).toBe(true);
    expect(isSafeUrl('HTTPS://tb.example.org/x')).toBe(true);
    expect(isSafeUrl('http:///x')).toBe(false);
    expect(isSafeUrl('proxy/6006/')).toBe(false);
  });
});

describe('labHello', () => {
  it('announces protocol, features and the base URL', () => {
    expect(labHello('0.1.0', '/user/ada/')).toEqual({
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      version: '0.1.0',
      frontend: 'jupyterlab',
      features: FRONTEND_FEATURES,
      base_url: '/user/ada/'
    });
  });
});
