"""A real ipykernel for tests: every IOPub message recorded with its arrival time, cells run one by one."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.manager import KernelManager, start_new_kernel
from jupyter_client.provisioning.local_provisioner import LocalProvisioner

GUARD = 120.0
"""Deadlock guard for a cell or a wait (never a timing assertion)."""
POLL = 0.05
TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent


@dataclass
class Received:
    at: float
    msg: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.msg["msg_type"])

    @property
    def parent_id(self) -> str | None:
        return self.msg["parent_header"].get("msg_id")

    @property
    def content(self) -> dict[str, Any]:
        return dict(self.msg["content"])


@dataclass
class Cell:
    msg_id: str
    busy_at: float
    idle_at: float
    reply: dict[str, Any]
    cell_id: str
    outputs: list[Received] = field(default_factory=list)


class Kernel:
    """One kernel with ``POLYNB_HOME`` set, started in ``cwd``; ``execute`` runs a cell and waits for it."""

    def __init__(self, cwd: Path, home: Path) -> None:
        env = {
            **os.environ,
            "POLYNB_HOME": str(home),
            "PYTHONPATH": os.pathsep.join([str(REPO), str(TESTS), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        }
        self.km: KernelManager
        self.km, self.kc = start_new_kernel(kernel_name="python3", env=env, cwd=str(cwd))
        self.messages: list[Received] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self.kc.get_iopub_msg(timeout=0.1)
            except queue.Empty:
                continue
            except Exception:
                return
            with self._cond:
                self.messages.append(Received(time.monotonic(), msg))
                self._cond.notify_all()

    def wait_for(self, predicate: Any, timeout: float = GUARD) -> Received:
        """The first recorded message matching ``predicate`` (waiting for it, with a deadlock guard)."""
        found: list[Received] = []

        def check() -> bool:
            found[:] = [m for m in self.messages if predicate(m)]
            return bool(found)

        with self._cond:
            assert self._cond.wait_for(check, timeout), "deadlock guard: message never came"
        return found[0]

    def execute(self, code: str, *, allow_errors: bool = False) -> Cell:
        # What JupyterLab sends: the cell's id in the request's metadata (diagnostics use it).
        content = {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                   "allow_stdin": False, "stop_on_error": True}  # fmt: skip
        cell_id = f"cell-{len(self.messages)}"
        msg = self.kc.session.msg("execute_request", content, metadata={"cellId": cell_id})
        self.kc.shell_channel.send(msg)
        msg_id = msg["header"]["msg_id"]
        reply = self.kc.get_shell_msg(timeout=GUARD)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.kc.get_shell_msg(timeout=GUARD)

        def state(m: Received, value: str) -> bool:
            return m.type == "status" and m.parent_id == msg_id and m.content["execution_state"] == value

        busy = self.wait_for(lambda m: state(m, "busy"))
        idle = self.wait_for(lambda m: state(m, "idle"))
        outputs = [
            m for m in self.messages
            if m.parent_id == msg_id and m.type in ("stream", "display_data", "execute_result", "error")
        ]  # fmt: skip
        cell = Cell(msg_id, busy.at, idle.at, reply["content"], cell_id, outputs)
        if not allow_errors and reply["content"]["status"] != "ok":
            raise AssertionError(f"cell failed: {reply['content'].get('ename')}: {reply['content'].get('evalue')}\n"
                                 + "\n".join(self.text(cell)))  # fmt: skip
        return cell

    def text(self, cell: Cell) -> list[str]:
        out = []
        for m in cell.outputs:
            if m.type == "stream":
                out.append(m.content["text"])
            elif m.type in ("display_data", "execute_result"):
                out.append(m.content["data"].get("text/plain", ""))
            elif m.type == "error":
                out.append(f"{m.content['ename']}: {m.content['evalue']}")
        return out

    def comm_messages(self, *, method: str | None = None, kind: str | None = None) -> list[Received]:
        with self._cond:
            msgs = [m for m in self.messages if m.type == "comm_msg"]
        if method is not None:
            msgs = [m for m in msgs if m.content["data"].get("method") == method]
        if kind is not None:
            msgs = [m for m in msgs if m.content["data"].get("type") == kind]
        return msgs

    def kill(self) -> None:
        """SIGKILL the kernel process: no atexit, no clean shutdown."""
        provisioner = self.km.provisioner
        assert isinstance(provisioner, LocalProvisioner), "no kernel process"
        # jupyter_client declares ``process = None`` without a type: say what the launch assigned.
        process: subprocess.Popen[bytes] | None = provisioner.process
        assert process is not None, "no kernel process"
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        self.close(shutdown=False)

    def restart(self) -> None:
        """Restart the kernel as JupyterLab's "Restart Kernel" does: a clean shutdown (atexit runs), then a new
        process on the same connection; the messages recorded so far are kept. Returns once the new kernel's
        IOPub messages arrive (a subscriber reconnects late: what the kernel publishes before is lost)."""
        self.km.restart_kernel(now=False)
        deadline = time.monotonic() + GUARD
        while True:
            msg_id = self.kc.kernel_info()
            reply = self.kc.get_shell_msg(timeout=GUARD)
            while reply["parent_header"].get("msg_id") != msg_id:
                reply = self.kc.get_shell_msg(timeout=GUARD)
            if self._answered(msg_id, timeout=0.5):
                return
            assert time.monotonic() < deadline, "deadlock guard: the restarted kernel's IOPub never came"

    def _answered(self, msg_id: str, *, timeout: float) -> bool:
        """Whether an IOPub message answering ``msg_id`` arrives within ``timeout`` seconds."""
        with self._cond:
            return self._cond.wait_for(lambda: any(m.parent_id == msg_id for m in self.messages), timeout)

    def close(self, *, shutdown: bool = True) -> None:
        self._stop.set()
        # The reader polls the IOPub socket: closing a zmq socket another thread is using trips a libzmq
        # assertion and aborts this whole process, so it must be gone first (it looks every 0.1 s).
        self._reader.join()
        self.kc.stop_channels()
        if shutdown:
            self.km.shutdown_kernel(now=False)
        else:
            self.km.cleanup_resources()


def processes_mentioning(text: str) -> list[str]:
    """The command lines of live processes other than this one whose arguments mention ``text``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile
        line = " ".join(a.decode(errors="replace") for a in argv if a)
        if text in line:
            found.append(f"{proc.name}: {line}")
    return found


def wait_until_no_process_mentions(text: str) -> list[str]:
    """Wait (deadlock guard) until no process mentions ``text``; return those still there then."""
    deadline = time.monotonic() + GUARD
    while (left := processes_mentioning(text)) and time.monotonic() < deadline:
        time.sleep(POLL)
    return left
