"""What the scheduler runs: a validated pipeline of resolved ops, built before anything starts.

``build_pipeline`` resolves every component, binds params to inputs, checks the DAG (``spec.dag``) and
refuses what the engine cannot run yet, then returns a frozen ``Pipeline``; any problem raises
``SpecErrors``. ``analyze_pipeline`` does the same work without raising and returns every problem with its
field path, which ``polynb check`` turns into positioned errors.

Semantics the scheduler relies on:

* ``kind="dag"``: ``ops`` are the DAG's ops; ``inputs`` are the DAG component's bound inputs; ``hooks`` are
  the hooks of the DAG run itself (top-level operation's, then its component's). Each op's own hooks are
  ``PipelineOp.hooks`` (operation's, then component's).
* ``kind="single"``: one op, the run itself. ``inputs`` are its bound params (declared inputs with their
  defaults, plus literal context params). Its hooks are ``Pipeline.hooks`` (== the op's ``hooks``: run them
  once).
* An op whose component is itself a DAG keeps that component; build its pipeline with ``build_pipeline(
  op.component, params=resolved_values, base_dir=op.base_dir)`` once its params are known.

A ``matrix`` on a top-level operation or component or on an op of a DAG runs as a sweep (``scheduler.sweeps``);
``iterative`` and a matrix over a DAG are refused. A ``schedule`` on a top-level operation or component runs
(``scheduler.schedules``, ``Pipeline.schedule``), and so does one on an op of a DAG (its run is the schedule);
on a component an operation runs, over a DAG or with a matrix it is refused. ``joins`` select runs of the store
when the op compiles (``scheduler.joining``). What parses but is refused as "not supported yet"
(docs/semantics.md: never silently ignored): ``build``, distributed and ``tuner`` run kinds, a templated DAG
``earlyStopping`` threshold, ``connection_*`` event kinds on ops (``lifecycle.UNSUPPORTED_EVENT_KINDS``),
``lineageRef``/``modelRef``/``artifactRef`` init entries, and a DAG's own ``termination.ttl`` (its
``termination.timeout`` and ``termination.maxRetries`` are honoured: ``Pipeline.termination``; a template there
is an error, as Polyaxon never renders a DAG's termination, while an op's is rendered when it compiles, field by
field or written whole as one template, as its ``cache`` and ``plugins`` may be: ``compiler.compile``). ``cache`` on
an op is applied: the op may reuse an earlier run's outputs (``compiler.cache``). ``notifier`` and
``cleaner`` runs are jobs with another name (as in Polyaxon).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar

from pydantic.alias_generators import to_camel

from polynb.compiler.joins import QueryError, parse_query, parse_sort
from polynb.compiler.patch import RunPatchError, apply_run_patch
from polynb.compiler.presets import PresetError, apply_presets
from polynb.compiler.registry import ComponentRegistry, ResolutionError, Resolved
from polynb.compiler.templates import is_template
from polynb.compiler.trials import unrunnable
from polynb.lifecycle import (
    CONNECTION_EVENT_KINDS,
    CONNECTION_KIND_EVENTS,
    CONNECTION_PAYLOAD_KEYS,
    UNSUPPORTED_EVENT_KINDS,
)
from polynb.spec import iotypes
from polynb.spec.base import is_ref_field
from polynb.spec.containers import Init
from polynb.spec.dag import DagGraph, DagIssue, OpNode, analyze, check_refs, name_limit, name_too_long
from polynb.spec.errors import SpecError, SpecErrors, format_path
from polynb.spec.joins import join_value_problem
from polynb.spec.matrix import EarlyStopping as EarlyStoppingPolicy
from polynb.spec.matrix import HpParam, MatrixSpec, MetricEarlyStopping, gives_input, hp_param, input_type_problem
from polynb.spec.matrix import Mapping as MatrixMapping
from polynb.spec.models import (
    IO,
    Component,
    Container,
    Dag,
    DistributedRun,
    EventTrigger,
    Hook,
    Job,
    Operation,
    Param,
    Polyaxonfile,
    Schedule,
    Service,
    Termination,
    Tuner,
)
from polynb.spec.plugins import ALREADY_ON, IGNORED_PLUGINS, REFUSED_PLUGINS, Plugins
from polynb.spec.yaml_loader import gc_paused

Path_ = tuple[str | int, ...]
CLI_PARAMS = "-P"
"""First element of the path of a problem with a ``-P`` param (it is in no file)."""
Severity = Literal["error", "unsupported", "warning"]

KUBERNETES_ONLY = "Kubernetes only: "
"""How a warning about what only the kubernetes executor runs begins: ``polynb check --executor local`` (the
default) makes it an error, and the local executor refuses such an op when it is submitted."""

_STRING_TYPES = iotypes.POLYAXON_TYPES - {"any", "dockerfile", "artifacts", "git", "event", "metric", "metadata"}
HOOK_CONTEXT_PARAMS = frozenset({"name", "uuid", "kind", "status", "inputs", "outputs", "duration", "wait_time"})
"""Params a hook receives from its main run unless ``disableDefaults`` (docs/semantics.md, Hooks)."""

_UNSUPPORTED_SECTIONS = (
    ("build", "build", "polynb builds no container images (the build section is checked, not run)"),
)
"""Sections that parse and are checked field by field, then refused by ``polynb run``, with the reason."""
_NOT_APPLIED = {
    "culling": "`termination.culling` is not applied: polynb's executors never stop a run for being idle (set "
    "`termination.timeout` to bound it)",
    "probe": "`termination.probe` is not applied: it is the activity probe of culling, which polynb's executors do "
    "not do",
    "podFailurePolicy": "`termination.podFailurePolicy` is not applied: polynb's Kubernetes Jobs fail at their pod's "
    "first failure (`backoffLimit: 0`) and retries are the scheduler's `termination.maxRetries`",
    "mount": "`mount` is not applied: polynb uploads no local files into runs",
}
"""Fields that parse but that no executor applies: ``polynb check`` warns at each (``check_not_applied``)."""
_SCHEDULE_ON_COMPONENT = "`schedule` on the component of an operation is not supported: write it on the operation"
_DAG_TTL = "`termination.ttl` on a DAG is not supported yet: a DAG has no resources of its own; set it on its ops"
_DAG_TEMPLATE = ("a DAG's own termination is not rendered (Polyaxon reads it as written, so the template "
                 "never becomes a number): write the number; templates are rendered in the termination of its "
                 "ops")  # fmt: skip
_DAG_WHOLE_TEMPLATE = ("a DAG's own termination is not rendered (Polyaxon 2.18 keeps a DAG's `termination` written "
                       "as one template as written, so the DAG gets no timeout nor retries from it): write the "
                       "section out; a termination written as one template is rendered on its ops")  # fmt: skip
_INIT_REASONS = {
    "lineageRef": "polynb has no lineage store to resolve it from",
    "modelRef": "polynb has no model registry to resolve it from",
    "artifactRef": "polynb has no artifact registry to resolve it from",
}
_UNSUPPORTED_INIT = {"lineage_ref": "lineageRef", "model_ref": "modelRef", "artifact_ref": "artifactRef"}


@dataclass(frozen=True)
class PipelineOp:
    name: str
    operation: Operation
    component: Component
    upstream: frozenset[str]
    events: tuple[EventTrigger, ...]
    base_dir: Path | None = None
    """Where pathRefs inside ``component`` resolve (the folder of the file it came from)."""

    @property
    def hooks(self) -> tuple[Hook, ...]:
        return (*(self.operation.hooks or ()), *(self.component.hooks or ()))

    @property
    def is_dag(self) -> bool:
        return isinstance(self.component.run, Dag)


@dataclass(frozen=True)
class Pipeline:
    name: str
    kind: Literal["dag", "single"]
    spec: Component | Operation
    inputs: dict[str, Any]
    ops: dict[str, PipelineOp]
    graph: DagGraph
    concurrency: int | None
    hooks: tuple[Hook, ...]
    base_dir: Path | None
    source: str | None
    early_stopping: tuple[EarlyStoppingPolicy, ...] = ()
    """A DAG's ``earlyStopping`` policies (``scheduler.early_stopping``)."""
    termination: Termination | None = None
    """A DAG's own termination (the top-level operation's fields over its component's): ``timeout`` and
    ``maxRetries`` (a failed DAG runs again as a whole); ``ttl`` on a DAG is refused as not supported yet."""

    @property
    def schedule(self) -> Schedule | None:
        """The top-level ``schedule`` of a single-op pipeline (``scheduler.schedules``): the op runs once per
        tick, each run under a schedule run. The compiler refuses one anywhere else."""
        return self.spec.schedule if self.kind == "single" else None


@dataclass(frozen=True, slots=True)
class Problem:
    """A problem at ``path`` of ``file`` (None: the document being built)."""

    path: Path_
    message: str
    file: str | None = None
    severity: Severity = "error"
    located: SpecError | None = None
    """Set for problems already positioned in another file (errors of a referenced file)."""


@dataclass
class PipelineReport:
    pipeline: Pipeline | None
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def unsupported(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "unsupported"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]


def build_pipeline(
    spec: Component | Operation,
    *,
    params: Mapping[str, Any] | None = None,
    registry: ComponentRegistry | None = None,
    base_dir: Path | None = None,
    source: str | None = None,
) -> Pipeline:
    """Resolve, bind and validate ``spec``; raise ``SpecErrors`` (errors and unsupported features)."""
    report = analyze_pipeline(spec, params=params, registry=registry, base_dir=base_dir, source=source)
    blocking = [p for p in report.problems if p.severity != "warning"]
    if blocking or report.pipeline is None:
        file = source or "<string>"
        raise SpecErrors(SpecError(p.file or file, 0, 0, format_path(p.path), p.message) for p in blocking)
    return report.pipeline


def analyze_pipeline(
    spec: Component | Operation,
    *,
    params: Mapping[str, Any] | None = None,
    registry: ComponentRegistry | None = None,
    base_dir: Path | None = None,
    source: str | None = None,
    stubs: frozenset[Path_] = frozenset(),
) -> PipelineReport:
    """Build the pipeline and collect every problem (never raises for a bad spec).

    ``stubs``: paths of the document's ops that stand for ops with schema errors (``spec.salvage``): they
    take part in the graph, and nothing else is done with them.
    """
    if base_dir is None and source is not None:
        base_dir = Path(source).resolve().parent
    builder = _Builder(registry or ComponentRegistry(), source, stubs)
    with gc_paused():  # building a 100k-op pipeline makes many objects; collections would make it super-linear
        pipeline = builder.top(spec, dict(params or {}), base_dir)
    return PipelineReport(pipeline, builder.problems)


# ------------------------------------------------------------------------------------------ builder


_Spec = TypeVar("_Spec", Operation, Component)


class _Where(NamedTuple):
    """Where a spec lives: its file (None = the document being built) and its path in that file.

    A named tuple rather than a frozen dataclass: one is made per op, and a tuple is built several times faster.
    """

    file: str | None
    path: Path_

    def __truediv__(self, more: Path_) -> _Where:
        return _Where(self.file, (*self.path, *more))


class _ComponentInfo:
    """What params are checked against, computed once per component (a DAG's ops often share one)."""

    __slots__ = ("component", "declared", "required", "to_init")

    def __init__(self, component: Component) -> None:
        self.component = component
        self.declared: dict[str, IO] = {io.name: io for io in (*(component.inputs or ()), *(component.outputs or ()))}
        self.required = [
            (i, io) for i, io in enumerate(component.inputs or ()) if io.required and not io.delay_validation
        ]
        self.to_init = [(i, io) for i, io in enumerate(component.inputs or ()) if io.to_init]


class _Builder:
    def __init__(self, registry: ComponentRegistry, source: str | None, stubs: frozenset[Path_] = frozenset()) -> None:
        self.registry = registry
        self.source = source
        self.stubs = stubs
        self.problems: list[Problem] = []
        self._seen: set[tuple[str, tuple[str | int, ...], str]] = set()
        self._inlined: dict[int, tuple[Component, Component]] = {}  # nested DAG components, their ops inlined
        self._stack: list[int] = []  # ids of components being expanded (nested DAG through files)
        self._infos: dict[int, _ComponentInfo] = {}
        # Resolutions by reference: 100,000 ops (and their hooks) name a handful of components, and a hub or
        # path lookup touches the file system. Failures are kept too and reported for every op naming them.
        self._resolved: dict[tuple[Any, ...], Resolved | ResolutionError | SpecErrors] = {}

    def _info(self, component: Component) -> _ComponentInfo:
        info = self._infos.get(id(component))
        if info is None or info.component is not component:
            info = self._infos[id(component)] = _ComponentInfo(component)
        return info

    def add(self, where: _Where, path: Path_, message: str, severity: Severity = "error") -> None:
        full = (*where.path, *path)
        key = (where.file or "", full, message)
        if key not in self._seen:  # an alias cycle is met by every op using it: say it once
            self._seen.add(key)
            self.problems.append(Problem(full, message, where.file, severity))

    def _spec_errors(self, exc: SpecErrors) -> None:
        for e in exc.errors:
            key = (e.file, (e.path, e.line, e.column), e.message)
            if key not in self._seen:
                self._seen.add(key)
                self.problems.append(Problem((), e.message, e.file, located=e))

    # ---- top level

    def top(self, spec: Component | Operation, overrides: dict[str, Any], base_dir: Path | None) -> Pipeline | None:
        root = _Where(None, ())
        self.check_fields(spec, root, top=True)
        for k, event in enumerate(spec.events or ()):
            if event.connection is not None:
                self.add(
                    root,
                    ("events", k, "ref"),
                    f"`{event.ref}`: a pipeline awaiting a connection's events runs once per event: run it "
                    "with `polynb watch -f FILE`, not `polynb run`",
                    "unsupported",
                )
        if isinstance(spec, Component):
            if spec.dag_ref is not None:
                self.add(
                    root,
                    ("dagRef",),
                    "a top-level component cannot be an alias: dagRef names a component of a DAG's `components`",
                )
                return None
            component = spec
            where = root
            if component.presets:
                component = spec = self.presetted(component, component, root, root, own_component=True)[1]
            self.check_has_container(component, where)
            operation = _operation_for(component)
            literal: dict[str, Param] = {}
            component_base = base_dir
        else:
            resolved = self.resolve(spec, None, base_dir, root)
            if resolved is None:
                return None
            component = self.patched(spec, resolved.component, root)
            where = self.component_where(spec, resolved, root, None)
            spec, component = self.presetted(spec, component, root, where)
            self.check_has_container(component, where)
            operation = spec
            literal = dict(spec.params or {})
            component_base = resolved.base_dir
            if where != root:
                with self.patched_at(spec, where, root):
                    self.check_fields(component, where, top=True)
            for name, param in literal.items():
                ref = param.parsed_ref
                if ref is not None and ref.kind != "runs":
                    self.add(
                        root,
                        ("params", name, "ref"),
                        f"`ref: {param.ref}` needs an enclosing DAG; at the top "
                        "level a param can only read `runs.<uuid>`",
                    )
            for k, event in enumerate(spec.events or ()):
                if event.connection is None and event.parsed_ref.kind == "ops":
                    self.add(
                        root,
                        ("events", k, "ref"),
                        f"`{event.ref}` needs an enclosing DAG; at the top level an event can only watch `runs.<uuid>`",
                    )
        self.check_sweep(spec, component, where, _Where(None, ()))
        self.check_schedule(spec, component, where)
        inputs = self.bind_top(spec, component, literal, overrides, where)
        name = spec.name or component.name or "main"
        self.check_name_length(name, root / ("name",) if spec.name else where / ("name",))
        hooks = (*(spec.hooks or ()), *((component.hooks or ()) if component is not spec else ()))
        run = component.run
        if isinstance(run, Dag):
            ops, graph = self.dag(run, where / ("run",), component, component_base)
            self.check_concurrency_and_services(run, ops, where / ("run",))
            self.check_waits_for_services(ops, where / ("run",))
            end = self.dag_termination(spec, component, where)
            return Pipeline(name, "dag", spec, inputs, ops, graph, run.concurrency, hooks, base_dir, self.source,
                            tuple(run.early_stopping or ()), end)  # fmt: skip
        op = PipelineOp(name, operation, component, frozenset(), tuple(operation.events or ()), component_base)
        graph = DagGraph(nodes={name: OpNode(name)}, edges=[], stages=[[name]])
        return Pipeline(name, "single", spec, inputs, {name: op}, graph, None, hooks, base_dir, self.source)

    def check_concurrency_and_services(self, run: Dag, ops: Mapping[str, PipelineOp], where: _Where) -> None:
        """A service holds its slot of the DAG's ``concurrency`` until it is stopped: with as many services as
        slots, no other op would ever start once they run (nothing is refused: a warning)."""
        limit = run.concurrency
        if not isinstance(limit, int) or isinstance(limit, bool):
            return
        services = [name for name, op in ops.items() if isinstance(op.component.run, Service)]
        if services and len(services) >= limit and len(ops) > len(services):
            self.add(where, ("concurrency",),
                     f"concurrency {limit} and {len(services)} service op(s) ({', '.join(services)}): a service holds "
                     "its slot until it is stopped, so once they run no other op starts (raise the limit)",
                     "warning")  # fmt: skip

    def check_waits_for_services(self, ops: Mapping[str, PipelineOp], where: _Where) -> None:
        """An op whose trigger policy waits for a service (a dependency, or a param's ref with no event on it: the
        scheduler's policy upstreams) waits until the service ends, and a service runs until it is stopped: with
        no ``termination.timeout`` on it, the op, its DAG and ``polynb run`` wait for ever (a warning)."""
        endless = {
            name for name, op in ops.items()
            if isinstance(op.component.run, Service) and _timeout(op.operation, op.component) is None
        }  # fmt: skip
        if not endless:
            return
        for i, (name, op) in enumerate(ops.items()):
            events = {e.parsed_ref.target for e in op.events if e.connection is None and e.parsed_ref.kind == "ops"}
            waits: list[tuple[str, Path_]] = []
            for j, dep in enumerate(op.operation.dependencies or ()):
                waits.append((dep, ("dependencies", j)))
            for pname, param in (op.operation.params or {}).items():
                ref = param.parsed_ref
                if ref is not None and ref.kind == "ops" and ref.target not in events:
                    waits.append((str(ref.target), ("params", pname, "ref")))
            seen: set[str] = set()
            for target, path in waits:
                if target in endless and target not in seen:
                    seen.add(target)
                    self.add(where, ("operations", i, *path),
                             f"`{name}` waits for service `{target}` to end, and a service runs until it is stopped: "
                             f"give `{target}` a `termination.timeout`, or await its `run_status_running` with "
                             "`events` (`polynb run` would wait until it is stopped)", "warning")  # fmt: skip

    def check_sweep(self, spec: Component | Operation, component: Component, where: _Where, at: _Where) -> None:
        """A matrix (written at ``at``) runs as a sweep (``scheduler.sweeps``) if polynb can run its kind; a
        matrix on the component an operation runs is refused: Polyaxon takes the operation's."""
        if component is not spec and component.matrix is not None:
            self.add(where, ("matrix",), "`matrix` on the component of an operation is not supported: write it "
                     "on the operation", "unsupported")  # fmt: skip
        if spec.matrix is None:
            return
        if isinstance(component.run, Dag):
            self.add(at, ("matrix",), "`matrix` over a DAG is not supported yet: polynb sweeps a job or a Python "
                     "step", "unsupported")  # fmt: skip
        problem = unrunnable(spec.matrix)
        if problem is not None:
            self.add(at, ("matrix", "kind"), f"`matrix` is not supported yet: {problem}", "unsupported")
        if getattr(spec.matrix, "resume", None) is True:
            self.add(at, ("matrix", "resume"), "`resume` is not applied: each hyperband round starts its trials "
                     "anew with more of the resource (they do not continue the previous round's runs)",
                     "warning")  # fmt: skip
        for k, policy in enumerate(spec.matrix.early_stopping or ()):
            if isinstance(policy, MetricEarlyStopping) and policy.policy is not None:
                self.add(at, ("matrix", "earlyStopping", k, "policy"), "the `policy` is not applied: polynb reads "
                         "a trial's metric once the trial is final, and stops the sweep when it reaches `value`",
                         "warning")  # fmt: skip

    def check_schedule(
        self, spec: Component | Operation, component: Component, where: _Where, at: _Where | None = None
    ) -> None:
        """A schedule (written at ``at``: the top-level operation or component, or an op of a DAG) runs
        (``scheduler.schedules``) when it schedules one job or Python step with literal fields (ticks are
        computed before any param resolves); anything else is refused."""
        in_dag = at is not None
        at = at if at is not None else _Where(None, ())
        if component is not spec and component.schedule is not None:
            self.add(where, ("schedule",), _SCHEDULE_ON_COMPONENT, "unsupported")
        schedule = spec.schedule
        if schedule is None:
            return
        if in_dag:
            self.add(at, ("schedule",), f"Polyaxon 2.18 refuses this file (\"DAG node `{spec.name}` cannot define a "
                     "schedule\"): polynb runs it, the op's run being the schedule whose ticks' runs are under it, "
                     "but the file is not portable to Polyaxon", "warning")  # fmt: skip
            endless = getattr(schedule, "max_runs", None) is None and getattr(schedule, "end_at", None) is None
            if endless and schedule.kind != "datetime":
                self.add(at, ("schedule",), "this schedule has no end (no `maxRuns`, no `endAt`): its DAG waits for "
                         "it, so the DAG runs until it is stopped", "warning")  # fmt: skip
        if isinstance(component.run, Dag):
            self.add(at, ("schedule",), "`schedule` over a DAG is not supported yet: polynb schedules a job or a "
                     "Python step", "unsupported")  # fmt: skip
        if spec.matrix is not None:
            self.add(at, ("schedule",), "`schedule` with a `matrix` is not supported yet: schedule the op, or "
                     "sweep it, not both", "unsupported")  # fmt: skip
        for name in ("cron", "frequency", "start_at", "end_at", "max_runs", "depends_on_past"):
            if is_ref_field(getattr(schedule, name, None)):
                key = to_camel(name)
                self.add(at, ("schedule", key), f"a templated `{key}` is not supported yet: polynb computes the "
                         "ticks before any param is resolved; write a literal", "unsupported")  # fmt: skip

    def patched(self, op: Operation, component: Component, where: _Where) -> Component:
        """The component with the operation's ``runPatch`` applied (``compiler.patch``); a patch that makes
        the run invalid is an error at ``runPatch``."""
        if not op.run_patch:
            return component
        try:
            return apply_run_patch(component, op.run_patch, op.patch_strategy)
        except RunPatchError as exc:
            self.add(where, ("runPatch", *_within(op.run_patch, exc.location)), str(exc))
            return component

    @contextlib.contextmanager
    def patched_at(self, op: Operation, c_where: _Where, op_where: _Where) -> Iterator[None]:
        """Problems found in the patched component under a key the operation's ``runPatch`` sets are the patch's:
        said at ``runPatch.<key>`` in the user's file, not in the component (maybe polynb's own hub file)."""
        start = len(self.problems)
        yield
        keys = set(op.run_patch or ())
        if not keys:
            return
        prefix = (*c_where.path, "run")
        for i in range(start, len(self.problems)):
            problem = self.problems[i]
            rest = problem.path[len(prefix) :]
            if problem.file == c_where.file and problem.path[: len(prefix)] == prefix and rest and rest[0] in keys:
                self.problems[i] = replace(problem, path=(*op_where.path, "runPatch", *rest),
                                                       file=op_where.file)  # fmt: skip

    def presetted(self, op: _Spec, component: Component, where: _Where, c_where: _Where, *,
                  own_component: bool = False) -> tuple[_Spec, Component]:  # fmt: skip
        """``op`` and ``component`` with the presets applied (``compiler.presets``): the operation's, else its
        component's. A preset that cannot be found or applied is an error at its entry of ``presets``."""
        names, at = (op.presets, where) if op.presets else (component.presets, c_where)
        if not names:
            return op, component
        try:
            return apply_presets(op, component, names, own_component=own_component)
        except PresetError as exc:
            self.add(at, ("presets", exc.index), exc.message, "unsupported" if exc.missing else "error")
        except SpecErrors as exc:
            self._spec_errors(exc)
        return op, component

    def dag_termination(self, spec: Component | Operation, component: Component, where: _Where) -> Termination | None:
        """The top-level DAG's own ``termination``: the operation's fields over its component's. ``timeout``
        (every op is stopped, the DAG fails with reason ``Timeout``) and ``maxRetries`` (a failed DAG runs
        again, all its ops anew) are honoured; ``ttl`` is refused, never accepted and ignored."""
        sources = [(spec.termination, _Where(None, ()))]
        if component is not spec:
            sources.append((component.termination, where))
        timeout: int | None = None
        max_retries: int | None = None
        seen: set[str] = set()
        for termination, at in sources:
            if termination is None:
                continue
            if self.dag_templates(termination, at):
                continue  # an error: no pipeline is built
            if isinstance(termination.timeout, int) and "timeout" not in seen:
                seen.add("timeout")
                timeout = termination.timeout
            if isinstance(termination.max_retries, int) and "maxRetries" not in seen:
                seen.add("maxRetries")
                max_retries = termination.max_retries
            if termination.ttl is not None and "ttl" not in seen:
                seen.add("ttl")
                self.add(at, ("termination", "ttl"), _DAG_TTL, "unsupported")
        if not timeout and not max_retries:
            return None
        return Termination(timeout=timeout or None, max_retries=max_retries or None)

    def dag_templates(self, termination: Termination, where: _Where) -> bool:
        """Refuse the templates of a DAG's own termination (the top-level one's, a nested DAG op's): Polyaxon
        renders an op's termination when it compiles, never a DAG's. True when there was one."""
        if termination.whole_template is not None:
            self.add(where, ("termination",), _DAG_WHOLE_TEMPLATE)
            return True
        found = False
        for name, key in (("max_retries", "maxRetries"), ("timeout", "timeout"), ("ttl", "ttl")):
            if isinstance(getattr(termination, name), str):
                self.add(where, ("termination", key), _DAG_TEMPLATE)
                found = True
        return found

    def check_name_length(self, name: str, where: _Where) -> None:
        """The top-level run's name, as an op's (``spec.dag.analyze`` checks those)."""
        issues: list[DagIssue] = []
        limit = name_limit(issues, ())
        if limit is not None and len(name) > limit:
            issues.append(DagIssue((), name_too_long(name, limit)))
        for issue in issues:
            self.add(where, issue.path, issue.message)

    def component_where(self, op: Operation, resolved: Resolved, op_where: _Where, dag_where: _Where | None) -> _Where:
        """Where the resolved component is written, for positions of errors inside it."""
        if resolved.source is not None:
            return _Where(resolved.source, ())
        if op.component is not None and op.component.dag_ref is None:
            return op_where / ("component",)
        if op.run is not None and op.reference is None:
            return op_where
        if dag_where is not None and resolved.dag_index is not None:
            return dag_where / ("components", resolved.dag_index)
        return op_where

    def resolve(self, op: Operation, dag: Dag | None, base_dir: Path | None, where: _Where,
                dag_where: _Where | None = None) -> Resolved | None:  # fmt: skip
        # The reference resolve_full follows (it tries them in this order); an inline component is not cached.
        key: tuple[Any, ...] | None = None
        if op.component is None:
            if op.dag_ref is not None:
                key = ("dag", id(dag), op.dag_ref, base_dir)
            elif op.hub_ref is not None:
                key = ("hub", op.hub_ref)
            elif op.path_ref is not None:
                key = ("path", op.path_ref, base_dir)
        found = self._resolved.get(key) if key is not None else None
        if found is None:
            try:
                found = self.registry.resolve_full(op, dag=dag, base_dir=base_dir)
            except (ResolutionError, SpecErrors) as exc:
                found = exc
            if key is not None:
                self._resolved[key] = found
        return self._resolution(found, where, dag_where)

    def _resolution(self, found: Resolved | ResolutionError | SpecErrors, where: _Where,
                    dag_where: _Where | None = None) -> Resolved | None:  # fmt: skip
        if isinstance(found, ResolutionError):
            anchor = dag_where if found.anchor == "dag" and dag_where is not None else where
            self.add(anchor, found.path, found.message)
            return None
        if isinstance(found, SpecErrors):
            self._spec_errors(found)
            return None
        return found

    def hub(self, ref: str) -> Resolved | ResolutionError | SpecErrors:
        """``registry.hub(ref)``, once per ref: every 25th op of a big DAG may have the same hook."""
        found = self._resolved.get(("hub", ref))
        if found is None:
            try:
                found = self.registry.hub(ref)
            except (ResolutionError, SpecErrors) as exc:
                found = exc
            self._resolved[("hub", ref)] = found
        return found

    # ---- params

    def bind_top(
        self, spec: Component | Operation, component: Component, literal: Mapping[str, Param],
        overrides: Mapping[str, Any], where: _Where,
    ) -> dict[str, Any]:  # fmt: skip
        root = _Where(None, ())
        declared = {io.name: io for io in (*(component.inputs or ()), *(component.outputs or ()))}
        values: dict[str, Any] = {}
        for name, raw in overrides.items():
            io = declared.get(name)
            if io is None and name not in literal:
                known = ", ".join(io.name for io in component.inputs or ()) or "none"
                self.add(
                    root,
                    (CLI_PARAMS, name),
                    f"param `{name}` (-P) is not an input of `{component.name or 'the component'}`"
                    f"{_suggest(name, declared)}; its inputs: {known}",
                )
                continue
            try:
                values[name] = iotypes.require_finite(coerce(io, raw) if io is not None else raw)
            except ValueError as exc:
                self.add(root, (CLI_PARAMS, name), f"param `{name}` (-P {name}={raw}): {exc}")
        self.check_params(literal, component, where, root, ("params",), strict=bool(spec.strict_params),
                          given={*overrides, *_given_params(spec)}, is_top=True, matrix=spec.matrix)  # fmt: skip
        self.check_joins(spec, component, root)
        for io in component.inputs or ():
            if io.name in values:
                continue
            param = literal.get(io.name)
            if param is not None and param.ref is None:
                values[io.name] = param.value
            elif param is None:
                values[io.name] = io.value
        for name, param in literal.items():
            if name not in declared and name not in values and param.ref is None:
                values[name] = param.value
        return values

    def check_params(
        self, params: Mapping[str, Param], component: Component, component_where: _Where, op_where: _Where,
        params_path: Path_, *, strict: bool, given: Iterable[str] = (), is_top: bool = False,
        context: frozenset[str] = frozenset(), matrix: MatrixSpec | None = None,
    ) -> None:  # fmt: skip
        """Literal values against declared types; undeclared params under strictParams; required inputs."""
        info = self._info(component)
        declared = info.declared
        for i, flagged in info.to_init:
            flag = params.get(flagged.name)
            if flag is None or not flag.to_init:
                self.check_to_init(flagged.name, flagged, flag, component_where / ("inputs", i, "toInit"))
        for name, param in params.items():
            if param.to_init:
                self.check_to_init(name, declared.get(name), param, op_where / (*params_path, name, "toInit"))
            io = declared.get(name)
            if io is None:
                if param.context_only is False:
                    self.add(
                        op_where,
                        (*params_path, name),
                        f"param `{name}` sets `contextOnly: false` but "
                        f"the component declares no input `{name}`"
                        f"{_suggest(name, declared)}",
                    )
                elif strict and param.context_only is not True:
                    self.add(
                        op_where,
                        (*params_path, name),
                        f"received undeclared param `{name}` under "
                        "strictParams; declare an input or set "
                        f"`contextOnly: true`{_suggest(name, declared)}",
                    )
                continue
            if param.ref is not None or _templated(param.value):
                continue
            if param.value is None and not io.is_optional and not io.delay_validation and name not in given:
                # Else a DAG's ops upstream of it would run before it fails to bind (as the engine refuses it).
                self.add(op_where, (*params_path, name, "value"),
                         f"param `{name}` is null, and input `{name}` of `{component.name or 'the component'}` is "
                         "required: give it a value, or mark the input `isOptional`")  # fmt: skip
                continue
            try:
                value = iotypes.require_finite(iotypes.check_value(io.type, param.value, is_list=bool(io.is_list)))
            except ValueError as exc:
                self.add(op_where, (*params_path, name, "value"), f"param `{name}`: {exc}")
                continue
            if io.options is not None and value is not None and value not in io.options:
                self.add(op_where, (*params_path, name, "value"),
                         f"param `{name}`: {value!r} is not one of the options {io.options}")  # fmt: skip
        if matrix is not None:
            self.check_matrix_inputs(matrix, component, params, op_where)
        if not info.required:
            return
        missing = [(i, io) for i, io in info.required if io.name not in params and io.name not in given
                   and io.name not in context
                   and not (matrix is not None and gives_input(matrix, io.name))]  # fmt: skip
        for i, io in missing:
            if is_top and component_where.file is None and not params:
                # A component run as is: point at the input that needs a value.
                self.add(
                    component_where,
                    ("inputs", i),
                    f"input `{io.name}` is required: give it a `value`, mark "
                    f"it `isOptional`, or pass `-P {io.name}=...`",
                )
            else:
                path = params_path if params else params_path[:-1]
                self.add(
                    op_where,
                    path,
                    f"input `{io.name}` of `{component.name or 'the component'}` is required and no param gives it",
                )

    def check_matrix_inputs(
        self, matrix: MatrixSpec, component: Component, params: Mapping[str, Param], where: _Where
    ) -> None:
        """The inputs a matrix feeds (those no param gives) take what its generators give (Polyaxon's
        ``validate_io``: numbers for int/float inputs, dates for date inputs)."""
        for io in component.inputs or ():
            param = hp_param(matrix, io.name)
            if param is None or io.name in params:
                continue
            problem = input_type_problem(param, iotypes.normalize_type(io.type)[0] if io.type else None)
            if problem is not None:
                self.add(where, ("matrix", "params", io.name), f"matrix param `{io.name}`: {problem}")
                continue
            for i, value in _listed_values(param):
                # Else the trials given that value fail one by one, after the others ran (semantics: a generator
                # must fit the input it feeds).
                if (problem := _value_problem(io, value)) is not None:
                    message = f"matrix param `{io.name}`: {value!r} does not fit input `{io.name}`: {problem}"
                    self.add(where, ("matrix", "params", io.name, "value", i), message)
                    break
        if isinstance(matrix, MatrixMapping) and isinstance(matrix.values, list):
            declared = {io.name: io for io in component.inputs or ()}
            for row_index, row in enumerate(matrix.values):
                for name, value in row.items():
                    fed = declared.get(name)
                    if fed is None or name in params or (problem := _value_problem(fed, value)) is None:
                        continue
                    self.add(where, ("matrix", "values", row_index, name),
                             f"matrix row {row_index}: `{name}` is {value!r}, which does not fit input `{name}`: "
                             f"{problem}")  # fmt: skip

    def check_joins(self, op: Polyaxonfile, component: Component, where: _Where) -> None:
        """A join's params against the inputs they feed, as Polyaxon checks them (``ParamSpec``): a value
        readable from the runs found, and an input that takes a list (``isList``) or is of type artifacts."""
        declared = self._info(component).declared
        for j, join in enumerate(op.joins or ()):
            if join.ref is not None:
                self.add(where, ("joins", j, "ref"), "a join's `ref` is not supported yet: polynb's joins search "
                         "every run of the store; narrow the `query` instead (e.g. `pipeline: <uuid>`)",
                         "unsupported")  # fmt: skip
            for key, text, parse in (("query", join.query, parse_query), ("sort", join.sort, parse_sort)):
                try:
                    parse(text or "")
                except QueryError as exc:
                    self.add(where, ("joins", j, key), f"join {key}: {exc}")
            for name, param in (join.params or {}).items():
                path = ("joins", j, "params", name)
                if param.ref is not None:
                    self.add(where, (*path, "ref"), f"join param `{name}`: `ref` is ignored; the join's `query` "
                                                    "selects the runs it reads", "warning")  # fmt: skip
                if param.to_init or param.connection or not isinstance(param.value, str):
                    self.add(where, path, f"join param `{name}`: initializing artifacts of the runs found (`toInit`, "
                             "`connection`, an artifacts selection) is not supported yet", "unsupported")  # fmt: skip
                    continue
                io = declared.get(name)
                if io is None or param.context_only:
                    continue  # a context value: Polyaxon reads it as is
                problem = join_value_problem(param.value)
                if problem is not None:
                    self.add(where, (*path, "value"), f"join param `{name}`: {problem}")
                    continue
                kind = iotypes.normalize_type(io.type) if io.type else ("any", False)
                if not io.is_list and not kind[1] and kind[0] != "artifacts":
                    self.add(where, (*path, "value"), f"join param `{name}` receives a list (one value per run "
                             f"found), but input `{name}` is not a list: add `isList: true` to it")  # fmt: skip

    def check_to_init(self, name: str, io: IO | None, param: Param | None, where: _Where) -> None:
        """A ``toInit`` param as ``compiler.params.param_inits`` will take it: a git, artifacts or path input."""
        kind = iotypes.normalize_type(io.type)[0] if io is not None and io.type else None
        if (param is not None and param.connection) or (io is not None and io.connection):
            self.add(where, (), f"param `{name}`: toInit with a connection is not supported yet", "unsupported")
        elif kind not in ("git", "artifacts", "path", "dockerfile"):
            self.add(where, (), f"param `{name}`: toInit needs an input of type git, artifacts, path or "
                                f"dockerfile (got {kind or 'no type'})")  # fmt: skip

    # ---- DAG

    def dag(self, dag: Dag, where: _Where, owner: Component, base_dir: Path | None) -> tuple[dict[str, PipelineOp],
                                                                                             DagGraph]:  # fmt: skip
        graph, issues = analyze(dag)
        for issue in issues:
            self.add(where, issue.path, issue.message)
        for k, component in enumerate(dag.components or ()):
            self.check_fields(component, where / ("components", k))
            if component.matrix is not None:
                self.add(where / ("components", k), ("matrix",), "`matrix` on a component of a DAG is not "
                         "supported: write it on the operation that runs it", "unsupported")  # fmt: skip
        components: dict[str, Component] = {}
        ops: dict[str, PipelineOp] = {}
        for i, op in enumerate(dag.operations):
            op_where = where / ("operations", i)
            self.check_fields(op, op_where)
            name = op.name
            if name is None or name not in graph.nodes or graph.nodes[name].index != i:
                continue
            if self.stubs and op_where.file is None and op_where.path in self.stubs:
                continue  # an op with schema errors: in the graph, nothing more
            resolved = self.resolve(op, dag, base_dir, op_where, where)
            if resolved is None:
                continue
            component = self.patched(op, resolved.component, op_where)
            c_where = self.component_where(op, resolved, op_where, where)
            if op.presets or component.presets:
                op, component = self.presetted(op, component, op_where, c_where)
            self.check_has_container(component, c_where)
            if (c_where.file is not None and id(component) not in self._infos) or c_where.path[-1:] == ("component",):
                with self.patched_at(op, c_where, op_where):
                    self.check_fields(component, c_where)  # a file's component: once, however many ops use it
            components[name] = component
            self.check_params(op.params or {}, component, c_where, op_where, ("params",),
                              strict=bool(op.strict_params), given=_given_params(op), matrix=op.matrix)  # fmt: skip
            self.check_joins(op, component, op_where)
            self.check_sweep(op, component, c_where, op_where)
            self.check_schedule(op, component, c_where, op_where)
            if isinstance(component.run, Dag):
                for termination, at in ((op.termination, op_where), (component.termination, c_where)):
                    if termination is not None:
                        self.dag_templates(termination, at)
                ref_where = op_where / ((op.reference[0],) if op.reference is not None else ())
                component = self.nested(component, c_where, resolved.base_dir, ref_where)
            node = graph.nodes[name]
            ops[name] = PipelineOp(name, op, component, frozenset(node.upstream), tuple(op.events or ()),
                                   resolved.base_dir)  # fmt: skip
        for issue in check_refs(dag, graph, components, owner.inputs or ()):
            self.add(where, issue.path, issue.message)
        return ops, graph

    def nested(self, component: Component, where: _Where, base_dir: Path | None, ref_where: _Where) -> Component:
        """Validate a DAG used as an op's component; return it with every op's component inlined (resolved
        now, so the engine runs it without the registry); its inputs are bound when the parent op runs.
        A component met again inside itself (a cycle of pathRef/hubRef) is an error at the ref closing it."""
        key = id(component)
        if key in self._stack:
            self.add(ref_where, (), f"component `{component.name or 'the component'}` contains itself (a cycle of "
                     "references): a nested DAG cannot run itself")  # fmt: skip
            return component
        done = self._inlined.get(key)
        if done is not None and done[0] is component:
            return done[1]
        self._stack.append(key)
        try:
            assert isinstance(component.run, Dag)
            ops, _ = self.dag(component.run, where / ("run",), component, base_dir)
        finally:
            self._stack.pop()
        inlined = _inlined(component, component.run, ops)
        self._inlined[key] = (component, inlined)
        return inlined

    # ---- fields the engine cannot honour yet, hooks

    def check_fields(self, spec: Polyaxonfile, where: _Where, *, top: bool = False) -> None:
        """``top``: the top-level operation or component, or the component the top-level operation runs
        (their ``schedule`` is checked by ``check_schedule``)."""
        if spec.termination is not None or spec.inputs or spec.outputs or spec.mount or spec.template:
            self.check_not_applied(spec, where)
        if (
            spec.run is None and not spec.events and not spec.hooks and spec.matrix is None and spec.schedule is None
            and spec.joins is None and spec.build is None and spec.run_patch is None and spec.cache is None
            and spec.is_approved is not False and spec.plugins is None
        ):  # fmt: skip
            return  # the common DAG op: nothing to refuse (kept cheap for 100k-op DAGs)
        for attr, key, reason in _UNSUPPORTED_SECTIONS:
            if getattr(spec, attr) is not None:
                self.add(where, (key,), f"`{key}` is not supported yet: {reason}", "unsupported")
        if spec.schedule is not None and not top and isinstance(spec, Component):
            self.add(where, ("schedule",), _SCHEDULE_ON_COMPONENT, "unsupported")  # an op's: ``check_schedule``
        if spec.run_patch is not None and isinstance(spec, Component):
            self.add(where, ("runPatch",), "`runPatch` on a component is not supported yet: it patches the "
                     "component an operation runs; move it to the operation", "unsupported")  # fmt: skip
        if spec.cache is not None and not spec.cache.disable and isinstance(spec.run, Dag):
            self.add(where, ("cache",), "`cache` on a DAG is not applied: a DAG run always runs its ops; set "
                     "`cache` on them", "warning")  # fmt: skip
        for k, event in enumerate(spec.events or ()):
            if event.connection is not None and where != _Where(None, ()):
                self.check_event_connection(event, where / ("events", k))
            for j, kind in enumerate(event.kinds):
                refused = UNSUPPORTED_EVENT_KINDS.get(kind.value)
                from_connection = kind.value in CONNECTION_EVENT_KINDS
                if from_connection != (event.connection is not None):
                    refused = (
                        f"{event.ref} emits only connection_* kinds"
                        if event.connection is not None
                        else "it comes from a connection: write `ref: connections.<name>` (a connection of "
                        "$POLYNB_HOME/config.yaml) in the pipeline's top-level `events` and run it with `polynb watch`"
                    )
                if refused is not None:
                    self.add(
                        where,
                        ("events", k, "kinds", j),
                        f"event kind `{kind.value}` is not supported yet: {refused}",
                        "unsupported",
                    )
        # An operation's hooks have it as their main run (a component's serve every op that runs it).
        main = spec.name if isinstance(spec, Operation) else None
        for h, hook in enumerate(spec.hooks or ()):
            self.check_hook(hook, where / ("hooks", h), main=main)
        if spec.plugins is not None:
            self.check_plugins(spec.plugins, where / ("plugins",))
        run = spec.run
        if isinstance(run, DistributedRun):
            self.add(where, ("run", "kind"), f"run kind `{run.kind}` is not supported yet: polynb runs no "
                     "Kubeflow, Dask or Ray operator (the run is checked, not run)", "unsupported")  # fmt: skip
        elif isinstance(run, Tuner):
            self.add(where, ("run", "kind"), "run kind `tuner` is not supported yet: polynb does not run sweeps yet",
                     "unsupported")  # fmt: skip
        elif isinstance(run, Dag):
            for k, policy in enumerate(run.early_stopping or ()):
                at = ("run", "earlyStopping", k)
                value = policy.value if isinstance(policy, MetricEarlyStopping) else policy.percent
                if isinstance(value, str):
                    self.add(where, (*at, "value" if isinstance(policy, MetricEarlyStopping) else "percent"),
                             "a templated early stopping threshold is not supported yet: write the number",
                             "unsupported")  # fmt: skip
                if isinstance(policy, MetricEarlyStopping) and policy.policy is not None:
                    self.add(where, (*at, "policy"), "the `policy` is not applied: polynb reads an op's metric "
                             "once the op is final, and stops the DAG when it reaches `value`", "warning")  # fmt: skip
        elif isinstance(run, Job):
            for k, init in enumerate(run.init or ()):
                for attr, key in _UNSUPPORTED_INIT.items():
                    if getattr(init, attr) is not None:
                        self.add(where, ("run", "init", k, key), f"init `{key}` is not supported yet: "
                                 f"{_INIT_REASONS[key]} (the entry is checked, not run)", "unsupported")  # fmt: skip
                if init.connection is not None:
                    self.check_init_connection(init, k, where)
                if init.container is not None:
                    self.check_container(init.container, where / ("run", "init", k, "container"))
            if run.container is not None:  # else said where it runs (``check_has_container``): a patch may give one
                self.check_container(run.container, where / ("run", "container"))
            for k, sidecar in enumerate(run.sidecars or ()):
                self.check_container(sidecar, where / ("run", "sidecars", k))
            self.check_restart_policy(run, where)
            if isinstance(run, Service):
                self.check_service_fields(run, where)
            if run.connections:
                self.check_connections(run.connections, where)

    def check_connections(self, names: list[str], where: _Where) -> None:
        """``run.connections`` against the config file's ``connections:``; with no config file there is nothing
        to check against, so a warning says the run will fail unless one names them by then."""
        from polynb.config_file import load_config

        try:
            config = load_config()
        except SpecErrors as exc:
            self._spec_errors(exc)
            return
        if config.path is None:
            self.add(where, ("run", "connections"), "connections are not checked: no config file "
                     "($POLYNB_CONFIG or $POLYNB_HOME/config.yaml); the op fails at run unless one names them",
                     "warning")  # fmt: skip
            return
        known = {str(c["name"]) for c in config.connections}
        for k, name in enumerate(names):
            if name not in known:
                self.add(where, ("run", "connections", k), f"no connection named {name} in {config.path} "
                         f"(connections: {', '.join(sorted(known)) or 'none'})")  # fmt: skip

    def check_init_connection(self, init: Init, k: int, where: _Where) -> None:
        """An init entry's ``connection``: named in the config file, a kind an init can read, with the entry's kind
        that fits it (``git`` for a repository, ``artifacts``/``paths`` for a bucket or folder), and credentials the
        local executor can reach (else a Kubernetes-only warning: ``--executor local`` makes it an error)."""
        from polynb.config_file import load_config
        from polynb.connections import init_source_problem, local_init_refusal

        at = ("run", "init", k, "connection")
        name = init.connection or ""
        if is_template(name):
            return  # known once rendered: the compiler checks it then
        try:
            config = load_config()
        except SpecErrors as exc:
            self._spec_errors(exc)
            return
        if config.path is None:
            self.add(where, at, f"connection {name} is not checked: no config file ($POLYNB_CONFIG or "
                     "$POLYNB_HOME/config.yaml); the op fails at run unless one names it", "warning")  # fmt: skip
            return
        known = {str(c["name"]): c for c in config.connections}
        connection = known.get(name)
        if connection is None:
            self.add(where, at, f"no connection named {name} in {config.path} "
                     f"(connections: {', '.join(sorted(known)) or 'none'})")  # fmt: skip
            return
        if init.container is not None:
            self.add(where, at, "a custom container reading a connection is not supported yet (write `git:`, "
                     "`artifacts:` or `paths:` with it, or mount it with run.connections)", "unsupported")  # fmt: skip
            return
        problem = init_source_problem(connection, "" if init.kind == "container" else init.kind)
        if problem is not None:
            self.add(where, at, problem)
            return
        refused = local_init_refusal(connection)
        if refused is not None:
            self.add(where, at, f"{KUBERNETES_ONLY}{refused}; the local executor refuses the op", "warning")

    def check_event_connection(self, event: EventTrigger, where: _Where) -> None:
        """``{ref: connections.NAME}`` on an op of a DAG: the connection must be in the config file and be able
        to emit the kinds awaited (a git connection emits ``connection_git_commit``, ...)."""
        from polynb.config_file import load_config

        try:
            config = load_config()
        except SpecErrors as exc:
            self._spec_errors(exc)
            return
        if config.path is None:
            self.add(where, ("ref",), f"`{event.ref}` is not checked: no config file ($POLYNB_CONFIG or "
                     "$POLYNB_HOME/config.yaml); the op is skipped unless one names it by then", "warning")  # fmt: skip
            return
        by_name = {str(c["name"]): c for c in config.connections}
        connection = by_name.get(str(event.connection))
        if connection is None:
            self.add(where, ("ref",), f"no connection named {event.connection} in {config.path} "
                     f"(connections: {', '.join(sorted(by_name)) or 'none'})")  # fmt: skip
            return
        kind = str(connection.get("kind"))
        emits = CONNECTION_KIND_EVENTS.get(kind)
        if emits is None:
            self.add(where, ("ref",), f"connection {event.connection} is a `{kind}` connection: it cannot be "
                     f"watched (watchable: {', '.join(sorted(CONNECTION_KIND_EVENTS))})")  # fmt: skip
            return
        for j, awaited in enumerate(event.kinds):
            if awaited.value in CONNECTION_EVENT_KINDS and awaited.value != emits:
                self.add(where, ("kinds", j), f"connection {event.connection} is a `{kind}` connection: it "
                         f"emits {emits}, not {awaited.value}")  # fmt: skip

    def check_restart_policy(self, run: Job, where: _Where) -> None:
        """``environment.restartPolicy``: Polyaxon puts it in the pod template, so it is kept where Kubernetes
        takes it for a Job (``Never``, ``OnFailure``); retries are ``termination.maxRetries`` (the scheduler's,
        each a new attempt). A service here is a bare Pod the scheduler restarts, never the kubelet."""
        policy = run.environment.restart_policy if run.environment is not None else None
        if policy is None:
            return
        at = ("run", "environment", "restartPolicy")
        service = isinstance(run, Service)
        if service and policy != "Never":
            message = (
                f"restartPolicy `{policy}` cannot be honoured for a service: it runs as a bare Pod that only the"
                " scheduler restarts (`termination.maxRetries`); use `Never` or leave it out"
            )
            self.add(where, at, message)
        elif not service and policy not in ("Never", "OnFailure"):
            message = (
                f"restartPolicy `{policy}` is not valid for a job: a Kubernetes Job takes `Never` or `OnFailure`"
                " (retries are `termination.maxRetries`)"
            )
            self.add(where, at, message)

    def check_service_fields(self, run: Service, where: _Where) -> None:
        """``replicas`` and ``isExternal``: checked (and rendered at compile) but not applied, so a value that would
        change what runs or who reaches it is said, not silently dropped. (``rewritePath: true`` is what polynb
        does anyway: a service is reached at its own address, so the app sees its paths from ``/``.)"""
        if run.replicas is not None and run.replicas != 1:
            self.add(where, ("run", "replicas"), f"replicas {run.replicas!r} is not applied: polynb runs one "
                     "replica of a service", "warning")  # fmt: skip
        if run.is_external is not None and run.is_external is not False:
            self.add(where, ("run", "isExternal"), "isExternal is not applied: a local service listens on this machine "
                     "and a cluster's is reached through `polynb port-forward`/`polynb open`", "warning")  # fmt: skip

    def check_not_applied(self, spec: Polyaxonfile, where: _Where) -> None:
        """Fields polynb reads but no executor applies (``_NOT_APPLIED``), and an enabled ``template``: a warning at
        each, so a file that counts on them is told, not silently run without them."""
        termination = spec.termination
        for name, key in (("culling", "culling"), ("probe", "probe"), ("pod_failure_policy", "podFailurePolicy")):
            if termination is not None and getattr(termination, name) is not None:
                self.add(where, ("termination", key), _NOT_APPLIED[key], "warning")
        for section in ("inputs", "outputs"):
            for k, io in enumerate(getattr(spec, section) or ()):
                if io.validation:
                    self.add(where, (section, k, "validation"), f"`validation` of `{io.name}` is not applied: "
                             "polynb does not check the value against it", "warning")  # fmt: skip
        if spec.mount:
            self.add(where, ("mount",), _NOT_APPLIED["mount"], "warning")
        template = spec.template or {}
        if template.get("enabled") not in (None, False):
            details = "".join(f"; {k}: {', '.join(v) if isinstance(v, list) else v}"
                              for k in ("description", "fields") if (v := template.get(k)))  # fmt: skip
            self.add(where, ("template",), "marked as a template by its owner: it is not meant to run without "
                     f"changes{details}", "warning")  # fmt: skip

    def check_plugins(self, plugins: Plugins, where: _Where) -> None:
        """Each plugin set: refused where its absence changes what the run can do, else a warning."""
        if plugins.whole_template is not None:
            self.add(where, (), "plugins written as one template are rendered when the op compiles: polynb applies "
                     f"none of them, and fails the op if they set {', '.join(map(to_camel, REFUSED_PLUGINS))}",
                     "warning")  # fmt: skip
            return
        for name in sorted(plugins.model_fields_set):
            value = getattr(plugins, name)
            key = to_camel(name)
            if value is None or value == []:
                continue
            if name in REFUSED_PLUGINS:
                if value is not False:
                    self.add(where, (key,), f"plugin `{key}` is not supported yet: {REFUSED_PLUGINS[name]}",
                             "unsupported")  # fmt: skip
            elif not isinstance(value, bool) or value != (name in ALREADY_ON):
                self.add(where, (key,), f"plugin `{key}` is not applied: {IGNORED_PLUGINS[name]}", "warning")

    def check_has_container(self, component: Component, where: _Where) -> None:
        """A job or service runs a container: written in its component, or given by the operation's ``runPatch``
        or a preset (checked once those are applied, as Polyaxon does)."""
        run = component.run
        if isinstance(run, Job) and not isinstance(run, DistributedRun) and run.container is None:
            self.add(where, ("run", "container"), "missing required field 'container' (a job runs one: write it "
                     "in the component, or give it with the operation's `runPatch` or a preset)")  # fmt: skip

    def check_container(self, container: Container, where: _Where) -> None:
        """What the compiler refuses in a container (``compiler.compile``), said by ``check`` as well."""
        if container.env_from:
            self.add(where, ("envFrom",), f"{KUBERNETES_ONLY}`envFrom` reads secrets and config maps of the "
                     "cluster; the local executor refuses the op", "warning")  # fmt: skip
        for key in sorted(container.written_as_string):
            message = _one_argument(key, container)
            if message is not None:
                self.add(where, (key,), message, "warning")
        for k, var in enumerate(container.env or ()):
            if var.value_from is not None:
                self.add(where, ("env", k, "valueFrom"), f"{KUBERNETES_ONLY}env `{var.name}`: valueFrom reads the "
                         "cluster's objects; the local executor refuses the op", "warning")  # fmt: skip

    def check_hook(self, hook: Hook, where: _Where, *, main: str | None = None) -> None:
        """``main``: the name of the hook's main run when known (an operation's hooks)."""
        for name, param in (hook.params or {}).items():
            # A hook reads its main run (`ops.<main>`) or a run by uuid, as compile_hook resolves it: any other
            # ref would fail the hook run when it compiles, after its main run ended.
            ref = param.parsed_ref
            if ref is None or ref.kind == "runs" or (ref.kind == "ops" and (main is None or ref.target == main)):
                continue
            use = f"`ops.{main}` (the main run)" if main is not None else "`ops.<the main op>`"
            self.add(where, ("params", name, "ref"), f"`{ref}` is not available to a hook: use {use} or `runs.<uuid>`")
        resolved = self._resolution(self.hub(hook.hub_ref), where)
        if resolved is None:
            return
        if hook.presets:
            self.add(where, ("presets",), "`presets` on a hook are not applied: the hook runs its component as is",
                     "warning")  # fmt: skip
        context = frozenset() if hook.disable_defaults else HOOK_CONTEXT_PARAMS
        if hook.connection is not None:
            context |= {"connection"}
        self.check_params(hook.params or {}, resolved.component, _Where(resolved.source, ()), where, ("params",),
                          strict=False, context=context)  # fmt: skip


# ---------------------------------------------------------------------------------------- helpers


def _timeout(operation: Operation, component: Component) -> float | str | None:
    """The op's ``termination.timeout``: its operation's, else its component's."""
    for termination in (operation.termination, component.termination):
        if termination is not None and termination.timeout is not None:
            return termination.timeout
        if termination is not None and termination.whole_template is not None:
            return termination.whole_template  # may give a timeout when the op compiles
    return None


def coerce(io: IO, value: Any) -> Any:
    """A ``-P`` value (a string from the command line, or a Python value) as the input's type.

    Strings are read as JSON for lists, dicts, numbers and booleans (``-P shards='["a","b"]'``); a plain string
    given to a list of str is a one-element list (the same leniency as a single uuid for ``uuids``).
    """
    base, generic_list = iotypes.normalize_type(io.type) if io.type else ("any", False)
    is_list = bool(io.is_list) or generic_list
    if isinstance(value, str) and (is_list or base not in _STRING_TYPES):
        with contextlib.suppress(ValueError):  # not JSON: checked as the plain string it is
            value = json.loads(value)
        if is_list and not isinstance(value, list) and base in _STRING_TYPES:
            value = [str(value)]
    value = iotypes.check_value(io.type, value, is_list=bool(io.is_list))
    if io.options is not None and value not in io.options:
        raise ValueError(f"{value!r} is not one of the options {io.options}")
    return value


def _given_params(spec: Polyaxonfile) -> set[str]:
    """Inputs a (refused, but checked) matrix or join gives values to, or an awaited connection's event (an
    input named like a payload key, or ``event``): they are not missing."""
    names = {name for join in spec.joins or () for name in join.params or {}}
    for event in spec.events or ():
        if event.connection is not None:
            names.add("event")
            for kind in event.kinds:
                names |= CONNECTION_PAYLOAD_KEYS.get(kind.value, frozenset())
    return names


_SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ash", "ksh"})


_TEMPLATE_SPAN = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
"""A template inside a string: its own spaces do not split the string."""


def _one_argument(key: str, container: Container) -> str | None:
    """The warning for ``command``/``args`` written as one string, or None where one argument is surely meant
    (a word without spaces, one ``{{ ... }}`` that may render to a list, or ``args`` of a shell's ``-c``). A string
    with spaces around its templates (``python train.py --lr={{ lr }}``) is still one argument."""
    items = getattr(container, key) or []
    text = items[0] if items else ""
    bare = text.strip()
    whole_template = bare.startswith("{{") and bare.endswith("}}") and bare.count("{{") == 1
    if whole_template or not any(c.isspace() for c in _TEMPLATE_SPAN.sub("x", bare)):
        return None
    command = container.command or []
    if key == "args" and len(command) >= 2 and command[-1] == "-c" and command[-2].rsplit("/", 1)[-1] in _SHELLS:
        return None
    words = _words(bare)
    return (
        f"`{key}` is a string, so it is ONE argument (as in Polyaxon, which passes it to Kubernetes whole): "
        f"{'the program named' if key == 'command' else 'the program receives'} {bare[:40]!r}"
        f"{'' if key == 'command' else ' as a single argument'}, not `{words[0]}` and its arguments; write a "
        f"list such as [{', '.join(words[:3])}], or `command: [sh, -c]` with the string as `args` for a shell"
    )


def _words(text: str) -> list[str]:
    """``text`` split at its spaces, a template's own spaces left alone (``--lr={{ lr }}`` is one word)."""
    spans = _TEMPLATE_SPAN.findall(text)
    masked = _TEMPLATE_SPAN.sub("\0", text)
    out = []
    for word in masked.split():
        while "\0" in word:
            word = word.replace("\0", spans.pop(0), 1)
        out.append(word)
    return out


def _within(data: Any, path: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """The longest prefix of ``path`` that exists in ``data`` (where an error of the patched run is written)."""
    found: list[str | int] = []
    for part in path:
        in_dict = isinstance(data, dict) and part in data
        in_list = isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        if not (in_dict or in_list):
            break
        data = data[part]
        found.append(part)
    return tuple(found)


def _templated(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value
    if isinstance(value, list):
        return any(_templated(v) for v in value)
    if isinstance(value, dict):
        return any(_templated(v) for v in value.values())
    return False


def _suggest(name: str, candidates: Iterable[str]) -> str:
    from polynb.spec.dag import did_you_mean

    return did_you_mean(name, candidates)


def _operation_for(component: Component) -> Operation:
    """The operation that runs a top-level component as is."""
    return Operation.model_construct(kind="operation", name=component.name, component=component)


_REF_FIELDS = {"hub_ref": None, "dag_ref": None, "path_ref": None, "url_ref": None}


def _inlined(component: Component, dag: Dag, ops: Mapping[str, PipelineOp]) -> Component:
    """``component`` (a DAG) with each op's resolved component written inline (its presets and runPatch
    applied), and no ``components`` left to resolve against: what ``scheduler.nesting`` runs."""
    operations: list[Operation] = []
    for op in dag.operations:
        built = ops.get(op.name or "")
        if built is None or (op.reference is None and op.component is None):
            operations.append(op if built is None else built.operation)  # an inline `run`: the op is its component
            continue
        resolved = built.component.model_copy(update={"presets": None}) if built.component.presets else built.component
        update = {**_REF_FIELDS, "component": resolved, "presets": None, "run_patch": None}
        operations.append(built.operation.model_copy(update=update))
    # Presets were applied where the ops were built: none is read again when the engine builds it.
    run = dag.model_copy(update={"operations": operations, "components": None})
    return component.model_copy(update={"run": run, "presets": None})


def _listed_values(param: HpParam) -> list[tuple[int, Any]]:
    """The values a ``choice`` (or ``pchoice``) lists, by index: the generators that name values, not ranges."""
    if param.kind == "choice" and isinstance(param.value, list):
        return list(enumerate(param.value))
    if param.kind == "pchoice" and isinstance(param.value, list):
        return [(i, pair[0]) for i, pair in enumerate(param.value) if isinstance(pair, list | tuple) and pair]
    return []


def _value_problem(io: IO, value: Any) -> str | None:
    """Why ``value`` cannot be given to input ``io`` (None: it can, or a template decides it at run time)."""
    if _templated(value):
        return None
    try:
        iotypes.require_finite(iotypes.check_value(io.type, value, is_list=bool(io.is_list)))
    except ValueError as exc:
        return str(exc)
    if io.options is not None and value not in io.options:
        return f"not one of the options {io.options}"
    return None
