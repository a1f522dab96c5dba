"""The event-driven engine: one thread consuming a queue of messages, one store, any executors.

Threading. Executor threads only enqueue updates (``_on_update``); public methods enqueue a call and, when
they need an answer, wait on a future; the submitter threads (``submitter``) call ``executor.submit`` and
enqueue the outcome. Everything that decides or writes statuses runs on the engine thread, so decisions
never race. Each message costs O(edges of the run that moved), not O(ops): see ``tallies``. The loop
blocks on ``queue.get(timeout=<next timer deadline>)``: there is no poll loop.

Turns. The loop takes the messages queued at once (for up to ``TURN_SECONDS``, or ``ACTING_SECONDS`` more
once one leaves a run to submit or stop) as one turn, written in one store transaction (``Store.batch``): one
commit instead of one per status change. Nothing acts on a status before it is committed: the turn's
submissions, stops and events (``outbox``), its waiters and the answers to its calls all wait for the commit.
Subscribers are called on the engine thread then, in seq order. One message that starts many ops commits
early, between two of them, once a submission has waited ``ACTING_SECONDS`` (``Outbox.act_if_waited``), so the
first ops run while the rest compile. An update and those of the same run queued right behind it are one message
(``_take_updates``): their statuses are one store write.

This module holds the public API and the loop; the work is done by collaborators that share one
:class:`~polynb.scheduler.state.EngineState`: ``statuses`` (every status change, hooks created with the
final status), ``submission`` (create, compile, claim, submit), ``evaluation`` (a DAG's pending ops and its
own status), ``updates`` (executor updates), ``termination`` (timeouts, retries), ``stopping`` and
``recovery`` (adopting the runs of an engine that is gone).

See the ``polynb.scheduler`` package docstring for the semantics and the decisions DESIGN §3 leaves open.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from polynb.compiler.registry import ComponentRegistry
from polynb.executors.base import Executor, ExecutorUpdate
from polynb.lifecycle import REASON_STOPPED, Status, is_final
from polynb.log_archive import LogArchive
from polynb.scheduler.compiling import OpCompiler
from polynb.scheduler.connection_waits import Connections, ConnectionWaits
from polynb.scheduler.evaluation import DagEvaluator
from polynb.scheduler.events import EngineEvent
from polynb.scheduler.executor_checks import check_submission
from polynb.scheduler.hooks import HookFactory
from polynb.scheduler.intake import EventIntake
from polynb.scheduler.log_index import ArchiveSource, DagLogIndex
from polynb.scheduler.nesting import Nesting, nested_hooks
from polynb.scheduler.outbox import ACTING_SECONDS
from polynb.scheduler.ownership import new_owner
from polynb.scheduler.plan import DagPlan, plan_from_pipeline_op
from polynb.scheduler.recovery import Adopter
from polynb.scheduler.schedules import WALL_CLOCK_RECHECK, Schedules
from polynb.scheduler.sources.kinds import source_for
from polynb.scheduler.sources.run_files import parse_event
from polynb.scheduler.state import EngineState, Settled
from polynb.scheduler.statuses import Statuses
from polynb.scheduler.stopping import Stopping
from polynb.scheduler.submission import Submission
from polynb.scheduler.submitter import Submitted, Submitter
from polynb.scheduler.sweeps import Sweeps
from polynb.scheduler.termination import Termination
from polynb.scheduler.updates import Updates
from polynb.store import Store

if TYPE_CHECKING:
    from polynb.compiler.pipeline import Pipeline

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_RETRY_DELAY = 0.5
"""Seconds between a failed attempt and the next (a timer, not a sleep)."""

DEFAULT_STOP_GRACE = 10.0
"""Seconds a stop gives a process when its executor names no grace of its own (``Executor.stop``)."""
STOP_WAIT_SLACK = 10.0
"""How much longer than that grace a shutdown waits for the runs it stopped to be final."""

TURN_SECONDS = 0.005
"""How long a turn goes on taking queued messages (status updates, mostly): its writes are one commit."""


@dataclass(frozen=True, slots=True)
class _Call:
    fn: Callable[[], Any]
    future: Future[Any] | None


@dataclass(frozen=True, slots=True)
class _Reply:
    """The outcome of a ``_Call``, given to its caller once the turn is committed."""

    future: Future[Any]
    result: Any = None
    error: BaseException | None = None

    def send(self) -> None:
        if self.error is not None:
            self.future.set_exception(self.error)
        else:
            self.future.set_result(self.result)


@dataclass(frozen=True, slots=True)
class _Update:
    update: ExecutorUpdate


@dataclass(frozen=True, slots=True)
class _Updates:
    """Updates of one run that were queued one behind the other (``Engine._take_updates``)."""

    updates: tuple[ExecutorUpdate, ...]


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
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        clock_recheck: float = WALL_CLOCK_RECHECK,
        connections: Connections | None = None,
        log_archive: ArchiveSource | None = None,
    ) -> None:
        """``now``: the wall clock schedules tick by (aware UTC; tests inject one); ``clock_recheck``: the
        longest the engine waits before reading it again while a tick is pending; ``connections``: the
        ``connections:`` entries a DAG's ops may await (default: read from the config file when needed);
        ``log_archive``: the artifacts store an ended DAG's index of its runs' logs goes to (default: the config
        file's ``artifactsStore``, read at each DAG's end)."""
        self.store = store
        self.default_executor = default_executor
        self._queue: queue.Queue[object] = queue.Queue()
        self._state = state = EngineState(
            store=store,
            executors=dict(executors) if executors is not None else {},
            default_executor=default_executor,
            owner=new_owner(),
            retry_delay=retry_delay,
        )
        self._settled: dict[str, Settled] = {}
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._submitter = Submitter(self._queue.put)
        self._compiler = OpCompiler(store=store, registry=registry)
        self._statuses = statuses = Statuses(state, HookFactory(state, self._compiler))
        self._stopping = stopping = Stopping(state, statuses)
        self._termination = termination = Termination(state, statuses, stopping)
        self._submission = submission = Submission(
            state, statuses, termination, self._compiler, self._submitter, self._on_update
        )
        statuses.start_hook = submission.prepare_and_submit
        self._updates = Updates(state, statuses, termination)
        self._intake = intake = EventIntake(state, self._on_events_file)
        self._updates.before = intake.before_update
        intake.start_single = submission.start_unless_awaiting_approval
        for executor in self._state.executors.values():
            self._connect_events(executor)
        self._evaluator = DagEvaluator(state, statuses, submission, termination, stopping)
        self._sweeps = sweeps = Sweeps(state, statuses, submission.prepare_and_submit, stopping.stop_run)
        submission.start_sweep = sweeps.start_in_dag
        self._schedules = schedules = Schedules(
            state, statuses, submission.prepare_and_submit, stopping.stop_run, now, clock_recheck
        )
        submission.start_schedule = schedules.start_in_dag
        stopping.stop_sweep = lambda run, reason, message: (
            sweeps.stop_run(run, reason, message) or schedules.stop_run(run, reason, message)
        )
        self._nesting = nesting = Nesting(state, statuses, termination)
        submission.start_nested = nesting.start
        self._evaluator.nested_succeeded = nesting.give_outputs
        self._waits = ConnectionWaits(
            state,
            call=lambda fn: self._queue.put(_Call(fn, None)),
            record=lambda run, kind, payload: intake.record(run, kind, payload),
            connections=connections or _configured_connections,
            source_for=source_for,
            finish=statuses.finish,
        )
        self._log_index = DagLogIndex(store, log_archive or _configured_archive)
        state.listeners.add(self._log_index.on_event)
        self._adopter = Adopter(state, statuses, submission, termination, self._on_update)
        self._adopter.resume_schedule = schedules.resume
        self._adopter.resume_sweep = sweeps.resume

    # -- public API (any thread) --------------------------------------------------------------------

    def start(self, *, only: Collection[str] | None = None) -> None:
        """Start the engine thread and adopt the unfinished runs of engines that are gone (with ``only``,
        just those of these top-level runs: a stop must not resume the others)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="polynb-engine", daemon=True)
        self._thread.start()
        self._call(lambda: self._adopter.recover(only))

    def submit(
        self, pipeline: Pipeline, *, executor: str | None = None, created: Callable[[str], None] | None = None
    ) -> str:
        """Create every run of ``pipeline`` (status ``created``) and start scheduling it.

        Returns the top-level run's uuid: the DAG run, or the run of a single-op pipeline. ``created(uuid)`` is
        called on the engine thread in the transaction that creates the runs: what it writes to the store is
        committed with them or not at all (a watch marks its event handled so, ``watch``).
        """
        name = executor or self.default_executor
        if name not in self._state.executors:
            known = ", ".join(sorted(self._state.executors)) or "none"
            raise ValueError(f"unknown executor {name!r}; known: {known}")
        # An executor may refuse a pipeline it cannot run as configured (Kubernetes: an op reading another
        # run's artifacts without a shared artifacts store), before any run exists.
        check_submission(self._state.executors[name], pipeline)
        ops = [plan_from_pipeline_op(op) for op in pipeline.ops.values()]
        hook_components = self._compiler.resolve_hooks(
            [h for op in ops for h in (*op.hooks, *nested_hooks(op.component))] + list(pipeline.hooks or ()),
            base_dir=pipeline.base_dir,
        )
        term = pipeline.termination
        dag_plan = DagPlan(
            name=pipeline.name,
            inputs=dict(pipeline.inputs or {}),
            concurrency=pipeline.concurrency,
            hooks=tuple(pipeline.hooks or ()),
            base_dir=str(pipeline.base_dir) if pipeline.base_dir is not None else None,
            timeout=float(term.timeout) if term and term.timeout else None,
            max_retries=int(term.max_retries or 0) if term else 0,
            early_stopping=pipeline.early_stopping,
        )
        kind = pipeline.kind
        matrix = pipeline.spec.matrix if kind == "single" else None

        def then(uuid: str) -> str:
            if created is not None:
                created(uuid)
            return uuid

        if pipeline.schedule is not None:
            (op,) = ops
            sched, scheduled = pipeline.schedule, self._schedules
            uuid_: str = self._call(lambda: then(scheduled.create(op, sched, dag_plan, hook_components, name)))
            return uuid_
        if matrix is not None:
            (op,) = ops
            sweep: str = self._call(lambda: then(self._sweeps.create(op, matrix, dag_plan, hook_components, name)))
            return sweep
        uuid: str = self._call(lambda: then(self._submission.create(kind, dag_plan, ops, hook_components, name)))
        return uuid

    def stop(self, uuid: str, *, grace: float | None = None) -> None:
        """Stop a run: an op (``stopping`` → ``stopped``), a whole DAG (its pending ops become ``stopped``), a
        sweep (no trial starts any more, the running ones are stopped) or a schedule (no tick fires any more,
        its ticks' live runs are stopped). ``grace``: seconds their processes get before they are killed (None:
        each executor's own)."""

        def stop() -> None:
            self._state.stop_grace = grace
            try:
                stop_now()
            finally:
                self._state.stop_grace = None

        def stop_now() -> None:
            sweep = self._state.sweeps.get(uuid)
            schedule = self._state.schedules.get(uuid)
            if sweep is not None:
                self._sweeps.stop(sweep, REASON_STOPPED, "stop requested")
            elif schedule is not None:
                self._schedules.stop(schedule, REASON_STOPPED, "stop requested")
            else:
                self._stopping.stop(uuid)

        self._call(stop)

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

    def manages(self, uuid: str) -> bool:
        """Whether this engine runs the top-level run ``uuid``: submitted here or adopted at ``start``."""
        with self._cond:
            return uuid in self._settled

    def adopt(self, uuid: str) -> bool:
        """Go on with the top-level run ``uuid`` if the engine that ran it is gone, as ``start`` does with every
        such run (a run another live engine runs is left to it). True when this engine runs it now."""
        if not self.manages(uuid):
            self._call(lambda: self._adopter.recover([uuid]))
        return self.manages(uuid)

    def emit(self, kind: str, payload: Mapping[str, Any] | None = None, *, run: str | None = None) -> list[int]:
        """Record a custom event; returns the seqs of the events written.

        Without ``run``: ``project_custom_event`` / ``org_custom_event`` to every DAG of this engine that is
        not final (what ``{ref: dag, kinds: [project_custom_event]}`` awaits). With ``run``: any non-status
        kind on that run (what ``{ref: ops.X, ...}`` awaits).
        """
        body = dict(payload or {})
        if run is None:
            records = self._call(lambda: self._intake.emit_to_dags(kind, body))
        else:
            uuid = run
            records = [self._call(lambda: self._intake.emit_to_run(uuid, kind, body))]
        return [r.seq for r in records]

    def approve(self, uuid: str, *, approved: bool = True, actor: str | None = None) -> int:
        """Approve an ``isApproved: false`` op (``run_approved_actor``), or invalidate it
        (``run_invalidated_actor``: a waiting op is then ``skipped``). Returns the event's seq."""
        return self._call(lambda: self._intake.approve(uuid, approved=approved, actor=actor)).seq

    def subscribe(self, listener: Callable[[EngineEvent], None]) -> Callable[[], None]:
        """Call ``listener`` on the engine thread for every event the engine appends; returns unsubscribe."""
        return self._state.listeners.add(listener)

    def add_executor(self, name: str, executor: Executor) -> None:
        """Make another executor available (e.g. Kubernetes, chosen in a notebook after the engine started).

        An executor already registered under ``name`` is kept: runs in flight may be using it.
        """

        def add() -> None:
            if name in self._state.executors:
                raise ValueError(f"an executor named {name!r} is already configured")
            self._state.executors[name] = executor
            self._connect_events(executor)

        if self._thread is None:
            add()
        else:
            self._call(add)

    def has_executor(self, name: str) -> bool:
        return name in self._state.executors

    def shutdown(self, *, stop_running: bool = True) -> None:
        """Stop the engine. With ``stop_running`` every live run it started is stopped (and its status recorded)
        first; the runs it adopted from an engine that is gone (a previous kernel's, a service ``polynb run``
        left running) are not its to end: they keep running and are released, as every run is without
        ``stop_running``, so the next engine on this store re-attaches to them."""
        if self._thread is None:
            return
        kept: set[str] = set()
        if stop_running:
            kept = self._call(self._stopping.stop_everything)
        else:
            self._call(self._close)
        # Submissions already queued are made; wait for them and for their handles to be stored (and for
        # the stops asked meanwhile to be sent), so no shim outlives the executor's shutdown unseen.
        self._submitter.drain()
        self._call(lambda: None)
        self._submitter.close()
        if kept:
            # An executor that shuts down stopping its runs would stop the adopted ones too: it shuts down as
            # for a release instead, once the runs stopped above are final.
            self._wait_stopped(exclude=kept)
        for executor in self._state.executors.values():
            try:
                executor.shutdown(stop_running=stop_running and not kept)
            except Exception:
                logger.exception("executor %s failed to shut down", executor)
        if kept or not stop_running:
            self._call(self._stopping.release)
        self._intake.close()
        self._queue.put(_QUIT)
        self._thread.join()
        self._thread = None
        self._waits.close()
        self._log_index.close()

    def _wait_stopped(self, *, exclude: set[str]) -> None:
        """Wait until the top-level runs not in ``exclude`` are final, services and hooks too, for as long as
        their executors take to stop a process (their grace, and then some); what is not final by then is
        released with the rest."""
        roots = self._call(lambda: {r.root for r in self._state.runs.values() if not r.is_final} - exclude)
        graces = [getattr(e, "stop_grace", None) for e in self._state.executors.values()]
        timeout = max((float(g) for g in graces if isinstance(g, int | float)), default=DEFAULT_STOP_GRACE)

        def done(root: str) -> bool:
            settled = self._settled.get(root)
            return settled is None or (settled.status is not None and settled.services_done and settled.hooks_done)

        with self._cond:
            self._cond.wait_for(lambda: all(done(root) for root in roots), timeout=timeout + STOP_WAIT_SLACK)

    # -- the loop -----------------------------------------------------------------------------------

    def _call(self, fn: Callable[[], T]) -> T:
        if self._thread is None:
            raise RuntimeError("the engine is not started: call Engine.start() first")
        if threading.current_thread() is self._thread:
            return fn()
        future: Future[T] = Future()
        self._queue.put(_Call(fn, future))
        return future.result()

    def _on_events_file(self, uuid: str) -> None:
        # The events-file watcher's thread: enqueue only.
        self._queue.put(_Call(lambda: self._intake.wake(uuid), None))

    def _connect_events(self, executor: Executor) -> None:
        """An executor that brings its ops' events back itself (kubernetes: from the pods' log streams)."""
        set_sink = getattr(executor, "set_event_sink", None)
        if set_sink is not None:
            set_sink(self._on_op_events)

    def _on_op_events(self, uuid: str, lines: Sequence[Mapping[str, Any]]) -> None:
        # An executor thread, before that run's final update: enqueue only (the queue keeps the order).
        events = []
        for line in lines:
            try:
                events.append(parse_event(line))
            except (ValueError, KeyError, TypeError) as exc:
                logger.warning("run %s: skipping a malformed event (%s): %r", uuid, exc, str(line)[:200])
        self._queue.put(_Call(lambda: self._intake.receive(uuid, events), None))

    def _on_update(self, update: ExecutorUpdate) -> None:
        # Executor threads: enqueue only.
        self._queue.put(_Update(update))

    def _loop(self) -> None:
        timers = self._state.timers
        go_on = True
        while go_on:
            try:
                message = self._queue.get(timeout=timers.next_timeout())
            except queue.Empty:
                message = None
            if message is _QUIT:
                return
            go_on = self._turn(message)
            while go_on and (self._state.dirty_dags or self._state.dirty_sweeps or self._state.dirty_schedules):
                go_on = self._turn(None)  # a listener called the engine back while the turn was delivered

    def _turn(self, message: object) -> bool:
        """Handle ``message`` and those queued behind it (for up to ``TURN_SECONDS``, or ``ACTING_SECONDS`` more
        once one leaves a run to submit or stop) as one turn.

        The turn's writes are one transaction, so they cost one commit; what acts on them (submissions,
        stops, listeners, waiters, the public API's callers) is done once it is committed (``outbox``).
        Returns False when the engine must quit.
        """
        state = self._state
        replies: list[_Reply] = []
        deadline = time.monotonic() + TURN_SECONDS
        acting = False
        go_on = True
        state.outbox.holding = True
        try:
            with state.store.batch() as batch:
                state.outbox.commit = lambda: not state.store.in_atomic() and (batch.commit() or True)
                while True:
                    message, taken = self._take_updates(message)
                    self._handle(message, replies)
                    now = time.monotonic()
                    if not acting and state.outbox.acting:
                        acting, deadline = True, min(deadline, now + ACTING_SECONDS)
                    if taken is not None:
                        message = taken  # out of the queue already: handled in this turn (alone if it is over)
                        if now >= deadline and message is not _QUIT:
                            self._handle(message, replies)
                            break
                    elif now >= deadline:
                        break
                    else:
                        try:
                            message = self._queue.get_nowait()
                        except queue.Empty:
                            break
                    if message is _QUIT:
                        go_on = False
                        break
        except Exception as exc:
            # Not committed: none of its statuses is durable, so nothing may act on them. The engine's view
            # is now ahead of the store; a restarted engine resumes from what the store holds.
            dropped = state.outbox.drop()
            logger.critical("engine: a turn's commit failed; %d submissions, stops and events dropped", dropped)
            replies = [_Reply(reply.future, error=exc) for reply in replies]
        finally:
            state.outbox.holding = False
            state.outbox.commit = None
        state.outbox.deliver()
        self._publish_settled()
        for reply in replies:
            reply.send()
        return go_on

    def _take_updates(self, message: object) -> tuple[object, object | None]:
        """An executor update and those of the same run queued right behind it (``starting`` and ``running``,
        reported together), as one message: ``Updates.handle_all`` writes them at once. Returns it and the
        message taken from the queue after them, if any (to be handled next)."""
        if not isinstance(message, _Update):
            return message, None
        updates = [message.update]
        while True:
            try:
                taken = self._queue.get_nowait()
            except queue.Empty:
                taken = None
            if not isinstance(taken, _Update) or taken.update.run_uuid != message.update.run_uuid:
                break
            updates.append(taken.update)
        return (message if len(updates) == 1 else _Updates(tuple(updates))), taken

    def _handle(self, message: object, replies: list[_Reply]) -> None:
        timers = self._state.timers
        self._state.outbox.next_message()
        try:
            if isinstance(message, _Call):
                self._run_call(message, replies)
            elif isinstance(message, _Update):
                self._updates.handle(message.update)
            elif isinstance(message, _Updates):
                self._updates.handle_all(message.updates)
            elif isinstance(message, Submitted):
                self._updates.handle_all(self._submission.on_submitted(message))
            for key, payload in timers.pop_due():
                self._on_timer(key, payload)
            self._settle()
        except Exception:
            # A bug in one decision must not stop every pipeline: log it and carry on.
            logger.exception("engine loop: unexpected error handling %r", message)

    def _run_call(self, call: _Call, replies: list[_Reply]) -> None:
        try:
            result = call.fn()
            self._settle()
        except BaseException as exc:
            if call.future is None:
                raise
            replies.append(_Reply(call.future, error=exc))
        else:
            if call.future is not None:
                replies.append(_Reply(call.future, result))

    def _on_timer(self, key: object, payload: Any) -> None:
        kind, uuid = key if isinstance(key, tuple) else (None, None)
        state = self._state
        run = state.runs.get(str(uuid))
        if run is None:
            return
        if kind == "schedule":
            state.dirty_schedules.add(run.uuid)  # a tick is due
        elif kind == "retry" and run.status == Status.RETRYING and not run.stop_requested:
            self._submission.resubmit(run)
        elif kind == "timeout":
            self._termination.on_timeout(run, payload)
        elif kind == "ttl":
            executor, uuid = state.executor(run), run.uuid
            state.outbox.post(lambda: executor.cleanup(uuid), f"clean-up of run {uuid}")  # after its final status

    def _settle(self) -> None:
        """Re-evaluate the DAGs touched by the last message until nothing changes."""
        state = self._state
        while state.dirty_dags or state.dirty_sweeps or state.dirty_schedules:
            while state.dirty_dags:
                dag = state.dags.get(state.dirty_dags.pop())
                if dag is not None:
                    self._evaluator.evaluate(dag)
                    self._waits.sync(dag)
            while state.dirty_sweeps:
                sweep = state.sweeps.get(state.dirty_sweeps.pop())
                if sweep is not None:
                    self._sweeps.evaluate(sweep)
            while state.dirty_schedules:
                schedule = state.schedules.get(state.dirty_schedules.pop())
                if schedule is not None:
                    self._schedules.evaluate(schedule)

    def _publish_settled(self) -> None:
        """Wake the waiters of the top-level runs whose waits may be over (their statuses are committed)."""
        state = self._state
        if state.dirty_roots:
            roots, state.dirty_roots = state.dirty_roots, set()
            changed = {
                root: settled for root in roots if (settled := self._settled_state(root)) != self._settled.get(root)
            }
            if changed:  # a run moving inside a DAG rarely changes what its waiters wait for
                with self._cond:
                    self._settled.update(changed)
                    self._cond.notify_all()

    def _settled_state(self, root: str) -> Settled:
        top = self._state.runs[root]
        tally = self._state.roots[root]
        return Settled(
            status=top.status if top.is_final else None,
            services_done=tally.services_done,
            hooks_done=tally.hooks_done,
        )

    def _close(self) -> None:
        self._state.closing = True


def _configured_archive() -> LogArchive | None:
    """The config file's ``artifactsStore`` as a log archive (read at each DAG's end, on the index's worker)."""
    from polynb.log_archive import configured_archive

    return configured_archive()


def _configured_connections() -> Sequence[Mapping[str, Any]]:
    """The config file's ``connections:`` (read when a DAG's op first awaits one, so a new entry is seen)."""
    from polynb.config_file import load_config

    return load_config().connections


__all__ = ["Engine", "EngineEvent", "is_final"]
