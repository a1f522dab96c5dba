"""Which engine owns a run: so a restarted engine adopts only the runs of engines that are gone.

Several engines may share one store (two notebook kernels, a terminal ``polynb run``). Each top-level run
records its owner (host, pid, the process start time, a per-engine token); on start an engine adopts the
unfinished runs whose owner process is dead, or which their owner released at a clean shutdown.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from polynb.lifecycle import FINAL
from polynb.store import RunRecord

OWNER_KEY = "engine"


def process_start_time(pid: int) -> int | None:
    """Field 22 of ``/proc/<pid>/stat`` (ticks since boot) or None: with the pid it defeats pid reuse."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    try:
        return int(stat[stat.rindex(b")") + 2 :].split()[19])
    except (ValueError, IndexError):
        return None


_CLIENT: list[int] = []
"""The ``polynb`` process this one runs a command for, when the command server runs it (``serve_for``)."""


def serve_for(pid: int) -> None:
    """This process runs a command for the ``polynb`` process ``pid`` (polynb.cli's command server): runs record
    it beside the engine's own pid, which is what decides whether the engine lives. It is the process a user
    started and sees, so messages name it."""
    _CLIENT[:] = [pid]


def new_owner() -> dict[str, Any]:
    pid = os.getpid()
    owner = {"host": socket.gethostname(), "pid": pid, "start": process_start_time(pid), "token": uuid.uuid4().hex}
    if _CLIENT:
        owner["client"] = _CLIENT[0]
    return owner


def shown_pid(owner: Mapping[str, Any]) -> Any:
    """The process to name to a user: the ``polynb`` command they started, which may serve the engine's."""
    return owner.get("client", owner.get("pid"))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A killed engine not yet reaped by its parent is a zombie: dead for our purpose.
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] != b"Z"
    except (OSError, ValueError):
        return True


def owner_alive(owner: Mapping[str, Any] | None, *, me: Mapping[str, Any]) -> bool:
    """True when ``owner`` is another engine that still runs (so its runs are not ours to adopt).

    An owner on another host is taken to be alive: we cannot tell, and adopting its runs would submit or
    stop them twice.
    """
    if not owner:
        return False
    if owner.get("token") == me.get("token"):
        return False
    if owner.get("host") != me.get("host"):
        return True
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0 or not _pid_alive(pid):
        return False
    start = owner.get("start")
    return start is None or process_start_time(pid) == start


def orphaned(runs: Iterable[RunRecord]) -> list[RunRecord]:
    """The top-level runs not final, not lone services, that no live engine runs: ``polynb attach`` takes them.

    (A service that ``polynb run`` left running on purpose is released too; it needs no engine to go on.)
    """
    candidates = [
        run for run in runs if run.status not in FINAL and not (run.dag_uuid or run.hook_of or run.kind == "service")
    ]
    if not candidates:
        return []
    me = new_owner()
    return [run for run in candidates if not owner_alive(run.meta.get(OWNER_KEY), me=me)]
