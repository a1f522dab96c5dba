/**
 * The `polynb` comm protocol (docs/comm-protocol.md), version 1: message types and the
 * validation of what the kernel sends. Kernel data is untrusted input for the UI, so every
 * message is checked field by field; anything malformed is dropped (null), unknown fields
 * are ignored, unknown `type`s are ignored (forward compatibility).
 */

export const COMM_TARGET = 'polynb';
export const PROTOCOL_VERSION = 1;

/** What this extension handles, announced in its `hello`. */
export const FRONTEND_FEATURES = [
  'open',
  'runs',
  'run_update',
  'diagnostics',
  'stop',
  'logs',
  'approve'
];

export interface IHello {
  type: 'hello';
  protocol: number;
  version: string;
  features: string[];
}

export interface IOpSummary {
  uuid: string;
  name: string;
  kind: string;
  status: string;
  url: string | null;
  /** `isApproved: false` and not approved (nor invalidated) yet: an Approve button shows. */
  awaiting_approval?: boolean;
}

/** Where events come from outside the run's ops: a connection, custom events, approvals, a run. */
export type SourceKind = 'connection' | 'emit' | 'approval' | 'run';

export interface ISourceSummary {
  /** `connections.repo`, `polynb emit`, `polynb approve` or `runs.<uuid>`. */
  name: string;
  kind: SourceKind;
  /** The ops waiting (or that waited) for it. */
  awaited_by: string[];
  /** How many events it delivered so far. */
  events: number;
  last_event: string | null;
}

export interface IRunSummary {
  uuid: string;
  name: string;
  kind: string;
  status: string;
  created_at: string | null;
  finished_at: string | null;
  counts: Record<string, number>;
  ops: IOpSummary[];
  /** An op of the run (or the run itself) waits for an approval. */
  awaiting_approval?: boolean;
  sources?: ISourceSummary[];
}

export interface IOpen {
  type: 'open';
  url: string;
  title: string;
  reuse_key: string;
  run_uuid: string | null;
  kind: string | null;
  direct_url: string | null;
}

export interface IRuns {
  type: 'runs';
  runs: IRunSummary[];
}

export interface IRunUpdate {
  type: 'run_update';
  run: IRunSummary;
}

export type Severity = 'error' | 'warning' | 'info';

export interface ICellError {
  /** 1-based line of the cell, the magic line being 1 (see diagnostics.ts FIRST_LINE_OFFSET). */
  line: number;
  /** 1-based column; 0 = unknown. */
  column: number;
  message: string;
  severity: Severity;
}

export interface IDiagnostics {
  type: 'diagnostics';
  cell_id: string;
  magic: string | null;
  errors: ICellError[];
}

export interface IError {
  type: 'error';
  request: string | null;
  message: string;
}

/** Logs of one run (proposed extension of protocol 1, see docs/labextension.md). */
export interface ILogs {
  type: 'logs';
  uuid: string;
  text: string;
  truncated: boolean;
}

export type KernelMessage =
  IHello | IOpen | IRuns | IRunUpdate | IDiagnostics | IError | ILogs;

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | null {
  return typeof v === 'string' ? v : null;
}

function optStr(v: unknown): string | null {
  return typeof v === 'string' && v !== '' ? v : null;
}

function nonNegInt(v: unknown): number | null {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : null;
}

/**
 * Only same-origin paths and http(s) URLs may end up in an iframe or a link: a
 * `javascript:` URL in an iframe with allow-scripts + allow-same-origin would run in
 * JupyterLab's origin.
 */
export function isSafeUrl(url: string): boolean {
  if (url.startsWith('/')) {
    return !url.startsWith('//');
  }
  return /^https?:\/\/[^/]/i.test(url);
}

function url(v: unknown): string | null {
  const s = optStr(v);
  return s !== null && isSafeUrl(s) ? s : null;
}

export function parseOp(v: unknown): IOpSummary | null {
  if (!isObject(v)) {
    return null;
  }
  const uuid = optStr(v.uuid);
  const status = optStr(v.status);
  if (uuid === null || status === null) {
    return null;
  }
  return {
    uuid,
    name: str(v.name) ?? uuid,
    kind: str(v.kind) ?? '',
    status,
    url: url(v.url),
    ...(v.awaiting_approval === true ? { awaiting_approval: true } : {})
  };
}

const SOURCE_KINDS: ReadonlySet<string> = new Set([
  'connection',
  'emit',
  'approval',
  'run'
]);

export function parseSource(v: unknown): ISourceSummary | null {
  if (!isObject(v)) {
    return null;
  }
  const name = optStr(v.name);
  const kind = str(v.kind);
  if (name === null || kind === null || !SOURCE_KINDS.has(kind)) {
    return null;
  }
  return {
    name,
    kind: kind as SourceKind,
    awaited_by: Array.isArray(v.awaited_by)
      ? v.awaited_by.filter((n): n is string => typeof n === 'string')
      : [],
    events: nonNegInt(v.events) ?? 0,
    last_event: optStr(v.last_event)
  };
}

export function parseRun(v: unknown): IRunSummary | null {
  if (!isObject(v)) {
    return null;
  }
  const uuid = optStr(v.uuid);
  const status = optStr(v.status);
  if (uuid === null || status === null) {
    return null;
  }
  const counts: Record<string, number> = {};
  if (isObject(v.counts)) {
    for (const [k, n] of Object.entries(v.counts)) {
      const c = nonNegInt(n);
      if (c !== null) {
        counts[k] = c;
      }
    }
  }
  const ops = Array.isArray(v.ops)
    ? v.ops.map(parseOp).filter((o): o is IOpSummary => o !== null)
    : [];
  return {
    uuid,
    name: str(v.name) ?? uuid,
    kind: str(v.kind) ?? '',
    status,
    created_at: optStr(v.created_at),
    finished_at: optStr(v.finished_at),
    counts,
    ops,
    // optional fields stay absent when the kernel sent none (an older polynb)
    ...(v.awaiting_approval === true ? { awaiting_approval: true } : {}),
    ...(Array.isArray(v.sources)
      ? {
          sources: v.sources
            .map(parseSource)
            .filter((x): x is ISourceSummary => x !== null)
        }
      : {})
  };
}

function parseCellError(v: unknown): ICellError | null {
  if (!isObject(v)) {
    return null;
  }
  const line = nonNegInt(v.line);
  const message = str(v.message);
  if (line === null || message === null) {
    return null;
  }
  const sev = v.severity;
  return {
    line,
    column: nonNegInt(v.column) ?? 0,
    message,
    severity: sev === 'warning' || sev === 'info' ? sev : 'error'
  };
}

/** Validate one kernel → lab message; null for anything this extension cannot use. */
export function parseKernelMessage(data: unknown): KernelMessage | null {
  if (!isObject(data)) {
    return null;
  }
  switch (data.type) {
    case 'hello': {
      const protocol = typeof data.protocol === 'number' ? data.protocol : null;
      if (protocol === null) {
        return null;
      }
      return {
        type: 'hello',
        protocol,
        version: str(data.version) ?? '',
        features: Array.isArray(data.features)
          ? data.features.filter((f): f is string => typeof f === 'string')
          : []
      };
    }
    case 'open': {
      const u = url(data.url);
      if (u === null) {
        return null;
      }
      return {
        type: 'open',
        url: u,
        title: optStr(data.title) ?? u,
        // without a key, the URL itself identifies the tab
        reuse_key: optStr(data.reuse_key) ?? `url:${u}`,
        run_uuid: optStr(data.run_uuid),
        kind: optStr(data.kind),
        direct_url: url(data.direct_url)
      };
    }
    case 'runs': {
      if (!Array.isArray(data.runs)) {
        return null;
      }
      return {
        type: 'runs',
        runs: data.runs
          .map(parseRun)
          .filter((r): r is IRunSummary => r !== null)
      };
    }
    case 'run_update': {
      const run = parseRun(data.run);
      return run === null ? null : { type: 'run_update', run };
    }
    case 'diagnostics': {
      const cellId = optStr(data.cell_id);
      if (cellId === null || !Array.isArray(data.errors)) {
        return null;
      }
      return {
        type: 'diagnostics',
        cell_id: cellId,
        magic: optStr(data.magic),
        errors: data.errors
          .map(parseCellError)
          .filter((e): e is ICellError => e !== null)
      };
    }
    case 'error':
      return {
        type: 'error',
        request: optStr(data.request),
        message: str(data.message) ?? 'unknown error'
      };
    case 'logs': {
      const uuid = optStr(data.uuid);
      if (uuid === null) {
        return null;
      }
      return {
        type: 'logs',
        uuid,
        text: str(data.text) ?? '',
        truncated: data.truncated === true
      };
    }
    default:
      return null;
  }
}

/** The lab's `hello`; `baseUrl` is the server's base path so the kernel can build proxy links. */
export function labHello(version: string, baseUrl: string): Json {
  return {
    type: 'hello',
    protocol: PROTOCOL_VERSION,
    version,
    frontend: 'jupyterlab',
    features: FRONTEND_FEATURES,
    base_url: baseUrl
  };
}
