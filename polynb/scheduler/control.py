"""Stopping a run from another process (``polynb stop``): through the engine that owns it, or directly.

Every top-level run records its owner engine (``ownership.py``: host, pid, process start time). An engine
that calls :func:`serve` answers requests on a Unix socket named after that pid and start time, so a client
finds it from the store alone. The socket lives in Linux's abstract namespace rather than as a file in
``$POLYNB_HOME/engines/``: a file path is limited to 107 bytes (a deep ``POLYNB_HOME`` breaks it) and a
SIGKILLed engine would leave a stale file behind, whereas an abstract name vanishes with its process.
Access is limited to the same user by checking the peer's credentials (``SO_PEERCRED``).

When no live engine owns the run (its ``polynb run`` ended and left a service running, or was killed),
:func:`stop_unowned` re-attaches to each live run through the executor's stored handle record, stops its
process group(s) and records ``stopping`` then the final status in the store itself. Such a stop runs no
hooks: only an engine does.

Protocol: one JSON request line (``{"cmd": "stop", "run": uuid}`` or ``{"cmd": "ping"}``), one JSON answer
line (``{"ok": true}`` or ``{"ok": false, "error": "..."}``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol

from polynb.compiler.types import CompiledOp
from polynb.executors.base import Executor, ExecutorUpdate
from polynb.lifecycle import FINAL, REASON_STOPPED, Status
from polynb.scheduler.ownership import OWNER_KEY, new_owner, owner_alive, process_start_time
from polynb.store import RunRecord, Store

logger = logging.getLogger(__name__)

REQUEST_LIMIT = 64 * 1024
CLIENT_TIMEOUT = 30.0
"""Seconds a client waits for an answer (the engine only records ``stopping`` before it answers)."""
UNOWNED_SLACK = 10.0
"""Seconds beyond the grace period to wait for the processes of an unowned run to report their end."""


class ControlError(Exception):
    """The request could not be delivered or the engine refused it; the message says why."""


class Stoppable(Protocol):
    def stop(self, uuid: str) -> None: ...


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
        if request.get("cmd") != "stop" or not isinstance(request.get("run"), str):
            return {"ok": False, "error": f"unknown request {request!r}"}
        with self.lock:
            engines = list(self.engines)
        for engine in engines:
            try:
                engine.stop(request["run"])
            except LookupError:
                continue  # another engine of this process may manage it
            return {"ok": True}
        return {"ok": False, "error": f"run {request['run']} is not managed by the engine in process {os.getpid()}"}


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
    grace: float = 10.0,
) -> Literal["engine", "direct", "final"]:
    """Stop ``run`` (a DAG, an op or a single run) from any process; return how it was done.

    ``engine``: the live engine owning it was asked to (it records the statuses and runs the hooks);
    ``direct``: no engine owns it, so its processes were stopped here; ``final``: nothing to stop.
    ``executors`` is called only for a direct stop.
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
            answer = request(owner, {"cmd": "stop", "run": run.uuid})
        except OSError as exc:
            if owner_alive(owner, me=me):
                raise ControlError(
                    f"run {root.uuid} is managed by the engine in process {owner.get('pid')}, which does not take"
                    f" commands from other processes ({exc}); stop it from there"
                ) from None
        else:
            if not answer.get("ok"):
                raise ControlError(str(answer.get("error") or "the engine refused the request"))
            return "engine"
    stop_unowned(store, targets, executors(), grace=grace)
    return "direct"


def _tree(store: Store, run: RunRecord) -> list[RunRecord]:
    """``run`` and every run under it (ops and hooks of a DAG, hooks of a run), the top one last."""
    # A DAG's log of runs holds its ops and every hook under it (theirs and its own).
    below = store.list_runs(run.uuid) if run.kind == "dag" else store.hooks_of(run.uuid)
    return [*below, run]


def stop_unowned(store: Store, runs: list[RunRecord], executors: Mapping[str, Executor], *, grace: float) -> None:
    """Stop runs no engine watches: re-attach to the live ones through their handle records, stop their
    processes, and record the final statuses (a DAG run last, once its ops are final)."""
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
        if run.status in FINAL or run.kind == "dag":
            continue
        store.set_status(run.uuid, Status.STOPPING, reason=REASON_STOPPED, message=message)
        executor = executors.get(run.executor or "")
        if executor is not None:
            used[run.executor or ""] = executor
        if run.handle is None or executor is None or "placement" not in run.spec:
            # Never handed to an executor (pending), or nothing here can reach it.
            store.set_status(run.uuid, Status.STOPPED, reason=REASON_STOPPED, message=message)
            continue
        try:
            attached = executor.reattach(CompiledOp.from_dict(run.spec), dict(run.handle), on_update)
        except Exception as exc:
            logger.exception("re-attaching run %s failed", run.uuid)
            attached, message_ = False, f"{message} (could not re-attach: {exc})"
        else:
            message_ = message
        if not attached:
            store.set_status(run.uuid, Status.STOPPED, reason=REASON_STOPPED, message=message_)
            continue
        executor.stop(run.uuid, grace=grace)
        watched.append(run.uuid)
    with cond:
        cond.wait_for(lambda: all(u in done for u in watched), timeout=grace + UNOWNED_SLACK)
    for uuid in watched:
        update = done.get(uuid)
        if update is None:
            store.set_status(uuid, Status.STOPPED, reason=REASON_STOPPED, message=f"{message}; no exit was observed")
        elif update.status in ("succeeded", "failed"):
            # It ended on its own before the stop reached it: record what really happened.
            store.set_status(uuid, Status(update.status), reason=update.reason, message=update.message or None)
        else:
            store.set_status(uuid, Status.STOPPED, reason=REASON_STOPPED, message=message)
    for run in runs:
        if run.kind == "dag" and run.status not in FINAL:
            store.set_status(run.uuid, Status.STOPPING, reason=REASON_STOPPED, message=message)
            store.set_status(run.uuid, Status.STOPPED, reason=REASON_STOPPED, message=message)
    for executor in used.values():
        with contextlib.suppress(Exception):
            executor.shutdown(stop_running=False)
