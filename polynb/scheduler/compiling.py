"""The engine's seam to the compiler: resolve an op's params from its upstream runs, check its conditions,
place it on an executor and turn it into a :class:`CompiledOp` — or say why it cannot run.

Every outcome the scheduler acts on comes back as a value (``Compiled`` or ``Outcome``), never as an
exception: a param that cannot be resolved fails the op, conditions that are false skip it.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polynb.compiler import compile as compiler
from polynb.compiler.cache import cache_of, rendered_cache
from polynb.compiler.context import op_context, run_globals
from polynb.compiler.errors import CompilerError, ConditionError
from polynb.compiler.params import RunView, artifacts_of, has_template, param_values, resolve_params
from polynb.compiler.registry import ComponentRegistry
from polynb.compiler.templates import evaluate_conditions
from polynb.compiler.types import CompiledOp, Placement
from polynb.executors.base import BASE_DIR_LABEL, Executor
from polynb.lifecycle import Status, is_status_event
from polynb.scheduler.joining import join_params
from polynb.scheduler.plan import DagPlan, HookPlan, OpPlan, dump
from polynb.spec.models import Component, Hook, Operation, Service
from polynb.spec.plugins import Cache
from polynb.store import EventRecord, RunNotFoundError, RunRecord, Store, recorded_root, run_paths

logger = logging.getLogger(__name__)

REASON_CONDITIONS_NOT_MET = "ConditionsNotMet"
REASON_CONDITIONS_ERROR = "ConditionsError"
REASON_PARAMS = "ParamsError"
REASON_COMPILE = "CompilationFailed"
REASON_JOINS = "JoinsError"


@dataclass(frozen=True, slots=True)
class Compiled:
    op: CompiledOp
    inputs: dict[str, Any]
    message: str = ""
    cache: Cache | None = None
    """The op's ``cache`` section, rendered (``compiler.cache``); None when it has none or it is disabled."""


@dataclass(frozen=True, slots=True)
class Bound:
    """An op running a nested DAG: its params resolved (the inner DAG's inputs); nothing to compile, its
    ops are (``scheduler.nesting``)."""

    inputs: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Outcome:
    """The op will not run: its final status and why."""

    status: Status
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class HookSelection:
    component: Component
    error: str | None = None
    """Set when the hook's conditions could not be evaluated: the hook run is created ``failed``."""


def event_values(events: Iterable[EventRecord]) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a run's non-status events give its readers: ``(artifacts, globals)``.

    ``artifacts.latest`` is the path of the last ``run_new_artifacts``, ``artifacts.<name>`` the last one of
    that name; ``globals.metrics`` the latest value of each metric (``model_version_new_metric``);
    ``globals.events`` the payload of the latest event of each kind.
    """
    artifacts: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    latest: dict[str, Any] = {}
    for event in events:
        if is_status_event(event.kind):
            continue
        latest[event.kind] = dict(event.payload)
        if event.kind == "run_new_artifacts" and isinstance(event.payload.get("path"), str):
            path = event.payload["path"]
            artifacts[str(event.payload.get("name") or path)] = path
            artifacts["latest"] = path
        elif event.kind == "model_version_new_metric" and isinstance(event.payload.get("metrics"), dict):
            metrics.update(event.payload["metrics"])
    extra: dict[str, Any] = {}
    if latest:
        extra["events"] = latest
    if metrics:
        extra["metrics"] = metrics
    return artifacts, extra


def run_view(record: RunRecord, *, status: Status | None = None, events: Iterable[EventRecord] = ()) -> RunView:
    """A run as params, conditions and hooks see it (``globals.*`` from the store's record, plus what its
    non-status ``events`` recorded: see :func:`event_values`)."""
    paths = run_paths(record.uuid, recorded_root(record.meta))
    artifacts, from_events = event_values(events)
    placement = record.spec.get("placement") if isinstance(record.spec.get("placement"), dict) else None
    extra: dict[str, Any] = {
        "kind": record.kind,
        "status": (status or record.status).value,
        "finished_at": record.finished_at.isoformat() if record.finished_at else None,
        "duration": record.duration,
        "wait_time": record.wait_time,
        "artifacts_path": str(paths.root.parent),
        "run_artifacts_path": str(paths.root),
        "run_outputs_path": str(paths.outputs),
        **from_events,
    }
    if placement is not None:
        extra.update({k: placement[k] for k in ("artifacts_path", "run_artifacts_path", "run_outputs_path")})
        extra.update({"ports": list(placement.get("ports", ())), "base_url": placement.get("base_url")})
    tick = record.meta.get("tick")
    globals_ = run_globals(
        uuid=record.uuid, name=record.name, created_at=record.created_at, started_at=record.started_at,
        schedule_at=tick.get("at") if isinstance(tick, dict) else None, extra=extra,
    )  # fmt: skip
    return RunView(
        uuid=record.uuid,
        name=record.name,
        status=(status or record.status).value,
        inputs=dict(record.inputs),
        outputs=dict(record.outputs),
        globals=globals_,
        artifacts=artifacts,
    )


class OpCompiler:
    """Binds the compiler's functions to the store (upstream runs) and the component registry (hooks)."""

    def __init__(self, *, store: Store, registry: ComponentRegistry | None) -> None:
        self._store = store
        self._registry = registry

    def lookup_run(self, uuid: str) -> RunView | None:
        try:
            return run_view(self._store.get_run(uuid), events=self._store.events(run_uuid=uuid))
        except RunNotFoundError:
            return None

    def _artifacts(self, uuid: str) -> dict[str, Any]:
        view = self.lookup_run(uuid)
        return artifacts_of(view) if view is not None else {}

    # -- ops ----------------------------------------------------------------------------------------

    def compile_op(
        self,
        plan: OpPlan,
        *,
        uuid: str,
        dag_uuid: str | None,
        dag_plan: DagPlan,
        dag_name: str | None,
        upstream: Mapping[str, str],
        executor: Executor,
        event_params: Mapping[str, Any] | None = None,
        schedule_at: str | None = None,
    ) -> Compiled | Bound | Outcome:
        """``event_params``: what an awaited connection event gives the op's inputs (they win over its params,
        as an event's values do in a reactive pipeline). ``schedule_at``: the nominal time of the tick a schedule's
        run is made for (``globals.schedule_at``)."""
        views = _UpstreamViews(self._store, upstream)
        dag_globals = {"uuid": dag_uuid, "name": dag_name, "status": "running"} if dag_uuid else {}
        placement: Placement | None = None
        templated_ports = _templated_ports(plan.component)
        if plan.kind != "dag":
            # Placed before the params: `value: "{{ globals.run_outputs_path }}"` is the op's own folder (the
            # paths Polyaxon's params reference documents), as the command and the conditions see it. A service
            # whose `ports` is a template is placed with no port first (its paths), then again below.
            try:
                count = 0 if templated_ports else compiler.port_count(plan.component)
                placement = executor.place(uuid, compiler.op_kind(plan.component), count)
            except CompilerError as exc:
                return Outcome(Status.FAILED, REASON_COMPILE, exc.message)
        own = run_globals(
            uuid=uuid, name=plan.name, placement=placement, project_name=dag_plan.name, schedule_at=schedule_at
        )
        # A single-op pipeline's bound params (with -P) are the pipeline's inputs: they win over the component's
        # defaults (its own templated params as written are resolved as params). A DAG's ops read the DAG's inputs
        # through `ref: dag` instead; what an awaited connection event gives wins over their params.
        overrides = (
            {k: v for k, v in dag_plan.inputs.items() if not _as_written(plan, k, v)}
            if dag_uuid is None
            else dict(event_params or {})
        )
        joins = plan.operation.joins or plan.component.joins
        joined: dict[str, Any] = {}
        if joins:
            # The runs the joins select become the op's params, as lists (``joining``). The queries read the
            # op's own params by name too (Polyaxon's map-reduce: `pipeline: {{ map_controller }}`), over the
            # DAG's inputs.
            try:
                values = param_values(
                    _OpView(plan), dag_inputs=dag_plan.inputs, dag_globals=dag_globals, upstream=views,
                    lookup_run=self.lookup_run, overrides=overrides, globals_=own,
                )  # fmt: skip
            except CompilerError as exc:
                return Outcome(Status.FAILED, REASON_PARAMS, exc.message)
            named = values if dag_uuid is None else {**dag_plan.inputs, **values}
            context = {**named, "globals": own, "dag": dag_globals}
            try:
                joined = join_params(joins, self._store.list_runs(), context, exclude=uuid, artifacts=self._artifacts)
            except CompilerError as exc:
                return Outcome(Status.FAILED, REASON_JOINS, exc.message)
            operation = plan.operation.model_copy(update={"params": {**(plan.operation.params or {}), **joined}})
            plan = dataclasses.replace(plan, operation=operation)
        bound = {k: v for k, v in overrides.items() if k not in joined} if dag_uuid is None else overrides
        resolve = functools.partial(
            resolve_params, _OpView(plan), dag_inputs=dag_plan.inputs, dag_globals=dag_globals, upstream=views,
            lookup_run=self.lookup_run, overrides=bound,
        )  # fmt: skip
        try:
            inputs, contexts = resolve(globals_=own)
        except CompilerError as exc:
            return Outcome(Status.FAILED, REASON_PARAMS, exc.message)
        if plan.kind == "dag":
            skipped = _conditions_outcome(plan, inputs, contexts, own)
            return skipped or Bound(inputs)
        assert placement is not None  # placed above: the op is not a DAG
        if templated_ports:
            # A service's `ports` written as a template gives its number of ports: rendered with its params, then
            # the op is placed with them, and its params resolved again, so that they see its ports too.
            try:
                unplaced = op_context(plan.component, inputs=inputs, contexts=contexts, globals_=own)
                ports = compiler.port_count(plan.component, unplaced)
                placement = executor.place(uuid, compiler.op_kind(plan.component), ports)
            except CompilerError as exc:
                return Outcome(Status.FAILED, REASON_COMPILE, exc.message)
            own = run_globals(
                uuid=uuid, name=plan.name, placement=placement, project_name=dag_plan.name, schedule_at=schedule_at
            )
            try:
                inputs, contexts = resolve(globals_=own)
            except CompilerError as exc:
                return Outcome(Status.FAILED, REASON_PARAMS, exc.message)
        try:
            skipped = _conditions_outcome(plan, inputs, contexts, own)
            if skipped is not None:
                return skipped
            base_dir = dag_plan.base_dir
            op = compiler.compile_op(
                uuid=uuid,
                name=plan.name,
                component=plan.component,
                inputs=inputs,
                contexts=contexts,
                placement=placement,
                globals_=own,
                dag_uuid=dag_uuid,
                labels={BASE_DIR_LABEL: base_dir} if base_dir else None,
                operation=plan.operation,  # its termination over the component's, templates rendered
            )
            cache = cache_of(plan.operation, plan.component)
            if cache is not None:
                context = op_context(plan.component, inputs=inputs, contexts=contexts, globals_=own)
                cache = rendered_cache(cache, context)
        except CompilerError as exc:
            return Outcome(Status.FAILED, REASON_COMPILE, exc.message)
        return Compiled(op, inputs, f"{len(inputs)} inputs bound", cache)

    # -- hooks --------------------------------------------------------------------------------------

    def resolve_hooks(self, hooks: Iterable[Hook], *, base_dir: Path | None) -> dict[str, dict[str, Any]]:
        """Resolve every hook's ``hubRef`` now: a bad ref fails the submission, and a restarted engine
        (maybe without this registry, e.g. in a terminal) still has the components."""
        resolved: dict[str, dict[str, Any]] = {}
        hooks = list(hooks)
        if hooks and self._registry is None:
            self._registry = ComponentRegistry()
        while hooks:  # the hooks of the hooks' components too: a hook run runs its component's hooks
            hook = hooks.pop(0)
            if hook.hub_ref not in resolved:
                assert self._registry is not None
                component = self._registry.resolve(Operation(hub_ref=hook.hub_ref), base_dir=base_dir)
                resolved[hook.hub_ref] = dump(component)
                hooks.extend(component.hooks or ())
        return resolved

    def select_hook(
        self, hook: Hook, *, main: RunRecord, status: Status, components: Mapping[str, Any]
    ) -> HookSelection | None:
        """The hook's run, or None when its conditions are false. ``trigger`` is checked by the caller."""
        component = Component.model_validate(components[hook.hub_ref])
        if hook.conditions is not None:
            context = compiler.hook_condition_context(run_view(main, status=status))
            try:
                if not evaluate_conditions(hook.conditions, context):
                    return None
            except ConditionError as exc:
                return HookSelection(component, f"hook `{hook.hub_ref}`: {exc.message}")
        return HookSelection(component)

    def compile_hook(self, plan: HookPlan, *, uuid: str, main_uuid: str, executor: Executor) -> Compiled | Outcome:
        main = self._store.get_run(main_uuid)
        try:
            kind = compiler.op_kind(plan.component)
            name = self._store.get_run(uuid).name  # hook_run_name(), given at creation
            if _templated_ports(plan.component):  # rendered with the hook's params before the run is placed
                inputs, contexts = compiler.hook_inputs(plan.hook, plan.component, run_view(main), name=name,
                                                        main_kind=main.kind, lookup_run=self.lookup_run)  # fmt: skip
                unplaced = op_context(plan.component, inputs=inputs, contexts=contexts,
                                      globals_=run_globals(uuid=uuid, name=name))  # fmt: skip
                ports = compiler.port_count(plan.component, unplaced)
            else:
                ports = compiler.port_count(plan.component)
            placement = executor.place(uuid, kind, ports)
            op = compiler.compile_hook(
                hook=plan.hook,
                component=plan.component,
                main=run_view(main),
                uuid=uuid,
                placement=placement,
                globals_=run_globals(uuid=uuid, name=name, placement=placement),
                main_kind=main.kind,
                name=name,
                dag_uuid=main.dag_uuid or (main.uuid if main.kind == "dag" else None),
                lookup_run=self.lookup_run,
            )
        except CompilerError as exc:
            return Outcome(Status.FAILED, REASON_COMPILE, exc.message)
        return Compiled(op, dict(op.inputs), "hook compiled")


def _templated_ports(component: Component) -> bool:
    return isinstance(component.run, Service) and isinstance(component.run.ports, str)


def _as_written(plan: OpPlan, name: str, value: Any) -> bool:
    """Whether a single-op pipeline's input ``name`` is the op's own templated param as written in the file
    (not a ``-P`` value): it is resolved, and its template rendered, as a param, not passed on as an input."""
    param = (plan.operation.params or {}).get(name)
    return param is not None and param.ref is None and param.value == value and has_template(value)


def _conditions_outcome(
    plan: OpPlan, inputs: Mapping[str, Any], contexts: Mapping[str, Any], globals_: Mapping[str, Any]
) -> Outcome | None:
    """The op's ``conditions`` false (skipped) or not evaluable (failed); None when it may run."""
    if plan.conditions is None:
        return None
    from polynb.compiler.context import template_context

    context = template_context(inputs=inputs, contexts=contexts, globals_=globals_)
    try:
        if not evaluate_conditions(plan.conditions, context):
            return Outcome(Status.SKIPPED, REASON_CONDITIONS_NOT_MET, f"conditions `{plan.conditions}` are false")
    except ConditionError as exc:
        return Outcome(Status.FAILED, REASON_CONDITIONS_ERROR, exc.message)
    return None


class _UpstreamViews(Mapping[str, RunView]):
    """An op's upstream runs by name, each read from the store when a param first names it: most ops
    read none, and a fan-in op has hundreds of upstreams."""

    def __init__(self, store: Store, uuids: Mapping[str, str]) -> None:
        self._store = store
        self._uuids = uuids
        self._views: dict[str, RunView] = {}

    def __getitem__(self, name: str) -> RunView:
        view = self._views.get(name)
        if view is None:
            uuid = self._uuids[name]
            view = self._views[name] = run_view(self._store.get_run(uuid), events=self._store.events(run_uuid=uuid))
        return view

    def __iter__(self) -> Iterator[str]:
        return iter(self._uuids)

    def __len__(self) -> int:
        return len(self._uuids)


@dataclass(frozen=True, slots=True)
class _OpView:
    """What ``resolve_params`` reads of an op."""

    plan: OpPlan

    @property
    def name(self) -> str:
        return self.plan.name

    @property
    def operation(self) -> Operation:
        return self.plan.operation

    @property
    def component(self) -> Component:
        return self.plan.component
