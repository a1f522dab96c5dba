"""The kernel's scheduler session: one engine, one store, one UI thread and one comm bridge per kernel.

Started on first use (or at ``%load_ext polynb`` when the store has unfinished runs: the engine's crash
recovery re-attaches to the runs a previous kernel left running, with no second submission). Stopped at
kernel exit (``atexit``): the runs this kernel started are stopped unless ``keep_runs_on_exit``, in which case
they are released and the next kernel adopts them; the runs it adopted are released either way.

Output isolation: nothing here prints. The ``polynb`` loggers are captured while a session runs (a
background thread logging to stderr would write into whichever cell runs at that moment); recent warnings
show up in the widgets as notes instead.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from polynb.compiler.registry import ComponentRegistry
from polynb.executors import registry
from polynb.executors.base import Executor
from polynb.executors.registry import BuildOptions
from polynb.lifecycle import FINAL, PIPELINE_KINDS
from polynb.notebook.comm import LabBridge
from polynb.notebook.links import ProxyMode, default_base_url, is_jupyterlab, links_for, service_token
from polynb.notebook.model import RunSnapshot, RunTracker
from polynb.notebook.pump import DEFAULT_MAX_RATE, UiPump
from polynb.scheduler.ownership import orphaned
from polynb.store import RunRecord, Store

if TYPE_CHECKING:
    from polynb.compiler.pipeline import Pipeline
    from polynb.notebook.handle import RunHandle
    from polynb.notebook.watching import WatchHandle
    from polynb.notebook.widget import RunWidget
    from polynb.scheduler.engine import Engine
    from polynb.scheduler.reactive import ReactivePipeline

log = logging.getLogger(__name__)

WAIT_SLICE = 0.25
"""Waits block in slices this long, so Ctrl-C (kernel interrupt) ends a wait promptly."""
LOG_TAIL = 200


@dataclass
class SessionConfig:
    """What ``%config PolynbMagics.<name>`` sets (see ``magics.PolynbMagics``)."""

    max_rate: float = DEFAULT_MAX_RATE
    keep_runs_on_exit: bool = False
    stop_grace: float = 3.0
    proxy: ProxyMode = "auto"
    base_url: str | None = None
    auto_open: bool = True
    default_executor: str = "local"
    kubernetes: dict[str, Any] = field(default_factory=dict)
    """Kubernetes settings (``artifacts_claim``, ``security_profile``, ...) over the config file and
    ``POLYNB_K8S_*`` (:mod:`polynb.executors.kubernetes.sources`)."""
    executors: dict[str, Executor] = field(default_factory=dict)
    """Extra executors by name (tests and benchmarks plug fakes in); ``local`` is made when missing."""


class _NoteHandler(logging.Handler):
    """Keeps the recent warnings of the ``polynb`` loggers (shown in widgets) instead of printing them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.notes: deque[tuple[float, str]] = deque(maxlen=20)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.notes.append((record.created, record.getMessage().splitlines()[0][:300]))
        except Exception:  # a note must never break the thread that logs
            self.handleError(record)


class _Headless:
    """A view with no widget: keeps a run tracked (pages opened, lab updated) even when nothing shows it."""

    def __init__(self, root: str) -> None:
        self._root = root

    @property
    def root(self) -> str:
        return self._root

    @property
    def alive(self) -> bool:
        return True

    def show(self, snapshot: RunSnapshot) -> None:
        pass


class KernelSession:
    """One per kernel (:func:`get_session`); the magics, ``polynb.run`` and the widgets go through it."""

    def __init__(self, config: SessionConfig | None = None) -> None:
        self.config = config or SessionConfig()
        self.registry = ComponentRegistry()
        self.bridge = LabBridge(
            on_stop=self.request_stop,
            runs_snapshot=self.runs_summary,
            read_logs=lambda uuid: self.logs(uuid)[0],
            on_approve=self.request_approve,
        )
        self.known_runs: list[str] = []
        """Top-level runs started or shown in this kernel, oldest first."""
        self._lock = threading.RLock()
        self._store: Store | None = None
        self._artifacts_problem: str | None = None
        self._engine: Engine | None = None
        self._pump: UiPump | None = None
        self._unserve: Callable[[], None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._notes = _NoteHandler()
        self._logger_state: tuple[bool, int] | None = None
        self._atexit_registered = False
        self._closed = False
        self._executors: dict[str, Executor] = {}
        self._views: dict[str, list[RunWidget]] = {}
        self._tokens: dict[str, str | None] = {}
        """Tokens of JupyterLab services by run (``_service_token``)."""
        self._watches: list[WatchHandle] = []

    # -- lifecycle ----------------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        with self._lock:
            if self._store is None:
                self._store = Store(**self._local_artifacts())
            return self._store

    def _local_artifacts(self) -> dict[str, Any]:
        """The configuration file's ``artifactsStore`` when local runs are the default: a host path is their root,
        a bucket is where they are synced (read once: every run this kernel creates records it). A bad one (a
        bucket that does not answer) is kept to refuse :meth:`start` with."""
        if self.config.default_executor != "local":
            return {}
        from polynb.config_file import load_config, local_artifacts_root, local_artifacts_store
        from polynb.spec.errors import SpecErrors

        try:
            config = load_config()
            return {"artifacts_root": local_artifacts_root(config), "artifacts_store": local_artifacts_store(config)}
        except SpecErrors as exc:
            self._artifacts_problem = str(exc)
            return {}

    @property
    def started(self) -> bool:
        return self._engine is not None

    @property
    def engine(self) -> Engine:
        self.start()
        assert self._engine is not None
        return self._engine

    @property
    def pump(self) -> UiPump:
        self.start()
        assert self._pump is not None
        return self._pump

    def start(self) -> None:
        """Start the engine (adopting runs of dead kernels), the UI thread and the stop socket; idempotent."""
        with self._lock:
            if self._engine is not None:
                return
            if self._closed:
                raise RuntimeError("this polynb session is shut down")
            self.store  # noqa: B018 - reads the configuration's artifacts store
            if self._artifacts_problem is not None:
                raise RuntimeError(f"{self._artifacts_problem}\nnothing was run (restart the kernel once it is fixed)")
            from polynb.scheduler import control
            from polynb.scheduler.engine import Engine

            self._capture_logs()
            executors = dict(self.config.executors)
            if "local" not in executors:
                executors["local"] = registry.build("local", self._build_options())
            executors.update(self._executors_to_resume(executors))
            self._executors = executors
            pump = UiPump(self.store, snapshot=self._snapshot, max_rate=self.config.max_rate)
            pump.start()
            engine = Engine(
                store=self.store,
                executors=executors,
                default_executor=self.config.default_executor,
                registry=self.registry,
            )
            self._unsubscribe = engine.subscribe(pump.notify)
            engine.start()
            self._pump, self._engine = pump, engine
            try:
                self._unserve = control.serve(engine)  # `polynb stop` from a terminal reaches this kernel
            except OSError:
                log.warning("`polynb stop` from other processes cannot reach this kernel's runs")
            if not self._atexit_registered:
                atexit.register(self.shutdown)
                self._atexit_registered = True
            self._follow_adopted(engine)

    def _follow_adopted(self, engine: Engine) -> None:
        """The runs the engine adopted as it started (a previous kernel's, after a restart) are this kernel's
        from now on, as those it submits: the last run of ``%polyaxon wait``, listed to the Lab, tracked by
        the UI thread (their TensorBoard opens in a Lab tab)."""
        adopted = [
            r.uuid for r in self.store.unfinished_runs() if not (r.dag_uuid or r.hook_of) and engine.manages(r.uuid)
        ]
        for uuid in adopted:  # oldest first
            self._follow(uuid)

    def _follow(self, uuid: str) -> None:
        """A run this kernel's engine adopted once running: followed as one it submitted (``_follow_adopted``)."""
        self._remember(uuid)
        self.pump.attach(_Headless(uuid))
        self.bridge.ensure_open()

    def set_max_rate(self, rate: float) -> None:
        """``%config PolynbMagics.max_rate``: from the next refresh on when the UI thread runs already."""
        self.config.max_rate = rate
        if self._pump is not None:
            self._pump.set_max_rate(rate)

    def _executors_to_resume(self, have: Mapping[str, Executor]) -> dict[str, Executor]:
        """The executors of runs a previous kernel left unfinished (Kubernetes ones, typically): the engine
        re-attaches to those runs as it starts, and a Kubernetes service gets its tunnel (and link) again.
        One that cannot be built is a warning: its runs are then reported lost by the engine."""
        wanted = {r.executor for r in self.store.unfinished_runs() if r.executor}
        out: dict[str, Executor] = {}
        for name in sorted(wanted - set(have)):
            if name not in registry.KNOWN:
                continue
            try:
                out[name] = registry.build(name, self._build_options())
            except registry.ExecutorSetupError as exc:
                log.warning("runs left on %s cannot be re-attached: %s", name, exc)
        return out

    def start_if_unfinished(self) -> bool:
        """Start now if the store has unfinished runs (a previous kernel's): re-attach to them."""
        from polynb.store import db_path

        if self.started or not db_path().exists():
            return self.started
        if self.store.unfinished_runs():
            self.start()
        return self.started

    def shutdown(self) -> None:
        """Stop the UI thread, then the engine (stopping local ops unless ``keep_runs_on_exit``)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            pump, engine = self._pump, self._engine
            watches, self._watches = self._watches, []
        for watch in watches:
            watch.stop()  # before the engine: no run is submitted to an engine going away
        if pump is not None:
            pump.stop()
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._unserve is not None:
            self._unserve()
        if engine is not None:
            for executor in self._executors.values():  # `%config PolynbMagics.stop_grace` after they were built
                if isinstance(getattr(executor, "stop_grace", None), float | int):
                    executor.stop_grace = self.config.stop_grace  # type: ignore[attr-defined]
            with _terminate_after():
                try:
                    engine.shutdown(stop_running=not self.config.keep_runs_on_exit)
                except Exception:
                    log.exception("polynb: engine shutdown failed")
        self.bridge.close()
        if self._store is not None:
            self._store.close()
        self._release_logs()

    def _build_options(self, kubernetes: Mapping[str, Any] | None = None) -> BuildOptions:
        """``kubernetes``: a run's own settings (``polynb.run(kubernetes=...)``), over the magics' ones."""
        return BuildOptions(
            artifacts_root_of=self.store.artifacts_root_of,
            artifacts_store_of=self.store.artifacts_store_of,
            base_dir=os.getcwd(),
            stop_grace=self.config.stop_grace,
            kubernetes={**self.config.kubernetes, **(kubernetes or {})},
            kubernetes_origin="polynb.run(kubernetes=...)" if kubernetes else "%config PolynbMagics.kubernetes",
        )

    def executor_names(self) -> list[str]:
        """The executors this kernel's engine has (``local`` always; the others once used)."""
        return sorted({"local", *self.config.executors, *self._executors})

    def add_executor(self, name: str, kubernetes: Mapping[str, Any] | None = None) -> None:
        """Make ``name`` usable in this kernel (``--executor kubernetes``): built by the registry and added
        to the running engine; nothing happens if it is there already. The Kubernetes executor is
        configured from ``KUBECONFIG`` (or in-cluster) and ``POLYNB_K8S_*`` (``POLYNB_K8S_KERNEL_ID`` keeps
        the kernel's label across kernel restarts; without it a restarted kernel adopts the runs by label).

        :class:`~polynb.executors.registry.ExecutorSetupError` when it cannot be built (the reason says why).
        """
        self.start()
        with self._lock:
            if name in self._executors:
                registry.reconfigure(name, self._executors[name], self._build_options(kubernetes))
                return
            executor = registry.build(name, self._build_options(kubernetes))
            self.engine.add_executor(name, executor)
            self._executors[name] = executor

    def _capture_logs(self) -> None:
        logger = logging.getLogger("polynb")
        if self._logger_state is None:
            self._logger_state = (logger.propagate, logger.level)
            logger.addHandler(self._notes)
            logger.propagate = False
            if logger.level == logging.NOTSET:
                logger.setLevel(logging.INFO)

    def _release_logs(self) -> None:
        if self._logger_state is not None:
            logger = logging.getLogger("polynb")
            logger.removeHandler(self._notes)
            logger.propagate, level = self._logger_state
            logger.setLevel(level)
            self._logger_state = None

    # -- runs ---------------------------------------------------------------------------------------

    def submit(
        self, pipeline: Pipeline, *, executor: str | None = None, kubernetes: Mapping[str, Any] | None = None
    ) -> RunHandle:
        """Submit ``pipeline``; ``kubernetes`` settings apply to this kernel's Kubernetes runs from now on
        (over ``%config PolynbMagics.kubernetes``), and only to runs that go to Kubernetes."""
        from polynb.notebook.handle import RunHandle

        name = executor or self.config.default_executor
        if kubernetes and name != "kubernetes":
            raise ValueError(f"kubernetes settings were given, but the run goes to executor {name!r}")
        if name == "kubernetes" and name not in self.config.executors:
            # Built on first use; its settings follow the magics' (and this run's) after that.
            self.add_executor(name, kubernetes)
        elif name not in self.executor_names() and name in registry.KNOWN:
            self.add_executor(name)  # `polynb.run(..., executor="local")` as well as the magics
        uuid = self.engine.submit(pipeline, executor=executor)
        self._remember(uuid)
        self.bridge.ensure_open()
        self.pump.attach(_Headless(uuid))
        return RunHandle(self, uuid, submitted_here=True)

    def handle(self, uuid: str) -> RunHandle:
        from polynb.notebook.handle import RunHandle

        return RunHandle(self, uuid)

    def _remember(self, uuid: str) -> None:
        with self._lock:
            if uuid in self.known_runs:
                self.known_runs.remove(uuid)
            self.known_runs.append(uuid)

    @property
    def last_run(self) -> str | None:
        return self.known_runs[-1] if self.known_runs else None

    def widget(self, uuid: str) -> RunWidget:
        """A new widget on a top-level run, redrawn from the store and kept live by the UI thread."""
        from polynb.notebook.widget import RunWidget

        tracker = RunTracker(self.store, uuid)
        tracker.refresh()
        snapshot = self._snapshot(tracker, time.time(), open_pages=False)
        view = RunWidget(
            snapshot,
            on_stop=self.request_stop,
            on_logs=self.request_logs,
            on_approve=self.request_approve,
            on_select=self.pump.touch,
        )
        self._remember(uuid)
        self.bridge.ensure_open()
        pump = self.pump
        # Hand the tracker over to the UI thread, which owns it from now on.
        pump.attach(view, tracker)
        with self._lock:
            self._views.setdefault(uuid, []).append(view)
        return view

    def stop(self, uuid: str) -> str:
        """Stop a run (an op, a hook or a DAG): through this kernel's engine, else its owner or directly.
        Returns how: ``engine`` (an op of a DAG whose engine is gone too: this kernel adopts the DAG), ``direct``,
        ``pending`` (an op of a DAG this kernel could not take over: its end and hooks are the next engine's) or
        ``final`` (nothing left to stop); see ``control.stop``."""
        record = self.store.get_run(uuid)
        below = self.store.list_runs(uuid) if record.kind in PIPELINE_KINDS else self.store.hooks_of(uuid)
        if all(r.status in FINAL for r in (record, *below)):
            return "final"
        try:
            self.engine.stop(uuid, grace=self.config.stop_grace)
        except LookupError:
            from polynb.scheduler import control
            from polynb.store import root_of

            root = root_of(self.store, record)
            if root.uuid != record.uuid and orphaned([root]) and self.engine.adopt(root.uuid):
                # An op of a DAG whose engine is gone (a kernel that died): stopped directly, its DAG would never
                # end. This kernel goes on with the DAG (as `polynb attach`), so the op's end, its hooks and the
                # DAG's end are recorded.
                self._follow(root.uuid)
                self.engine.stop(uuid, grace=self.config.stop_grace)
                return "engine"
            return control.stop(self.store, record, executors=self._stop_executors, grace=self.config.stop_grace)
        return "engine"

    def approve(self, uuid: str, *, approved: bool = True, actor: str | None = None) -> str:
        """Approve (or invalidate) a run waiting for it; a DAG: every op of it that waits for an approval.
        Returns how: ``engine`` (this kernel's), else as ``remote_events.approve`` (its owner, or the store)."""
        from polynb.scheduler import remote_events

        targets = [r.uuid for r in remote_events.approval_targets(self.store, self.store.get_run(uuid))]
        how = "engine"
        for target in targets:
            try:
                if not self.started:
                    raise LookupError(target)
                self.engine.approve(target, approved=approved, actor=actor)
            except LookupError:
                how = remote_events.approve(self.store, self.store.get_run(target), approved=approved, actor=actor)
        return how

    def request_approve(self, uuid: str, approved: bool = True, on_error: Callable[[str], None] | None = None) -> None:
        """The widget's and the Lab runs panel's Approve (or Invalidate) button (main thread): approve on the UI
        thread, never blocking the caller; ``on_error`` is told why it could not be done."""

        def approve() -> None:
            try:
                self.approve(uuid, approved=approved)
            except Exception as exc:
                log.warning("could not %s %s: %s", "approve" if approved else "invalidate", uuid[:12], exc)
                if on_error is not None:
                    on_error(str(exc))

        self.pump.call(approve)

    def emit(self, kind: str, payload: Mapping[str, Any]) -> list[int]:
        """A custom event from a cell: to this kernel's running DAGs and to the other engines on this host."""
        from polynb.scheduler import remote_events

        seqs = self.engine.emit(kind, payload) if self.started else []
        return seqs + remote_events.emit(self.store, kind, payload, skip_pid=os.getpid())

    def watch(
        self,
        reactive: ReactivePipeline,
        *,
        name: str | None = None,
        max_runs: int | None = None,
        concurrency: int = 1,
        catch_up: bool = False,
        executor: str | None = None,
    ) -> WatchHandle:
        """Watch ``reactive``'s connections on this kernel's engine: one run per event (``%polyaxon watch``)."""
        from polynb.notebook.watching import WatchHandle
        from polynb.scheduler.watch import Watch, WatchOptions
        from polynb.store.watches import WatchEvent

        self.start()
        options = WatchOptions(name=name or reactive.name, max_runs=max_runs, concurrency=concurrency,
                               catch_up=catch_up)  # fmt: skip
        listeners: list[Callable[[WatchEvent], None]] = []

        def forward(event: WatchEvent) -> None:  # the handle exists only once the watch does
            for listener in listeners:
                listener(event)

        watch = Watch(store=self.store, engine=self.engine, sources=reactive.sources, build=reactive.build,
                      options=options, executor=executor, on_change=forward)  # fmt: skip
        handle = WatchHandle(watch, ", ".join(f"{s.name} ({s.kind})" for s in reactive.sources),
                             ui_call=self.pump.call)  # fmt: skip
        listeners.append(handle.on_watch_change)
        unsubscribe = self.engine.subscribe(handle.on_engine_event)
        handle.on_stop = unsubscribe
        watch.start()
        with self._lock:
            self._watches.append(handle)
        return handle

    def _stop_executors(self) -> Mapping[str, Executor]:
        return {"local": registry.build("local", BuildOptions(artifacts_root_of=self.store.artifacts_root_of))}

    def request_stop(self, uuid: str) -> None:
        """Button and comm handlers (main thread): stop on the UI thread, never blocking the caller."""

        def stop() -> None:
            try:
                self.stop(uuid)
            except Exception as exc:
                log.warning("could not stop %s: %s", uuid[:12], exc)

        self.pump.call(stop)

    def request_logs(self, uuid: str) -> None:
        def show() -> None:
            lines, title = self.logs(uuid, tail=LOG_TAIL)
            record = self.store.get_run(uuid)
            for views in list(self._views.values()):
                for view in views:
                    if view.root == uuid or uuid in {op.uuid for op in view.snapshot.ops}:
                        view.show_logs(f"{title} — {record.name}", lines)

        self.pump.call(show)

    def logs(self, uuid: str, *, tail: int | None = None) -> tuple[list[str], str]:
        """The log lines of a run (init steps first), and a title saying which run."""
        record = self.store.get_run(uuid)
        if record.kind in PIPELINE_KINDS:
            what = {"dag": "a DAG: choose one of its ops", "matrix": "a sweep: choose one of its trials"}.get(
                record.kind, "a schedule: choose one of its ticks' runs"
            )
            return [], f"{record.name} is {what}"
        executor = self._executors.get(record.executor or "local")
        try:
            lines = (
                list(executor.logs(uuid, follow=False)) if executor is not None else _read_local_logs(self.store, uuid)
            )
        except Exception as exc:
            return [f"(logs unavailable: {exc})"], "logs"
        if not lines and self.store.get_run(uuid).status in FINAL:
            lines = _stored_logs(uuid)  # this machine's copy is gone: the artifacts store's
        return (lines[-tail:] if tail else lines), "logs"

    def wait(self, uuid: str, *, timeout: float | None = None, include_services: bool = False) -> str:
        """Block until the run is done (its non-service ops, hooks); Ctrl-C interrupts the wait, not the run."""
        deadline = None if timeout is None else time.monotonic() + timeout
        managed = True
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            step = WAIT_SLICE if remaining is None else min(WAIT_SLICE, remaining)
            if managed:
                try:
                    return self.engine.wait(uuid, timeout=step, include_services=include_services)
                except TimeoutError:
                    pass
                except LookupError:
                    managed = False  # another process's engine runs it: follow the store
            if not managed:
                record = self.store.get_run(uuid)
                if record.status in FINAL:
                    return record.status.value
                if orphaned([record]) and self.engine.adopt(uuid):
                    # Its engine is gone (a kernel that died): this one goes on with it, as `polynb attach` would.
                    self._follow(uuid)
                    managed = True
                    continue
                time.sleep(step)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {uuid} not done after {timeout} s")

    # -- snapshots ----------------------------------------------------------------------------------

    def _service_token(self, record: RunRecord) -> str | None:
        """The token of a JupyterLab service (in its run folder, readable by this user only), read once."""
        if not is_jupyterlab(record):
            return None
        if record.uuid not in self._tokens:
            self._tokens[record.uuid] = service_token(self.store.artifacts_root_of(record.uuid) / record.uuid)
        return self._tokens[record.uuid]

    def _snapshot(self, tracker: RunTracker, now: float, *, open_pages: bool = True) -> RunSnapshot:
        """A tracker's snapshot with service links and notes; on the UI thread it also opens TensorBoard
        tabs (once per service run) and tells the lab extension about the change."""
        records = [r for u in tracker.member_uuids if (r := tracker.record(u)) is not None]
        root = tracker.record(tracker.uuid)
        name = root.name if root else "run"
        base_url = self.config.base_url or self.bridge.base_url or default_base_url()
        links = links_for(records, name, base_url=base_url, mode=self.config.proxy, token_of=self._service_token)
        origin = tracker.origin
        notes = [text for at, text in list(self._notes.notes) if at >= origin]
        snapshot = tracker.snapshot(now, links=links, notes=notes[-3:])
        if open_pages:
            if self.config.auto_open:
                for link in links:
                    if link.kind == "tensorboard":
                        self.bridge.open_page(link)
            self.bridge.run_update(summary(snapshot))
        return snapshot

    def runs_summary(self) -> list[dict[str, Any]]:
        """The ``runs`` message: this kernel's runs, newest first (read from the store)."""
        out = []
        for uuid in reversed(self.known_runs):
            tracker = RunTracker(self.store, uuid)
            tracker.refresh()
            out.append(summary(self._snapshot(tracker, time.time(), open_pages=False)))
        return out


def summary(snapshot: RunSnapshot) -> dict[str, Any]:
    """A ``RunSummary`` of the comm protocol."""
    urls = {link.run_uuid: link.url for link in snapshot.links}
    counts: dict[str, int] = {}
    for op in snapshot.members:
        counts[op.status] = counts.get(op.status, 0) + 1
    return {
        "uuid": snapshot.uuid,
        "name": snapshot.name,
        "kind": snapshot.kind,
        "status": snapshot.status,
        "elapsed": round(snapshot.elapsed, 3),
        "counts": counts,
        "ops": [
            {
                "uuid": op.uuid,
                "name": op.name,
                "kind": op.kind,
                "status": op.status,
                "url": urls.get(op.uuid),
                "awaiting_approval": op.awaiting_approval,
            }
            for op in snapshot.members
        ],
        "awaiting_approval": any(op.awaiting_approval for op in snapshot.ops),
        "sources": [
            {
                "name": src.name,
                "kind": src.kind,
                "awaited_by": list(src.awaited_by),
                "events": len(src.markers),
                "last_event": src.markers[-1].label if src.markers else None,
            }
            for src in snapshot.sources
        ],
    }


def _stored_logs(uuid: str) -> list[str]:
    """A final run's logs from the configured artifacts store (none there, or no store: no lines)."""
    from polynb.log_archive import ArchiveError, configured_archive

    archive = configured_archive()
    try:
        return (archive.read(uuid) if archive is not None else None) or []
    except ArchiveError as exc:
        return [f"(logs unavailable: {exc})"]


def _read_local_logs(store: Store, uuid: str) -> list[str]:
    executor = registry.build("local", BuildOptions(artifacts_root_of=store.artifacts_root_of, archive_logs=False))
    try:
        return list(executor.logs(uuid, follow=False))
    finally:
        executor.shutdown(stop_running=False)


_session: KernelSession | None = None
_session_lock = threading.Lock()


def get_session() -> KernelSession:
    """This kernel's session (made on first call)."""
    global _session
    with _session_lock:
        if _session is None or _session._closed:
            _session = KernelSession()
        return _session


def set_session(session: KernelSession | None) -> KernelSession | None:
    """Replace the kernel's session (tests); returns the previous one, which the caller shuts down."""
    global _session
    with _session_lock:
        previous, _session = _session, session
        return previous


@contextlib.contextmanager
def _terminate_after() -> Iterator[None]:
    """Hold a SIGTERM off until the block is through, then act on it. Jupyter shuts a kernel down by asking it,
    SIGTERM half-way through its ``shutdown_wait_time`` (2.5 s of 5 by default) and SIGKILL at the end: the
    engine's stop of the ops (their grace, 3 s by default) and the record of their ends would be cut at 2.5 s,
    leaving them ``stopping`` until another engine came. Only the main thread can take a signal's handler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    asked: list[int] = []
    try:
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: asked.append(signum))
    except (ValueError, OSError):  # no signals here (an embedded interpreter)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)  # (None: set outside Python)
        if asked:
            signal.raise_signal(signal.SIGTERM)  # the termination asked meanwhile, now that the runs are recorded
