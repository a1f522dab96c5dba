"""A fake executor for kernel tests and the benchmark: every op chatters (running <-> warning) at a set rate.

Importable inside a kernel (its folder is put on ``PYTHONPATH``): it produces engine events at a rate no
real process would, so the widget's rate cap is exercised, without starting a process per op.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from polynb.compiler.types import CompiledOp, OpKind, Placement
from polynb.executors.base import ExecutorUpdate, UpdateCallback
from polynb.store import run_paths


class ChattyExecutor:
    """Each op: ``running``, then ``warning``/``running`` toggles at ``rate`` a second for ``duration``
    seconds, then ``succeeded``."""

    name = "chatty"

    def __init__(self, *, rate: float = 500.0, duration: float = 2.0) -> None:
        self.rate = rate
        self.duration = duration
        self._stop: dict[str, threading.Event] = {}
        self._closed = threading.Event()

    def place(self, run_uuid: str, kind: OpKind, port_count: int) -> Placement:
        paths = run_paths(run_uuid)
        return Placement(str(paths.root.parent), str(paths.root), str(paths.outputs))

    def submit(self, op: CompiledOp, on_update: UpdateCallback) -> dict[str, Any]:
        stop = self._stop.setdefault(op.uuid, threading.Event())
        threading.Thread(target=self._chatter, args=(op.uuid, on_update, stop), daemon=True).start()
        return {"fake": True}

    def _chatter(self, uuid: str, on_update: UpdateCallback, stop: threading.Event) -> None:
        on_update(ExecutorUpdate(uuid, "running", "Fake"))
        end = time.monotonic() + self.duration
        n = 0
        while time.monotonic() < end and not stop.is_set() and not self._closed.is_set():
            n += 1
            on_update(ExecutorUpdate(uuid, "warning" if n % 2 else "running", "Chatter", str(n)))
            time.sleep(1.0 / self.rate)
        on_update(ExecutorUpdate(uuid, "stopped" if stop.is_set() else "succeeded", "Done"))

    def stop(self, run_uuid: str, *, grace: float | None = None) -> None:
        self._stop.setdefault(run_uuid, threading.Event()).set()

    def logs(self, run_uuid: str, *, follow: bool = False) -> Iterator[str]:
        return iter(())

    def reattach(self, op: CompiledOp, record: dict[str, Any], on_update: UpdateCallback) -> bool:
        return False

    def cleanup(self, run_uuid: str) -> None:
        pass

    def shutdown(self, *, stop_running: bool = True) -> None:
        self._closed.set()
