"""The command server: one warm process per signature (:mod:`polynb.cli.served`) that forks a process per command.

Started in the background by a command that ran in-process (``served.start_server``), with that command's
interpreter, flags, import path and environment. It takes a lock (one server per signature), imports what
commands need (:data:`WARM`) and builds the spec models every file uses, then listens on a ``SOCK_SEQPACKET``
socket (mode 0600, in a 0700 folder). It starts no thread, so ``fork`` is safe.

Per connection: the client sends ``("run", signature, argv0, argv, cwd, environ, umask, streams)`` with its
stdin, stdout and stderr (``SCM_RIGHTS``). A signature other than the server's own gets ``("refused", why)``;
otherwise the server forks, replies ``("started", pid)``, and the child becomes the command (see
:func:`_become`). The client then sends ``("signal", n)`` for each signal it gets, which the server passes to the
child; when the child ends, the server sends ``("exit", wait status)`` and closes the connection. A client that
goes away (its end closed: killed, or its terminal gone) takes its command with it: the server kills the child,
as the command would have died with the process that ran it.

It exits when it has had no command for ``POLYNB_COMMAND_SERVER_IDLE`` seconds, when its sources changed (it
cannot serve them; a new server will), or when its socket was removed. Errors of its own go to ``cmd-KEY.log``
beside the socket.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import importlib
import io
import marshal
import os
import resource
import selectors
import signal
import socket
import struct
import sys
import time
from typing import Any, NoReturn

from polynb.cli import served
from polynb.executors.local.forkserver import decode_fds
from polynb.scheduler.ownership import serve_for

WARM = (
    "polynb.cli.app",
    "polynb.cli.run",
    "polynb.cli.check",
    "polynb.cli.runs",
    "polynb.cli.attach",
    "polynb.cli.follow",
    "polynb.cli.progress",
    "polynb.config_file",
    "polynb.scheduler.control",
    "polynb.spec.load",
    "polynb.compiler.check",
    "polynb.compiler.pipeline",
    "polynb.scheduler.engine",
    "polynb.executors.registry",
    "polynb.executors.local.executor",
    "polynb.store",
    "yaml",
    "rich.console",
    "rich.live",
    "rich.table",
    "rich.text",
)
"""Modules commands import on their way (``check``, ``run``, ``ls``, ``logs``...; rich for ``run``'s live view on a
terminal: 0.1 s of imports). The Kubernetes client and Jinja2 are left out: they cost more than most commands,
which do not need them."""
WARM_SPEC = """\
version: 1.1
kind: component
name: warm
inputs: [{name: n, type: int, value: 1}]
run:
  kind: dag
  operations:
    - name: op
      params: {n: {value: "{{ n }}"}}
      component: {inputs: [{name: n, type: int}], run: {kind: job, container: {image: warm, command: ["true"]}}}
"""
"""A file of a common shape, loaded once: what validating it needs beyond the models is made then too."""
CHECK_EVERY = 30.0
"""Seconds between two looks at the sources and the socket while idle."""
BACKLOG = 64
REQUEST_FIELDS = 12
PEERCRED = struct.calcsize("3i")
REQUEST_WAIT = 5.0
"""Seconds a client has to send its request once connected (ours sends it at once)."""


class Server:
    """The accept loop and the children it forked (pid → the client's connection)."""

    def __init__(self, path: str, sig: bytes, listener: socket.socket, idle: float) -> None:
        self.path = path
        self.sig = sig
        self.listener = listener
        self.idle = idle
        self.inode = os.stat(path).st_ino
        self.children: dict[int, socket.socket] = {}
        self.selector = selectors.DefaultSelector()
        self.wake_r, wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(wake_w, False)
        self.wake_w = wake_w
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # wakes the selector through the pipe
        self.stopping = False
        signal.signal(signal.SIGTERM, self.stop)  # ``polynb server stop``: no new command, the running ones end
        self.selector.register(listener, selectors.EVENT_READ, "accept")
        self.selector.register(self.wake_r, selectors.EVENT_READ, "reap")
        self.last_active = time.monotonic()
        self.last_check = self.last_active

    def run(self) -> None:
        while True:
            for event, _ in self.selector.select(timeout=min(self.idle, CHECK_EVERY)):
                what = event.data
                if what == "accept":
                    self.accept()
                elif what == "reap":
                    self.reap()
                else:
                    self.client_message(what)
            if self.stopping:
                self.close_listener()
                if not self.children:
                    return
            now = time.monotonic()
            if self.children:
                self.last_active = now
            elif now - self.last_active >= self.idle or (now - self.last_check >= CHECK_EVERY and self.stale()):
                return
            if now - self.last_check >= CHECK_EVERY:
                self.last_check = now

    def stop(self, signum: int, frame: object) -> None:
        self.stopping = True  # acted on by the loop, woken through the pipe

    def close_listener(self) -> None:
        """Accept no more commands: new clients find no socket and run their commands in-process."""
        if self.listener.fileno() < 0:
            return
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(self.listener)
        self.listener.close()
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self.inode:
                os.unlink(self.path)

    def stale(self) -> bool:
        """Sources or import path changed (clients now have another signature), or the socket is not ours any more."""
        try:
            if os.stat(self.path).st_ino != self.inode:
                return True
        except OSError:
            return True
        return served.signature() != self.sig

    def accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        self.last_active = time.monotonic()
        fds: list[int] = []
        try:
            # The folder is 0700, so only this user can connect; checked again (a socket passed on, a bind mount).
            conn.settimeout(REQUEST_WAIT)  # a client that connects and says nothing must not hold the others
            peer = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, PEERCRED)
            pid, uid, _ = struct.unpack("3i", peer)
            if uid != os.getuid():
                raise PermissionError(f"a client of another user (uid {uid}, pid {pid})")
            data, ancdata, flags, _ = conn.recvmsg(served.MAX_MESSAGE, socket.CMSG_SPACE(4 * served.MAX_FDS))
            fds = decode_fds(ancdata)
            request = marshal.loads(data) if data else None  # noqa: S302 - our own client, 0600 socket in a 0700 folder
            why = _refusal(request, fds, flags, self.sig)
            if why is not None:
                with contextlib.suppress(OSError):
                    conn.send(marshal.dumps(("refused", why)))
                conn.close()
                return
            assert request is not None  # _refusal said so
            conn.settimeout(None)
            pid = self.fork(request, fds, conn)
        except (OSError, ValueError, EOFError, TypeError, struct.error) as exc:
            _log(f"request refused: {exc!r}")
            conn.close()
            return
        finally:
            for fd in fds:
                os.close(fd)
        try:
            conn.send(marshal.dumps(("started", pid)))
        except OSError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # the client is already gone
        self.children[pid] = conn
        self.selector.register(conn, selectors.EVENT_READ, conn)

    def fork(self, request: tuple[Any, ...], fds: list[int], conn: socket.socket) -> int:
        # SIGCHLD blocked across the fork: the child must not run our handler before it has reset it.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        try:
            pid = os.fork()
            if pid == 0:
                try:
                    self.close_in_child(conn)
                    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
                    _become(request, fds)
                except BaseException:  # whatever happens, this process must not return into the loop
                    _report_in_child()
                finally:
                    os._exit(70)  # EX_SOFTWARE: reached only if the command did not end the process itself
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        return pid

    def close_in_child(self, conn: socket.socket) -> None:
        signal.set_wakeup_fd(-1)
        for signum in served.FORWARDED:
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self.selector.close()
        for fd in (self.wake_r, self.wake_w):
            os.close(fd)
        self.listener.close()
        conn.close()
        for other in self.children.values():
            other.close()

    def client_message(self, conn: socket.socket) -> None:
        pid = next((p for p, c in self.children.items() if c is conn), None)
        try:
            data = conn.recv(served.MAX_MESSAGE)
        except OSError:
            data = b""
        if pid is None:
            return
        if not data:  # the client is gone: so is its command
            self.selector.unregister(conn)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            return
        try:
            message = marshal.loads(data)  # noqa: S302 - see accept
        except (ValueError, EOFError, TypeError):
            return
        if isinstance(message, tuple) and len(message) == 2 and message[0] == "signal" and isinstance(message[1], int):
            with contextlib.suppress(ProcessLookupError, ValueError, OSError):
                os.kill(pid, message[1])  # still our unreaped child: its pid cannot have been reused

    def reap(self) -> None:
        with contextlib.suppress(OSError):
            while os.read(self.wake_r, 512):
                pass
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.children.pop(pid, None)
            if conn is not None:
                with contextlib.suppress(KeyError, ValueError):
                    self.selector.unregister(conn)
                with contextlib.suppress(OSError):
                    conn.send(marshal.dumps(("exit", status)))
                conn.close()
            self.last_active = time.monotonic()


def _refusal(request: Any, fds: list[int], flags: int, sig: bytes) -> str | None:
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        return "request truncated"
    if not (isinstance(request, tuple) and len(request) == REQUEST_FIELDS and request[0] == "run"):
        return "not a request of this protocol"
    targets = request[9]
    if not (isinstance(targets, list) and len(fds) == len(targets) and targets[:3] == list(served.STDIO)):
        return "stdin, stdout and stderr not passed"
    if request[1] != sig:
        return "another signature (interpreter, import path or sources)"
    why = _settings_refusal(request[11])
    if why is not None:
        return why
    cwd, first = request[4], request[8]
    if served.is_working_folder(first) or first == cwd:
        shadows = sorted(_shadowing(cwd))
        if shadows:  # the command, run in-process, would import these from its folder, not the server's modules
            return f"modules in the working folder shadow imported ones: {', '.join(shadows)}"
    return None


def _settings_refusal(settings: Any) -> str | None:
    """Why the client's limits or niceness cannot be given to a child of this server (an unprivileged process
    can lower its limits and raise its niceness, never the other way)."""
    limits, nice, _ = settings
    for name, _soft, hard in limits:
        _, own_hard = resource.getrlimit(getattr(resource, name))
        if own_hard != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or hard > own_hard):
            return f"the client's {name} hard limit is above the server's"
    if nice < os.getpriority(os.PRIO_PROCESS, 0):
        return "the client runs at a higher priority than the server"
    return None


MODULE_SUFFIXES = (".py", ".pyc", ".so", ".pyd")


def _shadowing(folder: str) -> set[str]:
    """Top-level modules the server has imported that ``folder`` (first on a client's import path) has too."""
    found: set[str] = set()
    try:
        entries = os.scandir(folder)
    except OSError:
        return found
    with entries:
        for entry in entries:
            name = entry.name
            if name.endswith(MODULE_SUFFIXES):
                name = name.partition(".")[0]
            elif not os.path.exists(os.path.join(entry.path, "__init__.py")):
                continue
            if name in _imported_top_level():
                found.add(name)
    return found


def _imported_top_level() -> frozenset[str]:
    if not _TOP_LEVEL:
        _TOP_LEVEL.append(frozenset(name.partition(".")[0] for name in sys.modules))
    return _TOP_LEVEL[0]


_TOP_LEVEL: list[frozenset[str]] = []


def _become(request: tuple[Any, ...], fds: list[int]) -> NoReturn:
    """In the forked child: take the client's streams, folder, umask and environment, then run the command."""
    _, _, argv0, argv, cwd, environ, umask, streams, first, targets, client, (limits, nice, cpus) = request
    os.setpgid(0, 0)  # a group of its own, like a job a shell starts: a signal to the server's group misses it
    for name, soft, hard in limits:
        resource.setrlimit(getattr(resource, name), (soft, hard))
    os.setpriority(os.PRIO_PROCESS, 0, nice)
    if cpus:
        with contextlib.suppress(OSError):  # a CPU gone offline meanwhile: the command still runs
            os.sched_setaffinity(0, cpus)
    _take_fds(fds, targets)
    serve_for(client)
    os.chdir(cwd)
    os.umask(umask)
    os.environ.clear()
    os.environ.update(environ)
    time.tzset()
    sys.argv = [argv0, *argv]
    if sys.path:
        sys.path[0] = first  # the client's working folder (``python -m``), for what the command imports from now on
    sys.stdin = _stream(0, "r", streams[0])
    sys.stdout = _stream(1, "w", streams[1])
    sys.stderr = _stream(2, "w", streams[2])
    # What ``shutil.get_terminal_size`` and faulthandler read: the process's original streams, which these are.
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr  # type: ignore[misc]
    from polynb.cli import app, exit_now

    try:
        status = app.main(argv)
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    try:
        exit_now(status)
    except SystemExit as exc:  # exit_now's normal exit (a thread still running): wait for threads, then end
        code = exc.code if isinstance(exc.code, int) else 1
        _join_threads()
        os._exit(code)


def _take_fds(fds: list[int], targets: list[int]) -> None:
    """Give the client's descriptors their numbers (``fds[i]`` becomes ``targets[i]``), inheritable as they were,
    and close every other one the server had (its lock among them: a long command must not hold it)."""
    above = max(targets) + 1
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD, above) for fd in fds]  # out of the way of every target
    for fd in fds:
        os.close(fd)
    for fd, target in zip(high, targets, strict=True):
        os.dup2(fd, target)
    keep = set(targets)
    for name in os.listdir("/proc/self/fd"):
        if int(name) not in keep:
            with contextlib.suppress(OSError):  # the listing's own descriptor, closed already
                os.close(int(name))


def _stream(fd: int, mode: str, settings: tuple[str, str, bool, bool]) -> io.TextIOWrapper:
    encoding, errors, line_buffering, write_through = settings
    raw = io.FileIO(fd, mode, closefd=False)
    buffered: io.BufferedReader | io.BufferedWriter = io.BufferedReader(raw) if mode == "r" else io.BufferedWriter(raw)
    return io.TextIOWrapper(
        buffered, encoding=encoding, errors=errors, line_buffering=line_buffering, write_through=write_through
    )


def _join_threads() -> None:
    import threading

    main = threading.main_thread()
    for thread in threading.enumerate():
        if thread is not main and not thread.daemon:
            thread.join()
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
        sys.stderr.flush()


def _report_in_child() -> None:
    with contextlib.suppress(BaseException):
        import traceback

        traceback.print_exc()
        sys.stderr.flush()


def _log(message: str) -> None:
    with contextlib.suppress(OSError):
        sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} polynb command server {os.getpid()}: {message}\n")
        sys.stderr.flush()


def warm() -> None:
    """Import what commands need, build every spec model and module-level type adapter of polynb (pydantic
    builds them on first use: the first ``Operation`` of a command cost it ~50 ms), build the argparse parser,
    then freeze what exists: the garbage collector never walks it again, so no child copies its pages for it."""
    for name in WARM:
        importlib.import_module(name)
    from pydantic import TypeAdapter

    from polynb.cli import app
    from polynb.spec.base import build_everything
    from polynb.spec.load import load_text

    build_everything()
    for name, module in list(sys.modules.items()):
        if name.startswith("polynb.") and module is not None:
            for value in list(vars(module).values()):
                if isinstance(value, TypeAdapter):
                    value.rebuild(raise_errors=False)
    load_text(WARM_SPEC, "<warm>")
    app.prebuild()
    gc.collect()
    gc.freeze()


def main(path: str) -> NoReturn:
    """The server's whole life; ``path`` is the socket its starter computed from its own signature."""
    folder = os.path.dirname(path)
    log_path = path[: -len(".sock")] + ".log"
    code = 0
    try:
        os.umask(0o077)
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115 - the process's own stream
        sig = served.signature()
        if not served.private_dir(folder) or served.socket_path(folder, sig) != path:
            os._exit(0)  # started by a client this interpreter does not match (flags we cannot reproduce)
        lock_fd = os.open(path[: -len(".sock")] + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os._exit(0)  # another server of this signature runs
        os.ftruncate(lock_fd, 0)
        os.write(lock_fd, f"{os.getpid()}\n".encode())  # who serves this signature, for whoever needs to stop it
        warm()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # a server before us died without removing it (we hold the lock)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        listener.bind(path)
        listener.listen(BACKLOG)
        server = Server(path, sig, listener, served.idle_seconds(os.environ))
        try:
            server.run()
        finally:
            with contextlib.suppress(OSError):
                if os.stat(path).st_ino == server.inode:
                    os.unlink(path)
        # A clean end leaves nothing behind (a server that failed keeps its log, for whoever looks into it).
        for leftover in (log_path, path[: -len(".sock")] + ".lock"):
            with contextlib.suppress(OSError):
                os.unlink(leftover)
    except BaseException as exc:  # log it; the clients run their commands in-process meanwhile
        _log(f"failed: {exc!r}")
        code = 1
    os._exit(code)
