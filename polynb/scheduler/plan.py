"""What the engine needs to know about a pipeline, in a form it can store and reload after a crash.

A ``Pipeline`` (from the compiler) holds live pydantic models and a registry-resolved component per op. The
engine turns it into plans at submission and keeps them in the runs' ``meta`` so a restarted engine (in
another process, maybe without the notebook's component registry) can carry on with the same specs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import TypeAdapter

from polynb.scheduler.readiness import EventWait, OpRequirements, requirements
from polynb.spec.base import DEFERRED
from polynb.spec.matrix import EarlyStopping, FailureEarlyStopping, MetricEarlyStopping
from polynb.spec.models import Component, Hook, Operation

SERVICE_KINDS = frozenset({"service"})


class PipelineOpLike(Protocol):
    """The part of ``compiler.pipeline.PipelineOp`` the scheduler reads."""

    @property
    def name(self) -> str: ...
    @property
    def operation(self) -> Operation: ...
    @property
    def component(self) -> Component: ...
    @property
    def upstream(self) -> frozenset[str]: ...


_POLICY: TypeAdapter[MetricEarlyStopping | FailureEarlyStopping] = TypeAdapter(EarlyStopping, config=DEFERRED)


def dump(model: Operation | Component | Hook | MetricEarlyStopping | FailureEarlyStopping) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def _pick(op: Operation, component: Component, name: str) -> Any:
    """An operation's field overrides the component's (Polyaxon's default post-merge patch)."""
    value = getattr(op, name)
    return value if value is not None else getattr(component, name)


@dataclass(frozen=True, slots=True)
class TerminationPlan:
    """The ``termination`` of an op that runs a nested DAG (:func:`dag_op_termination`)."""

    max_retries: int = 0
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class OpPlan:
    """One op of a pipeline (or the only op of a single-op pipeline)."""

    name: str
    operation: Operation
    component: Component
    upstream: frozenset[str]
    requirements: OpRequirements
    kind: str
    conditions: str | None
    hooks: tuple[Hook, ...]

    @property
    def is_service(self) -> bool:
        return self.kind in SERVICE_KINDS

    def to_meta(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "operation": dump(self.operation),
            "component": dump(self.component),
            "upstream": sorted(self.upstream),
        }

    @classmethod
    def from_meta(cls, data: Mapping[str, Any]) -> OpPlan:
        return make_op_plan(
            name=str(data["name"]),
            operation=Operation.model_validate(data["operation"]),
            component=Component.model_validate(data["component"]),
            upstream=frozenset(data.get("upstream", ())),
        )


def event_key(ref: str) -> str:
    """The name an event ref is tracked under: the op name for ``ops.X``, ``runs.<uuid>`` otherwise."""
    return ref.removeprefix("ops.")


def make_op_plan(*, name: str, operation: Operation, component: Component, upstream: Iterable[str]) -> OpPlan:
    events = [
        EventWait(event_key(trigger.ref), frozenset(str(kind.value) for kind in trigger.kinds))
        for trigger in _pick(operation, component, "events") or ()
    ]
    req = requirements(
        upstream=upstream,
        dependencies=_pick(operation, component, "dependencies") or (),
        events=events,
        trigger=_pick(operation, component, "trigger"),
        skip_on_upstream_skip=_pick(operation, component, "skip_on_upstream_skip"),
        approval=name if _pick(operation, component, "is_approved") is False else None,
    )
    run = component.run
    kind = str(getattr(run, "kind", "job")) if run is not None else "job"
    return OpPlan(
        name=name,
        operation=operation,
        component=component,
        upstream=frozenset(upstream),
        requirements=req,
        kind=kind,
        conditions=_pick(operation, component, "conditions"),
        # The operation's hooks, then its component's: both apply (as ``PipelineOp.hooks``).
        hooks=tuple(operation.hooks or ()) + tuple(component.hooks or ()),
    )


def dag_op_termination(plan: OpPlan) -> TerminationPlan:
    """The termination of an op that runs a nested DAG: the operation's fields over its DAG component's.

    An op's termination is read when it compiles (``CompiledOp.termination``, templates rendered with its
    params); a nested DAG op is not compiled, and Polyaxon renders no DAG's termination, so ``polynb check``
    refuses templates there (``compiler.pipeline``) and the numbers are read as written."""

    def term(field_name: str) -> int | None:
        for source in (plan.operation.termination, plan.component.termination):
            value = getattr(source, field_name, None) if source is not None else None
            if isinstance(value, int):
                return value
        return None

    timeout = term("timeout")
    return TerminationPlan(max_retries=term("max_retries") or 0, timeout=float(timeout) if timeout else None)


def plan_from_pipeline_op(op: PipelineOpLike) -> OpPlan:
    return make_op_plan(name=op.name, operation=op.operation, component=op.component, upstream=op.upstream)


@dataclass(frozen=True, slots=True)
class DagPlan:
    """The DAG-level facts: its inputs (for ``ref: dag``), concurrency, DAG-level hooks and termination."""

    name: str
    inputs: dict[str, Any] = field(default_factory=dict)
    concurrency: int | None = None
    hooks: tuple[Hook, ...] = ()
    base_dir: str | None = None
    timeout: float | None = None
    """The DAG's ``termination.timeout`` in seconds, counted from the ``running`` of each attempt."""
    max_retries: int = 0
    """The DAG's ``termination.maxRetries``: how many times a failed DAG runs again, all its ops anew."""
    early_stopping: tuple[EarlyStopping, ...] = ()
    """The DAG's ``earlyStopping`` policies over its ops (``scheduler.early_stopping``)."""

    def to_meta(self) -> dict[str, Any]:
        return {
            "early_stopping": [dump(p) for p in self.early_stopping],
            "name": self.name,
            "inputs": self.inputs,
            "concurrency": self.concurrency,
            "hooks": [dump(h) for h in self.hooks],
            "base_dir": self.base_dir,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
        }

    @classmethod
    def from_meta(cls, data: Mapping[str, Any]) -> DagPlan:
        return cls(
            name=str(data["name"]),
            inputs=dict(data.get("inputs") or {}),
            concurrency=data.get("concurrency"),
            hooks=tuple(Hook.model_validate(h) for h in data.get("hooks") or ()),
            base_dir=data.get("base_dir"),
            timeout=data.get("timeout"),
            max_retries=int(data.get("max_retries") or 0),
            early_stopping=tuple(_POLICY.validate_python(p) for p in data.get("early_stopping") or ()),
        )


@dataclass(frozen=True, slots=True)
class HookPlan:
    """A hook run: the hook, its resolved component and its index among the main run's hooks."""

    hook: Hook
    component: Component
    index: int

    def to_meta(self) -> dict[str, Any]:
        return {"hook": dump(self.hook), "component": dump(self.component), "index": self.index}

    @classmethod
    def from_meta(cls, data: Mapping[str, Any]) -> HookPlan:
        return cls(
            hook=Hook.model_validate(data["hook"]),
            component=Component.model_validate(data["component"]),
            index=int(data["index"]),
        )


__all__ = [
    "DagPlan",
    "HookPlan",
    "OpPlan",
    "OpRequirements",
    "TerminationPlan",
    "dag_op_termination",
    "event_key",
    "make_op_plan",
    "plan_from_pipeline_op",
]
