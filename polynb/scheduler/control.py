"""Stopping a run from another process (``polynb stop``): through the engine that owns it, or directly.

Every top-level run records its owner engine (``ownership.py``: host, pid, process start time). An engine
that calls :func:`serve` answers requests on a Unix socket named after that pid and start time, so a client
finds it from the store alone. The socket lives in Linux's abstract namespace rather than as a file in
``$POLYNB_HOME/engines/``: a file path is limited to 107 bytes (a deep ``POLYNB_HOME`` breaks it) and a
SIGKILLed engine would leave a stale file behind, whereas an abstract name vanishes with its process.
Access is limited to the same user by checking the peer's credentials (``SO_PEERCRED``).

When no live engine owns the run (its ``polynb run`` ended and left a service running, or was killed),
:func:`stop_unowned` records ``stopping`` on the run and everything under it, and stops the live ones'
processes through the executor's stored handle records (with the grace asked for). What happens next —
final statuses, ``trigger: stopped`` hooks, the DAG's own status and hooks — is an engine's to decide, as
for any run: :func:`finish_unowned` starts one in this process that adopts just that run, finishes it as a
restarted engine finishes a run it finds ``stopping``, waits for the hooks and goes. That is done only when
nothing else can start meanwhile: the run stopped is the top-level one, or that one is final already. For
an op of a DAG that is not being stopped, the engine would go on with the DAG (start its next ops): the op
is left ``stopping`` instead, and the next engine (``polynb attach``) records its end and runs its hooks.

Protocol: one JSON request line (``{"cmd": "stop", "run": uuid, "grace": seconds or null}`` or ``{"cmd": "ping"}``;
``approve`` and ``emit``: see ``remote_events``), one JSON answer line (``{"ok": true}`` or ``{"ok": false,
"error": "..."}``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, Protocol

from polynb.compiler.types import CompiledOp
from polynb.executors.base import Executor, ExecutorUpdate
from polynb.lifecycle import CUSTOM_EVENT_KINDS, FINAL, PIPELINE_KINDS, REASON_STOPPED, Status
from polynb.scheduler.ownership import OWNER_KEY, new_owner, owner_alive, process_start_time, shown_pid
from polynb.store import RunRecord, Store

logger = logging.getLogger(__name__)

REQUEST_LIMIT = 64 * 1024
CLIENT_TIMEOUT = 30.0
"""Seconds a client waits for an answer (the engine only records ``stopping`` before it answers)."""
UNOWNED_SLACK = 10.0
"""Seconds beyond the grace period to wait for the processes of an unowned run to report their end."""
DEFAULT_GRACE = 10.0
"""Seconds between SIGTERM and SIGKILL of a stop that names none, made here (no engine runs the run); an engine
that runs it gives its executor's own."""
_SUBMITTED = frozenset({Status.QUEUED, Status.SCHEDULED, Status.STARTING, Status.RUNNING})
"""Statuses of a run its engine claimed for an executor: it may have processes even without a handle."""


class ControlError(Exception):
    """The request could not be delivered or the engine refused it; the message says why."""


class Stoppable(Protocol):
    def stop(self, uuid: str, *, grace: float | None = None) -> None: ...


def address(pid: int, start: int | None) -> str:
    """The abstract socket name of the engine process ``pid`` started at ``start`` (pid reuse-proof)."""
    return f"\0polynb/engine/{pid}/{start}"


# -- server -----------------------------------------------------------------------------------------


class _Server:
    """One listening socket per process, shared by every engine of the process (tests run several)."""

    def __init__(self) -> None:
        self.engines: list[Stoppable] = []
        self.lock = threading.Lock()
        pid = os.getpid()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(address(pid, process_start_time(pid)))
        self.sock.listen(16)
        self.thread = threading.Thread(target=self._accept, name="polynb-control", daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(conn,), name="polynb-control-conn", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(CLIENT_TIMEOUT)
            try:
                answer = self._answer(conn)
            except Exception as exc:  # a bad client must never take the engine down
                logger.exception("control request failed")
                answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps(answer).encode() + b"\n")

    def _answer(self, conn: socket.socket) -> dict[str, Any]:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _, uid, _ = struct.unpack("3i", creds)
        if uid != os.getuid():
            return {"ok": False, "error": "permission denied: the engine belongs to another user"}
        request = json.loads(_read_line(conn))
        if request.get("cmd") == "ping":
            return {"ok": True, "pid": os.getpid()}
        if request.get("cmd") in ("approve", "emit"):
            with self.lock:
                engines = list(self.engines)
            return answer_event(engines, request)
        if request.get("cmd") != "stop" or not isinstance(request.get("run"), str):
            return {"ok": False, "error": f"unknown request {request!r}"}
        with self.lock:
            engines = list(self.engines)
        grace = request.get("grace")
        if grace is not None and (not isinstance(grace, int | float) or isinstance(grace, bool) or grace < 0):
            return {"ok": False, "error": f"bad grace {grace!r}: expected seconds"}
        for engine in engines:
            try:
                engine.stop(request["run"], grace=None if grace is None else float(grace))
            except LookupError:
                continue  # another engine of this process may manage it
            return {"ok": True}
        return {"ok": False, "error": f"run {request['run']} is not managed by the engine in process {os.getpid()}"}


def answer_event(engines: Iterable[Any], body: Mapping[str, Any]) -> dict[str, Any]:
    """Deliver an ``approve`` or ``emit`` request (``remote_events``) to the engines of this process."""
    cmd = body.get("cmd")
    if cmd == "approve":
        uuid = body.get("run")
        if not isinstance(uuid, str):
            return {"ok": False, "error": "approve needs a run uuid"}
        for engine in engines:
            try:
                seq = engine.approve(uuid, approved=bool(body.get("approved", True)), actor=body.get("actor"))
            except LookupError:
                continue  # another engine of this process may manage it
            except ValueError as exc:
                return {"ok": False, "error": str(exc)}
            return {"ok": True, "seqs": [seq]}
        return {"ok": False, "error": f"run {uuid} is not managed by this process's engines"}
    kind, payload = body.get("kind"), body.get("payload") or {}
    if kind not in CUSTOM_EVENT_KINDS or not isinstance(payload, dict):
        return {"ok": False, "error": f"emit takes {', '.join(sorted(CUSTOM_EVENT_KINDS))} and an object payload"}
    seqs: list[int] = []
    for engine in engines:
        seqs.extend(engine.emit(kind, payload))
    return {"ok": True, "seqs": seqs}


_server: _Server | None = None
_server_lock = threading.Lock()


def serve(engine: Stoppable) -> Callable[[], None]:
    """Answer stop requests for ``engine`` from other processes; returns the function that ends it."""
    global _server  # one socket per process, made on first use
    with _server_lock:
        if _server is None:
            _server = _Server()
        server = _server
    with server.lock:
        server.engines.append(engine)

    def unserve() -> None:
        with server.lock:
            if engine in server.engines:
                server.engines.remove(engine)

    return unserve


# -- client -----------------------------------------------------------------------------------------


def _read_line(conn: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
        if len(data) > REQUEST_LIMIT:
            raise ControlError("message too long")
    return data


def request(owner: Mapping[str, Any], body: Mapping[str, Any], *, timeout: float = CLIENT_TIMEOUT) -> dict[str, Any]:
    """Send ``body`` to the engine ``owner`` describes; ``ConnectionError`` when nothing listens there."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(address(int(owner["pid"]), owner.get("start")))
        sock.sendall(json.dumps(dict(body)).encode() + b"\n")
        answer = json.loads(_read_line(sock) or b"{}")
    if not isinstance(answer, dict):
        raise ControlError(f"unexpected answer {answer!r}")
    return answer


def stop(
    store: Store,
    run: RunRecord,
    *,
    executors: Callable[[], Mapping[str, Executor]],
    grace: float | None = None,
) -> Literal["engine", "direct", "pending", "final"]:
    """Stop ``run`` (a DAG, an op or a single run) from any process; return how it was done.

    ``engine``: the live engine owning it was asked to (it records the statuses and runs the hooks);
    ``direct``: no engine owns it, so its processes were stopped here and an engine of this process
    recorded the statuses and ran the hooks; ``pending``: its processes were stopped here, but its DAG has
    no engine and goes on: the end and the hooks are the next engine's (``polynb attach``); ``final``:
    nothing to stop. ``executors`` is called only without a live engine (a fresh set per call).
    """
    root = run
    while root.dag_uuid or root.hook_of:
        root = store.get_run(root.dag_uuid or root.hook_of or "")
    targets = _tree(store, run)
    if all(r.status in FINAL for r in targets):
        return "final"
    owner = root.meta.get(OWNER_KEY)
    me = new_owner()
    if owner_alive(owner, me=me):
        assert owner is not None
        if owner.get("host") != me["host"]:
            raise ControlError(f"run {root.uuid} is managed by an engine on host {owner.get('host')}; stop it there")
        try:
            answer = request(owner, {"cmd": "stop", "run": run.uuid, "grace": grace})
        except OSError as exc:
            if owner_alive(owner, me=me):
                raise ControlError(
                    f"run {root.uuid} is managed by the engine in process {shown_pid(owner)}, which does not take"
                    f" commands from other processes ({exc}); stop it from there"
                ) from None
        else:
            if not answer.get("ok"):
                raise ControlError(str(answer.get("error") or "the engine refused the request"))
            return "engine"
    stop_unowned(store, targets, executors(), grace=DEFAULT_GRACE if grace is None else grace)
    if run.uuid != root.uuid and not store.get_run(root.uuid).is_final:
        return "pending"
    finish_unowned(store, root, run, executors())
    return "direct"


_OVER_RUNS = PIPELINE_KINDS
"""Kinds whose status follows the runs under them: a DAG's ops, a sweep's trials, a schedule's ticks' runs (a stop
stops those)."""


def _tree(store: Store, run: RunRecord) -> list[RunRecord]:
    """``run`` and every run under it (ops and hooks of a DAG, a schedule's ticks' runs, hooks of a run), the
    top one last; an op running a nested DAG or a schedule comes after the runs under it."""
    # A DAG's log of runs holds its ops and every hook under it (theirs and its own).
    below = store.list_runs(run.uuid) if run.kind in _OVER_RUNS else store.hooks_of(run.uuid)
    found: list[RunRecord] = []
    for record in below:
        nested = record.kind in _OVER_RUNS and record.hook_of is None and record.uuid != run.uuid
        found += _tree(store, record) if nested else [record]
    return [*found, run]


def hook_runs(store: Store, run: RunRecord) -> list[RunRecord]:
    """The hook runs under ``run``: its own and, for a DAG, those of its ops."""
    return [r for r in _tree(store, run) if r.hook_of is not None]


def stop_unowned(store: Store, runs: list[RunRecord], executors: Mapping[str, Executor], *, grace: float) -> None:
    """Stop runs no engine watches: record ``stopping`` on each, then stop the processes of the live ones.

    The final statuses are left to an engine (``finish_unowned`` or the next one), which reads them from the
    executor (the run folder: what really happened, when) and runs the hooks. Only what no engine could
    decide is recorded here: a run whose executor is not available, one whose processes never reported
    their end.
    """
    message = "stopped by `polynb stop`; no engine was running it"
    done: dict[str, ExecutorUpdate] = {}
    cond = threading.Condition()

    def on_update(update: ExecutorUpdate) -> None:
        if update.is_final:
            with cond:
                done[update.run_uuid] = update
                cond.notify_all()

    watched: list[str] = []
    used: dict[str, Executor] = {}
    for run in runs:
        if run.status in FINAL:
            continue
        store.set_status(run.uuid, Status.STOPPING, reason=REASON_STOPPED, message=message)
        if run.kind in _OVER_RUNS:
            continue  # its status follows its ops'
        executor = executors.get(run.executor or "")
        if executor is None:
            store.set_status(run.uuid, Status.STOPPED, reason=REASON_STOPPED, message=f"{message} (unreachable)")
            continue
        used[run.executor or ""] = executor
        # Claimed without a handle: its engine died while submitting it; the run folder may know it.
        claimed = run.handle is not None or run.status in _SUBMITTED
        if not claimed or "placement" not in run.spec:
            continue  # never handed to an executor (pending): an engine finishes it as stopped
        try:
            attached = executor.reattach(CompiledOp.from_dict(run.spec), dict(run.handle or {}), on_update)
        except Exception:
            logger.exception("re-attaching run %s failed", run.uuid)
            attached = False
        if not attached:
            if run.handle is not None:
                store.set_handle(run.uuid, None)  # no trace of a process: an engine finishes it as never started
            continue
        executor.stop(run.uuid, grace=grace)
        watched.append(run.uuid)
    with cond:
        cond.wait_for(lambda: all(u in done for u in watched), timeout=grace + UNOWNED_SLACK)
    for uuid in watched:
        if uuid not in done:
            store.set_status(uuid, Status.STOPPED, reason=REASON_STOPPED, message=f"{message}; no exit was observed")
    for executor in used.values():
        with contextlib.suppress(Exception):
            executor.shutdown(stop_running=False)


def finish_unowned(store: Store, root: RunRecord, run: RunRecord, executors: Mapping[str, Executor]) -> None:
    """Let an engine of this process adopt ``root`` (only it), record how ``run`` and the runs under it
    ended, run their hooks, wait for those, and give the rest (services of a final DAG) up again."""
    from polynb.scheduler.engine import Engine  # the engine is needed only here

    names = {r.executor or "local" for r in [root, *_tree(store, root)]}
    available: dict[str, Executor] = {}
    for name in sorted(names):
        with contextlib.suppress(KeyError):  # not available here: stop_unowned recorded its runs
            available[name] = executors[name]
    engine = Engine(store=store, executors=available, default_executor=root.executor or "local")
    cond = threading.Condition()

    def settled() -> bool:
        return all(r.status in FINAL for r in _tree(store, store.get_run(run.uuid)))

    def on_event(_event: object) -> None:
        with cond:
            cond.notify_all()

    engine.subscribe(on_event)
    engine.start(only={root.uuid})
    unserve = serve(engine)
    try:
        try:
            engine.wait(root.uuid, timeout=0)
        except TimeoutError:
            pass  # adopted, not final yet
        except LookupError:  # not adopted (taken over meanwhile, or it could not be resumed: logged)
            raise ControlError(
                f"the processes of {run.name} are stopped, but {root.name} could not be taken over here to record"
                f" the rest and run its hooks; `polynb attach {root.uuid[:12]}` does that"
            ) from None
        with cond:
            cond.wait_for(settled)
    finally:
        unserve()
        engine.shutdown(stop_running=False)
