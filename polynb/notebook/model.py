"""The run widget's view model: frozen snapshots of a run, and the tracker that builds them from the store.

A :class:`RunTracker` follows one top-level run (a DAG, or a single op) through the store's event log,
reading only the events after the last ``seq`` it saw, so redrawing after a kernel restart and following a
live run are the same code and no event is ever missed. :meth:`RunTracker.snapshot` returns a
:class:`RunSnapshot`, which ``render`` turns into SVG/HTML/text. Only the UI thread touches a tracker.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from polynb.lifecycle import (
    CONNECTION_EVENT_KINDS,
    CONNECTION_REF_PREFIX,
    CUSTOM_EVENT_KINDS,
    DONE_EVENT,
    FINAL,
    PIPELINE_KINDS,
    STATUS_EVENT_PREFIX,
    Status,
    is_status_event,
    status_of_event,
)
from polynb.scheduler.readiness import APPROVED_EVENT, INVALIDATED_EVENT
from polynb.store import EventRecord, RunRecord, Store

EdgeKind = Literal["dependency", "param", "event", "hook", "source"]
SourceKind = Literal["connection", "emit", "approval", "run"]
EMIT_SOURCE = "polynb emit"
"""The node of the custom events sent to the DAG (``ref: dag``: ``polynb.emit`` in a cell, ``polynb emit``)."""
APPROVAL_SOURCE = "polynb approve"
"""The node of the approvals its ``isApproved: false`` ops wait for (the Approve buttons, ``polynb approve``)."""
_OVER = PIPELINE_KINDS
"""Kinds of an op of a DAG with runs under it, shown under the op: a nested DAG's ops, a sweep's trials, a
schedule's ticks'."""
LOG_KEPT = 200
"""Event log lines kept per run (the widget shows the newest few)."""


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of an op's life in one status; times are seconds since the top-level run was created."""

    status: str
    start: float
    end: float | None
    """None: the op is still in this status."""


@dataclass(frozen=True, slots=True)
class Marker:
    """A point on an op's bar: an event another op waited for, or a hook it started; on a source's row, an
    event it delivered."""

    at: float
    label: str
    kind: Literal["event", "hook", "source"]


@dataclass(frozen=True, slots=True)
class SourceView:
    """Where events come from outside the DAG's ops: a connection (``connections.repo``), the custom events
    sent to the DAG, the approvals, an earlier run (``runs.<uuid>``); a node of the graph, a row of the
    timeline with a marker per event it delivered."""

    name: str
    """Its node's name: ``connections.NAME``, :data:`EMIT_SOURCE`, :data:`APPROVAL_SOURCE` or ``runs.UUID``
    (none is a valid op name, so none collides with one)."""
    kind: SourceKind
    awaited_by: tuple[str, ...] = ()
    """The ops (labels) waiting for it or that waited for it."""
    markers: tuple[Marker, ...] = ()


@dataclass(frozen=True, slots=True)
class OpView:
    uuid: str
    name: str
    kind: str
    role: str
    """``dag`` (the run itself), ``op``, ``single`` or ``hook``."""
    status: str
    reason: str | None = None
    message: str | None = None
    segments: tuple[Segment, ...] = ()
    markers: tuple[Marker, ...] = ()
    url: str | None = None
    outputs: tuple[tuple[str, Any], ...] = ()
    hook_of: str | None = None
    """The name of the main run of a hook run."""
    trigger: str | None = None
    awaiting_approval: bool = False
    """``isApproved: false`` and neither approved nor invalidated yet, not final: an Approve button shows."""

    @property
    def is_final(self) -> bool:
        return self.status in FINAL


@dataclass(frozen=True, slots=True)
class EdgeView:
    src: str
    dst: str
    kind: EdgeKind
    label: str = ""


@dataclass(frozen=True, slots=True)
class LogLine:
    seq: int
    at: float
    name: str
    status: str
    reason: str | None
    message: str | None


@dataclass(frozen=True, slots=True)
class Link:
    """A page to open: ``url`` is what to show (proxied when possible), ``direct_url`` the plain address."""

    title: str
    url: str
    direct_url: str
    run_uuid: str
    kind: str


@dataclass(frozen=True, slots=True)
class TrialView:
    """One trial of a sweep: its params and its metric (None until it succeeded with one)."""

    index: int
    name: str
    status: str
    params: tuple[tuple[str, Any], ...]
    metric: float | None


@dataclass(frozen=True, slots=True)
class SweepView:
    """A matrix run's trials, best first, and the best metric after each trial that ended."""

    kind: str
    metric: str | None
    maximize: bool
    total: int | None
    params: tuple[str, ...]
    trials: tuple[TrialView, ...]
    """Sorted by the metric, best first; trials without a metric last, in the order they were created."""
    best_so_far: tuple[tuple[int, float], ...] = ()
    """``(n, best)``: the best metric once ``n`` trials had ended (one point per improvement and the last)."""

    @property
    def best(self) -> TrialView | None:
        first = self.trials[0] if self.trials else None
        return first if first is not None and first.metric is not None else None


def sweep_view(trials: Iterable[tuple[RunRecord, str, float | None]], meta: Mapping[str, Any]) -> SweepView:
    """The sweep view of a matrix run's trial records (each with its status and the time it ended), from
    the ``sweep`` meta the engine stores on the matrix run (kind, metric, optimization, total)."""
    metric = meta.get("metric")
    maximize = bool(meta.get("maximize"))
    views: list[TrialView] = []
    ended: list[tuple[float, float | None]] = []
    names: list[str] = []
    for record, status, end in trials:
        info = record.meta.get("trial") or {}
        params = dict(info.get("params") or {})
        for name in params:
            if name not in names:
                names.append(name)
        value = record.outputs.get(metric) if metric else None
        number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        number = number if status == Status.SUCCEEDED.value else None
        views.append(TrialView(int(info.get("index", len(views) + 1)), record.name, status,
                               tuple(params.items()), number))  # fmt: skip
        if end is not None:
            ended.append((end, number))
    sign = -1.0 if maximize else 1.0
    views.sort(key=lambda t: (t.metric is None, sign * (t.metric or 0.0), t.index))
    curve: list[tuple[int, float]] = []
    best: float | None = None
    for n, (_, value) in enumerate(sorted(ended, key=lambda e: e[0]), start=1):
        if value is not None and (best is None or sign * value < sign * best):
            best = value
            curve.append((n, best))
    if best is not None and curve[-1][0] != len(ended):
        curve.append((len(ended), best))
    return SweepView(str(meta.get("kind") or "matrix"), metric, maximize, meta.get("total"), tuple(names),
                     tuple(views), tuple(curve))  # fmt: skip


@dataclass(frozen=True, slots=True)
class OpSweep:
    """An op of a DAG that sweeps (its ``matrix``): its trials, as a top-level sweep's (``render`` draws them
    when the op is selected in the widget)."""

    uuid: str
    name: str
    """As the op is shown (``outer-op/inner-op`` in a nested DAG)."""
    sweep: SweepView


@dataclass(frozen=True, slots=True)
class RunSnapshot:
    uuid: str
    name: str
    kind: str
    status: str
    reason: str | None
    message: str | None
    elapsed: float
    """Seconds from creation to now (or to the end once every op is final)."""
    ops: tuple[OpView, ...]
    """The run itself first (for a DAG), then its ops, each followed by its hook runs."""
    edges: tuple[EdgeView, ...] = ()
    log: tuple[LogLine, ...] = ()
    links: tuple[Link, ...] = ()
    notes: tuple[str, ...] = ()
    last_seq: int = 0
    sweep: SweepView | None = None
    """Set for a matrix run: its trials (``render.sweep_html`` draws them)."""
    sources: tuple[SourceView, ...] = ()
    """The external sources the ops await (``edges`` of kind ``source`` link them to the ops)."""
    op_sweeps: tuple[OpSweep, ...] = ()
    """The ops of a DAG that sweep and have started, in the DAG's order, each with its trials."""

    def op_sweep(self, uuid: str | None) -> OpSweep | None:
        """The sweep of the op ``uuid``, if it is one."""
        return next((s for s in self.op_sweeps if s.uuid == uuid), None)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL

    @property
    def settled(self) -> bool:
        """Nothing will change any more: the run and every op and hook are final."""
        return all(op.is_final for op in self.ops)

    @property
    def members(self) -> tuple[OpView, ...]:
        """The ops and hooks, without the DAG run itself."""
        return tuple(op for op in self.ops if op.role != "dag")


@dataclass
class _RunState:
    record: RunRecord
    status: str
    reason: str | None
    message: str | None
    segments: list[tuple[str, float]] = field(default_factory=list)
    end: float | None = None
    emitted: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Shape:
    """What a snapshot takes from the set of runs alone (their places and plans): kept until a run is added or
    replaced, so a snapshot of a large DAG rebuilds only the views of the runs that changed."""

    ordered: list[str]
    names: dict[str, str]
    waits: dict[str, list[tuple[str, set[str]]]]
    hooks: dict[str, list[_RunState]]
    edges: tuple[EdgeView, ...]
    source_edges: list[EdgeView]


class RunTracker:
    """Follows one top-level run through the store (UI thread only); see the module docstring."""

    def __init__(self, store: Store, root_uuid: str) -> None:
        self.store = store
        root = store.get_run(root_uuid)
        self.uuid = root.uuid
        self.is_dag = root.kind in PIPELINE_KINDS  # a sweep's trials, a schedule's ticks: as a DAG's ops are
        self.origin = root.created_at.timestamp()
        self.last_seq = 0
        self._runs: dict[str, _RunState] = {}
        self._order: list[str] = []
        self._log: deque[LogLine] = deque(maxlen=LOG_KEPT)
        self._attempts: dict[str, int] = {root.uuid: root.dag_attempt}
        """Per DAG (the top-level one, a nested one by its op's uuid): the attempt whose ops are shown (its
        ``maxRetries`` runs them anew as new runs)."""
        self._superseded: set[str] = set()
        """Runs of earlier attempts (ops and their hooks): in the log, not among the ops."""
        self._external: list[tuple[str, Marker]] = []
        """Events from outside the ops (connections, custom events, approvals): (source node, marker)."""
        self._peeked: dict[str, RunRecord] = {}
        """Records read to tell whether a run is an op running a nested DAG, before it is tracked."""
        self._trials: dict[str, dict[str, _RunState]] = {}
        """The trials of each op of the DAG that sweeps (by the op's uuid): followed for its sweep panel, not
        drawn as ops (a sweep may have thousands)."""
        self._trial_of: dict[str, str] = {}
        """trial uuid -> the uuid of its op"""
        self._strangers: set[str] = set()
        """Runs met under a sweeping op that are not its trials (their hook runs): not followed."""
        self._shape: _Shape | None = None
        self._views: dict[str, OpView] = {}
        """The view of each run as of the last snapshot, rebuilt when :attr:`_stale` names it or the shape changed."""
        self._stale: set[str] = set()
        self._sweeping: list[str] | None = None
        self._add(root)
        if self.is_dag:
            for child in store.children(root.uuid):
                self._add(child)

    @property
    def member_uuids(self) -> set[str]:
        return set(self._runs)

    def refresh(self) -> bool:
        """Apply the events appended since the last call; True if anything changed."""
        if self.is_dag:
            events = self._dag_events()
        else:
            events = self.store.events(run_uuid=self.uuid, after_seq=self.last_seq)
            hooks = [h for h in self.store.hooks_of(self.uuid) if h.uuid not in self._runs]
            for hook in hooks:
                self._add(hook)
            for uuid in [u for u in self._order if u != self.uuid]:
                events += self.store.events(run_uuid=uuid, after_seq=self.last_seq)
            events.sort(key=lambda e: e.seq)
        self.apply(events)
        return bool(events)

    def _dag_events(self) -> list[EventRecord]:
        """The DAG's events and those of the nested DAGs its ops run (their ops' pipeline is the op's run),
        every read stopping at one bound so an event committed meanwhile is read next time, never skipped."""
        bound = self.store.last_seq()
        events = [e for e in self.store.events(dag_uuid=self.uuid, after_seq=self.last_seq) if e.seq <= bound]
        read: set[str] = set()
        while pending := [u for u in self._nested_dags(events) + self._sweeping_ops() if u not in read]:
            for uuid in pending:
                read.add(uuid)
                known = {e.seq for e in events}
                more = self.store.events(dag_uuid=uuid, after_seq=self.last_seq)
                events += [e for e in more if e.seq <= bound and e.seq not in known]
        events.sort(key=lambda e: e.seq)
        if not events and bound > self.last_seq:
            self.last_seq = bound
        return events

    def _nested_dags(self, events: Iterable[EventRecord]) -> list[str]:
        """The runs (tracked, or met in ``events``) that are ops running a nested DAG or a schedule (its ticks'
        runs are under it)."""
        found: list[str] = []
        for uuid in dict.fromkeys([*self._order, *(e.run_uuid for e in events)]):
            if uuid == self.uuid or uuid in self._superseded:
                continue
            state = self._runs.get(uuid)
            record = state.record if state is not None else self._peek(uuid)
            if record.kind in _OVER and record.dag_uuid is not None and record.hook_of is None:
                found.append(uuid)
        return found

    def _sweeping_ops(self) -> list[str]:
        """The ops tracked that sweep (their trials' runs are under them, not under the DAG); found again only
        when the runs tracked changed (each refresh asks)."""
        if self._sweeping is None:
            self._sweeping = [u for u in self._order if u != self.uuid and _sweeps(self._runs[u].record)]
        return self._sweeping

    def _peek(self, uuid: str) -> RunRecord:
        record = self._peeked.get(uuid)
        if record is None:
            record = self._peeked[uuid] = self.store.get_run(uuid)
        return record

    def _label(self, uuid: str) -> str:
        """A run's name as shown: under a nested DAG or a schedule, prefixed with the op running it
        (``outer-op/inner-op``, ``op/op-1``)."""
        record = self._runs[uuid].record
        parent = self._runs.get(record.dag_uuid or "")
        if parent is None or parent.record.uuid == self.uuid or parent.record.kind not in _OVER:
            return record.name
        return f"{self._label(parent.record.uuid)}/{record.name}"

    def apply(self, events: Iterable[EventRecord]) -> None:
        for event in events:
            if event.seq <= self.last_seq:
                continue
            self.last_seq = event.seq
            at = event.at.timestamp() - self.origin
            if event.run_uuid in self._strangers:
                continue
            trial = self._trial_of.get(event.run_uuid)
            if trial is not None:
                self._follow(self._trials[trial][event.run_uuid], event, at)  # its sweep's panel, not the log
                continue
            state = self._runs.get(event.run_uuid)
            if state is None and event.run_uuid not in self._superseded:
                record = self.store.get_run(event.run_uuid)
                if self._is_trial(record):
                    self._follow(self._trials[self._trial_of[record.uuid]][record.uuid], event, at)
                    continue
                if record.uuid in self._strangers:
                    continue
                state = self._admit(record)
            if state is None:  # a run of an earlier attempt of the DAG
                if is_status_event(event.kind) and event.kind != DONE_EVENT:
                    p = event.payload
                    name, status = str(p.get("name", "")), status_of_event(event.kind)
                    self._log.append(LogLine(event.seq, at, name, status, p.get("reason"), p.get("message")))
                continue
            self._stale.add(event.run_uuid)
            if state.record.hook_of is not None:
                self._stale.add(state.record.hook_of)  # its main run's view marks the hook's start
            state.emitted.setdefault(event.kind, at)
            source = _external_source(event, event.run_uuid == self.uuid or state.record.kind == "dag")
            if source is not None:
                what = event.payload.get("id") or event.payload.get("name") or event.payload.get("actor") or ""
                label = f"{event.kind}" + (f" {_clip_id(str(what))}" if what else "")
                if source == APPROVAL_SOURCE:
                    label += f" ({self._label(event.run_uuid)})"
                self._external.append((source, Marker(at, label, "source")))
            if not is_status_event(event.kind):
                # An artifact, a metric, an alert, an approval, a custom event: a line of the log, its payload
                # as the why (the timeline keeps to statuses).
                payload = ", ".join(f"{k}={v}" for k, v in sorted(event.payload.items()))
                self._log.append(LogLine(event.seq, at, self._label(event.run_uuid), event.kind, None, payload or None))
                continue
            if event.kind == DONE_EVENT:
                continue
            self._follow(state, event, at)
            status = state.status
            self._log.append(LogLine(event.seq, at, self._label(event.run_uuid), status, state.reason, state.message))

    def _follow(self, state: _RunState, event: EventRecord, at: float) -> None:
        """A status event of a followed run: its status, its segments, and its record when what it shows
        changed (outputs and a service's url with a final or running status, a sweep's ``sweep`` meta)."""
        if not is_status_event(event.kind) or event.kind == DONE_EVENT:
            return
        status = status_of_event(event.kind)
        p = event.payload
        state.status, state.reason, state.message = status, p.get("reason"), p.get("message")
        if not state.segments or state.segments[-1][0] != status:
            state.segments.append((status, at))
        if status in FINAL:
            state.end = at
        if status in FINAL or (status == Status.RUNNING and (state.record.kind == "service" or _sweeps(state.record))):
            state.record = self.store.get_run(state.record.uuid)

    def _is_trial(self, record: RunRecord) -> bool:
        """Is ``record`` (met for the first time) a trial of a sweeping op of this DAG? Then it is followed
        from now on; a run under such an op that is not a trial (a trial's hook run) is left out."""
        op = self._runs.get(record.dag_uuid or "")
        if op is None or record.dag_uuid == self.uuid or not _sweeps(op.record):
            return False
        if record.hook_of is not None:
            self._strangers.add(record.uuid)
            return False
        self._trials.setdefault(op.record.uuid, {})[record.uuid] = _RunState(
            record, record.status.value, record.reason, record.message
        )
        self._trial_of[record.uuid] = op.record.uuid
        return True

    def record(self, uuid: str) -> RunRecord | None:
        state = self._runs.get(uuid)
        return state.record if state else None

    def snapshot(self, now: float, *, links: Iterable[Link] = (), notes: Iterable[str] = ()) -> RunSnapshot:
        """The run as of the last :meth:`refresh`; ``now`` is an epoch time (it ends the open segments)."""
        root = self._runs[self.uuid]
        finished = [s.end for s in self._runs.values() if s.end is not None]
        all_final = all(s.status in FINAL for s in self._runs.values())
        elapsed = max(finished, default=0.0) if all_final else max(0.0, now - self.origin)
        shape = self._shape
        if shape is None:
            shape = self._shape = self._new_shape()
            self._views.clear()
        for uuid in shape.ordered:
            if uuid in self._stale or uuid not in self._views:
                self._views[uuid] = self._view(uuid, shape.names, shape.waits, shape.hooks.get(uuid, ()))
        self._stale.clear()
        return RunSnapshot(
            uuid=self.uuid,
            name=root.record.name,
            kind=root.record.kind,
            status=root.status,
            reason=root.reason,
            message=root.message,
            elapsed=elapsed,
            ops=tuple(self._views[uuid] for uuid in shape.ordered),
            edges=shape.edges,
            log=tuple(self._log),
            links=tuple(links),
            notes=tuple(notes),
            last_seq=self.last_seq,
            sweep=self._sweep() if root.record.kind == "matrix" else None,
            sources=self._sources(shape.source_edges),
            op_sweeps=tuple(self._op_sweeps(shape)),
        )

    def _new_shape(self) -> _Shape:
        names = {u: self._label(u) for u in self._order}
        hooks: dict[str, list[_RunState]] = {}  # one pass, not one per op: a DAG of n ops is O(n), not O(n²)
        for state in self._runs.values():
            if state.record.hook_of is not None:
                hooks.setdefault(state.record.hook_of, []).append(state)
        source_edges = self._source_edges()
        return _Shape(
            ordered=self._ordered(),
            names=names,
            waits=_awaited((self._runs[u].record, names[u]) for u in self._order),
            hooks=hooks,
            edges=tuple(self._edges()) + tuple(source_edges),
            source_edges=source_edges,
        )

    def _source_edges(self) -> list[EdgeView]:
        """An edge from each external source to each op (of any attempt shown) awaiting it."""
        edges: list[EdgeView] = []
        for uuid in self._order:
            record = self._runs[uuid].record
            plan = record.meta.get("plan")
            if uuid == self.uuid or record.hook_of is not None or not isinstance(plan, dict):
                continue
            label = self._label(uuid)
            for trigger in _plan_field(plan, "events") or ():
                name = _source_of_ref(str(trigger.get("ref", "")))
                if name is not None:
                    kinds = " | ".join(sorted(status_of_event(str(k)) for k in trigger.get("kinds", ())))
                    edges.append(EdgeView(name, label, "source", kinds))
            if _plan_field(plan, "isApproved") is False:
                edges.append(EdgeView(APPROVAL_SOURCE, label, "source", "approved"))
        return edges

    def _sources(self, edges: Iterable[EdgeView]) -> tuple[SourceView, ...]:
        awaited: dict[str, list[str]] = {}
        for edge in edges:
            awaited.setdefault(edge.src, []).append(edge.dst)
        markers: dict[str, list[Marker]] = {}
        for name, marker in self._external:
            markers.setdefault(name, []).append(marker)
        names = list(dict.fromkeys([*awaited, *markers]))
        return tuple(
            SourceView(name, _source_kind(name), tuple(awaited.get(name, ())), tuple(markers.get(name, ())))
            for name in names
        )

    def _op_sweeps(self, shape: _Shape) -> list[OpSweep]:
        out: list[OpSweep] = []
        sweeping = self._sweeping_ops()
        for uuid in shape.ordered if sweeping else ():
            record = self._runs[uuid].record
            if uuid not in sweeping or "sweep" not in record.meta:
                continue  # not a sweeping op, or not started yet (its ``sweep`` meta comes with its running)
            trials = [(s.record, s.status, s.end) for s in self._trials.get(uuid, {}).values()]
            out.append(OpSweep(uuid, shape.names[uuid], sweep_view(trials, record.meta["sweep"])))
        return out

    def _sweep(self) -> SweepView:
        root = self._runs[self.uuid].record
        trials = [
            (s.record, s.status, s.end)
            for u in self._order
            if u != self.uuid and (s := self._runs[u]).record.hook_of is None
        ]
        return sweep_view(trials, root.meta.get("sweep") or {})

    # -- internals ----------------------------------------------------------------------------------

    def _admit(self, record: RunRecord) -> _RunState | None:
        """Track a run first seen in the log, unless it belongs to an earlier attempt of its DAG (the top-level
        one, or a nested DAG an op runs). An op of a later attempt replaces the ops shown under that DAG (and
        their hooks, and what is under them): the DAG's ``maxRetries`` (the op's, for a nested one) started it
        anew."""
        dag = record.dag_uuid or ""
        parent = self._runs.get(dag)
        is_op = record.hook_of is None and (
            (dag == self.uuid and self.is_dag)
            or (parent is not None and dag != self.uuid and parent.record.kind == "dag")
        )
        current = self._attempts.get(dag, 1)
        if record.hook_of in self._superseded or dag in self._superseded or (is_op and record.dag_attempt < current):
            self._superseded.add(record.uuid)
            return None
        if is_op and record.dag_attempt > current:
            self._attempts[dag] = record.dag_attempt
            old = {u for u in self._order if self._under(u, dag)}
            self._superseded |= old
            self._order = [u for u in self._order if u not in old]
            for uuid in old:
                del self._runs[uuid]
                self._views.pop(uuid, None)
            self._shape = self._sweeping = None
        return self._add(record)

    def _under(self, uuid: str, dag: str) -> bool:
        """``uuid`` is a run under the DAG ``dag`` (an op of it, or under one), not ``dag`` itself or its hooks."""
        record = self._runs[uuid].record
        if uuid == dag or record.hook_of == dag:
            return False
        while True:
            above = record.dag_uuid if record.hook_of is None else record.hook_of
            if above is None:
                return False
            if above == dag:
                return True
            state = self._runs.get(above)
            if state is None:
                return False
            record = state.record

    def _add(self, record: RunRecord) -> _RunState:
        state = _RunState(record, record.status.value, record.reason, record.message)
        self._runs[record.uuid] = state
        self._order.append(record.uuid)
        self._shape = self._sweeping = None
        return state

    def _ordered(self) -> list[str]:
        """The run, then each op followed by its hooks, then the hooks of the run itself."""
        hooks: dict[str, list[str]] = {}
        nested: dict[str, list[str]] = {}
        for uuid in self._order:
            record = self._runs[uuid].record
            if record.hook_of is not None:
                hooks.setdefault(record.hook_of, []).append(uuid)
            elif record.dag_uuid in self._runs and record.dag_uuid != self.uuid:
                nested.setdefault(record.dag_uuid, []).append(uuid)  # the ops of a nested DAG: under its op
        out: list[str] = [self.uuid]

        def visit(uuid: str) -> None:
            out.append(uuid)
            for hook in hooks.get(uuid, ()):
                visit(hook)
            for op in nested.get(uuid, ()):
                visit(op)

        for uuid in self._order:
            record = self._runs[uuid].record
            if (
                uuid != self.uuid
                and record.hook_of is None
                and not (record.dag_uuid in self._runs and record.dag_uuid != self.uuid)
            ):
                visit(uuid)
        for hook in hooks.get(self.uuid, ()):
            visit(hook)
        return out

    def _view(
        self,
        uuid: str,
        names: Mapping[str, str],
        waits: dict[str, list[tuple[str, set[str]]]],
        hooks: Iterable[_RunState],
    ) -> OpView:
        state = self._runs[uuid]
        record = state.record
        segments: list[Segment] = []
        for i, (status, start) in enumerate(state.segments):
            following = state.segments[i + 1][1] if i + 1 < len(state.segments) else None
            # A final status is a point (the bar's end cap); any other one lasts until the next or now.
            end = following if following is not None else (start if status in FINAL else None)
            segments.append(Segment(status, start, end))
        markers: list[Marker] = []
        label = names[uuid]
        for dst, kinds in waits.get(label, ()):
            hits = [state.emitted[k] for k in kinds if k in state.emitted]
            if hits:
                markers.append(Marker(min(hits), f"→ {dst}", "event"))
        for hook in hooks:
            if hook.segments:
                markers.append(Marker(hook.segments[0][1], f"hook {names[hook.record.uuid]}", "hook"))
        role = (
            "dag"
            if uuid == self.uuid and self.is_dag
            else record.meta.get("role") or ("hook" if record.hook_of else "single")
        )
        return OpView(
            uuid=uuid,
            name=label,
            kind=record.kind,
            role=str(role),
            status=state.status,
            reason=state.reason,
            message=state.message,
            segments=tuple(segments),
            markers=tuple(sorted(markers, key=lambda m: m.at)),
            url=record.url,
            outputs=tuple(sorted(record.outputs.items())),
            hook_of=names.get(record.hook_of) if record.hook_of else None,
            trigger=record.hook_trigger,
            awaiting_approval=(
                state.status == Status.CREATED.value
                and isinstance(record.meta.get("plan"), dict)
                and _plan_field(record.meta["plan"], "isApproved") is False
                and not ({APPROVED_EVENT, INVALIDATED_EVENT} & set(state.emitted))
            ),
        )

    def _edges(self) -> list[EdgeView]:
        edges: list[EdgeView] = []
        for uuid in self._order:
            record = self._runs[uuid].record
            label = self._label(uuid)
            if record.hook_of is not None:
                main = self._runs.get(record.hook_of)
                if main is not None and record.hook_of != self.uuid:
                    edges.append(EdgeView(self._label(record.hook_of), label, "hook", record.hook_trigger or "done"))
                continue
            plan = record.meta.get("plan")
            if uuid == self.uuid or not isinstance(plan, dict) or record.meta.get("role") == "tick":
                continue  # a tick's run has its op's upstreams: drawn on the op, not again under it
            events = _plan_events(plan)
            deps = set(_plan_field(plan, "dependencies") or ())
            prefix = label[: len(label) - len(record.name)]  # a nested DAG's op: its upstreams are its siblings
            for src in plan.get("upstream", ()):
                if src in events:
                    edges.append(EdgeView(prefix + src, label, "event", " | ".join(sorted(events[src]))))
                elif src in deps:
                    edges.append(EdgeView(prefix + src, label, "dependency"))
                else:
                    edges.append(EdgeView(prefix + src, label, "param"))
        return edges


def _sweeps(record: RunRecord) -> bool:
    """``record`` is an op of a DAG that runs as a sweep (its operation has a ``matrix``)."""
    if record.dag_uuid is None or record.hook_of is not None:
        return False
    plan = record.meta.get("plan")
    return isinstance(plan, dict) and (plan.get("operation") or {}).get("matrix") is not None


def _plan_field(plan: Mapping[str, Any], name: str) -> Any:
    """A field of a stored op plan: the operation's, else its component's (the engine's merge rule)."""
    for part in ("operation", "component"):
        value = (plan.get(part) or {}).get(name)
        if value is not None:
            return value
    return None


def _source_of_ref(ref: str) -> str | None:
    """The source node an event ref outside the DAG's ops names (None for ``ops.X``)."""
    if ref.startswith(CONNECTION_REF_PREFIX) or ref.startswith("runs."):
        return ref
    return EMIT_SOURCE if ref == "dag" else None


def _source_kind(name: str) -> SourceKind:
    if name == EMIT_SOURCE:
        return "emit"
    if name == APPROVAL_SOURCE:
        return "approval"
    return "connection" if name.startswith(CONNECTION_REF_PREFIX) else "run"


def _external_source(event: EventRecord, on_a_dag: bool) -> str | None:
    """The source node an event recorded in the store came from, if it came from outside the ops."""
    if event.kind in (APPROVED_EVENT, INVALIDATED_EVENT):
        return APPROVAL_SOURCE
    if not on_a_dag:
        return None
    connection = event.payload.get("connection")
    if event.kind in CONNECTION_EVENT_KINDS and isinstance(connection, str):
        return CONNECTION_REF_PREFIX + connection
    return EMIT_SOURCE if event.kind in CUSTOM_EVENT_KINDS else None


def _clip_id(text: str, n: int = 12) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _plan_events(plan: Mapping[str, Any]) -> dict[str, set[str]]:
    """``{upstream name: {short event kinds}}`` of a stored op plan (``running`` for ``run_status_running``)."""
    out: dict[str, set[str]] = {}
    for trigger in _plan_field(plan, "events") or ():
        ref = str(trigger.get("ref", ""))
        if _source_of_ref(ref) is not None:
            continue  # an external source: its own node (``RunTracker._source_edges``)
        name = ref.removeprefix("ops.")
        out.setdefault(name, set()).update(status_of_event(str(k)) for k in trigger.get("kinds", ()))
    return out


def _awaited(records: Iterable[tuple[RunRecord, str]]) -> dict[str, list[tuple[str, set[str]]]]:
    """``{upstream label: [(waiting op's label, {full event kinds})]}`` over the stored plans (a label is the
    name shown: ``outer-op/inner-op`` in a nested DAG)."""
    out: dict[str, list[tuple[str, set[str]]]] = {}
    for record, label in records:
        plan = record.meta.get("plan")
        if not isinstance(plan, dict) or record.meta.get("role") == "tick":
            continue
        prefix = label[: len(label) - len(record.name)]
        for src, kinds in _plan_events(plan).items():
            # Short status kinds (``running``) back to event names; other kinds (``run_new_artifacts``) are
            # their own short form: match both.
            out.setdefault(prefix + src, []).append((label, {STATUS_EVENT_PREFIX + k for k in kinds} | kinds))
    return out
