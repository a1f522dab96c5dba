"""The client of the command server: run a ``polynb`` command in a warm process, or say it cannot be served.

A ``polynb`` command spends most of its time importing (pydantic and the spec models, the engine, YAML) before
it does anything. The command server (:mod:`polynb.cli.command_server`) has done those imports once and forks a
process per command, which becomes that command: the client's arguments, working folder, environment and
umask, its stdin, stdout and stderr (passed as file descriptors), signals forwarded by the client, its exit
status returned to it. A command that cannot be served (no server yet, another interpreter, sources edited
since the server started, ``POLYNB_COMMAND_SERVER=0``) runs in the client's own process, as before; the first
such command starts a server for the next ones, once it has finished.

A server serves only clients that share its *signature*: the interpreter, its flags and warning options, its
import path (and the times its site-packages folders changed, which an install or uninstall touches), the
``PYTHON*`` and locale variables, the user and groups, and every ``polynb`` source file's size and time. Edit a
source file or install a package and the next command starts a new server; the old one exits within half a
minute. The limits (``ulimit``), niceness and CPUs (``taskset``) of the client are the served command's too.

This module runs before the command's imports, so it imports only what the interpreter has loaded at start
(``os``, ``sys``, ``marshal``, ``stat``) and the C halves of ``socket`` and ``signal``.
"""

from __future__ import annotations

import marshal
import os
import stat
import sys
import zlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal
    import socket as _socket
    from typing import Any
else:
    import _signal  # the C halves: ``socket`` and ``signal`` would import ``enum`` and more
    import _socket

SWITCH = "POLYNB_COMMAND_SERVER"
"""``0`` (or ``off``/``false``/``no``): every command runs in its own process and no server is started."""
FOLDER = "POLYNB_COMMAND_SERVER_DIR"
"""Where servers keep their sockets, instead of :func:`runtime_dir`'s default."""
IDLE = "POLYNB_COMMAND_SERVER_IDLE"
"""Seconds a server with nothing to do waits for a command before it exits (default :data:`DEFAULT_IDLE`)."""
DEFAULT_IDLE = 900.0
PROTOCOL = 1
"""Bumped when the messages change: a client and a server of two versions never talk (it is in the signature)."""
MAX_MESSAGE = 1 << 20
"""Above any environment a shell passes (Linux's own limit for argv + environ is 2 MiB, but typical is < 64 KiB)."""
STDIO = (0, 1, 2)
MAX_FDS = 250
"""Open file descriptors a served command can be given (the kernel passes at most 253 in one message)."""
FORWARDED = (
    _signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT, _signal.SIGUSR1, _signal.SIGUSR2,
    _signal.SIGWINCH,
)  # fmt: skip
"""What a user or a supervisor sends ``polynb``: passed on to the process that runs the command."""
SKIPPED_FOLDERS = frozenset({"__pycache__", "labextension", "node_modules"})


def enabled(environ: dict[str, str] | os._Environ[str]) -> bool:
    return environ.get(SWITCH, "1").strip().lower() not in ("0", "off", "false", "no")


def idle_seconds(environ: dict[str, str] | os._Environ[str]) -> float:
    try:
        return max(1.0, float(environ.get(IDLE, DEFAULT_IDLE)))
    except ValueError:
        return DEFAULT_IDLE


def runtime_dir() -> str:
    """Where servers keep their sockets: ``$POLYNB_COMMAND_SERVER_DIR``, else ``$XDG_RUNTIME_DIR/polynb`` (a
    user's own tmpfs), else ``/tmp/polynb-UID``."""
    if os.environ.get(FOLDER):
        return os.environ[FOLDER]
    base = os.environ.get("XDG_RUNTIME_DIR", "")
    if base and os.path.isdir(base):
        return os.path.join(base, "polynb")
    return os.path.join(os.environ.get("TMPDIR") or "/tmp", f"polynb-{os.getuid()}")  # noqa: S108 - made 0700, checked


def private_dir(path: str) -> bool:
    """Make ``path`` (mode 0700) or check it is ours and nobody else's: a socket in a folder another user could
    write to could be theirs, and a command's environment and terminal would go to their process."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return False
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and st.st_mode & 0o077 == 0


def package_dir() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _sources(folder: str, out: list[tuple[str, int, int]]) -> None:
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if entry.name not in SKIPPED_FOLDERS:
                    _sources(entry.path, out)
            elif entry.name.endswith(".py"):
                st = entry.stat()
                out.append((entry.path, st.st_mtime_ns, st.st_size))


def signature(package: str | None = None) -> bytes:
    """What a client and its server must share (see the module docstring), as bytes; ``package`` is where
    polynb's sources are (this installation's by default)."""
    paths: list[tuple[str, int]] = []
    for index, entry in enumerate(sys.path):
        if index == 0 and is_working_folder(entry):
            paths.append(("<working folder>", 0))  # ``python -m``/``-c``: any folder (the server checks it)
            continue
        # An install or uninstall changes its site-packages folder's time; any other folder (the working folder
        # ``python -m`` puts first) is kept by name: its time changes with every file made in it.
        if entry.endswith(("site-packages", "dist-packages")):
            try:
                paths.append((entry, os.stat(entry).st_mtime_ns))
            except OSError:
                paths.append((entry, -1))
        else:
            paths.append((entry, 0))
    sources: list[tuple[str, int, int]] = []
    _sources(package or package_dir(), sources)
    variables = sorted(
        (k, v) for k, v in os.environ.items() if k.startswith(("PYTHON", "LC_")) or k in ("LANG", "LANGUAGE")
    )
    xoptions = sorted((str(k), str(v)) for k, v in sys._xoptions.items())
    flags = tuple(int(f) for f in sys.flags)
    ids = (os.getuid(), os.geteuid(), os.getgid(), os.getegid(), sorted(os.getgroups()))  # ``sg``, ``newgrp``
    return marshal.dumps(
        (PROTOCOL, sys.executable, sys.version, flags, sys.warnoptions, xoptions, paths, variables, sorted(sources),
         ids)
    )  # fmt: skip


def is_working_folder(entry: str) -> bool:
    """Whether an import path entry is the folder the command started in (``python -m`` and ``-c`` put it first)."""
    try:
        return entry == "" or entry == os.getcwd()
    except OSError:
        return False


def key(sig: bytes) -> str:
    """A short name for a signature (the server compares the whole signature too)."""
    return f"{zlib.crc32(sig):08x}{zlib.adler32(sig):08x}"


def socket_path(folder: str, sig: bytes) -> str:
    return os.path.join(folder, f"cmd-{key(sig)}.sock")


def encode_fds(fds: list[int] | tuple[int, ...]) -> bytes:
    return b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in fds)


def stream_settings() -> tuple[tuple[str, str, bool, bool], ...]:
    """How this interpreter set up stdin, stdout and stderr (encoding, errors, line buffering, write through),
    so the served process's streams behave the same (a terminal's stdout is line-buffered, a pipe's is not)."""
    settings = []
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        if stream is None:
            settings.append(("utf-8", "strict", False, False))
        else:
            settings.append(
                (
                    str(getattr(stream, "encoding", "utf-8") or "utf-8"),
                    str(getattr(stream, "errors", "strict") or "strict"),
                    bool(getattr(stream, "line_buffering", False)),
                    bool(getattr(stream, "write_through", False)),
                )
            )
    return tuple(settings)


class Unserved(Exception):
    """The command was not started by a server: run it here."""


def run(argv: list[str]) -> int | None:
    """Run ``polynb ARGV`` in this signature's server and return its exit status; ``None`` when no server
    started it (none running, refused, or disabled), and the caller runs it in-process. Once a server has
    started the command, this returns only when the command has ended, whatever the server does."""
    if not enabled(os.environ):
        return None
    try:
        for fd in STDIO:
            os.fstat(fd)  # a closed stdin/stdout/stderr: nothing to pass, the command runs here
        sig = signature()
        folder = runtime_dir()
        if not private_dir(folder):
            return None
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
    except OSError:
        return None
    try:
        try:
            pid = _start(sock, socket_path(folder, sig), sig, argv)
        except (OSError, Unserved):
            return None
        return _wait(sock, pid)
    finally:
        sock.close()


_NO_SERVER: list[bool] = []
"""Set when :func:`run` found no server listening: :func:`start_server` then starts one (not when one refused)."""


def _start(sock: _socket.socket, path: str, sig: bytes, argv: list[str]) -> int:
    try:
        sock.connect(path)
    except OSError:  # no socket, or nobody listening on it (a server killed without removing it)
        _NO_SERVER.append(True)
        raise
    fds = inherited_fds(sock.fileno())
    mask = os.umask(0o077)
    os.umask(mask)
    first = sys.path[0] if sys.path else ""
    request = ("run", sig, sys.argv[0], argv, os.getcwd(), dict(os.environ), mask, stream_settings(), first, fds,
               os.getpid(), process_settings())  # fmt: skip
    sock.sendmsg([marshal.dumps(request)], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, encode_fds(fds))])
    reply = _receive(sock)
    if reply is None or reply[0] != "started":
        raise Unserved(reply[1] if reply else "the server closed the connection")
    return int(reply[1])


RLIMITS = ("RLIMIT_AS", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_DATA", "RLIMIT_FSIZE", "RLIMIT_MEMLOCK",
           "RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_STACK", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO",
           "RLIMIT_SIGPENDING")  # fmt: skip
"""The limits ``ulimit`` sets: a served command runs under its client's."""


def process_settings() -> tuple[list[tuple[str, int, int]], int, list[int]]:
    """What a shell's ``ulimit``, ``nice`` and ``taskset`` gave this process: (limits, niceness, CPUs)."""
    import resource  # a C module: a fraction of a millisecond

    limits = [(name, *resource.getrlimit(getattr(resource, name))) for name in RLIMITS if hasattr(resource, name)]
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = []
    return limits, os.getpriority(os.PRIO_PROCESS, 0), cpus


def inherited_fds(own: int) -> list[int]:
    """stdin, stdout, stderr and every other descriptor this process inherited (a shell's ``3>file``, a parent's
    pipe named in an environment variable): the served command gets each under the same number."""
    fds = list(STDIO)
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return fds
    for name in names:
        fd = int(name)
        if fd in STDIO or fd == own:
            continue
        try:
            if os.get_inheritable(fd):  # what Python opened itself is not (and the listing's own fd is closed)
                fds.append(fd)
        except OSError:
            continue
    if len(fds) > MAX_FDS:
        raise Unserved(f"{len(fds)} open file descriptors")
    return sorted(fds)


def _receive(sock: _socket.socket) -> tuple[Any, ...] | None:
    data = sock.recv(MAX_MESSAGE)
    if not data:
        return None
    message = marshal.loads(data)  # noqa: S302 - from our own server, over a socket in a 0700 folder
    return message if isinstance(message, tuple) and message else None


def _wait(sock: _socket.socket, pid: int) -> int:
    """Forward signals until the server reports how the command's process ended; end as it did."""

    def forward(signum: int, frame: object) -> None:
        try:
            sock.send(marshal.dumps(("signal", signum)))
        except OSError:  # the server is gone: the command's process is ours to signal (same user)
            try:  # noqa: SIM105 - contextlib costs start-up time
                os.kill(pid, signum)
            except OSError:
                pass

    def suspend(signum: int, frame: object) -> None:
        # Ctrl-Z: stop the command's process, then this one (the shell sees the job stop); both go on together.
        forward(_signal.SIGSTOP, frame)
        _signal.signal(_signal.SIGTSTP, _signal.SIG_DFL)
        os.kill(os.getpid(), _signal.SIGTSTP)
        _signal.signal(_signal.SIGTSTP, suspend)  # here once the shell has continued us
        forward(_signal.SIGCONT, frame)

    for signum in FORWARDED:
        _signal.signal(signum, forward)
    _signal.signal(_signal.SIGTSTP, suspend)
    while True:
        try:
            reply = _receive(sock)
        except OSError:
            reply = None
        if reply is None:
            return _outlive(pid)
        if reply[0] == "exit":
            return _status(int(reply[1]))


def _outlive(pid: int) -> int:
    """The server went away before the command ended: wait for the command's process (signals now go to it
    directly), then end with 1, since only its parent could have told how it ended."""
    try:
        pidfd = os.pidfd_open(pid)
    except (OSError, AttributeError):  # already gone (or no pidfds here: then it is not waited for)
        pidfd = None
    if pidfd is not None:
        import select

        try:
            while not select.select([pidfd], [], [])[0]:
                pass
        finally:
            os.close(pidfd)
    sys.stderr.write(f"polynb: the command server went away; how the command (process {pid}) ended is unknown\n")
    return 1


def _status(waitstatus: int) -> int:
    """The exit status to end with; a command killed by a signal kills this process the same way, so a shell or
    a supervisor sees what it would have seen without the server."""
    if os.WIFSIGNALED(waitstatus):
        signum = os.WTERMSIG(waitstatus)
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        try:  # noqa: SIM105 - contextlib costs start-up time
            _signal.signal(signum, _signal.SIG_DFL)
        except (OSError, ValueError):  # SIGKILL and SIGSTOP have no handler to reset
            pass
        os.kill(os.getpid(), signum)
        return 128 + signum  # a signal that does not end a process (SIGCHLD...) cannot have ended the command
    return os.waitstatus_to_exitcode(waitstatus)


def start_server() -> None:
    """Start this signature's server in the background (it exits at once if another one won), with this
    process's interpreter, import path and environment. Called after a command that ran in-process because
    no server listened."""
    if not _NO_SERVER or not enabled(os.environ):
        return
    try:
        sig = signature()
        folder = runtime_dir()
        if not private_dir(folder):
            return
        path = socket_path(folder, sig)
        import subprocess  # only on the path that has no server: a served command never pays for it

        launcher = (
            "import marshal, sys; sys.path[:] = marshal.loads(bytes.fromhex(sys.argv[2]));"
            " from polynb.cli.command_server import main; main(sys.argv[1])"
        )
        paths = list(sys.path)
        if paths and is_working_folder(paths[0]):
            paths[0] = ""  # the server's own folder is "/"; each command gets its client's (see the signature)
        argv = [sys.executable, *_interpreter_options(), "-c", launcher, path, marshal.dumps(paths).hex()]
        with open(os.devnull, "r+b") as null:
            subprocess.Popen(  # our interpreter, our module, arguments only
                argv, stdin=null, stdout=null, stderr=null, start_new_session=True, close_fds=True, cwd="/"
            )
    except OSError:
        pass


def _interpreter_options() -> list[str]:
    """The flags that change how code runs (they are in the signature too): a server must run like its clients."""
    options = [f"-W{w}" for w in sys.warnoptions]
    options += [f"-X{k}" if v is True else f"-X{k}={v}" for k, v in sys._xoptions.items()]
    flags = sys.flags
    options += ["-O"] * flags.optimize + ["-B"] * bool(flags.dont_write_bytecode) + ["-s"] * bool(flags.no_user_site)
    options += ["-E"] * bool(flags.ignore_environment) + ["-I"] * bool(flags.isolated) + ["-S"] * bool(flags.no_site)
    return options
