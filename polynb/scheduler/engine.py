"""The event-driven engine: one thread consuming a queue of messages, one store, any executors.

Threading. Executor threads only enqueue updates (``_on_update``); public methods enqueue a call and, when
they need an answer, wait on a future; the submitter threads (``submitter``) call ``executor.submit`` and
enqueue the outcome. Everything that decides or writes statuses runs on the engine thread, so decisions
never race. Each message costs O(edges of the run that moved), not O(ops): see ``tallies``. The loop
blocks on ``queue.get(timeout=<next timer deadline>)``: there is no poll loop. Subscribers are called on
the engine thread after each store write, in seq order.

See the ``polynb.scheduler`` package docstring for the semantics and the decisions DESIGN §3 leaves open.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from polynb.compiler.registry import ComponentRegistry
from polynb.compiler.types import CompiledOp
from polynb.executors.base import Executor, ExecutorUpdate
from polynb.lifecycle import REASON_STOPPED, Status, event_kind, is_final
from polynb.scheduler import recovery
from polynb.scheduler.compiling import Compiled, OpCompiler, Outcome
from polynb.scheduler.dag_status import counts_status
from polynb.scheduler.events import EngineEvent, Listeners
from polynb.scheduler.hooks import hook_run_name, trigger_matches
from polynb.scheduler.ownership import OWNER_KEY, new_owner, owner_alive
from polynb.scheduler.plan import DagPlan, HookPlan, OpPlan, plan_from_pipeline_op
from polynb.scheduler.readiness import Action, UpstreamState, Verdict, evaluate, evaluate_tallied
from polynb.scheduler.state import DagState, RunState, Settled
from polynb.scheduler.submitter import Submitted, Submitter
from polynb.scheduler.tallies import DagIndex, RootTally
from polynb.scheduler.timers import Timers
from polynb.store import NewRun, RunNotFoundError, RunRecord, Store, Transition, new_uuid

logger = logging.getLogger(__name__)

T = TypeVar("T")

REASON_TIMEOUT = "Timeout"
REASON_DAG_STOPPED = "DagStopped"
REASON_SHUTDOWN = "EngineShutdown"
REASON_RAN = "ObservedSucceeded"
RUNNING_EVENT = event_kind(Status.RUNNING)

_PROGRESS = {Status.QUEUED: 0, Status.SCHEDULED: 1, Status.STARTING: 2, Status.RUNNING: 3}
"""The order a submitted run moves in: an update behind the run's current status is not applied."""

DEFAULT_RETRY_DELAY = 0.5
"""Seconds between a failed attempt and the next (a timer, not a sleep)."""


@dataclass(frozen=True, slots=True)
class _Call:
    fn: Callable[[], Any]
    future: Future[Any] | None


@dataclass(frozen=True, slots=True)
class _Update:
    update: ExecutorUpdate


_QUIT = object()


class Engine:
    """Runs pipelines: statuses, events, trigger policies, conditions, hooks, retries, timeouts, stop."""

    def __init__(
        self,
        *,
        store: Store,
        executors: Mapping[str, Executor] | None = None,
        default_executor: str = "local",
        registry: ComponentRegistry | None = None,
        retry_delay: float = DEFAULT_RETRY_DELAY,
    ) -> None:
        self.store = store
        self._executors: dict[str, Executor] = dict(executors) if executors is not None else {}
        self.default_executor = default_executor
        self._registry = registry
        self._compiler = OpCompiler(store=store, registry=registry)
        self._retry_delay = retry_delay
        self._queue: queue.Queue[object] = queue.Queue()
        self._timers = Timers()
        self._listeners = Listeners()
        self._runs: dict[str, RunState] = {}
        self._dags: dict[str, DagState] = {}
        self._dirty_dags: set[str] = set()
        self._dirty_roots: set[str] = set()
        self._settled: dict[str, Settled] = {}
        self._roots: dict[str, RootTally] = {}
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._owner = new_owner()
        self._shutting_down = False
        self._closing = False
        """No new claims: the engine is shutting down (runs not claimed yet stay for the next engine)."""
        self._submitter = Submitter(self._queue.put)

    # -- public API (any thread) --------------------------------------------------------------------

    def start(self) -> None:
        """Start the engine thread and adopt the unfinished runs of engines that are gone."""
        if self._thread is not None:
            return
        if self.default_executor not in self._executors and not self._executors:
            self._executors[self.default_executor] = _default_local_executor()
        self._thread = threading.Thread(target=self._loop, name="polynb-engine", daemon=True)
        self._thread.start()
        self._call(self._recover)

    def submit(self, pipeline: Any, *, executor: str | None = None) -> str:
        """Create every run of ``pipeline`` (status ``created``) and start scheduling it.

        Returns the top-level run's uuid: the DAG run, or the run of a single-op pipeline.
        """
        name = executor or self.default_executor
        if name not in self._executors:
            raise ValueError(f"unknown executor {name!r}; known: {', '.join(sorted(self._executors)) or 'none'}")
        ops = [plan_from_pipeline_op(op) for op in pipeline.ops.values()]
        hook_components = self._compiler.resolve_hooks(
            [h for op in ops for h in op.hooks] + list(pipeline.hooks or ()), base_dir=pipeline.base_dir
        )
        dag_plan = DagPlan(
            name=pipeline.name,
            inputs=dict(pipeline.inputs or {}),
            concurrency=pipeline.concurrency,
            hooks=tuple(pipeline.hooks or ()),
            base_dir=str(pipeline.base_dir) if pipeline.base_dir is not None else None,
        )
        uuid: str = self._call(lambda: self._submit(pipeline.kind, dag_plan, ops, hook_components, name))
        return uuid

    def stop(self, uuid: str) -> None:
        """Stop a run: an op (``stopping`` → ``stopped``) or a whole DAG (its pending ops become ``stopped``)."""
        self._call(lambda: self._stop(uuid))

    def wait(
        self,
        uuid: str,
        *,
        timeout: float | None = None,
        include_services: bool = False,
        include_hooks: bool = True,
    ) -> str:
        """Block until the run is final and return its status.

        For a DAG: once every non-service op is final (the DAG's own status is set then); with
        ``include_services`` also until its services are final. With ``include_hooks`` (default) also until
        the hook runs started so far are final. Raises ``TimeoutError`` after ``timeout`` seconds.
        """

        def ready() -> str | None:
            settled = self._settled.get(uuid)
            if settled is None or settled.status is None:
                return None
            if include_services and not settled.services_done:
                return None
            if include_hooks and not settled.hooks_done:
                return None
            return settled.status.value

        with self._cond:
            if uuid not in self._settled:
                record = self.store.get_run(uuid)  # RunNotFoundError for a wrong uuid
                if record.is_final:
                    return record.status.value
                raise LookupError(f"run {uuid} is not managed by this engine (is another engine running it?)")
            if not self._cond.wait_for(lambda: ready() is not None, timeout=timeout):
                raise TimeoutError(f"run {uuid} not done after {timeout} s")
            status = ready()
            assert status is not None
            return status

    def subscribe(self, listener: Callable[[EngineEvent], None]) -> Callable[[], None]:
        """Call ``listener`` on the engine thread for every event the engine appends; returns unsubscribe."""
        return self._listeners.add(listener)

    def add_executor(self, name: str, executor: Executor) -> None:
        """Make another executor available (e.g. Kubernetes, chosen in a notebook after the engine started).

        An executor already registered under ``name`` is kept: runs in flight may be using it.
        """

        def add() -> None:
            if name in self._executors:
                raise ValueError(f"an executor named {name!r} is already configured")
            self._executors[name] = executor

        if self._thread is None:
            add()
        else:
            self._call(add)

    def has_executor(self, name: str) -> bool:
        return name in self._executors

    def shutdown(self, *, stop_running: bool = True) -> None:
        """Stop the engine. With ``stop_running`` every live run is stopped (and its status recorded) first;
        without, runs keep running and are released so the next engine on this store re-attaches to them."""
        if self._thread is None:
            return
        if stop_running:
            self._call(self._stop_everything)
        else:
            self._call(self._close)
        # Submissions already queued are made; wait for them and for their handles to be stored (and for
        # the stops asked meanwhile to be sent), so no shim outlives the executor's shutdown unseen.
        self._submitter.drain()
        self._call(lambda: None)
        self._submitter.close()
        for executor in self._executors.values():
            try:
                executor.shutdown(stop_running=stop_running)
            except Exception:
                logger.exception("executor %s failed to shut down", executor)
        if not stop_running:
            self._call(self._release)
        self._queue.put(_QUIT)
        self._thread.join()
        self._thread = None

    # -- the loop -----------------------------------------------------------------------------------

    def _call(self, fn: Callable[[], T]) -> T:
        if self._thread is None:
            raise RuntimeError("the engine is not started: call Engine.start() first")
        if threading.current_thread() is self._thread:
            return fn()
        future: Future[T] = Future()
        self._queue.put(_Call(fn, future))
        return future.result()

    def _on_update(self, update: ExecutorUpdate) -> None:
        # Executor threads: enqueue only.
        self._queue.put(_Update(update))

    def _loop(self) -> None:
        while True:
            try:
                message = self._queue.get(timeout=self._timers.next_timeout())
            except queue.Empty:
                message = None
            if message is _QUIT:
                return
            try:
                if isinstance(message, _Call):
                    self._run_call(message)
                elif isinstance(message, _Update):
                    self._handle_update(message.update)
                elif isinstance(message, Submitted):
                    self._on_submitted(message)
                for key, payload in self._timers.pop_due():
                    self._on_timer(key, payload)
                self._settle()
            except Exception:
                # A bug in one decision must not stop every pipeline: log it and carry on.
                logger.exception("engine loop: unexpected error handling %r", message)

    def _run_call(self, call: _Call) -> None:
        try:
            result = call.fn()
            self._settle()
        except BaseException as exc:
            if call.future is not None:
                call.future.set_exception(exc)
            else:
                raise
        else:
            if call.future is not None:
                call.future.set_result(result)

    def _settle(self) -> None:
        """Re-evaluate the DAGs touched by the last message until nothing changes, then publish waits."""
        while self._dirty_dags:
            dag = self._dags.get(self._dirty_dags.pop())
            if dag is not None:
                self._evaluate_dag(dag)
        if self._dirty_roots:
            roots, self._dirty_roots = self._dirty_roots, set()
            with self._cond:
                for root in roots:
                    self._settled[root] = self._settled_state(root)
                self._cond.notify_all()

    def _settled_state(self, root: str) -> Settled:
        top = self._runs[root]
        tally = self._roots[root]
        return Settled(
            status=top.status if top.is_final else None,
            services_done=tally.services_done,
            hooks_done=tally.hooks_done,
        )

    # -- status changes -----------------------------------------------------------------------------

    def _apply(self, run: RunState, transition: Transition) -> bool:
        old = run.status
        run.status = transition.run.status
        run.attempt = transition.run.attempt
        if run.status != old:
            self._moved(run, old)
        if not transition.applied:
            if run.status != old:
                self._changed(run)  # someone else moved it (e.g. a stop from the CLI): decide on it too
            return False
        run.emitted.update(e.kind for e in transition.events)
        self._listeners.publish(transition.events)
        self._changed(run)
        return True

    def _set(self, run: RunState, status: Status, reason: str, message: str = "") -> bool:
        if run.is_final:
            return False
        return self._apply(run, self.store.set_status(run.uuid, status, reason=reason, message=message or None))

    def _moved(self, run: RunState, old: Status) -> None:
        """Keep the counts in step with ``run.status`` (it just moved from ``old``)."""
        root = self._roots[run.root]
        root.add(run, old, -1)
        root.add(run, run.status)
        index = self._index_of(run)
        if index is not None:
            index.moved(run, old)

    def _index_of(self, run: RunState) -> DagIndex | None:
        """The index of the DAG ``run`` is an op of (None for DAG runs, single runs and hooks)."""
        if run.role != "op" or run.dag_uuid is None:
            return None
        dag = self._dags.get(run.dag_uuid)
        return dag.index if dag is not None else None

    def _hold_slot(self, run: RunState, submitted: bool) -> None:
        """Set ``run.submitted`` (it holds a concurrency slot while true) and the DAG's count of them."""
        if run.submitted == submitted:
            return
        run.submitted = submitted
        index = self._index_of(run)
        if index is not None:
            index.active += 1 if submitted else -1

    def _changed(self, run: RunState) -> None:
        self._dirty_roots.add(run.root)
        if run.is_final:
            self._timers.cancel(("timeout", run.uuid))
            self._timers.cancel(("retry", run.uuid))
            if run.submitted:
                self._hold_slot(run, False)
                ttl = run.plan.termination.ttl if run.plan is not None else None
                if ttl is not None:
                    self._timers.schedule(("ttl", run.uuid), ttl, run.uuid)
        if run.dag_uuid is not None and run.role == "op":
            self._dirty_dags.add(run.dag_uuid)
            index = self._index_of(run)
            if index is not None:
                index.touch(run)

    def _finish(self, run: RunState, status: Status, reason: str, message: str = "") -> None:
        """Move ``run`` to a final status; its hooks are created first (so a crash in between cannot lose
        them: a restarted engine finds them pending) and submitted after."""
        if run.is_final:
            return
        hook_runs = self._create_hooks(run, status) if run.hookable and not self._shutting_down else []
        self._set(run, status, reason, message)
        for hook in hook_runs:
            self._prepare_and_submit(hook)

    # -- submission ---------------------------------------------------------------------------------

    def _submit(
        self,
        kind: str,
        dag_plan: DagPlan,
        ops: list[OpPlan],
        hook_components: Mapping[str, Any],
        executor: str,
    ) -> str:
        owner = {OWNER_KEY: self._owner}
        hooks_meta = {"hook_components": dict(hook_components)}
        if kind == "single":
            (op,) = ops
            uuid = new_uuid()
            record = self.store.create_run(
                NewRun(
                    name=op.name,
                    kind=op.kind,
                    uuid=uuid,
                    spec={},
                    meta={"role": "single", "plan": op.to_meta(), "dag": dag_plan.to_meta(), **owner, **hooks_meta},
                    executor=executor,
                )
            )
            run = self._adopt_record(record, role="single", plan=op, root=uuid)
            self._listeners.publish(self.store.events(run_uuid=uuid))
            self._dirty_roots.add(uuid)
            self._prepare_and_submit(run)
            return uuid

        dag_uuid = new_uuid()
        op_uuids = {op.name: new_uuid() for op in ops}
        records = self.store.create_runs(
            [
                NewRun(
                    name=dag_plan.name,
                    kind="dag",
                    uuid=dag_uuid,
                    inputs=dag_plan.inputs,
                    meta={"role": "dag", "dag": dag_plan.to_meta(), **owner, **hooks_meta},
                    executor=executor,
                ),
                *(
                    NewRun(
                        name=op.name,
                        kind=op.kind,
                        uuid=op_uuids[op.name],
                        dag_uuid=dag_uuid,
                        meta={"role": "op", "plan": op.to_meta()},
                        executor=executor,
                    )
                    for op in ops
                ),
            ]
        )
        self._listeners.publish(self.store.events(dag_uuid=dag_uuid))
        dag_run = self._adopt_record(records[0], role="dag", root=dag_uuid)
        dag = DagState(dag_uuid, dag_plan, ops=dict(op_uuids))
        self._dags[dag_uuid] = dag
        for op, record in zip(ops, records[1:], strict=True):
            self._adopt_record(record, role="op", plan=op, root=dag_uuid)
        dag.index = DagIndex({name: self._runs[uuid] for name, uuid in dag.ops.items()})
        self._set(dag_run, Status.COMPILED, "Created", f"{len(ops)} ops")
        self._set(dag_run, Status.RUNNING, "Scheduling", "evaluating the ops' triggers")
        self._dirty_dags.add(dag_uuid)
        return dag_uuid

    def _adopt_record(
        self,
        record: RunRecord,
        *,
        role: str,
        root: str,
        plan: OpPlan | None = None,
        hook: HookPlan | None = None,
        emitted: Iterable[str] = (),
    ) -> RunState:
        run = RunState(
            uuid=record.uuid,
            name=record.name,
            role=role,  # type: ignore[arg-type]
            status=record.status,
            executor=record.executor or self.default_executor,
            dag_uuid=record.dag_uuid,
            hook_of=record.hook_of,
            root=root,
            emitted=set(emitted) or {event_kind(record.status)},
            attempt=record.attempt,
            plan=plan,
            hook=hook,
        )
        self._runs[run.uuid] = run
        self._roots.setdefault(root, RootTally()).add(run, run.status)
        return run

    def _executor(self, run: RunState) -> Executor:
        try:
            return self._executors[run.executor]
        except KeyError:
            raise RuntimeError(f"executor {run.executor!r} is not configured in this engine") from None

    # -- DAG evaluation -----------------------------------------------------------------------------

    def _upstream_state(self, dag: DagState, name: str) -> UpstreamState | None:
        uuid = dag.ops.get(name)
        if uuid is not None:
            run = self._runs[uuid]
            return UpstreamState(run.status, frozenset(run.emitted))
        if name.startswith("runs."):
            # An event ref to an earlier run: read what the store recorded of it.
            try:
                record = self.store.get_run(name.removeprefix("runs."))
            except RunNotFoundError:
                return None
            kinds = frozenset(e.kind for e in self.store.events(run_uuid=record.uuid))
            return UpstreamState(record.status, kinds)
        return None

    def _evaluate_dag(self, dag: DagState) -> None:
        """Decide the ops whose upstreams moved since the last pass, dispatch, then the DAG's own status."""
        dag_run = self._runs[dag.uuid]
        index = dag.index
        assert index is not None
        if dag.stopping or self._shutting_down:
            index.dirty.clear()  # pending ops are never started now
        else:
            for run in index.take_dirty():
                if run.status != Status.CREATED or run.plan is None:
                    continue
                verdict = self._verdict(dag, index, run)
                if verdict.action == Action.START:
                    self._prepare(run, dag)
                elif verdict.action == Action.SKIP:
                    self._finish(run, Status.SKIPPED, verdict.reason, verdict.message)
                elif verdict.action == Action.UPSTREAM_FAILED:
                    self._finish(run, Status.UPSTREAM_FAILED, verdict.reason, verdict.message)
            self._dispatch(dag)
        if not dag_run.is_final:
            status = counts_status(index.counts)
            if status is not None:
                counts: dict[str, int] = {}
                for uuid in dag.ops.values():
                    value = self._runs[uuid].status.value
                    counts[value] = counts.get(value, 0) + 1
                summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
                reason = REASON_STOPPED if dag.stopping else "OpsDone"
                self._finish(dag_run, status, reason, summary)

    def _verdict(self, dag: DagState, index: DagIndex, run: RunState) -> Verdict:
        assert run.plan is not None
        req = run.plan.requirements

        def state_of(name: str) -> UpstreamState | None:
            return self._upstream_state(dag, name)

        if run in index.volatile:
            # An upstream outside the DAG: no count follows it, so read every upstream afresh.
            return evaluate(req, {n: s for n in req.upstream if (s := state_of(n)) is not None})
        return evaluate_tallied(req, index.tallies[run.uuid], state_of)

    def _dispatch(self, dag: DagState) -> None:
        """Submit compiled ops while the DAG's concurrency allows (services hold a slot too)."""
        limit = dag.plan.concurrency
        assert dag.index is not None
        while dag.ready:
            if limit is not None and dag.index.active >= limit:
                return
            run = self._runs[dag.ready.popleft()]
            if run.status in (Status.COMPILED, Status.RETRYING) and not run.stop_requested:
                self._claim_and_submit(run)

    def _prepare(self, run: RunState, dag: DagState | None) -> None:
        """Resolve params, check conditions and compile; the op becomes ``compiled`` and waits for a slot."""
        assert run.plan is not None
        upstream = {n: self._runs[u] for n, u in (dag.ops.items() if dag else ()) if n in run.plan.upstream}
        outcome = self._compiler.compile_op(
            run.plan,
            uuid=run.uuid,
            dag_uuid=run.dag_uuid,
            dag_plan=dag.plan if dag else self._single_dag_plan(run),
            dag_name=self._runs[dag.uuid].name if dag else None,
            upstream={n: r.uuid for n, r in upstream.items()},
            executor=self._executor(run),
        )
        self._apply_compiled(run, outcome)
        if run.status == Status.COMPILED:
            if dag is not None:
                dag.ready.append(run.uuid)
            else:
                self._claim_and_submit(run)

    def _apply_compiled(self, run: RunState, outcome: Compiled | Outcome) -> None:
        if isinstance(outcome, Outcome):
            self._finish(run, outcome.status, outcome.reason, outcome.message)
            return
        run.compiled = outcome.op
        self.store.set_spec(run.uuid, outcome.op.to_dict(), inputs=outcome.inputs)
        self._set(run, Status.COMPILED, "Compiled", outcome.message)

    def _single_dag_plan(self, run: RunState) -> DagPlan:
        record = self.store.get_run(run.root)
        return DagPlan.from_meta(record.meta["dag"]) if "dag" in record.meta else DagPlan(name=run.name)

    def _prepare_and_submit(self, run: RunState) -> None:
        """Single runs and hook runs: no DAG, no concurrency limit."""
        if run.is_final or self._shutting_down:
            return
        if run.hook is not None:
            outcome = self._compiler.compile_hook(
                run.hook, uuid=run.uuid, main_uuid=run.hook_of or "", executor=self._executor(run)
            )
            self._apply_compiled(run, outcome)
            if run.status == Status.COMPILED:
                self._claim_and_submit(run)
        else:
            self._prepare(run, None)

    def _claim_and_submit(self, run: RunState) -> None:
        """Claim the run in the store (exactly once), then queue it for the submitter threads.

        From the claim on the run counts as submitted (it holds its slot, updates are accepted); its handle
        is stored when the ``Submitted`` message comes back (``_on_submitted``).
        """
        if self._closing:
            return  # left compiled/retrying: the next engine on this store resumes it
        if run.compiled is None:
            record = self.store.get_run(run.uuid)
            run.compiled = CompiledOp.from_dict(record.spec)
        claim = self.store.claim(run.uuid, executor=run.executor, reason="Queued")
        if not self._apply(run, claim):
            logger.warning("run %s not claimed (status %s): not submitted", run.uuid, claim.previous)
            return
        self._hold_slot(run, True)
        run.in_flight = True
        run.claimed_at = time.monotonic()
        try:
            executor = self._executor(run)
        except RuntimeError as exc:
            self._on_submitted(Submitted(run.uuid, run.attempt, error=exc))
            return
        self._submitter.submit(executor, run.compiled, self._on_update, attempt=run.attempt)

    def _on_submitted(self, done: Submitted) -> None:
        """The executor has the run (or refused it): store the handle, send a stop asked meanwhile."""
        run = self._runs.get(done.uuid)
        if run is None or run.attempt != done.attempt or not run.in_flight:
            return  # an earlier attempt's, already superseded by a new claim
        run.in_flight = False
        early, run.early = run.early, []
        if done.error is not None:
            logger.error("executor %s refused run %s", run.executor, run.uuid, exc_info=done.error)
            if run.stop_requested:
                self._finish(run, Status.STOPPED, REASON_STOPPED, "stopped before the executor started it")
            else:
                self._finish(run, Status.FAILED, "SubmitFailed", f"{type(done.error).__name__}: {done.error}")
            return
        self.store.set_handle(run.uuid, done.handle, executor=run.executor)
        if run.is_final:
            return
        if run.stop_requested:
            self._executor(run).stop(run.uuid)
        assert run.compiled is not None
        elapsed = time.monotonic() - run.claimed_at
        self._arm_timeout(run, run.compiled.termination.timeout, elapsed=elapsed)
        for update in early:
            self._handle_update(update)

    def _arm_timeout(self, run: RunState, timeout: float | None, *, elapsed: float = 0.0) -> None:
        if timeout:
            self._timers.schedule(("timeout", run.uuid), timeout - elapsed, (run.attempt, timeout))

    # -- executor updates ---------------------------------------------------------------------------

    def _handle_update(self, update: ExecutorUpdate) -> None:
        run = self._runs.get(update.run_uuid)
        if run is not None and run.in_flight:
            run.early.append(update)  # the executor has it but its handle is not back yet: keep the order
            return
        if run is None or run.is_final:
            logger.debug("ignoring update for %s: %s", update.run_uuid, update.status)
            return
        if not run.submitted and run.status == Status.RETRYING:
            logger.debug("ignoring late update of a previous attempt of %s", run.uuid)
            return
        if update.url:
            self.store.set_url(run.uuid, update.url)
        if update.outputs:
            self.store.set_outputs(run.uuid, update.outputs)
        status = update.status
        if status == "succeeded":
            if RUNNING_EVENT not in run.emitted:
                # A job too fast to be seen running did run: running-triggers must not miss it.
                self._set(run, Status.RUNNING, REASON_RAN, "reported succeeded before running")
            self._finish(run, Status.SUCCEEDED, update.reason, update.message)
        elif status == "failed":
            if run.timed_out:
                self._finish(run, Status.FAILED, REASON_TIMEOUT, self._timeout_message(run))
            elif self._retries_left(run):
                self._retry(run, update)
            else:
                self._finish(run, Status.FAILED, update.reason, update.message)
        elif status == "stopped":
            if run.timed_out:
                self._finish(run, Status.FAILED, REASON_TIMEOUT, self._timeout_message(run))
            else:
                self._finish(run, Status.STOPPED, update.reason, update.message)
        elif _PROGRESS.get(Status(status), -1) < _PROGRESS.get(run.status, -1):
            # A re-attached executor replays what it recorded; what the store already has moved past is old.
            logger.debug("ignoring %s for %s, already %s", status, run.uuid, run.status)
        else:
            self._set(run, Status(status), update.reason, update.message)

    def _timeout_message(self, run: RunState) -> str:
        timeout = run.compiled.termination.timeout if run.compiled else None
        return f"stopped after termination.timeout of {timeout:g} s" if timeout else "timed out"

    def _retries_left(self, run: RunState) -> bool:
        if run.stop_requested or self._shutting_down or run.compiled is None:
            return False
        dag = self._dags.get(run.dag_uuid or "")
        if dag is not None and dag.stopping:
            return False
        return run.attempt <= run.compiled.termination.max_retries

    def _retry(self, run: RunState, update: ExecutorUpdate) -> None:
        assert run.compiled is not None
        total = run.compiled.termination.max_retries + 1
        message = f"attempt {run.attempt} of {total} failed ({update.reason}: {update.message})".strip()
        self.store.set_handle(run.uuid, None)  # the next claim must not find the old attempt's handle
        self._set(run, Status.RETRYING, update.reason, message)
        self._hold_slot(run, False)
        self._dirty_dags.add(run.dag_uuid or "")
        self._timers.schedule(("retry", run.uuid), self._retry_delay, run.uuid)

    # -- timers -------------------------------------------------------------------------------------

    def _on_timer(self, key: object, payload: Any) -> None:
        kind, uuid = key if isinstance(key, tuple) else (None, None)
        run = self._runs.get(str(uuid))
        if run is None:
            return
        if kind == "retry" and run.status == Status.RETRYING and not run.stop_requested:
            dag = self._dags.get(run.dag_uuid or "")
            if dag is not None and run.role == "op":
                dag.ready.append(run.uuid)
                self._dispatch(dag)
            else:
                self._claim_and_submit(run)
        elif kind == "timeout" and not run.is_final and run.submitted and payload[0] == run.attempt:
            run.timed_out = True
            self._set(run, Status.STOPPING, REASON_TIMEOUT, f"termination.timeout of {payload[1]:g} s reached")
            self._executor(run).stop(run.uuid)
        elif kind == "ttl":
            try:
                self._executor(run).cleanup(run.uuid)
            except Exception:
                logger.exception("cleanup of run %s failed", run.uuid)

    # -- stop ---------------------------------------------------------------------------------------

    def _stop(self, uuid: str) -> None:
        run = self._runs.get(uuid)
        if run is None:
            record = self.store.get_run(uuid)  # RunNotFoundError for a wrong uuid
            if not record.is_final:
                raise LookupError(f"run {uuid} is not managed by this engine (is another engine running it?)")
            return
        dag = self._dags.get(uuid)
        if dag is not None:
            self._stop_dag(dag, REASON_STOPPED, "stop requested")
        else:
            self._stop_run(run, REASON_STOPPED, "stop requested")

    def _stop_dag(self, dag: DagState, reason: str, message: str) -> None:
        dag.stopping = True
        dag.ready.clear()
        self._set(self._runs[dag.uuid], Status.STOPPING, reason, message)
        for uuid in dag.ops.values():
            self._stop_run(self._runs[uuid], REASON_DAG_STOPPED, f"DAG {self._runs[dag.uuid].name} stopped")
        self._dirty_dags.add(dag.uuid)

    def _stop_run(self, run: RunState, reason: str, message: str) -> None:
        if run.is_final:
            return
        run.stop_requested = True
        self._timers.cancel(("retry", run.uuid))
        if run.submitted:
            self._set(run, Status.STOPPING, reason, message)
            if not run.in_flight:  # else sent once the executor has it (``_on_submitted``)
                self._executor(run).stop(run.uuid)
        else:
            # Never handed to an executor (pending, compiled, retrying): nothing to wait for.
            self._set(run, Status.STOPPING, reason, message)
            self._finish(run, Status.STOPPED, reason, message)

    def _close(self) -> None:
        self._closing = True

    def _stop_everything(self) -> None:
        self._shutting_down = True
        self._closing = True
        for dag in list(self._dags.values()):
            if not self._runs[dag.uuid].is_final or any(not self._runs[u].is_final for u in dag.ops.values()):
                dag.stopping = True
                dag.ready.clear()
        for run in list(self._runs.values()):
            self._stop_run(run, REASON_SHUTDOWN, "the engine is shutting down")

    def _release(self) -> None:
        """Clean shutdown without stopping runs: give their ownership up so the next engine adopts them."""
        for root in {run.root for run in self._runs.values() if not run.is_final}:
            self.store.set_meta(root, {OWNER_KEY: None})

    # -- hooks --------------------------------------------------------------------------------------

    def _create_hooks(self, run: RunState, status: Status) -> list[RunState]:
        """Create (status ``created``) the hook runs selected by ``status`` and the hooks' conditions."""
        if run.role == "dag":
            hooks = self._dags[run.uuid].plan.hooks
        elif run.plan is not None:
            hooks = run.plan.hooks
        else:
            return []
        if not hooks:
            return []
        root_record = self.store.get_run(run.root)
        components = root_record.meta.get("hook_components", {})
        existing = {r.meta.get("hook", {}).get("index") for r in self.store.hooks_of(run.uuid)}
        main = self.store.get_run(run.uuid)
        created: list[RunState] = []
        new_runs: list[tuple[NewRun, HookPlan]] = []
        for index, hook in enumerate(hooks):
            if index in existing or not trigger_matches(hook.trigger, status):
                continue
            selection = self._compiler.select_hook(hook, main=main, status=status, components=components)
            if selection is None:
                continue
            plan = HookPlan(hook=hook, component=selection.component, index=index)
            new = NewRun(
                name=hook_run_name(run.name, hooks, index),
                kind=str(getattr(selection.component.run, "kind", "job")),
                dag_uuid=run.dag_uuid if run.role != "dag" else run.uuid,
                hook_of=run.uuid,
                hook_trigger=hook.trigger.value if hook.trigger is not None else "done",
                meta={"role": "hook", "hook": plan.to_meta()},
                executor=run.executor,
                message=selection.error,
            )
            new_runs.append((new, plan))
        if not new_runs:
            return []
        records = self.store.create_runs(n for n, _ in new_runs)
        for record, (new, plan) in zip(records, new_runs, strict=True):
            hook_run = self._adopt_record(record, role="hook", root=run.root, hook=plan)
            self._listeners.publish(self.store.events(run_uuid=record.uuid))
            self._dirty_roots.add(run.root)
            if new.message:
                # The hook's conditions could not be evaluated: visible as a failed hook run.
                self._finish(hook_run, Status.FAILED, "ConditionsError", new.message)
            else:
                created.append(hook_run)
        return created

    # -- recovery -----------------------------------------------------------------------------------

    def _recover(self) -> None:
        """Adopt the unfinished runs of engines that are gone: re-attach, resume, never submit twice."""
        unfinished = self.store.unfinished_runs()
        roots: dict[str, RunRecord] = {}
        for record in unfinished:
            root = record
            while root.dag_uuid or root.hook_of:
                root = self.store.get_run(root.dag_uuid or root.hook_of or "")
            roots.setdefault(root.uuid, root)
        for root in roots.values():
            if owner_alive(root.meta.get(OWNER_KEY), me=self._owner):
                continue
            try:
                self._recover_root(root)
            except Exception:
                logger.exception("could not resume run %s (%s)", root.uuid, root.name)

    def _recover_root(self, root: RunRecord) -> None:
        self.store.set_meta(root.uuid, {OWNER_KEY: self._owner})
        logger.info("resuming %s run %s (%s)", root.kind, root.uuid, root.name)
        members = [root, *self.store.list_runs(root.uuid)] if root.kind == "dag" else [root]
        members += [h for r in list(members) for h in self.store.hooks_of(r.uuid) if h.dag_uuid != root.uuid]
        emitted: dict[str, set[str]] = {}
        for event in self.store.events(
            dag_uuid=root.uuid if root.kind == "dag" else None, run_uuid=None if root.kind == "dag" else root.uuid
        ):
            emitted.setdefault(event.run_uuid, set()).add(event.kind)
        for record in members:
            if record.uuid not in emitted:
                emitted[record.uuid] = {e.kind for e in self.store.events(run_uuid=record.uuid)}
        states: list[tuple[RunState, RunRecord]] = []
        for record in sorted(members, key=lambda r: r.created_at):
            role = record.meta.get("role") or ("dag" if record.kind == "dag" else "single")
            plan = OpPlan.from_meta(record.meta["plan"]) if "plan" in record.meta else None
            hook = HookPlan.from_meta(record.meta["hook"]) if "hook" in record.meta else None
            run = self._adopt_record(
                record, role=role, root=root.uuid, plan=plan, hook=hook, emitted=emitted.get(record.uuid, ())
            )
            if record.spec and "placement" in record.spec:
                run.compiled = CompiledOp.from_dict(record.spec)
            states.append((run, record))
        if root.kind == "dag":
            dag = DagState(root.uuid, DagPlan.from_meta(root.meta["dag"]))
            dag.ops = {r.name: r.uuid for r, _ in states if r.role == "op"}
            dag.index = DagIndex({r.name: r for r, _ in states if r.role == "op"})
            dag.stopping = root.status == Status.STOPPING
            self._dags[root.uuid] = dag
            self._dirty_dags.add(root.uuid)
        self._dirty_roots.add(root.uuid)
        for run, record in states:
            self._recover_run(run, record)

    def _recover_run(self, run: RunState, record: RunRecord) -> None:
        if run.role == "dag":
            return
        action = recovery.classify(record.status, has_handle=record.handle is not None)
        if action == recovery.Recovery.PENDING:
            if record.status == Status.COMPILED:
                self._resume_compiled(run)
            elif run.role != "op":
                self._prepare_and_submit(run)
            # ops still `created` are decided by the DAG evaluation like any other
        elif action == recovery.Recovery.RESUBMIT:
            self._timers.schedule(("retry", run.uuid), 0.0, run.uuid)
        elif action == recovery.Recovery.INTERRUPTED:
            if self._reattach_without_handle(run, record):
                return
            self._finish(
                run,
                Status.FAILED,
                recovery.REASON_SUBMISSION_INTERRUPTED,
                "the engine stopped between claiming this run and recording its handle; it is not "
                "resubmitted so that it never runs twice",
            )
        elif action == recovery.Recovery.STOP_PENDING:
            self._finish(run, Status.STOPPED, REASON_STOPPED, "stopped while the engine was down")
        elif action == recovery.Recovery.REATTACH:
            self._reattach(run, record)

    def _resume_compiled(self, run: RunState) -> None:
        """A ``compiled`` run waited for a slot when the engine died: compile it again, then queue it."""
        dag = self._dags.get(run.dag_uuid or "") if run.role == "op" else None
        if run.hook is not None:
            outcome = self._compiler.compile_hook(
                run.hook, uuid=run.uuid, main_uuid=run.hook_of or "", executor=self._executor(run)
            )
        else:
            assert run.plan is not None
            upstream = {n: u for n, u in (dag.ops.items() if dag else ()) if n in run.plan.upstream}
            outcome = self._compiler.compile_op(
                run.plan,
                uuid=run.uuid,
                dag_uuid=run.dag_uuid,
                dag_plan=dag.plan if dag else self._single_dag_plan(run),
                dag_name=self._runs[dag.uuid].name if dag else None,
                upstream=upstream,
                executor=self._executor(run),
            )
        if isinstance(outcome, Outcome):
            self._finish(run, outcome.status, outcome.reason, outcome.message)
            return
        run.compiled = outcome.op
        self.store.set_spec(run.uuid, outcome.op.to_dict(), inputs=outcome.inputs)
        if dag is not None:
            dag.ready.append(run.uuid)
        else:
            self._claim_and_submit(run)

    def _reattach_without_handle(self, run: RunState, record: RunRecord) -> bool:
        """The crash fell between the claim and the handle: the executor may still have started the run
        (the local one leaves a trace in the run's folder). Attach to it if so; never start it again."""
        if not record.spec or "placement" not in record.spec:
            return False
        compiled = run.compiled or CompiledOp.from_dict(record.spec)
        try:
            attached = self._executor(run).reattach(compiled, {}, self._on_update)
        except Exception:
            logger.debug("no trace of run %s without a handle record", run.uuid, exc_info=True)
            return False
        if attached:
            run.compiled = compiled
            self._hold_slot(run, True)
            logger.info("re-attached run %s, started before its handle was recorded", run.uuid)
        return attached

    def _reattach(self, run: RunState, record: RunRecord) -> None:
        assert record.handle is not None
        if run.compiled is None:
            run.compiled = CompiledOp.from_dict(record.spec)
        self._hold_slot(run, True)
        try:
            attached = self._executor(run).reattach(run.compiled, dict(record.handle), self._on_update)
        except Exception as exc:
            logger.exception("re-attaching run %s failed", run.uuid)
            attached = False
            detail = f"{type(exc).__name__}: {exc}"
        else:
            detail = "the executor has no trace of it"
        if not attached:
            self._finish(run, Status.FAILED, recovery.REASON_LOST, f"could not re-attach after a restart: {detail}")
            return
        if record.status == Status.STOPPING:
            run.stop_requested = True
            self._executor(run).stop(run.uuid)
        timeout = run.compiled.termination.timeout
        if timeout:
            claimed = [c for c in self.store.status_history(run.uuid) if c.status == Status.QUEUED]
            elapsed = (datetime.now(UTC) - claimed[-1].at).total_seconds() if claimed else 0.0
            self._arm_timeout(run, timeout, elapsed=max(0.0, elapsed))


def _default_local_executor() -> Executor:
    from polynb.executors.local.executor import LocalExecutor

    executor: Executor = LocalExecutor()
    return executor


__all__ = ["Engine", "EngineEvent", "is_final"]
