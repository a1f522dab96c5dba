"""The kernel's end of the ``polynb`` comm (``docs/comm-protocol.md``).

:class:`LabBridge` opens the comm on first use, accepts comms the front end opens (target ``polynb``),
records what the front end said in its ``hello``, and sends kernel → lab messages on every open comm.
Incoming messages arrive on the kernel's main thread; handlers only record or hand work to callbacks that
signal the UI thread, never block. Sending is thread-safe (the UI thread sends; ipykernel's IOPub socket
is thread-safe) and guarded by a lock around the set of comms.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any, Protocol

import polynb
from polynb.notebook.model import Link

log = logging.getLogger(__name__)

TARGET = "polynb"
PROTOCOL = 1
KERNEL_FEATURES = ("open", "runs", "run_update", "diagnostics", "stop", "error", "logs", "approve")
LOGS_TAIL = 2000
"""At most this many lines of a run's log go to the lab per request (the rest is marked ``truncated``)."""


class CommLike(Protocol):
    """The part of ``comm.base_comm.BaseComm`` the bridge uses (fakes in tests implement it)."""

    comm_id: str

    def send(self, data: Any = None, metadata: Any = None, buffers: Any = None) -> None: ...
    def on_msg(self, callback: Callable[[dict[str, Any]], None] | None) -> None: ...
    def on_close(self, callback: Callable[[dict[str, Any]], None] | None) -> None: ...


def hello() -> dict[str, Any]:
    return {"type": "hello", "protocol": PROTOCOL, "version": polynb.__version__, "features": list(KERNEL_FEATURES)}


class LabBridge:
    """Kernel side of the protocol. ``on_stop(uuid)`` and ``runs_snapshot()`` come from the session."""

    def __init__(
        self,
        *,
        on_stop: Callable[[str], None],
        runs_snapshot: Callable[[], list[dict[str, Any]]],
        create_comm: Callable[..., CommLike] | None = None,
        read_logs: Callable[[str], list[str]] | None = None,
        on_approve: Callable[[str, bool, Callable[[str], None]], None] | None = None,
    ) -> None:
        """``on_approve(uuid, approved, on_error)``: the Lab runs panel's Approve/Invalidate (``approve``)."""
        self._on_stop = on_stop
        self._on_approve = on_approve
        self._runs_snapshot = runs_snapshot
        self._read_logs = read_logs
        self._create_comm = create_comm
        self._lock = threading.Lock()
        self._comms: dict[str, CommLike] = {}
        self.features: set[str] = set()
        """What a lab said it handles in its ``hello`` (empty: no extension answered yet)."""
        self.base_url: str | None = None
        self.opened: set[str] = set()
        """``reuse_key``s the lab reported as open."""
        self.sent_open: set[str] = set()

    # -- lifecycle ----------------------------------------------------------------------------------

    def register_target(self) -> None:
        """Let a front end open a comm (after a page reload): target ``polynb``."""
        try:
            from comm import get_comm_manager
        except ImportError:  # pragma: no cover - comm comes with ipykernel
            return
        get_comm_manager().register_target(TARGET, self._accept)

    def unregister_target(self) -> None:
        try:
            from comm import get_comm_manager

            get_comm_manager().unregister_target(TARGET, self._accept)
        except (ImportError, KeyError):
            pass

    def ensure_open(self) -> None:
        """Open the kernel's comm when none is open (first use, or after a front end without the extension
        closed it and a page with the extension came back)."""
        with self._lock:
            if self._comms:
                return
        create = self._create_comm
        if create is None:
            from comm import create_comm

            create = create_comm
        try:
            comm = create(target_name=TARGET, data=hello())
        except Exception:  # no kernel, or a front end that refuses: the widget's links are the fallback
            log.debug("could not open the polynb comm", exc_info=True)
            return
        self._adopt(comm)

    def _accept(self, comm: CommLike, open_msg: Mapping[str, Any]) -> None:
        self._adopt(comm)
        data = (open_msg.get("content") or {}).get("data") or {}
        if data:
            self._handle(comm, data)

    def _adopt(self, comm: CommLike) -> None:
        with self._lock:
            self._comms[comm.comm_id] = comm

        def on_msg(msg: dict[str, Any]) -> None:
            self._handle(comm, (msg.get("content") or {}).get("data") or {})

        def on_close(_msg: dict[str, Any]) -> None:
            self._forget(comm.comm_id)

        comm.on_msg(on_msg)
        comm.on_close(on_close)

    def _forget(self, comm_id: str) -> None:
        with self._lock:
            self._comms.pop(comm_id, None)

    @property
    def connected(self) -> bool:
        with self._lock:
            return bool(self._comms)

    def close(self) -> None:
        with self._lock:
            comms, self._comms = list(self._comms.values()), {}
        for comm in comms:
            close = getattr(comm, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:
                    log.debug("closing comm failed", exc_info=True)

    # -- lab -> kernel ------------------------------------------------------------------------------

    def _handle(self, comm: CommLike, data: Mapping[str, Any]) -> None:
        kind = data.get("type")
        if kind == "hello":
            self.features = {str(f) for f in data.get("features") or ()}
            if isinstance(data.get("base_url"), str):
                self.base_url = data["base_url"]
            if data.get("protocol", PROTOCOL) != PROTOCOL:
                log.warning("the lab extension speaks protocol %s, the kernel %s", data.get("protocol"), PROTOCOL)
            self._send_to(comm, hello())
        elif kind == "state_request":
            self._send_to(comm, {"type": "runs", "runs": self._runs_snapshot()})
        elif kind == "stop":
            uuid = str(data.get("uuid") or "")
            try:
                self._on_stop(uuid)
            except Exception as exc:
                self._send_to(comm, {"type": "error", "request": "stop", "message": str(exc)})
        elif kind == "approve":
            self._approve(comm, str(data.get("uuid") or ""), data.get("approved", True) is not False)
        elif kind == "opened":
            self.opened.add(str(data.get("reuse_key") or ""))
        elif kind == "logs_request":
            self._send_logs(comm, str(data.get("uuid") or ""))

    def _approve(self, comm: CommLike, uuid: str, approved: bool) -> None:
        """Approve (or invalidate) as ``polynb approve`` does; the change arrives as ``run_update``s, a failure as
        ``error``."""

        def failed(message: str) -> None:
            self._send_to(comm, {"type": "error", "request": "approve", "message": message})

        if self._on_approve is None or not uuid:
            failed("approvals are not available" if uuid else "approve: no uuid")
            return
        try:
            self._on_approve(uuid, approved, failed)
        except Exception as exc:
            failed(str(exc))

    def _send_logs(self, comm: CommLike, uuid: str) -> None:
        if self._read_logs is None:
            self._send_to(comm, {"type": "error", "request": "logs_request", "message": "logs are not available"})
            return
        try:
            lines = self._read_logs(uuid)
        except Exception as exc:
            self._send_to(comm, {"type": "error", "request": "logs_request", "message": str(exc)})
            return
        truncated = len(lines) > LOGS_TAIL
        text = "\n".join(lines[-LOGS_TAIL:])
        self._send_to(comm, {"type": "logs", "uuid": uuid, "text": text, "truncated": truncated})

    # -- kernel -> lab ------------------------------------------------------------------------------

    def send(self, data: Mapping[str, Any]) -> None:
        with self._lock:
            comms = list(self._comms.values())
        for comm in comms:
            self._send_to(comm, data)

    def _send_to(self, comm: CommLike, data: Mapping[str, Any]) -> None:
        try:
            comm.send(dict(data))
        except Exception:
            log.debug("sending on the polynb comm failed", exc_info=True)
            self._forget(comm.comm_id)

    def open_page(self, link: Link, *, reuse_key: str | None = None) -> bool:
        """Send ``open`` once per ``reuse_key``; returns whether it was sent now."""
        key = reuse_key or f"{link.kind}:{link.run_uuid}"
        with self._lock:
            if key in self.sent_open:
                return False
            self.sent_open.add(key)
        self.ensure_open()
        message = {"type": "open", "reuse_key": key, **asdict(link)}
        self.send(message)
        return True

    def diagnostics(self, cell_id: str | None, magic: str, errors: list[dict[str, Any]]) -> None:
        if not cell_id:
            return
        self.ensure_open()
        self.send({"type": "diagnostics", "cell_id": cell_id, "magic": magic, "errors": errors})

    def run_update(self, summary: dict[str, Any]) -> None:
        if self.connected:
            self.send({"type": "run_update", "run": summary})
