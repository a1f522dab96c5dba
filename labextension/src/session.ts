/**
 * The `polynb` comm(s) of one kernel: the handshake, the runs model and the requests the lab
 * sends. Kept free of JupyterLab widgets (comms are a small interface) so jest drives it with
 * fake comms.
 */

import { ISignal, Signal } from '@lumino/signaling';

import {
  IDiagnostics,
  ILogs,
  IOpen,
  KernelMessage,
  PROTOCOL_VERSION,
  labHello,
  parseKernelMessage
} from './protocol';
import { EMPTY, IRunsState, RunsAction, runsReducer } from './runs';

/** The part of `Kernel.IComm` used here. */
export interface ICommLike {
  readonly commId: string;
  readonly isDisposed: boolean;
  send(data: any): unknown;
  close(data?: any): unknown;
  onMsg: (msg: any) => void | PromiseLike<void>;
  onClose: (msg: any) => void | PromiseLike<void>;
}

export interface ISessionHandlers {
  /** A page to show; `reply` answers on the comm the request came on. */
  open(msg: IOpen, reply: (data: Record<string, unknown>) => void): void;
  diagnostics(msg: IDiagnostics): void;
  logs(msg: ILogs): void;
}

interface ICommState {
  comm: ICommLike;
  /** false once the kernel said `hello` with another protocol version: ignore the rest. */
  compatible: boolean;
}

export class PolynbSession {
  constructor(
    private readonly handlers: ISessionHandlers,
    private readonly version: string,
    private readonly baseUrl: string
  ) {}

  get state(): IRunsState {
    return this._state;
  }

  /** Emitted whenever `state` changes. */
  get changed(): ISignal<this, IRunsState> {
    return this._changed;
  }

  /** Features of the kernel side, from its `hello` (empty until then). */
  get kernelFeatures(): ReadonlySet<string> {
    return this._kernelFeatures;
  }

  /** Whether any comm is open. */
  get isOpen(): boolean {
    return this.comms.some(c => !c.comm.isDisposed);
  }

  /** The kernel opened a comm (its `hello` is the open message's data). */
  attachKernelComm(comm: ICommLike, openData: unknown): void {
    const state = this.track(comm);
    comm.send(labHello(this.version, this.baseUrl));
    this.receive(state, openData);
    // the kernel may already know runs (re-attached after a restart of the kernel)
    comm.send({ type: 'state_request' });
  }

  /**
   * The lab opened a comm (after a page reload, the kernel's first comm went with the old
   * page). `open` sends our `hello` as the comm_open data.
   */
  attachLabComm(comm: ICommLike, open: (data: any) => unknown): void {
    this.track(comm);
    open(labHello(this.version, this.baseUrl));
    comm.send({ type: 'state_request' });
  }

  /** Ask the kernel to stop a run (a DAG, an op or a hook). */
  stop(uuid: string): boolean {
    if (!this.send({ type: 'stop', uuid })) {
      return false;
    }
    this.dispatch({ type: 'stop_sent', uuid });
    return true;
  }

  /**
   * Approve (or invalidate) a run waiting for it, as `polynb approve|invalidate` does: an op, or a
   * DAG (every op of it that waits). The change arrives as `run_update`s, a failure as `error`.
   */
  approve(uuid: string, approved = true): boolean {
    if (!this.send({ type: 'approve', uuid, approved })) {
      return false;
    }
    this.dispatch({ type: 'approve_sent', uuid });
    return true;
  }

  /** Ask for a run's logs (only if the kernel announced the `logs` feature). */
  requestLogs(uuid: string): boolean {
    return this.send({ type: 'logs_request', uuid });
  }

  /** The kernel restarted or went away: its comms are gone, so are its runs. */
  reset(): void {
    this.comms = [];
    this._kernelFeatures = new Set();
    this.dispatch({ type: 'reset' });
  }

  private track(comm: ICommLike): ICommState {
    const state: ICommState = { comm, compatible: true };
    this.comms.push(state);
    comm.onMsg = msg => this.receive(state, msg?.content?.data);
    comm.onClose = () => {
      this.comms = this.comms.filter(c => c !== state);
    };
    this.dispatch({ type: 'connected' });
    return state;
  }

  /** Send on the newest open compatible comm (several are possible: see the protocol). */
  private send(data: Record<string, unknown>): boolean {
    for (let i = this.comms.length - 1; i >= 0; i--) {
      const { comm, compatible } = this.comms[i];
      if (compatible && !comm.isDisposed) {
        comm.send(data);
        return true;
      }
    }
    return false;
  }

  private receive(state: ICommState, data: unknown): void {
    const msg = parseKernelMessage(data);
    if (msg === null) {
      return;
    }
    if (msg.type === 'hello') {
      state.compatible = msg.protocol === PROTOCOL_VERSION;
      if (state.compatible) {
        this._kernelFeatures = new Set(msg.features);
      } else {
        console.warn(
          `polynb: kernel speaks comm protocol ${msg.protocol}, this extension ${PROTOCOL_VERSION}; ignoring it`
        );
      }
      return;
    }
    if (state.compatible) {
      this.handle(state.comm, msg);
    }
  }

  private handle(comm: ICommLike, msg: KernelMessage): void {
    switch (msg.type) {
      case 'open':
        this.handlers.open(msg, data => {
          if (!comm.isDisposed) {
            comm.send(data);
          }
        });
        break;
      case 'runs':
        this.dispatch({ type: 'runs', runs: msg.runs });
        break;
      case 'run_update':
        this.dispatch({ type: 'run_update', run: msg.run });
        break;
      case 'diagnostics':
        this.handlers.diagnostics(msg);
        break;
      case 'error':
        this.dispatch({ type: 'error', message: msg.message });
        break;
      case 'logs':
        this.handlers.logs(msg);
        break;
    }
  }

  private dispatch(action: RunsAction): void {
    const next = runsReducer(this._state, action);
    if (next !== this._state) {
      this._state = next;
      this._changed.emit(next);
    }
  }

  private comms: ICommState[] = [];
  private _state: IRunsState = EMPTY;
  private _kernelFeatures: ReadonlySet<string> = new Set();
  private readonly _changed = new Signal<this, IRunsState>(this);
}
