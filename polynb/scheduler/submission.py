"""From a pipeline to running processes: create the runs, compile each op when it may start, claim it in
the store and hand it to its executor (through ``submitter``'s threads), store the handle when it is back.

An op of a DAG waits, ``compiled``, for a concurrency slot (``dispatch``); single runs and hook runs have
no DAG and are claimed as soon as they are compiled. The claim (atomic, exactly once) happens on the engine
thread; from it on the run holds its slot and its timeout counts.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from polynb.compiler.cache import CACHE_META_KEY, cache_key, cache_of, ttl_of
from polynb.compiler.types import CompiledOp
from polynb.executors.base import EVENTS_AWAITED_LABEL, ExecutorUpdate, SubmitRefusedError, UpdateCallback
from polynb.lifecycle import REASON_STOPPED, Status
from polynb.scheduler.compiling import Bound, Compiled, OpCompiler, Outcome
from polynb.scheduler.connection_waits import event_inputs, payload_for
from polynb.scheduler.ownership import OWNER_KEY
from polynb.scheduler.plan import DagPlan, OpPlan
from polynb.scheduler.readiness import APPROVED_EVENT, INVALIDATED_EVENT, REASON_INVALIDATED
from polynb.scheduler.run_state import RunState
from polynb.scheduler.schedule_state import SCHEDULE_KIND, TICK_KEY
from polynb.scheduler.state import DagState, EngineState
from polynb.scheduler.statuses import Statuses
from polynb.scheduler.submitter import Submitted, Submitter
from polynb.scheduler.sweep_state import SWEEP_KIND
from polynb.scheduler.tallies import DagIndex, awaits_events
from polynb.scheduler.termination import Termination
from polynb.spec.plugins import Cache
from polynb.store import NewRun, RunRecord, new_uuid, new_uuids
from polynb.store.records import DAG_ATTEMPT_KEY

REASON_CACHED = "Cached"
"""An op that reused an earlier run's outputs (``cache``) instead of running."""

logger = logging.getLogger(__name__)

REASON_SUBMIT_FAILED = "SubmitFailed"
REASON_RETRYING = "Retrying"
"""The reason of a DAG's ``running`` when its ``maxRetries`` starts another attempt."""


class Submission:
    """Creates, compiles, claims and submits the runs of one engine (engine thread only)."""

    def __init__(
        self,
        state: EngineState,
        statuses: Statuses,
        termination: Termination,
        compiler: OpCompiler,
        submitter: Submitter,
        on_update: UpdateCallback,
    ) -> None:
        self._state = state
        self._statuses = statuses
        self._termination = termination
        self._compiler = compiler
        self._submitter = submitter
        self._on_update = on_update
        self.start_sweep: Callable[[RunState], None] = lambda run: None
        """Runs an op of a DAG with a ``matrix`` as a sweep (set by the engine: ``sweeps`` sits above)."""
        self.start_schedule: Callable[[RunState], None] = lambda run: None
        """Runs an op of a DAG with a ``schedule`` as a schedule (set by the engine: ``schedules`` sits above)."""
        self.start_nested: Callable[[RunState], None] = lambda run: None
        """Claims an op running a nested DAG and creates its ops (set by the engine: ``nesting`` sits above)."""

    # -- creating runs ------------------------------------------------------------------------------

    def create(
        self,
        kind: str,
        dag_plan: DagPlan,
        ops: list[OpPlan],
        hook_components: Mapping[str, Any],
        executor: str,
    ) -> str:
        """Create the runs of a pipeline (all in one transaction) and start scheduling them; return the
        top-level run's uuid."""
        state = self._state
        owner = {OWNER_KEY: state.owner}
        hooks_meta = {"hook_components": dict(hook_components)}
        if kind == "single":
            (op,) = ops
            uuid = new_uuid()
            record = state.store.create_run(
                NewRun(
                    name=op.name,
                    kind=op.kind,
                    uuid=uuid,
                    spec={},
                    meta={"role": "single", "plan": op.to_meta(), "dag": dag_plan.to_meta(), **owner, **hooks_meta},
                    executor=executor,
                )
            )
            run = self._statuses.adopt(record, role="single", plan=op, root=uuid)
            state.outbox.publish(state.store.events(run_uuid=uuid))
            state.dirty_roots.add(uuid)
            self.start_unless_awaiting_approval(run)
            return uuid

        dag_uuid = new_uuid()
        dag_record = NewRun(
            name=dag_plan.name,
            kind="dag",
            uuid=dag_uuid,
            inputs=dag_plan.inputs,
            meta={"role": "dag", "dag": dag_plan.to_meta(), **owner, **hooks_meta},
            executor=executor,
        )
        records = state.store.create_runs([dag_record, *op_runs(dag_uuid, ops, executor, attempt=1)])
        state.outbox.publish(state.store.events(dag_uuid=dag_uuid))
        dag_run = self._statuses.adopt(records[0], role="dag", root=dag_uuid)
        dag = DagState(dag_uuid, dag_plan)
        state.dags[dag_uuid] = dag
        self._adopt_ops(dag, ops, records[1:])
        self._statuses.set(dag_run, Status.COMPILED, "Created", f"{len(ops)} ops")
        # Claimed, so the DAG's ``attempt`` is 1, as an op's on its first try (``next_attempt`` adds one).
        claim = state.store.claim(
            dag_uuid,
            status=Status.RUNNING,
            expected={Status.COMPILED},
            reason="Scheduling",
            message="evaluating the ops' triggers",
        )
        self._statuses.apply(dag_run, claim)
        self._termination.arm_dag_timeout(dag)
        state.dirty_dags.add(dag_uuid)
        return dag_uuid

    def start_unless_awaiting_approval(self, run: RunState) -> None:
        """A single run or a hook run starts at once; a single run with ``isApproved: false`` stays ``created``
        until its ``run_approved_actor`` event (``intake``), or is ``skipped`` on ``run_invalidated_actor``."""
        approval = run.plan.requirements.approval if run.plan is not None else None
        if approval is not None and APPROVED_EVENT not in run.emitted:
            if INVALIDATED_EVENT in run.emitted:
                self._statuses.finish(
                    run, Status.SKIPPED, REASON_INVALIDATED, "invalidated while waiting for an approval"
                )
            return
        self.prepare_and_submit(run)

    def next_attempt(self, dag: DagState) -> None:
        """A DAG's ``maxRetries``: run it again, all its ops anew (new runs with the same names, in one
        transaction with the DAG's ``retrying`` → ``running``); the previous attempt's runs, all final, stay
        in the store for the history and leave the engine's view."""
        state = self._state
        if state.closing:
            return  # left retrying: the next engine on this store starts the attempt
        dag_run = state.runs[dag.uuid]
        previous = [state.runs[uuid] for uuid in dag.ops.values()]
        plans = [run.plan for run in previous if run.plan is not None]
        attempt = dag_run.attempt + 1
        total = dag.plan.max_retries + 1
        message = f"attempt {attempt} of {total}"
        records: list[RunRecord] = []
        with state.store.atomic():
            started = state.store.claim(
                dag.uuid, status=Status.RUNNING, expected={Status.RETRYING}, reason=REASON_RETRYING, message=message
            )
            if started:
                records = state.store.create_runs(op_runs(dag.uuid, plans, dag_run.executor, attempt=attempt))
        self._statuses.apply(dag_run, started)
        if not started:
            return  # someone else moved the DAG (a stop from another process): nothing was written
        state.outbox.publish(state.store.events(dag_uuid=dag.uuid, after_seq=started.events[-1].seq))
        for run in previous:
            del state.runs[run.uuid]
            state.dags.pop(run.uuid, None)  # an op of the failed attempt that ran a nested DAG: final, left
        dag.ready.clear()
        dag.between_attempts = dag.retry_due = False
        dag.begin_attempt(started.events[-1].seq, set())
        self._adopt_ops(dag, plans, records)
        self._termination.arm_dag_timeout(dag)
        state.dirty_dags.add(dag.uuid)

    def _adopt_ops(self, dag: DagState, plans: list[OpPlan], records: list[RunRecord]) -> None:
        state = self._state
        root = state.runs[dag.uuid].root or dag.uuid  # a nested DAG's ops belong to the top-level run
        for plan, record in zip(plans, records, strict=True):
            self._statuses.adopt(record, role="op", plan=plan, root=root)
        dag.ops = {record.name: record.uuid for record in records}
        dag.index = DagIndex({name: state.runs[uuid] for name, uuid in dag.ops.items()})

    # -- compiling ----------------------------------------------------------------------------------

    def compile(self, run: RunState, dag: DagState | None) -> Compiled | Bound | Outcome:
        """Resolve params, check conditions and compile ``run`` (an op, a single run or a hook run).

        An op some op of its DAG awaits a non-status event of is labelled so (``EVENTS_AWAITED_LABEL``): an
        executor whose pods' files the engine cannot read brings the events back from them."""
        result = self._compile(run, dag)
        if run.is_service and not isinstance(result, Bound):
            run.placed = True  # its ports are reserved until the executor has it, or it ends (``Statuses``)
        awaited = dag is not None and dag.index is not None and awaits_events(dag.index, run.name)
        if isinstance(result, Compiled) and awaited:
            labels = {**result.op.labels, EVENTS_AWAITED_LABEL: "true"}
            result = dataclasses.replace(result, op=dataclasses.replace(result.op, labels=labels))
        return result

    def _compile(self, run: RunState, dag: DagState | None) -> Compiled | Bound | Outcome:
        state = self._state
        executor = state.executor(run)
        if run.hook is not None:
            return self._compiler.compile_hook(run.hook, uuid=run.uuid, main_uuid=run.hook_of or "", executor=executor)
        assert run.plan is not None
        above = state.sweeps.get(run.dag_uuid or "") if run.role == "trial" else None
        schedule = state.schedules.get(run.dag_uuid or "") if run.role == "tick" else None
        schedule_at = self._tick_at(run) if run.role == "tick" else None
        outer = above.dag_uuid if above is not None else schedule.dag_uuid if schedule is not None else None
        if outer is not None and outer in state.dags:
            # A trial or a tick of an op of a DAG: compiled as that op would be (a trial's params the suggestion).
            parent = state.dags[outer]
            return self._compiler.compile_op(
                run.plan,
                uuid=run.uuid,
                dag_uuid=parent.uuid,
                dag_plan=parent.plan,
                dag_name=state.runs[parent.uuid].name,
                upstream={n: parent.ops[n] for n in run.plan.upstream if n in parent.ops},
                executor=executor,
                schedule_at=schedule_at,
            )
        return self._compiler.compile_op(
            run.plan,
            uuid=run.uuid,
            # A trial is compiled as a single run whose bound inputs are the sweep's with its params over them;
            # a tick as a single run with the schedule's.
            dag_uuid=None if run.role in ("trial", "tick") else run.dag_uuid,
            dag_plan=dag.plan if dag else self._single_dag_plan(run),
            dag_name=state.runs[dag.uuid].name if dag else None,
            upstream={n: dag.ops[n] for n in run.plan.upstream if n in dag.ops} if dag else {},
            executor=executor,
            event_params=self._connection_params(run, dag),
            schedule_at=schedule_at,
        )

    def _connection_params(self, run: RunState, dag: DagState | None) -> dict[str, Any] | None:
        """The inputs an awaited connection event gives an op of a DAG (``connection_waits``)."""
        if dag is None or run.plan is None:
            return None
        payload = payload_for(self._state.store, dag, run)
        if payload is None:
            return None
        return event_inputs(payload, run.plan.component.inputs or ())

    def _tick_at(self, run: RunState) -> str | None:
        """The nominal time of the tick ``run`` (a tick's run) was made for: ``globals.schedule_at``."""
        tick = self._state.store.get_run(run.uuid).meta.get(TICK_KEY)
        return str(tick["at"]) if isinstance(tick, dict) and tick.get("at") else None

    def prepare(self, run: RunState, dag: DagState | None) -> None:
        """Compile an op; it becomes ``compiled`` and waits for a slot (in its DAG) or is claimed at once.

        An op of a DAG with a ``matrix`` is not compiled: it waits for a slot, then runs as a sweep (its
        trials are compiled, each with its params)."""
        if dag is not None and run.plan is not None and run.plan.operation.matrix is not None:
            self._statuses.set(run, Status.COMPILED, "Compiled", "a sweep: its trials are compiled one by one")
            self.enqueue(run, dag)
            return
        if dag is not None and run.plan is not None and run.plan.operation.schedule is not None:
            self._statuses.set(run, Status.COMPILED, "Compiled", "a schedule: each tick's run compiles when it fires")
            self.enqueue(run, dag)
            return
        outcome = self.compile(run, dag)
        if isinstance(outcome, Compiled) and self._claimable_now(run, dag) and self._compile_and_claim(run, outcome):
            return
        self._apply_compiled(run, outcome)
        if run.status == Status.COMPILED:
            self.enqueue(run, dag)

    def _claimable_now(self, run: RunState, dag: DagState | None) -> bool:
        """Would ``run``, once compiled, be claimed at once (``enqueue``, ``dispatch``)? A plain op (no cache to
        reuse, not a sweep, a schedule nor a nested DAG) with, in its DAG, no op queued for a slot before it and
        a slot free."""
        plan = run.plan
        if plan is None or run.hook is not None or run.status != Status.CREATED:
            return False
        if run.stop_requested or self._state.closing:
            return False
        op = plan.operation
        if op.matrix is not None or op.schedule is not None or plan.kind == "dag":
            return False
        if cache_of(op, plan.component) is not None:
            return False
        if dag is None:
            return True
        assert dag.index is not None
        limit = dag.plan.concurrency
        return not dag.ready and (limit is None or dag.index.active < limit)

    def _compile_and_claim(self, run: RunState, outcome: Compiled) -> bool:
        """``compiled`` then ``queued`` (claimed) in one store write (``Store.compile_and_claim``): each status
        has its history row and its event, as two moves would write them. False, with nothing written, if the
        run moved meanwhile (another process): the caller makes the two moves, which decide on it."""
        state = self._state
        moved = state.store.compile_and_claim(
            run.uuid,
            spec=outcome.op.to_dict(),
            inputs=outcome.inputs,
            executor=run.executor,
            compiled=("Compiled", outcome.message or None),
        )
        if moved is None:
            return False
        run.compiled = outcome.op
        self._statuses.apply(run, moved)
        self._submit_claimed(run)
        return True

    def prepare_and_submit(self, run: RunState) -> None:
        """Single runs and hook runs: no DAG, no concurrency limit."""
        if run.is_final or self._state.shutting_down:
            return
        self.prepare(run, None)

    def enqueue(self, run: RunState, dag: DagState | None) -> None:
        """A compiled run: in its DAG's queue for a slot, or claimed at once (no DAG)."""
        if dag is not None:
            dag.ready.append(run.uuid)
        else:
            self.claim_and_submit(run)

    def _apply_compiled(self, run: RunState, outcome: Compiled | Bound | Outcome) -> None:
        if isinstance(outcome, Outcome):
            self._statuses.finish(run, outcome.status, outcome.reason, outcome.message)
            return
        if isinstance(outcome, Bound):  # a nested DAG: its params are its inputs; its ops compile later
            self._state.store.set_spec(run.uuid, {}, inputs=outcome.inputs)
            self._statuses.set(run, Status.COMPILED, "Compiled", f"a nested DAG: {len(outcome.inputs)} inputs bound")
            return
        run.compiled = outcome.op
        spec, inputs = outcome.op.to_dict(), outcome.inputs
        self._statuses.set(run, Status.COMPILED, "Compiled", outcome.message, spec=spec, inputs=inputs)
        self._reuse_cached(run, outcome.op, outcome.cache)

    def _reuse_cached(self, run: RunState, op: CompiledOp, cache: Cache | None) -> None:
        """An op with a ``cache`` section (``compiler.cache``, rendered with the op): record its key; a run that
        succeeded with the same key within ``ttl`` gives it its outputs, and it ends ``succeeded`` (reason
        ``Cached``) unrun."""
        if cache is None or run.plan is None or run.hook is not None:
            return
        store = self._state.store
        key = cache_key(op, cache)
        store.set_meta(run.uuid, {CACHE_META_KEY: key})
        ttl = ttl_of(cache)
        hit = store.find_cached(key, since=None if ttl is None else time.time() - ttl, exclude=run.uuid)
        if hit is None:
            return
        store.set_outputs(run.uuid, hit.outputs)
        self._statuses.finish(run, Status.SUCCEEDED, REASON_CACHED, f"reused the outputs of run {hit.name} "
                              f"({hit.uuid}; its artifacts are there): same cache key")  # fmt: skip

    def _single_dag_plan(self, run: RunState) -> DagPlan:
        record = self._state.store.get_run(run.uuid if run.role in ("trial", "tick") else run.root)
        return DagPlan.from_meta(record.meta["dag"]) if "dag" in record.meta else DagPlan(name=run.name)

    # -- claiming and submitting --------------------------------------------------------------------

    def dispatch(self, dag: DagState) -> None:
        """Submit compiled ops while the DAG's concurrency allows (services hold a slot too)."""
        state = self._state
        limit = dag.plan.concurrency
        assert dag.index is not None
        while dag.ready:
            if limit is not None and dag.index.active >= limit:
                return
            run = state.runs[dag.ready.popleft()]
            if run.status in (Status.COMPILED, Status.RETRYING) and not run.stop_requested:
                self.claim_and_submit(run)

    def resubmit(self, run: RunState) -> None:
        """The next attempt of a ``retrying`` run: in its DAG's queue for a slot, or claimed at once. For a
        DAG run, its next attempt is due: it starts once the previous attempt's ops are all final
        (``DagEvaluator``)."""
        retried = self._state.dags.get(run.uuid)  # a DAG run, or an op running a nested DAG
        if retried is not None:
            retried.retry_due = True
            self._state.dirty_dags.add(run.uuid)
            return
        dag = self._state.dag_of(run)
        if dag is not None:
            dag.ready.append(run.uuid)
            self.dispatch(dag)
        else:
            self.claim_and_submit(run)

    def claim_and_submit(self, run: RunState) -> None:
        """Claim the run in the store (exactly once), then queue it for the submitter threads.

        From the claim on the run counts as submitted (it holds its slot, updates are accepted); its handle
        is stored when the ``Submitted`` message comes back (``on_submitted``).
        """
        state = self._state
        if state.closing:
            return  # left compiled/retrying: the next engine on this store resumes it
        if run.plan is not None and run.plan.operation.matrix is not None and run.role == "op":
            claim = state.store.claim(run.uuid, status=Status.RUNNING, expected={Status.COMPILED}, reason="Sweeping")
            if self._statuses.apply(run, claim):
                self._statuses.hold_slot(run, True)  # the sweep holds its DAG's slot until its trials are done
                self.start_sweep(run)
            return
        if run.plan is not None and run.plan.operation.schedule is not None and run.role == "op":
            # A schedule holds no slot of its DAG (as Polyaxon counts only runs queued or on the cluster); its
            # ticks' runs are under it, not the DAG's ops.
            claim = state.store.claim(run.uuid, status=Status.ON_SCHEDULE, expected={Status.COMPILED},
                                      reason="Scheduling")  # fmt: skip
            if self._statuses.apply(run, claim):
                self.start_schedule(run)
            return
        if run.role == "op" and run.plan is not None and run.plan.kind == "dag":
            self.start_nested(run)  # claimed with its ops created; it holds its DAG's slot until they are done
            return
        if run.compiled is None:
            record = state.store.get_run(run.uuid)
            run.compiled = CompiledOp.from_dict(record.spec)
        queued = state.store.move(
            run.uuid, Status.QUEUED, known=run.status, claim=True, executor=run.executor, reason="Queued"
        )
        if not self._statuses.apply(run, queued):
            logger.warning("run %s not claimed (status %s): not submitted", run.uuid, queued.previous)
            return
        self._submit_claimed(run)

    def _submit_claimed(self, run: RunState) -> None:
        """``run`` is claimed (``queued``): it holds its slot; it is submitted once the claim is committed."""
        state = self._state
        assert run.compiled is not None
        self._statuses.hold_slot(run, True)
        run.in_flight = True
        run.claimed_at = time.monotonic()
        try:
            executor = state.executor(run)
        except RuntimeError as exc:
            self.on_submitted(Submitted(run.uuid, run.attempt, error=exc))  # a refusal: no update to replay
            return
        # Made once the claim is committed: a process must never run for a claim a crash could undo.
        submitter, op, on_update, attempt = self._submitter, run.compiled, self._on_update, run.attempt
        state.outbox.post(
            lambda: submitter.submit(executor, op, on_update, attempt=attempt), f"submitting run {op.uuid}"
        )

    def on_submitted(self, done: Submitted) -> list[ExecutorUpdate]:
        """The executor has the run (or refused it): store the handle, send a stop asked meanwhile.

        Returns the updates that came before the handle, for the caller to apply now, in order.
        """
        state = self._state
        run = state.runs.get(done.uuid)
        if run is None or run.attempt != done.attempt or not run.in_flight:
            return []  # an earlier attempt's, already superseded by a new claim
        run.in_flight = False
        early, run.early = run.early, []
        if done.error is not None:
            if isinstance(done.error, SubmitRefusedError):  # says it all: no traceback
                logger.error("executor %s refused run %s: %s", run.executor, run.uuid, done.error)
            else:
                logger.error("executor %s refused run %s", run.executor, run.uuid, exc_info=done.error)
            if run.stop_requested:
                self._statuses.finish(run, Status.STOPPED, REASON_STOPPED, "stopped before the executor started it")
            else:
                message = f"{type(done.error).__name__}: {done.error}"
                self._statuses.finish(run, Status.FAILED, REASON_SUBMIT_FAILED, message)
            return []
        state.store.set_handle(run.uuid, done.handle, executor=run.executor)
        run.placed = False  # the executor has it: its ports are given back when it is cleaned up
        if run.is_final:
            return []
        if run.stop_requested:
            state.stop_later(run)
        assert run.compiled is not None
        self._termination.arm_timeout(run, elapsed=time.monotonic() - run.claimed_at)
        return early


def _run_kind(op: OpPlan) -> str:
    """An op's run kind, as Polyaxon derives it: ``schedule`` / ``matrix`` (``V1RunKind``) for an op with a
    ``schedule`` / ``matrix`` (its run is over the runs under it), else its component's run kind."""
    if op.operation.schedule is not None:
        return SCHEDULE_KIND
    if op.operation.matrix is not None:
        return SWEEP_KIND
    return op.kind


def op_runs(dag_uuid: str, ops: list[OpPlan], executor: str, *, attempt: int) -> list[NewRun]:
    """The runs of a DAG's ops for one attempt of the DAG."""
    return [
        NewRun(
            name=op.name,
            kind=_run_kind(op),
            uuid=uuid,
            dag_uuid=dag_uuid,
            meta={"role": "op", "plan": op.to_meta(), DAG_ATTEMPT_KEY: attempt},
            executor=executor,
        )
        for op, uuid in zip(ops, new_uuids(len(ops)), strict=True)
    ]
