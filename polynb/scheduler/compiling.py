"""The engine's seam to the compiler: resolve an op's params from its upstream runs, check its conditions,
place it on an executor and turn it into a :class:`CompiledOp` — or say why it cannot run.

Every outcome the scheduler acts on comes back as a value (``Compiled`` or ``Outcome``), never as an
exception: a param that cannot be resolved fails the op, conditions that are false skip it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from polynb.compiler.errors import CompilerError, ConditionError
from polynb.compiler.templates import evaluate_conditions
from polynb.compiler.types import CompiledOp
from polynb.executors.base import Executor
from polynb.lifecycle import Status
from polynb.scheduler import minicompile
from polynb.scheduler.hooks import default_context
from polynb.scheduler.plan import DagPlan, HookPlan, OpPlan, dump
from polynb.spec.models import Component, Hook, Operation
from polynb.store import RunNotFoundError, RunRecord, Store

logger = logging.getLogger(__name__)

REASON_CONDITIONS_NOT_MET = "ConditionsNotMet"
REASON_CONDITIONS_ERROR = "ConditionsError"
REASON_PARAMS = "ParamsError"
REASON_COMPILE = "CompilationFailed"


@dataclass(frozen=True, slots=True)
class Compiled:
    op: CompiledOp
    inputs: dict[str, Any]
    message: str = ""


@dataclass(frozen=True, slots=True)
class Outcome:
    """The op will not run: its final status and why."""

    status: Status
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class HookSelection:
    component: Component
    context: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    """Set when the hook's conditions could not be evaluated: the hook run is created ``failed``."""


class OpCompiler:
    """Binds the compiler's functions to the store (upstream runs) and the component registry (hooks)."""

    def __init__(self, *, store: Store, registry: Any | None) -> None:
        self._store = store
        self._registry = registry

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
    ) -> Compiled | Outcome:
        views = {name: minicompile.run_view(self._store.get_run(u)) for name, u in upstream.items()}
        dag_globals = {"uuid": dag_uuid, "name": dag_name} if dag_uuid else {}
        try:
            inputs, contexts = minicompile.resolve_params(
                plan.operation,
                plan.component,
                dag_inputs=dag_plan.inputs,
                dag_globals=dag_globals,
                upstream=views,
                lookup_run=self._lookup_run,
            )
        except CompilerError as exc:
            return Outcome(Status.FAILED, REASON_PARAMS, exc.message)
        placement = executor.place(uuid, minicompile.op_kind(plan.component), minicompile.port_count(plan.component))
        globals_ = minicompile.globals_for(uuid=uuid, name=plan.name, placement=placement)
        context = minicompile.template_context(inputs, contexts, globals_)
        if plan.conditions is not None:
            try:
                if not evaluate_conditions(plan.conditions, context):
                    return Outcome(
                        Status.SKIPPED, REASON_CONDITIONS_NOT_MET, f"conditions `{plan.conditions}` are false"
                    )
            except ConditionError as exc:
                return Outcome(Status.FAILED, REASON_CONDITIONS_ERROR, exc.message)
        try:
            op = minicompile.compile_op(
                uuid=uuid,
                name=plan.name,
                component=plan.component,
                termination=plan.termination,
                inputs=inputs,
                context=context,
                placement=placement,
                dag_uuid=dag_uuid,
                base_dir=dag_plan.base_dir,
            )
        except CompilerError as exc:
            return Outcome(Status.FAILED, REASON_COMPILE, exc.message)
        return Compiled(op, inputs, f"{len(inputs)} inputs resolved")

    def _lookup_run(self, uuid: str) -> minicompile.RunView | None:
        try:
            return minicompile.run_view(self._store.get_run(uuid))
        except RunNotFoundError:
            return None

    # -- hooks --------------------------------------------------------------------------------------

    def resolve_hooks(self, hooks: Iterable[Hook], *, base_dir: Any) -> dict[str, dict[str, Any]]:
        """Resolve every hook's ``hubRef`` now, so a bad ref fails the submission and a restarted engine
        (maybe without this registry) still has the components."""
        resolved: dict[str, dict[str, Any]] = {}
        for hook in hooks:
            if hook.hub_ref in resolved:
                continue
            if self._registry is None:
                raise ValueError(f"hook hubRef `{hook.hub_ref}` cannot be resolved: the engine has no registry")
            component = self._registry.resolve(Operation(hub_ref=hook.hub_ref), base_dir=base_dir)
            resolved[hook.hub_ref] = dump(component)
        return resolved

    def select_hook(
        self, hook: Hook, *, main: RunRecord, status: Status, components: Mapping[str, Any]
    ) -> HookSelection | None:
        """The hook's run, or None when its conditions are false. ``trigger`` is checked by the caller."""
        component = Component.model_validate(components[hook.hub_ref])
        main_context = default_context(
            name=main.name,
            uuid=main.uuid,
            kind=main.kind,
            status=status,
            inputs=main.inputs,
            outputs=main.outputs,
            created_at=main.created_at,
            started_at=main.started_at,
            finished_at=main.finished_at or main.updated_at,
        )
        context = {} if hook.disable_defaults else main_context
        if hook.conditions is not None:
            # Polyaxon renders hook conditions with the main run's inputs, outputs and globals.
            env = {**main.inputs, **main.outputs, "globals": {"uuid": main.uuid, "name": main.name}}
            try:
                if not evaluate_conditions(hook.conditions, env):
                    return None
            except ConditionError as exc:
                return HookSelection(component, context, exc.message)
        return HookSelection(component, context)

    def compile_hook(self, plan: HookPlan, *, uuid: str, executor: Executor) -> Compiled | Outcome:
        operation = Operation(hub_ref=plan.hook.hub_ref, params=plan.hook.params)
        try:
            inputs, contexts = minicompile.resolve_params(
                operation,
                plan.component,
                dag_inputs={},
                dag_globals={},
                upstream={},
                lookup_run=self._lookup_run,
                extra_context=plan.context,
            )
        except CompilerError as exc:
            return Outcome(Status.FAILED, REASON_PARAMS, exc.message)
        placement = executor.place(uuid, minicompile.op_kind(plan.component), minicompile.port_count(plan.component))
        name = plan.component.name or plan.hook.hub_ref
        globals_ = minicompile.globals_for(uuid=uuid, name=name, placement=placement)
        try:
            op = minicompile.compile_op(
                uuid=uuid,
                name=name,
                component=plan.component,
                termination=None,
                inputs=inputs,
                context=minicompile.template_context(inputs, contexts, globals_),
                placement=placement,
                dag_uuid=None,
                base_dir=None,
            )
        except CompilerError as exc:
            return Outcome(Status.FAILED, REASON_COMPILE, exc.message)
        return Compiled(op, inputs, "hook compiled")
