"""The fork server: one process per local executor that forks a shim per run instead of starting an interpreter.

Started by the executor (:mod:`.launch`) as ``python -I -S -c "<LAUNCHER>" <package root>`` in a session of
its own, with one end of a ``SOCK_SEQPACKET`` socket pair on fd 3. It imports the shim once; each request
then costs a ``fork()`` (about a millisecond) where a new interpreter costs ten or more. A forked child is
exactly what ``launch.spawn_shim`` would have started: its own session, ``/dev/null`` on 0, the
engine's pipe on 1, ``shim.log`` on 2 (made only when the shim first writes to ``sys.stderr``, see
:class:`.shim.LazyStderr`; ``/dev/null`` until then), the run's lock on 3 (sent with the pipe, ``SCM_RIGHTS``),
SIGTERM and SIGINT blocked until the shim has its handlers, the engine's environment and folder.

The fork is made ahead of the request: once it has replied and no request waits, the server forks a *spare*
(its own session, ``/dev/null`` on 0, its pidfd opened and start time read by the server), which waits on a
``SOCK_SEQPACKET`` pair of its own. A request is then passed to the spare as it came, with its fds (and an
earlier attempt's ``shim.log``), and the reply follows at once: the fork, the pidfd and the start time are off
the way from the request to the shim's start. The spare holds nothing of a run until then (no pipe, no lock,
not the engine's socket), and it exits at EOF on its socket, so it never outlives the server. Under a burst
(a request already waiting) and when the spare is gone, a request forks its shim itself, as a spare would.

Requests and replies are ``marshal``-ed tuples, one per message:

- ``("spawn", spec, shim log, environ or None, cwd or None, settings or None)`` with the pipe's write end and
  the lock → ``("ok", pid, start time)`` with a pidfd of the shim (opened before the server could reap it, so
  surely the shim's: the engine signals through it), ``("error", errno, message)``, or ``("unfit", message)``
  when the server cannot take the engine's settings (the engine then spawns its shims). ``spec`` is the shim's
  spec (``marshal`` bytes; no file to create and read back per run) or, when it is too large for one message,
  the path of ``spec.bin``. ``environ``/``cwd``/``settings`` are sent when they changed; ``settings`` is
  ``(umask or None, ((resource, soft, hard), ...))``, what a spawned shim would inherit from the engine at its
  spawn and a server took at its start (see :func:`apply_settings`).
- ``("exit", pid)`` → ``("ok", exit code or None)``: how a shim that wrote no final status ended (the
  server is its parent, so only the server can tell).

The server closes its copies of the pipe and the lock before it replies (passed to a spare, they are the
spare's): "lock held" still means "a shim of this run is alive", and EOF on the pipe still means the shim is
gone. Its first message is
``("ready", pid)``. It exits when its peer's end of the socket closes (the engine died); an executor that
shuts down kills it (it is idle then) and reaps it. The shims it forked carry on either way, reparented
like any orphan. Like the shim, it imports only what a bare interpreter has at hand.
"""

from __future__ import annotations

import marshal
import os
import select
import sys

from polynb.executors.local import shim
from polynb.executors.local import spare_folders as spare_folders  # for the shims' end: loaded once, here
from polynb.executors.local.layout import LOCK_FD

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal
    import socket as _socket
    from typing import Any, NoReturn
else:
    import _signal  # the C halves of ``signal`` and ``socket``: the same names, without ``enum``
    import _socket

SERVER_FD = 3
"""Where the server finds its socket; 0-3 all open, so every fd it receives or opens is above the child's."""
MAX_MESSAGE = 1 << 18
"""Above the default socket buffer (208 KiB): a request that fits in the socket fits here."""
FDS_PER_REQUEST = 2
KEPT_EXIT_CODES = 4096
"""Exit codes of reaped shims kept for ``exit`` requests (the engine asks right after the shim's EOF)."""
BLOCKED_AT_START = (_signal.SIGTERM, _signal.SIGINT)
"""Blocked in a new shim until it has its handlers (as ``setsigmask`` does for a spawned one)."""

LAUNCHER = "import sys; sys.path.insert(0, sys.argv[1]); from polynb.executors.local.forkserver import serve; serve()"
"""The ``-c`` program that starts the server (a module import, so its bytecode is cached)."""


def encode_fds(fds: list[int]) -> bytes:
    """The data of an ``SCM_RIGHTS`` message (native ints, without ``array`` or ``struct``)."""
    return b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in fds)


def decode_fds(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    """The file descriptors an ``SCM_RIGHTS`` message carried (now open in this process)."""
    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            usable = len(data) - len(data) % 4
            fds += [int.from_bytes(data[i : i + 4], sys.byteorder, signed=True) for i in range(0, usable, 4)]
    return fds


class Spare:
    """A child forked ahead of its request (:meth:`Server.prefork`): the next shim, waiting on a socket of its own."""

    __slots__ = ("pid", "pidfd", "sock", "start_time")

    def __init__(self, pid: int, pidfd: int | None, start_time: int | None, sock: _socket.socket) -> None:
        self.pid = pid
        self.pidfd = pidfd
        self.start_time = start_time
        self.sock = sock  # the server's end

    def close(self) -> None:
        """The server's part: a spare that was not handed a request sees EOF and exits."""
        self.sock.close()
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


class Server:
    """The request loop; the parent of every shim it forks (it reaps them and keeps their exit codes)."""

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self.codes: dict[int, int] = {}
        self.max_fd = os.sysconf("SC_OPEN_MAX")
        self.buffer = bytearray(MAX_MESSAGE)  # one buffer for every request (no 256 KiB allocation each)
        self.pidfd: int | None = None  # of the shim just forked, sent with the reply
        self.spare: Spare | None = None

    def reap(self, signum: int = 0, frame: object = None) -> None:
        """SIGCHLD: reap every shim that ended (runs between two bytecodes of the loop)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.codes[pid] = os.waitstatus_to_exitcode(status)
            if len(self.codes) > KEPT_EXIT_CODES:
                del self.codes[next(iter(self.codes))]

    def run(self) -> None:
        _signal.signal(_signal.SIGCHLD, self.reap)
        self.send(("ready", os.getpid()))
        space = _socket.CMSG_SPACE(4 * FDS_PER_REQUEST)
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        while True:
            if self.spare is None and not poller.poll(0):
                # Idle (no request waiting; under a burst each request forks its own): the next request finds its
                # shim forked already.
                self.prefork()
            try:
                size, ancdata, flags, _ = self.sock.recvmsg_into([self.buffer], space)
            except OSError:  # ECONNRESET: the engine is gone
                return
            fds = decode_fds(ancdata)
            try:
                if not size:
                    return  # EOF: the executor shut down or the engine died
                if flags & (_socket.MSG_TRUNC | _socket.MSG_CTRUNC):
                    reply: tuple[Any, ...] = ("error", 0, "request truncated")
                else:
                    # From our engine, over a socket pair.
                    request = marshal.loads(memoryview(self.buffer)[:size])  # noqa: S302
                    reply = self.handle(request, fds, size)
            finally:
                for fd in fds:
                    os.close(fd)  # before the reply: the lock and the pipe are the shim's alone now
            pidfd, self.pidfd = self.pidfd, None
            try:
                self.send(reply, pidfd)
            except OSError:  # EPIPE: the engine died while we worked
                return
            finally:
                if pidfd is not None:
                    os.close(pidfd)

    def send(self, reply: tuple[Any, ...], pidfd: int | None = None) -> None:
        if pidfd is None:
            self.sock.sendall(marshal.dumps(reply))
        else:
            rights = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, encode_fds([pidfd]))]
            self.sock.sendmsg([marshal.dumps(reply)], rights)

    def handle(self, request: tuple[Any, ...], fds: list[int], size: int) -> tuple[Any, ...]:
        if request[0] == "spawn" and len(fds) == FDS_PER_REQUEST:
            _, spec, shim_log, environ, cwd, settings = request
            try:
                # Here first, whether a spare takes the request or not: the children forked later inherit them,
                # and what the spare would fail on fails here, before any reply.
                if environ is not None:
                    os.environ.clear()
                    os.environ.update(environ)
                if cwd is not None:
                    os.chdir(cwd)
                if settings is not None:
                    try:
                        apply_settings(settings)
                    except (OSError, ValueError) as exc:  # a limit above our hard one: spawning is faithful
                        return ("unfit", f"cannot take the engine's resource limits ({exc})")
                handed = self.hand_over(size, shim_log, fds[0], fds[1])
                return ("ok", *(handed or self.spawn(spec, shim_log, fds[0], fds[1])))
            except OSError as exc:
                return ("error", exc.errno or 0, str(exc))
            except ValueError as exc:  # a variable putenv() refuses
                return ("error", 0, str(exc))
        if request[0] == "exit":
            return ("ok", self.exit_code(request[1]))
        return ("error", 0, f"bad request {request[0]!r} with {len(fds)} fds")

    def prefork(self) -> None:
        """Fork the next shim ahead of its request (a spare): the fork, the pidfd and the start time are then off
        the way from a request to its reply. The spare holds nothing of any run until it is handed one, and ends
        when its socket's other end, the server's, closes: it never outlives the server. Nothing if it cannot."""
        try:
            ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
        except OSError:
            return
        try:
            mask = _signal.pthread_sigmask(_signal.SIG_BLOCK, (*BLOCKED_AT_START, _signal.SIGCHLD))
            try:
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    ours.close()
                    self.wait_as_spare(theirs)
                self.codes.pop(pid, None)
                try:
                    pidfd: int | None = os.pidfd_open(pid)
                except OSError:
                    pidfd = None
                start_time = shim.proc_start_time(pid)
            finally:
                _signal.pthread_sigmask(_signal.SIG_SETMASK, mask)
        except OSError:  # (fork: EAGAIN, ENOMEM) requests fork their shims themselves
            ours.close()
            return
        finally:
            theirs.close()
        self.spare = Spare(pid, pidfd, start_time, ours)

    def hand_over(self, size: int, shim_log: str, pipe_w: int, lock_fd: int) -> tuple[int, int | None] | None:
        """Send the request in ``self.buffer`` and its fds to the spare: its pid and start time (its pidfd in
        ``self.pidfd``), or None when there is no spare or it is gone (the request was not sent)."""
        spare, self.spare = self.spare, None
        if spare is None:
            return None
        try:
            if spare.pid in self.codes:  # reaped: it died waiting
                return None
            log_fd = _open_log(shim_log)
            fds = [pipe_w, lock_fd] if log_fd is None else [pipe_w, lock_fd, log_fd]
            try:
                rights = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, encode_fds(fds))]
                spare.sock.sendmsg([memoryview(self.buffer)[:size]], rights)
            except OSError:  # EPIPE, ECONNREFUSED: it died waiting (nothing was sent)
                return None
            finally:
                if log_fd is not None:
                    os.close(log_fd)
            self.pidfd, spare.pidfd = spare.pidfd, None
            return spare.pid, spare.start_time
        finally:
            spare.close()

    def wait_as_spare(self, sock: _socket.socket) -> NoReturn:
        """A spare's life: the state ``child`` gives a shim, but for the run's fds, then its request, then the shim."""
        try:
            _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
            os.setsid()
            keep = sock.fileno()
            os.closerange(SERVER_FD + 1, keep)  # the other spare's socket, if any: nothing but our own
            os.closerange(keep + 1, self.max_fd)
            # Opened after those closes, which would else take it with them when it lands below our socket (its
            # number would then go to a fd of the request, the engine's pipe, and fd 2 become that pipe).
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, 0)
            os.dup2(null, SERVER_FD)  # the engine's socket is the server's alone (its EOF must reach the server)
            _signal.pthread_sigmask(_signal.SIG_SETMASK, BLOCKED_AT_START)
            start_time = shim.proc_start_time(os.getpid())  # for the shim's identity, read while idle
            space = _socket.CMSG_SPACE(4 * (FDS_PER_REQUEST + 1))
            size, ancdata, flags, _ = sock.recvmsg_into([self.buffer], space)
            fds = decode_fds(ancdata)
            if not size:
                os._exit(0)  # EOF: the server is gone (or dropped us), and we hold nothing
            if flags & (_socket.MSG_TRUNC | _socket.MSG_CTRUNC) or len(fds) < FDS_PER_REQUEST:
                raise RuntimeError("a spare shim's request was truncated")
            _, spec, shim_log, environ, cwd, settings = marshal.loads(memoryview(self.buffer)[:size])  # noqa: S302
            if environ is not None:  # (the server took them already: forked before, we have the old ones)
                os.environ.clear()
                os.environ.update(environ)
            if cwd is not None:
                os.chdir(cwd)
            if settings is not None:
                apply_settings(settings)
            pipe_w, lock_fd, *log = fds
            os.dup2(pipe_w, 1)
            if log:
                os.dup2(log[0], 2)
            else:
                os.dup2(null, 2)
                sys.stderr = shim.LazyStderr(shim_log)
            os.dup2(lock_fd, LOCK_FD)
            shim.main(spec, start_time)  # never returns: it ends the process
        except BaseException:
            _print_exception()
        finally:
            os._exit(1)

    def spawn(self, spec: bytes | str, shim_log: str, pipe_w: int, lock_fd: int) -> tuple[int, int | None]:
        """Fork a shim: its pid and start time (its pidfd in ``self.pidfd``, for the reply)."""
        log_fd = _open_log(shim_log)
        try:
            # SIGCHLD too: a child that ends at once is reaped after its pid's stale exit code is dropped, and
            # not before its pidfd is open and its start time read (the pid is surely the shim's until then).
            mask = _signal.pthread_sigmask(_signal.SIG_BLOCK, (*BLOCKED_AT_START, _signal.SIGCHLD))
            try:
                sys.stderr.flush()  # nothing buffered may be written twice
                pid = os.fork()
                if pid == 0:
                    self.child(spec, pipe_w, log_fd, shim_log, lock_fd)
                self.codes.pop(pid, None)  # a reused pid: the old code is someone else's
                try:
                    self.pidfd = os.pidfd_open(pid)
                except OSError:  # (out of fds) the shim runs all the same: the engine opens one itself
                    self.pidfd = None
                start_time = shim.proc_start_time(pid)
            finally:
                _signal.pthread_sigmask(_signal.SIG_SETMASK, mask)
        finally:
            if log_fd is not None:
                os.close(log_fd)
        return pid, start_time

    def child(self, spec: bytes | str, pipe_w: int, log_fd: int | None, shim_log: str, lock_fd: int) -> NoReturn:
        """Become the shim: the state ``launch.spawn_shim`` gives one, then ``shim.main``."""
        try:
            _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)  # the shim waits for its own children
            os.setsid()
            null = os.open(os.devnull, os.O_RDWR)
            # Every source fd is above 3 (0-3 are open in the server), so no dup2 overwrites another.
            os.dup2(null, 0)
            os.dup2(pipe_w, 1)
            if log_fd is None:
                os.dup2(null, 2)
                sys.stderr = shim.LazyStderr(shim_log)
            else:
                os.dup2(log_fd, 2)
            os.dup2(lock_fd, LOCK_FD)
            _signal.pthread_sigmask(_signal.SIG_SETMASK, BLOCKED_AT_START)
            shim.main(spec)  # never returns: it ends the process
        except BaseException:
            _print_exception()
        finally:
            os._exit(1)

    def exit_code(self, pid: int) -> int | None:
        """The exit code of a shim this server forked; waits for it if it is still exiting.

        Asked once the shim's pipe is at EOF: it has closed its files, so it exits, if it has not yet.
        """
        if pid not in self.codes:
            try:
                _, status = os.waitpid(pid, 0)
            except ChildProcessError:  # reaped meanwhile by ``reap``, or not ours
                pass
            else:
                self.codes[pid] = os.waitstatus_to_exitcode(status)
        return self.codes.get(pid)


Settings = tuple[int | None, tuple[tuple[int, int, int], ...]]
"""What a child inherits of the process-wide state a server took at its start: the file-creation mask (None where
``/proc`` cannot tell it) and every resource limit as ``(resource, soft, hard)`` (``launch.process_settings``). Not
the niceness: Linux keeps it per thread, and a spawned shim has its submitting thread's."""


def apply_settings(settings: Settings) -> None:
    """Take the engine's file-creation mask and resource limits, as they are now: a notebook may set them between
    two runs (``os.umask``, ``resource.setrlimit``), and a shim spawned then would have inherited them. A limit
    is set only where it differs (``resource`` imported only then)."""
    umask, limits = settings
    if umask is not None:
        os.umask(umask)
    if limits:
        import resource

        for which, soft, hard in limits:
            if resource.getrlimit(which) != (soft, hard):
                resource.setrlimit(which, (soft, hard))


def _open_log(shim_log: str) -> int | None:
    """An earlier attempt's ``shim.log``, None if there is none (not made here: most shims never write to it; see
    :class:`.shim.LazyStderr`)."""
    try:
        return os.open(shim_log, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    except FileNotFoundError:
        return None


def _print_exception() -> None:
    try:
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
    except BaseException:  # noqa: S110 - nothing is left to report it to
        pass


def serve() -> NoReturn:
    """The server process's whole life (see the module docstring); its stderr is the engine's."""
    code = 0
    try:
        Server(_socket.socket(fileno=SERVER_FD)).run()
    except BaseException:
        _print_exception()
        code = 1
    finally:
        os._exit(code)
