"""Nested DAGs: an op of a DAG whose component's run is itself a DAG (``run: {kind: dag, ...}``).

The op's run *is* the inner DAG's run (kind ``dag``, Polyaxon's pipeline of its ops): its ops are runs whose
``dag_uuid`` is it, and it is scheduled by the same machinery as the top-level DAG (a
:class:`~polynb.scheduler.state.DagState` keyed by its uuid, ``evaluation``, ``stopping``, ``termination``).

* The op is compiled as any op (params, conditions), but nothing is placed on an executor: its resolved
  params are the inner DAG's inputs (``ref: dag`` of its ops, ``{{ inputs.x }}``). It waits for a slot of the
  outer DAG like any op; once it has one it is claimed ``running`` and its ops are created in the same
  transaction (a restarted engine finds both or neither: nothing is ever created twice).
* The inner DAG is decided by the DAG status rule (``dag_status``); its status is the op's, which the outer
  DAG then reads like any op's (``upstream_failed`` downstream of a failed one, hooks, events).
* Outputs: each output the DAG component declares takes, when it succeeds, the value of the output of the
  same name of its last op (in the order they are written) that has one, else the output's ``value``; the
  outer DAG's ops read them as ``ref: ops.<op>, value: outputs.<name>``.
* Stopping the op (or the outer DAG) stops the inner DAG's ops; its ``termination`` is the inner DAG's (the
  op's fields, else the DAG component's): ``timeout`` stops it, ``maxRetries`` runs a failed inner DAG again as
  a whole, as a new attempt of the op (``retrying``, then all its ops anew, as a top-level DAG's retries).
"""

from __future__ import annotations

from typing import Any

from polynb.compiler.pipeline import build_pipeline
from polynb.compiler.registry import ComponentRegistry
from polynb.lifecycle import Status
from polynb.scheduler.plan import DagPlan, dag_op_termination, plan_from_pipeline_op
from polynb.scheduler.run_state import RunState
from polynb.scheduler.state import DagState, EngineState
from polynb.scheduler.statuses import Statuses
from polynb.scheduler.submission import op_runs
from polynb.scheduler.tallies import DagIndex
from polynb.scheduler.termination import Termination
from polynb.spec.errors import SpecErrors
from polynb.spec.models import Component, Dag, Hook

REASON_NESTED = "Scheduling"
REASON_NESTED_REFUSED = "CompilationFailed"


def is_nested(run: RunState) -> bool:
    """``run`` is an op of a DAG whose component is a DAG."""
    return run.role == "op" and run.plan is not None and isinstance(run.plan.component.run, Dag)


def nested_hooks(component: Component) -> list[Hook]:
    """Every hook of the ops of a DAG component, at any depth (their components are inlined by the compiler),
    so ``Engine.submit`` resolves them with the top-level ones."""
    run = component.run
    if not isinstance(run, Dag):
        return []
    hooks: list[Hook] = []
    for op in run.operations:
        hooks += op.hooks or ()
        if op.component is not None:
            hooks += op.component.hooks or ()
            hooks += nested_hooks(op.component)
    return hooks


class Nesting:
    """Starts the inner DAG of an op and gives it its outputs (engine thread only)."""

    def __init__(self, state: EngineState, statuses: Statuses, termination: Termination) -> None:
        self._state = state
        self._statuses = statuses
        self._termination = termination

    def start(self, run: RunState) -> None:
        """``run`` (an op running a DAG, ``compiled``) has a slot: claim it ``running`` and create its ops."""
        state = self._state
        store = state.store
        assert run.plan is not None
        component = run.plan.component
        declared = {io.name for io in component.inputs or ()}
        inputs = {k: v for k, v in store.get_run(run.uuid).inputs.items() if k in declared}
        parent = state.dag_of(run)
        base_dir = parent.plan.base_dir if parent is not None else None
        try:
            # Its ops' components were resolved and inlined by the compiler; its hooks' components were
            # resolved at submission and kept with the top-level run: no notebook registry is needed here.
            pipeline = build_pipeline(component, params=inputs, registry=self._hook_registry(run))
        except SpecErrors as exc:
            problem: str | None = "; ".join(e.message for e in exc.errors) or "the nested DAG is not valid"
        else:
            problem = None
        with store.atomic():
            claim = store.claim(run.uuid, status=Status.RUNNING, expected={Status.COMPILED}, reason=REASON_NESTED,
                                message="evaluating the nested DAG's ops' triggers")  # fmt: skip
            if claim and problem is None:
                term = pipeline.termination
                own = dag_op_termination(run.plan)
                timeout = own.timeout or (float(term.timeout) if term and term.timeout else None)
                plan = DagPlan(
                    name=run.name,
                    inputs=dict(pipeline.inputs),
                    concurrency=pipeline.concurrency,
                    base_dir=base_dir,
                    timeout=timeout,
                    max_retries=own.max_retries,  # the op's, else its DAG component's
                    early_stopping=pipeline.early_stopping,
                )
                ops = [plan_from_pipeline_op(op) for op in pipeline.ops.values()]
                store.set_meta(run.uuid, {"dag": plan.to_meta()})
                records = store.create_runs(op_runs(run.uuid, ops, run.executor, attempt=1))
        if not self._statuses.apply(run, claim):
            return
        self._statuses.hold_slot(run, True)
        if problem is not None:
            self._statuses.finish(run, Status.FAILED, REASON_NESTED_REFUSED, problem)
            return
        state.outbox.publish(store.events(dag_uuid=run.uuid, after_seq=claim.events[-1].seq))
        for op, record in zip(ops, records, strict=True):
            self._statuses.adopt(record, role="op", plan=op, root=run.root)
        dag = DagState(run.uuid, plan)
        dag.ops = {record.name: record.uuid for record in records}
        dag.index = DagIndex({name: state.runs[uuid] for name, uuid in dag.ops.items()})
        state.dags[run.uuid] = dag
        self._termination.arm_dag_timeout(dag)
        state.dirty_dags.add(run.uuid)

    def _hook_registry(self, run: RunState) -> ComponentRegistry:
        registry = ComponentRegistry()
        for ref, data in (self._state.store.get_run(run.root).meta.get("hook_components") or {}).items():
            registry.register(ref, Component.model_validate(data))
        return registry

    def give_outputs(self, dag: DagState) -> None:
        """The inner DAG succeeded: record the outputs its component declares on the op's run."""
        state = self._state
        run = state.runs[dag.uuid]
        assert run.plan is not None
        declared = run.plan.component.outputs or ()
        if not declared:
            return
        found: dict[str, Any] = {}
        for uuid in dag.ops.values():
            found.update(state.store.get_run(uuid).outputs)
        outputs = {io.name: found.get(io.name, io.value) for io in declared if io.name in found or io.value is not None}
        if outputs:
            state.store.set_outputs(run.uuid, outputs)
