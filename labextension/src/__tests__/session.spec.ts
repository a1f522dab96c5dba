import { IDiagnostics, ILogs, IOpen } from '../protocol';
import { ICommLike, PolynbSession } from '../session';

class FakeComm implements ICommLike {
  constructor(public commId: string) {}
  sent: any[] = [];
  isDisposed = false;
  onMsg: (msg: any) => void = () => undefined;
  onClose: (msg: any) => void = () => undefined;
  send(data: any): void {
    this.sent.push(data);
  }
  close(): void {
    this.isDisposed = true;
    this.onClose({});
  }
  /** The kernel sends `data` on this comm. */
  receive(data: any): void {
    this.onMsg({ content: { comm_id: this.commId, data } });
  }
}

const last = <T>(xs: T[]): T => xs[xs.length - 1];

const kernelHello = {
  type: 'hello',
  protocol: 1,
  version: '0.1.0',
  features: ['open', 'runs', 'stop']
};

const run = (status: string) => ({
  uuid: 'r1',
  name: 'dag',
  kind: 'dag',
  status,
  created_at: '2026-01-01T00:00:00.000Z',
  counts: {},
  ops: [
    {
      uuid: 'tb',
      name: 'tensorboard',
      kind: 'service',
      status,
      url: '/proxy/6006/'
    }
  ]
});

function setup() {
  const opened: IOpen[] = [];
  const diagnostics: IDiagnostics[] = [];
  const logs: ILogs[] = [];
  const session = new PolynbSession(
    {
      open: (msg, reply) => {
        opened.push(msg);
        reply({ type: 'opened', reuse_key: msg.reuse_key, where: 'lab-tab' });
      },
      diagnostics: msg => diagnostics.push(msg),
      logs: msg => logs.push(msg)
    },
    '0.1.0',
    '/'
  );
  return { session, opened, diagnostics, logs };
}

describe('PolynbSession', () => {
  it('answers a kernel-opened comm with hello and asks for the state', () => {
    const { session } = setup();
    const comm = new FakeComm('c1');
    session.attachKernelComm(comm, kernelHello);
    expect(comm.sent.map(m => m.type)).toEqual(['hello', 'state_request']);
    expect(comm.sent[0]).toMatchObject({
      protocol: 1,
      frontend: 'jupyterlab',
      base_url: '/'
    });
    expect([...session.kernelFeatures]).toEqual(['open', 'runs', 'stop']);
    expect(session.state.connected).toBe(true);
    expect(session.isOpen).toBe(true);
  });

  it('opens its own comm after a reload: hello as open data, then state_request', () => {
    const { session } = setup();
    const comm = new FakeComm('lab');
    const openData: any[] = [];
    session.attachLabComm(comm, d => openData.push(d));
    expect(openData.map(d => d.type)).toEqual(['hello']);
    expect(comm.sent).toEqual([{ type: 'state_request' }]);
    comm.receive(kernelHello);
    comm.receive({ type: 'runs', runs: [run('running')] });
    expect(session.state.runs.map(r => r.status)).toEqual(['running']);
  });

  it('feeds runs and run_update into the model and signals changes', () => {
    const { session } = setup();
    const comm = new FakeComm('c1');
    const statuses: string[] = [];
    session.changed.connect((_, s) => statuses.push(s.runs[0]?.status ?? '-'));
    session.attachKernelComm(comm, kernelHello);
    comm.receive({ type: 'runs', runs: [] });
    for (const s of ['created', 'running', 'succeeded']) {
      comm.receive({ type: 'run_update', run: run(s) });
    }
    expect(statuses).toEqual(['-', '-', 'created', 'running', 'succeeded']);
  });

  it('hands open to the tab handler and acknowledges on the same comm', () => {
    const { session, opened } = setup();
    const comm = new FakeComm('c1');
    session.attachKernelComm(comm, kernelHello);
    comm.receive({
      type: 'open',
      url: '/proxy/6006/',
      title: 'TB',
      reuse_key: 'tensorboard:r1'
    });
    expect(opened.map(o => o.reuse_key)).toEqual(['tensorboard:r1']);
    expect(last(comm.sent)).toEqual({
      type: 'opened',
      reuse_key: 'tensorboard:r1',
      where: 'lab-tab'
    });
  });

  it('passes diagnostics and logs on, ignores junk', () => {
    const { session, diagnostics, logs } = setup();
    const comm = new FakeComm('c1');
    session.attachKernelComm(comm, kernelHello);
    comm.receive({
      type: 'diagnostics',
      cell_id: 'cell',
      magic: 'polyaxon_dag',
      errors: []
    });
    comm.receive({ type: 'logs', uuid: 'r1', text: 'hi' });
    comm.receive({ type: 'nonsense' });
    comm.receive(undefined);
    expect(diagnostics.map(d => d.cell_id)).toEqual(['cell']);
    expect(logs.map(l => l.text)).toEqual(['hi']);
  });

  it('ignores everything but hello from a kernel with another protocol version', () => {
    const warn = jest
      .spyOn(console, 'warn')
      .mockImplementation(() => undefined);
    const { session, opened } = setup();
    const comm = new FakeComm('c1');
    session.attachKernelComm(comm, { ...kernelHello, protocol: 2 });
    expect(warn).toHaveBeenCalledTimes(1);
    warn.mockRestore();
    comm.receive({ type: 'open', url: '/proxy/1/' });
    comm.receive({ type: 'runs', runs: [run('running')] });
    expect(opened).toEqual([]);
    expect(session.state.runs).toEqual([]);
    expect(session.stop('r1')).toBe(false);
    comm.receive(kernelHello);
    comm.receive({ type: 'runs', runs: [run('running')] });
    expect(session.state.runs).toHaveLength(1);
  });

  it('sends approve and invalidate and marks the approval pending', () => {
    const { session } = setup();
    const comm = new FakeComm('c');
    session.attachKernelComm(comm, kernelHello);
    expect(session.approve('g')).toBe(true);
    expect(last(comm.sent)).toEqual({
      type: 'approve',
      uuid: 'g',
      approved: true
    });
    expect(session.state.approving.has('g')).toBe(true);
    expect(session.approve('g', false)).toBe(true);
    expect(last(comm.sent)).toEqual({
      type: 'approve',
      uuid: 'g',
      approved: false
    });
    comm.close();
    expect(session.approve('g')).toBe(false);
  });

  it('sends stop on the newest open comm and marks it pending', () => {
    const { session } = setup();
    const older = new FakeComm('old');
    const newer = new FakeComm('new');
    session.attachKernelComm(older, kernelHello);
    session.attachKernelComm(newer, kernelHello);
    expect(session.stop('r1')).toBe(true);
    expect(last(newer.sent)).toEqual({ type: 'stop', uuid: 'r1' });
    expect(session.state.stopping.has('r1')).toBe(true);
    newer.close();
    session.requestLogs('r1');
    expect(last(older.sent)).toEqual({ type: 'logs_request', uuid: 'r1' });
    older.close();
    expect(session.isOpen).toBe(false);
    expect(session.stop('r1')).toBe(false);
  });

  it('reset forgets comms, features and runs (kernel restart)', () => {
    const { session } = setup();
    const comm = new FakeComm('c1');
    session.attachKernelComm(comm, kernelHello);
    comm.receive({ type: 'runs', runs: [run('running')] });
    session.reset();
    expect(session.state.runs).toEqual([]);
    expect(session.state.connected).toBe(false);
    expect(session.kernelFeatures.size).toBe(0);
    expect(session.stop('r1')).toBe(false);
  });
});
