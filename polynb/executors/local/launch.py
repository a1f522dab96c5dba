"""How the local executor starts a shim: forked by a fork server, or spawned as a new interpreter.

``POLYNB_LOCAL_SPAWN`` chooses, read when an executor is made:

- ``fork`` (the default): a :class:`ForkServer` (:mod:`.forkserver`), started when the first run is placed
  (it gets ready while that run compiles) and shut down with the executor, forks each shim from an
  interpreter that has imported the shim already: about a millisecond, where a new interpreter costs ten
  or more (more on a loaded machine).
- ``spawn``: :func:`spawn_shim`, one ``posix_spawn`` of ``python -I -S`` per run: the shim is the
  engine's child.

Either way the shim gets the same fds, session, signal mask, environment, folder, file-creation mask and
resource limits (as the engine has them at the submit: a notebook may change them between runs), and writes the
same records; the executor takes the run's lock before either and follows the shim by its pipe. The executor
falls back to spawning, and says why once, where forking cannot be used: a platform without ``fork``,
``SOCK_SEQPACKET`` or ``SCM_RIGHTS``, a server that cannot start, one that died, or one that cannot take a
resource limit the engine has now.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import resource
import select
import signal
import socket
import threading
from pathlib import Path
from typing import Any, Final, NamedTuple

from polynb.executors.local import forkserver
from polynb.executors.local import shim as local_shim
from polynb.executors.local.layout import LOCK_FD, LOCK_FILE, parse_identity

PACKAGE_ROOT: Final = str(Path(__file__).resolve().parents[3])
"""The folder holding the ``polynb`` package, put on the shim's path (found from this file: ``polynb.__file__``
would import the package root, whose lazy ``polynb.run`` reaches the notebook layer)."""
SPAWN_MODE_ENV: Final = "POLYNB_LOCAL_SPAWN"
SPAWN_MODES: Final = ("fork", "spawn")
MAX_REPLY: Final = 1 << 16
"""Above any reply of the fork server (a pid and a start time, or an error message)."""
INLINE_SPEC_MAX: Final = 64 * 1024
"""The largest shim spec sent inside a fork server request; a larger one is written to a file."""
MAX_INLINE_REQUEST: Final = 160 * 1024
"""The largest request that carries a spec (the engine's environment rides along when it changed): below the
socket's default send buffer (208 KiB) and :data:`.forkserver.MAX_MESSAGE`. Above it, :class:`RequestTooLarge`."""
# Dispositions a new interpreter must not inherit from the engine (e.g. SIGHUP ignored under nohup, SIGCHLD ignored
# by a parent: its children would be reaped by the kernel, and a shim could never wait for its op).
_DEFAULT_SIGNALS: Final = (signal.SIGPIPE, signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGCHLD)


def spawn_mode() -> str:
    """The mode ``POLYNB_LOCAL_SPAWN`` asks for (``fork`` when unset)."""
    mode = os.environ.get(SPAWN_MODE_ENV, "").strip().lower() or "fork"
    if mode not in SPAWN_MODES:
        raise ValueError(f"{SPAWN_MODE_ENV}={os.environ[SPAWN_MODE_ENV]!r}: expected 'fork' or 'spawn'")
    return mode


def fork_unavailable() -> str | None:
    """Why a fork server cannot work on this platform, or None."""
    for what, present in (
        ("os.fork", hasattr(os, "fork")),
        ("os.pidfd_open", hasattr(os, "pidfd_open")),
        ("AF_UNIX SOCK_SEQPACKET sockets", hasattr(socket, "AF_UNIX") and hasattr(socket, "SOCK_SEQPACKET")),
        ("SCM_RIGHTS", hasattr(socket, "SCM_RIGHTS")),
    ):
        if not present:
            return f"this platform has no {what}"
    return None


class StartedShim(NamedTuple):
    """A shim just started: its pid and the read end of its stdout; a pidfd and its start time if it was forked."""

    pid: int
    pipe_fd: int
    pidfd: int | None = None
    start_time: int | None = None


def spawn_shim(python: str, spec_path: Path, shim_log: Path, lock_fd: int) -> StartedShim:
    """Start a shim as a new interpreter, a child of ours (no pidfd: it is ours to wait for)."""
    read_fd, write_fd = os.pipe()
    try:
        pid = os.posix_spawn(
            python,
            # -I -S: no site-packages or user paths; the shim needs the standard library only, and
            # a bare interpreter starts several milliseconds sooner.
            [python, "-I", "-S", "-c", local_shim.LAUNCHER, PACKAGE_ROOT, str(spec_path)],
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, write_fd, 1),
                (os.POSIX_SPAWN_OPEN, 2, str(shim_log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
                (os.POSIX_SPAWN_DUP2, lock_fd, LOCK_FD),
            ],
            setsid=True,
            # Blocked until the shim has its handlers: a stop sent at once is delayed, not fatal.
            setsigmask=forkserver.BLOCKED_AT_START,
            setsigdef=_DEFAULT_SIGNALS,
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    return StartedShim(pid, read_fd)


class RequestTooLarge(Exception):
    """A spec too large to send with this request (nothing was sent): send the path of a file holding it."""


class ForkServerError(Exception):
    """The fork server cannot be used (and the request that found out started no shim)."""


class ForkServer:
    """The engine's end of one fork server; thread-safe (one request at a time)."""

    def __init__(self, python: str) -> None:
        self.python = python
        self.pid: int | None = None
        self._pidfd: int | None = None  # the server's: a kill never reaches another process
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._failed: str | None = None  # why it cannot be used any more
        self._environ: dict[str, str] = {}  # what the server has, so it is sent only when it changed
        self._cwd: str | None = None
        self._settings: forkserver.Settings | None = None
        self._ready = False  # its "ready" message read (a prestarted server's is read by the first request)

    def prestart(self) -> None:
        """Start the server without waiting for it: a run was just placed, so a submit follows, and the server's
        start-up then overlaps with the run's compile and claim instead of delaying the first shim. A server that
        cannot start is reported by that submit, as without this."""
        if self._sock is not None or self._failed is not None:  # (read without the lock: checked again under it)
            return
        with self._lock:
            if self._sock is None and self._failed is None:
                with contextlib.suppress(ForkServerError):
                    self._launch()

    def spawn(self, spec: bytes | Path, shim_log: Path, lock_fd: int, umask: int | None) -> StartedShim:
        """Fork a shim: its pid and the read end of its stdout, as :func:`spawn_shim` returns, but not our child,
        so with a pidfd and its start time (from the server, which opened it before it could reap the shim).

        ``spec``: the shim's spec (``marshal``, at most :data:`INLINE_SPEC_MAX` bytes), sent with the request, or
        the path of a file holding it. ``umask``: this process's, as :func:`read_umask` read it for this submit.

        Raises :class:`ForkServerError` when the server is unusable and no shim was started, OSError when
        the server could not start this one (as ``posix_spawn`` would), :class:`RequestTooLarge` (nothing sent)
        when ``spec`` and the environment sent along are too large for one message.
        """
        read_fd, write_fd = os.pipe()
        try:
            with self._lock:
                sock = self._started()
                environ = dict(os.environ)
                cwd = _cwd()
                settings = process_settings(umask)
                spec_arg = spec if isinstance(spec, bytes) else str(spec)
                request = ("spawn", spec_arg, str(shim_log), _changed(environ, self._environ),
                           _changed(cwd, self._cwd), _changed(settings, self._settings))  # fmt: skip
                data = marshal.dumps(request)
                if isinstance(spec, bytes) and len(data) > MAX_INLINE_REQUEST:
                    raise RequestTooLarge(f"{len(data)} bytes")
                try:
                    sock.sendmsg(
                        [data],
                        [(socket.SOL_SOCKET, socket.SCM_RIGHTS, forkserver.encode_fds([write_fd, lock_fd]))],
                    )
                except OSError as exc:  # nothing was sent
                    raise ForkServerError(self._lost(f"the fork server cannot be reached ({exc})", kill=True)) from None
                os.close(write_fd)
                write_fd = -1
                try:
                    reply, fds = self._receive(sock)
                except ForkServerError as exc:
                    if _a_shim_may_run(read_fd, shim_log.parent):
                        run_dir = shim_log.parent.parent
                        raise RuntimeError(f"{exc} while forking the shim of {run_dir}, which may run") from None
                    raise
                if reply[0] == "unfit":  # it cannot start a shim as spawning would: spawn them from now on
                    raise ForkServerError(self._lost(f"the fork server {reply[1]}", kill=True))
                # On an error, what the server took of them is unknown: send them all again next time.
                ok = reply[0] == "ok"
                self._environ, self._cwd, self._settings = (environ, cwd, settings) if ok else ({}, None, None)
            if reply[0] != "ok":
                for fd in fds:
                    os.close(fd)
                raise OSError(reply[1] or None, f"fork server: {reply[2]}")
            start_time = reply[2] if isinstance(reply[2], int) else None
            return StartedShim(int(reply[1]), read_fd, fds[0] if fds else None, start_time)
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            if write_fd >= 0:
                os.close(write_fd)

    def exit_code(self, pid: int) -> int | None:
        """How a shim this server forked ended (it is the parent), None if it cannot tell any more."""
        with self._lock:
            if self._sock is None or not self._ready:
                return None
            try:
                self._sock.sendall(marshal.dumps(("exit", pid)))
                reply, _ = self._receive(self._sock)
            except (OSError, ForkServerError):
                return None
        code = reply[1]
        return code if isinstance(code, int) else None

    def close(self) -> None:
        """Stop the server and reap it; its shims carry on."""
        with self._lock:
            if self._sock is not None:
                self._lost("the fork server is shut down", kill=True)
            self._failed = self._failed or "the fork server is shut down"

    # -- under self._lock ----------------------------------------------------------------------------

    def _started(self) -> socket.socket:
        if self._sock is None:
            if self._failed is not None:
                raise ForkServerError(self._failed)
            self._launch()
        assert self._sock is not None
        if not self._ready:
            hello, _ = self._receive(self._sock, starting=True)
            if hello[0] != "ready":
                raise ForkServerError(self._lost(f"the fork server said {hello!r} at start-up"))
            self._ready = True
        return self._sock

    def _launch(self) -> None:
        """Spawn the server (its "ready" message is read by :meth:`_started`)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.pid = os.posix_spawn(
                self.python,
                [self.python, "-I", "-S", "-c", forkserver.LAUNCHER, PACKAGE_ROOT],
                os.environ,
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                    *_stderr_action(),
                    (os.POSIX_SPAWN_DUP2, theirs.fileno(), forkserver.SERVER_FD),
                ],
                setsid=True,  # a Ctrl-C meant for the engine does not reach it; it ends at EOF instead
                setsigmask=(),  # whatever the submitting thread blocks: SIGCHLD must reach it
                setsigdef=_DEFAULT_SIGNALS,
            )
        except OSError as exc:
            ours.close()
            self._failed = f"the fork server cannot start: {exc}"
            raise ForkServerError(self._failed) from None
        finally:
            theirs.close()
        self._pidfd = os.pidfd_open(self.pid)  # our child, not reaped yet: surely the server
        self._sock = ours
        self._environ, self._cwd, self._settings = dict(os.environ), _cwd(), process_settings(read_umask())

    def _receive(self, sock: socket.socket, *, starting: bool = False) -> tuple[tuple[Any, ...], list[int]]:
        """A reply and the fds it carried (a forked shim's pidfd)."""
        fds: list[int] = []
        try:
            data, ancdata, _, _ = sock.recvmsg(MAX_REPLY, socket.CMSG_SPACE(4))
            fds = forkserver.decode_fds(ancdata)
        except OSError as exc:
            data, why = b"", str(exc)
        else:
            why = ""
        if not data:
            if starting:
                raise ForkServerError(self._lost("the fork server could not start", stderr=True))
            raise ForkServerError(self._lost(f"the fork server died{f' ({why})' if why else ''}", stderr=True))
        reply = marshal.loads(data)  # noqa: S302 - from our own server, over a socket pair
        assert isinstance(reply, tuple)
        return reply, fds

    def _lost(self, why: str, *, stderr: bool = False, kill: bool = False) -> str:
        """Close our end, reap the server, and say why it is unusable.

        The server exits at EOF on its socket; ``kill`` (no request in flight, so it is idle) makes sure
        even a stopped one cannot hang the engine.
        """
        assert self._sock is not None
        self._sock.close()
        self._sock = None
        self._ready = False
        if self._pidfd is not None:
            if kill:
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            os.close(self._pidfd)
            self._pidfd = None
        if self.pid is not None:
            with contextlib.suppress(ChildProcessError):  # (unless something else reaped it)
                _, status = os.waitpid(self.pid, 0)
                code = os.waitstatus_to_exitcode(status)
                why = f"{why} ({local_shim.exit_description(code)})"
                if stderr and code > 0:
                    why += "; its error is on the engine's stderr"
            self.pid = None
        self._failed = why
        return why


_LIMITS: Final = tuple(sorted({getattr(resource, name) for name in dir(resource) if name.startswith("RLIMIT_")}))


def process_settings(umask: int | None) -> forkserver.Settings:
    """This process's :data:`.forkserver.Settings` now, with ``umask`` as :func:`read_umask` gave it (~20 µs, as
    much again: a ``getrlimit`` each)."""
    return umask, tuple((which, *resource.getrlimit(which)) for which in _LIMITS)


def read_umask() -> int | None:
    """The file-creation mask, read without changing it: ``os.umask`` reads it only by setting it, and a file
    another of our threads created meanwhile would get the wrong mode."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None  # no /proc (or a kernel before 4.7): the server keeps the mask it started with


def _changed(value: Any, sent: Any) -> Any:
    return None if value == sent else value


def _cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:  # the engine's folder was removed: the server keeps its own
        return None


def _stderr_action() -> list[tuple[Any, ...]]:
    """The server's stderr is the engine's (its tracebacks belong there); /dev/null if the engine has none."""
    try:
        os.fstat(2)
    except OSError:
        return [(os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)]
    return []


def _a_shim_may_run(read_fd: int, internal: Path) -> bool:
    """After the server died mid-request: did it fork the shim first?

    The server is reaped, so only a forked shim can hold the pipe's write end; one that ended already
    wrote its identity into the run's lock file first. Neither: nothing was started, and the run can be spawned
    instead.
    """
    poller = select.poll()
    poller.register(read_fd, select.POLLIN)
    hung_up = any(events & select.POLLHUP for _, events in poller.poll(0))
    if not hung_up:
        return True
    try:
        with open(internal / LOCK_FILE, "rb") as f:
            return parse_identity(f.readline()) is not None
    except OSError:
        return False
