"""The supervisor of one local run: ``python -I -S -c "<LAUNCHER>" <package root> <run>/.executor/spec.bin``,
or a fork of the executor's fork server (:mod:`.forkserver`) calling :func:`main` in the same state with the
spec it received.

The local executor starts one shim per run, in a session of its own, so a run outlives the engine that
started it (a kernel restart, a SIGKILLed ``polynb run``). The shim makes the run's ``logs/`` and ``outputs/``
folders (the engine makes only ``.executor/``), runs the init entries, starts the sidecars and the main
container, checks a service's port, stops everything that is left, and appends every transition as one JSON
line to ``<run>/status.jsonl``: that file is the source of truth. It writes ``.executor/op.json`` once the
main container has started (or at the end, if it never did). After a line it writes one byte to its stdout, a
pipe the live engine waits on (after ``starting`` only if init entries, sidecars, a sync or a service's port
come before ``running``, which else wakes it for both); when the engine is gone the write fails with EPIPE and the
shim carries on. It holds the run's lock (fd 3, taken by the engine before the spawn) until it exits, and
writes its identity (pid, start time, status offset) as the lock file's first line before its first status
line: a restarted engine can tell a live shim from a dead one even if its engine died a microsecond after the
spawn.

Start-up time is paid by every spawned op (and a fork server's imports by every forked one), so this
module imports only what a bare interpreter has at hand: ``_signal`` rather than ``signal`` (which pulls
in ``enum``), no ``typing``, no ``json`` (lines are encoded by hand, ``outputs.json`` is read by the
engine), no ``subprocess`` (``os.posix_spawn``).
Everything slower (init entries, sockets for services) is imported when a run needs it.
"""

from __future__ import annotations

import io
import marshal
import os
import select
import sys
import time

# The C half of ``json`` (every shim writes status lines): imported here, not at the first line, so a forked
# shim finds it loaded in the fork server instead of loading the extension module itself (about a millisecond).
from _json import encode_basestring_ascii

from polynb.executors.local.layout import (
    INTERNAL_DIR,
    LOCK_FD,
    LOGS_DIR,
    MAIN_LOG,
    OP_FILE,
    SERVICE_PAGE,
    SPARE_MAIN_LOG,
    STATUS_FILE,
    STOP_FILE,
    STORE_SYNC_LOG,
    STORE_SYNCED_FILE,
    identity_line,
    init_log,
    sidecar_log,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal
    from typing import Any, NoReturn
else:
    import _signal  # the C half of ``signal``, same names, without the cost of ``enum``

FINAL = ("succeeded", "failed", "stopped")
LOG_TAIL_LINES = 20
LOG_TAIL_BYTES = 8192
# Dispositions a child must not inherit: Python ignores SIGPIPE and SIGXFSZ, an engine started under nohup ignores
# SIGHUP, one whose parent ignores SIGCHLD ignores it too (a shell's `wait` then finds no child); exec keeps ignored
# signals ignored.
CHILD_DEFAULT_SIGNALS = (
    _signal.SIGCHLD,
    _signal.SIGPIPE,
    _signal.SIGXFSZ,
    _signal.SIGHUP,
    _signal.SIGINT,
    _signal.SIGQUIT,
    _signal.SIGTERM,
    _signal.SIGUSR1,
    _signal.SIGUSR2,
)
SIGNAL_NAMES: dict[int, str] = {
    _signal.SIGHUP: "SIGHUP",
    _signal.SIGINT: "SIGINT",
    _signal.SIGQUIT: "SIGQUIT",
    _signal.SIGABRT: "SIGABRT",
    _signal.SIGKILL: "SIGKILL",
    _signal.SIGSEGV: "SIGSEGV",
    _signal.SIGPIPE: "SIGPIPE",
    _signal.SIGTERM: "SIGTERM",
    _signal.SIGBUS: "SIGBUS",
}


def proc_start_time(pid: int) -> int | None:
    """The start time of ``pid`` (clock ticks since boot, field 22 of /proc/<pid>/stat), None if gone.

    A pid plus its start time names a process for good: it defeats PID reuse.
    """
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)  # no buffered file: 2 syscalls, not 9
    except OSError:
        return None
    try:
        stat = os.read(fd, 4096)  # about 300 bytes: 52 numbers and a name of at most 16
    except OSError:
        return None
    finally:
        os.close(fd)
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(b")") + 2 :].split()
    return int(fields[19])


def encode_json_string(text: str) -> str:
    """A JSON string literal without importing ``json`` (and its ``re``) into every shim."""
    return str(encode_basestring_ascii(text))


def status_line(seq: int, at: float, status: str, reason: str, message: str, url: str | None) -> bytes:
    """One line of ``status.jsonl``."""
    url_json = "null" if url is None else encode_json_string(url)
    return (
        f'{{"seq":{seq},"at":{at!r},"status":"{status}","reason":"{reason}",'
        f'"message":{encode_json_string(message)},"url":{url_json}}}\n'
    ).encode()


def log_tail(path: str, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log file, for failure messages."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - LOG_TAIL_BYTES))
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", "replace").rstrip("\n")
    return "\n".join(text.split("\n")[-lines:])


def exit_description(code: int) -> str:
    if code < 0:
        return f"killed by signal {-code} ({SIGNAL_NAMES.get(-code, 'signal')})"
    return f"exit code {code}"


def which(command: str, path: str | None) -> str:
    """Resolve a command like ``execvp`` would, but against the child's PATH, not the shim's."""
    if "/" in command:
        return command
    for folder in (path or os.defpath).split(os.pathsep):
        candidate = os.path.join(folder or ".", command)
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    raise FileNotFoundError(f"{command}: command not found in PATH")


def yield_cpu() -> None:
    """Give this process's CPU to any other that wants it from now on (for work nothing waits for): the lowest
    niceness, and the lowest weight for its session's scheduling group where the kernel groups sessions (Linux's
    autogroups, on by default: niceness alone then weighs only within the session, and ours is the shim's own)."""
    try:  # noqa: SIM105 - contextlib costs start-up time
        os.setpriority(os.PRIO_PROCESS, 0, 19)
    except OSError:
        pass
    try:
        fd = os.open("/proc/self/autogroup", os.O_WRONLY)
    except OSError:  # no autogroups
        return
    try:
        os.write(fd, b"19")
    except OSError:
        pass
    finally:
        os.close(fd)


def killpg(pgid: int, sig: int) -> None:
    """Signal a process group that may be gone already."""
    try:  # noqa: SIM105 - contextlib costs start-up time
        os.killpg(pgid, sig)
    except OSError:
        pass


class StopRequested(Exception):
    """SIGTERM (or SIGINT) reached the shim: the engine asked the run to stop."""


class RunTimedOut(Exception):
    """The run's ``termination.timeout`` (and the backstop's slack) passed: the engine's own timer stops a run first;
    this holds when no engine runs any more (a service left by ``polynb run``, a kernel that died)."""


class RunFailed(Exception):
    """The run ends as failed with this reason and message."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class Proc:
    """A container process: the leader of its own session and process group."""

    __slots__ = ("code", "log", "name", "pid", "pidfd")

    def __init__(self, name: str, pid: int, log: str) -> None:
        self.name = name
        self.pid = pid
        self.log = log
        self.pidfd = os.pidfd_open(pid)
        self.code: int | None = None


class LazyStderr(io.TextIOBase):
    """A forked shim's ``sys.stderr`` until it first writes: ``.executor/shim.log`` is made then, on fd 2 (a run
    whose shim never writes there, the usual case, has no such file: one file fewer on the way to the start)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def write(self, text: str) -> int:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError:
            pass  # nowhere to write it: fd 2 stays /dev/null
        else:
            os.dup2(fd, 2)
            os.close(fd)
        sys.stderr = sys.__stderr__  # fd 2's own file object, on the log now
        return sys.stderr.write(text) if sys.stderr is not None else len(text)


class Shim:
    """Runs one op from its spec; ``main()`` is the whole life of the process."""

    def __init__(self, spec: dict[str, Any], start_time: int | None = None) -> None:
        """``start_time``: this process's, if known already (a fork server's spare reads it while it waits)."""
        self.spec = spec
        self.run_dir: str = spec["run_dir"]
        self.internal = os.path.join(self.run_dir, INTERNAL_DIR)
        self.logs_dir = os.path.join(self.run_dir, LOGS_DIR)
        # The child's environment: ours, then defaults, then the container's own, then polynb's variables.
        self.env_defaults: dict[str, str] = spec["env_defaults"]
        self.env_overlay: dict[str, str] = spec["env"]
        self.seq = 0
        self.live: list[Proc] = []
        self.store_sync: Proc | None = None  # not in ``live``: it outlives the containers, for the final sync
        self.stopping = False
        self.timeout_at: float | None = spec.get("timeout_at")
        """Wall-clock time (``time.time()``) past which the run is stopped and fails with reason ``Timeout``."""
        self.op_written = False
        self.make_folders()
        self.write_identity(start_time)
        self.status_fd = os.open(os.path.join(self.run_dir, STATUS_FILE), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        os.set_blocking(self.wake_r, False)
        # Signals become bytes on a pipe we poll together with the children's pidfds: no polling loop,
        # and a stop that arrives while we wait is seen at once.
        _signal.set_wakeup_fd(wake_w)
        for sig in (_signal.SIGTERM, _signal.SIGINT):
            _signal.signal(sig, lambda signum, frame: None)
        _signal.signal(_signal.SIGHUP, _signal.SIG_IGN)
        _signal.pthread_sigmask(_signal.SIG_UNBLOCK, (_signal.SIGTERM, _signal.SIGINT))

    def make_folders(self) -> None:
        """The run's ``outputs/``, ``outputs/tensorboard/`` and ``logs/`` (the engine made ``.executor/``): here,
        not in the engine, whose few submitting threads serve every run, and before the op starts (it may write
        there from its first line)."""
        for folder in self.spec["folders"]:
            try:  # noqa: SIM105 - contextlib costs start-up time
                os.mkdir(folder)
            except FileExistsError:
                pass

    def write_op(self) -> None:
        """``.executor/op.json``, once: after the main container started (nothing the op runs reads it; a file
        created costs a fraction of a millisecond on the way to the start), or at the end of a run that never
        got that far."""
        if self.op_written:
            return
        self.op_written = True
        with open(os.path.join(self.internal, OP_FILE), "w", encoding="utf-8") as f:
            f.write(self.spec["op_json"])

    def write_identity(self, start_time: int | None) -> None:
        """Write the shim's identity as the first line of the run's lock file before any status line: a line in the
        status file implies its shim is known.

        One ``write`` of one line, at the start of the file the shim holds (no file to create): a reader (an engine
        re-attaching after a crash) takes it only whole, newline included, and otherwise treats the shim as not
        known yet, which the run's lock covers. The lock is empty here (new, or emptied by the executor before a
        retry); the containers' lines follow it.
        """
        pid = os.getpid()
        start_time = start_time if start_time is not None else proc_start_time(pid)
        os.write(LOCK_FD, identity_line(pid, start_time, self.spec["status_offset"]))

    # -- reporting -----------------------------------------------------------------------------------

    def emit(self, status: str, reason: str, message: str = "", url: str | None = None, *, wake: bool = True) -> None:
        """Append a status line and (``wake``) wake the engine, which reads every line it has not read yet."""
        self.seq += 1
        os.write(self.status_fd, status_line(self.seq, time.time(), status, reason, message, url))
        if wake:
            try:  # noqa: SIM105 - contextlib costs start-up time
                os.write(1, b"\n")  # wake the engine; it reads the line from the file (the page cache)
            except OSError:
                pass  # EPIPE: the engine is gone; the file has it all for the next one
        if status in FINAL:
            # Only the final line is made durable: an earlier line lost in a machine crash changes nothing,
            # since the processes it describes die with the machine too. After the wake-up, so the engine
            # reads the line while the disk writes it (a millisecond or more, on every op's way to the next):
            # durable before this shim exits and frees the run's lock. The engine may act on it that long
            # before; its own commits (synchronous=NORMAL) are not durable at once either.
            os.fdatasync(self.status_fd)

    # -- processes -----------------------------------------------------------------------------------

    def spawn(self, container: dict[str, Any], log_name: str, logs_dir: str | None = None) -> Proc:
        argv: list[str] = list(container["argv"])
        if not argv:
            raise RunFailed("SpawnFailed", f"container {container['name']!r} has no command")
        env = dict(os.environ)
        env.update(self.env_defaults)
        env.update(container["env"])
        env.update(self.env_overlay)
        log = os.path.join(logs_dir or self.logs_dir, log_name)
        if log_name == MAIN_LOG and logs_dir is None and self.spec.get("premade"):
            try:  # noqa: SIM105 - contextlib costs start-up time
                os.rename(os.path.join(self.internal, SPARE_MAIN_LOG), log)  # made ahead: no inode to allocate now
            except OSError:
                pass  # made here, as usual
        cwd: str = container["cwd"]
        try:
            # posix_spawn has no cwd argument; the shim is single-threaded and uses absolute paths only.
            os.chdir(cwd)
        except OSError as exc:
            raise RunFailed("SpawnFailed", f"working directory {cwd}: {exc.strerror}") from None
        log_fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            pid = os.posix_spawn(
                which(argv[0], env.get("PATH")),
                argv,
                env,
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_DUP2, log_fd, 1),
                    (os.POSIX_SPAWN_DUP2, log_fd, 2),
                ],
                setsid=True,
                setsigmask=container.get("sigmask", ()),
                setsigdef=CHILD_DEFAULT_SIGNALS,
            )
        except OSError as exc:
            message = f"{container['name']}: cannot start {argv[0]!r}: {exc.strerror or exc}"
            raise RunFailed("SpawnFailed", message) from None
        finally:
            os.close(log_fd)
        proc = Proc(container["name"], pid, log)
        # Into the run's lock file, which the shim holds open (one file fewer to create per run).
        os.write(LOCK_FD, f"{pid} {proc_start_time(pid)} {proc.name}\n".encode())
        self.live.append(proc)
        return proc

    def reap(self, proc: Proc) -> None:
        # Kill what is left of the group while the zombie leader still holds the group id (so it cannot
        # be reused): when a container's main process exits, the container is gone, as on Kubernetes.
        killpg(proc.pid, _signal.SIGKILL)
        _, status = os.waitpid(proc.pid, 0)
        proc.code = os.waitstatus_to_exitcode(status)
        os.close(proc.pidfd)
        self.live.remove(proc)

    def wait(self, procs: list[Proc], timeout: float | None, *, stoppable: bool = True) -> list[Proc]:
        """Wait until one of ``procs`` exits (reaped, returned) or ``timeout`` passes (returns [])."""
        poller = select.poll()
        poller.register(self.wake_r, select.POLLIN)
        for proc in procs:
            poller.register(proc.pidfd, select.POLLIN)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if stoppable and self.timeout_at is not None:
                left = self.timeout_at - time.time()
                if left <= 0:
                    raise RunTimedOut
                remaining = left if remaining is None else min(remaining, left)
            ready = {fd for fd, _ in poller.poll(None if remaining is None else remaining * 1000)}
            if self.wake_r in ready:
                self.drain_signals()
            exited = [p for p in procs if p.pidfd in ready]
            for proc in exited:
                self.reap(proc)
            if exited:
                return exited
            if self.stopping and stoppable:
                raise StopRequested
            if deadline is not None and time.monotonic() >= deadline:
                return []

    def drain_signals(self) -> None:
        try:
            while os.read(self.wake_r, 64):
                self.stopping = True
        except BlockingIOError:
            pass

    def check_stop(self, *, timeout: bool = True) -> None:
        self.drain_signals()
        if self.stopping:
            raise StopRequested
        if timeout and self.timeout_at is not None and time.time() >= self.timeout_at:
            raise RunTimedOut

    def terminate(self, procs: list[Proc], grace: float) -> None:
        """SIGTERM each group, SIGKILL after ``grace``, and wait until every process is reaped."""
        procs = [p for p in procs if p in self.live]
        for proc in procs:
            killpg(proc.pid, _signal.SIGTERM)
        deadline = time.monotonic() + grace
        while procs and (remaining := deadline - time.monotonic()) > 0:
            for proc in self.wait(procs, remaining, stoppable=False):
                procs.remove(proc)
        for proc in procs:
            killpg(proc.pid, _signal.SIGKILL)
        while procs:
            for proc in self.wait(procs, None, stoppable=False):
                procs.remove(proc)

    def stop_grace(self) -> float:
        try:
            with open(os.path.join(self.internal, STOP_FILE)) as f:
                return float(f.read().strip())
        except (OSError, ValueError):
            return float(self.spec["stop_grace"])

    # -- the run -------------------------------------------------------------------------------------

    def main(self) -> int:
        try:
            try:
                status, reason, message = self.run()
            except StopRequested:
                self.terminate(self.live, self.stop_grace())
                status, reason, message = "stopped", "Stopped", "stopped on request"
            except RunTimedOut:
                self.terminate(self.live, self.stop_grace())
                timeout = float(self.spec.get("timeout") or 0)
                status, reason, message = "failed", "Timeout", f"stopped after termination.timeout of {timeout:g} s"
            except RunFailed as exc:
                self.terminate(self.live, float(self.spec["sidecar_grace"]))
                status, reason, message = "failed", exc.reason, exc.message
        except BaseException as exc:  # a bug here must still end the run, never leave it hanging
            import traceback

            traceback.print_exc()
            self.terminate(self.live, 1.0)
            status, reason, message = "failed", "ExecutorError", f"{type(exc).__name__}: {exc}"
        try:
            self.write_op()  # a run that ended before its main container started
        except BaseException:
            import traceback

            traceback.print_exc()
        try:
            self.finish_store_sync()  # before the final status: a warning it raises is read with the run's events
        except BaseException:
            import traceback

            traceback.print_exc()
        self.emit(status, reason, message)
        self.top_up_spares()
        return 0

    def top_up_spares(self) -> None:
        """Make the spare run folders of our artifacts root that the next runs there take (see
        :mod:`.spare_folders`): after the final status, which nothing here may delay."""
        spares = self.spec.get("spares")
        if spares is None:
            return
        # Imported here, after the run (a fork server has it loaded already).
        from polynb.executors.local.spare_folders import replenish

        yield_cpu()

        try:  # noqa: SIM105 - contextlib costs start-up time
            replenish(*spares)
        except OSError:  # a read-only or full disk: runs make their folders on the spot, as they did
            pass

    # -- the bucket artifacts store ------------------------------------------------------------------

    def start_store_sync(self) -> None:
        """Start syncing the run's folder to its bucket store (``python -m polynb.runtime.store_sync``)."""
        sync = self.spec.get("store")
        if sync is None:
            return
        # SIGTERM stays pending until the sync has its handler: a run shorter than its start-up still gets
        # its final sync.
        sync = {**sync, "sigmask": (_signal.SIGTERM, _signal.SIGINT)}
        try:
            proc = self.spawn(sync, STORE_SYNC_LOG, self.internal)
        except RunFailed as exc:
            self.store_warning(f"the sync could not start: {exc.message}")
            return
        self.live.remove(proc)
        self.store_sync = proc

    def finish_store_sync(self) -> None:
        """Ask the sync for its final pass and wait for it (``store_grace`` at most)."""
        proc, self.store_sync = self.store_sync, None
        if proc is None:
            return
        killpg(proc.pid, _signal.SIGTERM)
        poller = select.poll()
        poller.register(proc.pidfd, select.POLLIN)
        grace = float(self.spec["store_grace"])
        late = not poller.poll(grace * 1000)
        if late:
            killpg(proc.pid, _signal.SIGKILL)
        _, status = os.waitpid(proc.pid, 0)
        os.close(proc.pidfd)
        code = os.waitstatus_to_exitcode(status)
        if late:
            self.store_warning(f"the final sync did not end within {grace:g} s")
        elif code not in (0, 1):  # 1: the sync said why itself, as a warning of the run
            self.store_warning(f"the sync ended with {exit_description(code)}")
        # The final sync was tried: an engine must not redo it (a failed one has warned already).
        with open(os.path.join(self.internal, STORE_SYNCED_FILE), "w") as f:
            f.write("done\n" if code == 0 else f"failed {code}\n")

    def store_warning(self, what: str) -> None:
        """A ``warning`` alert of the run naming the store's connection and where the files are kept."""
        sys.path.insert(0, self.spec["package_root"])
        os.environ["POLYAXON_RUN_OUTPUTS_PATH"] = self.env_overlay["POLYAXON_RUN_OUTPUTS_PATH"]
        from polynb.runtime.tracking import alert

        name = self.spec["store"]["connection"]
        message = f"artifacts store {name}: {what}; the run's files are kept at {self.run_dir}"
        alert("warning", message, connection=name, path=self.run_dir, reason="ArtifactsStoreUnreachable")

    def run(self) -> tuple[str, str, str]:
        spec = self.spec
        # With nothing to run before the main container and no port to wait for, the engine reads this line with
        # the next one, a moment later (after the spawn): one wake-up and one turn of its loop fewer per run.
        service = spec["kind"] == "service" and spec["ports"]
        quick = not (spec["init"] or spec["sidecars"] or spec.get("store") or service)
        self.emit("starting", "Initializing" if spec["init"] else "Starting", wake=not quick)
        self.start_store_sync()
        for index, step in enumerate(spec["init"]):
            self.check_stop()
            self.run_init(index, step)
        for sidecar in spec["sidecars"]:
            self.spawn(sidecar, sidecar_log(sidecar["name"]))
        main = self.spawn(spec["main"], MAIN_LOG)
        if spec["kind"] == "service" and spec["ports"]:
            self.write_op()
            self.await_port(main)
        else:
            self.emit("running", "ProcessStarted", f"pid {main.pid}")
            self.write_op()
        while main.code is None:
            self.wait([main], None)
        self.check_stop(timeout=False)  # a stop that raced with the exit still ends as stopped; its end was in time
        sidecars = [p for p in self.live if p is not main]
        self.terminate(sidecars, float(spec["sidecar_grace"]))
        if main.code == 0:
            return "succeeded", "ExitCode", "exit code 0"
        return "failed", "ExitCode", self.failure_message(main, exit_description(main.code))

    def failure_message(self, proc: Proc, what: str) -> str:
        tail = log_tail(proc.log)
        return f"{what}\n{tail}" if tail else what

    def run_init(self, index: int, step: dict[str, Any]) -> None:
        kind: str = step["kind"]
        log_name = init_log(index, kind)
        label = f"init[{index}] {kind}"
        if kind == "container":
            container = step["container"]
            proc = self.spawn_init(container, log_name, label)
            while proc.code is None:
                self.wait([proc], None)
            if proc.code != 0:
                what = f"{label}: {exit_description(proc.code)}"
                raise RunFailed("InitFailed", self.failure_message(proc, what))
            return
        sys.path.insert(0, self.spec["package_root"])
        from polynb.executors.local import init_steps

        log = os.path.join(self.logs_dir, log_name)
        try:
            commands = init_steps.run_step(step, self.spec, log)
        except init_steps.InitError as exc:
            raise RunFailed("InitFailed", f"{label}: {exc}") from None
        for argv, env in commands:  # external commands (git) run like containers: a stop reaches them
            self.check_stop()
            command = {"name": kind, "argv": argv, "env": env, "cwd": self.run_dir}
            proc = self.spawn_init(command, log_name, label)
            while proc.code is None:
                self.wait([proc], None)
            if proc.code != 0:
                words = [os.path.basename(argv[0]), *(a for a in argv[1:] if a[:1] != "-" and "=" not in a)][:2]
                what = f"{label}: {' '.join(words)} failed ({exit_description(proc.code)})"
                raise RunFailed("InitFailed", self.failure_message(proc, what))

    def spawn_init(self, container: dict[str, Any], log_name: str, label: str) -> Proc:
        try:
            return self.spawn(container, log_name)
        except RunFailed as exc:
            raise RunFailed("InitFailed", f"{label}: {exc.message}") from None

    def page_url(self) -> str:
        """The service's URL: its base URL, with the page it wrote in ``service-page.json`` in its run folder
        (``polynb.hub.jupyterlab``), if any. The token beside it in that file is not part of the URL."""
        import json

        base: str = self.spec["base_url"]
        try:
            with open(os.path.join(self.run_dir, SERVICE_PAGE)) as f:
                path = json.load(f).get("path")
        except (OSError, ValueError, AttributeError):
            return base
        return base.rstrip("/") + "/" + path.lstrip("/") if isinstance(path, str) and path else base

    def await_port(self, main: Proc) -> None:
        """A service counts as running once its first port accepts a connection."""
        import socket

        spec = self.spec
        host: str = spec["host"]
        port: int = spec["ports"][0]
        timeout = float(spec["readiness_timeout"])
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            try:
                socket.create_connection((host, port), timeout=1.0).close()
            except OSError:
                pass
            else:
                self.emit("running", "PortReady", f"port {port} accepts connections", self.page_url())
                return
            if self.wait([main], delay):
                code = main.code if main.code is not None else -1
                what = f"{exit_description(code)} before port {port} accepted connections"
                raise RunFailed("ExitCode", self.failure_message(main, what))
            if time.monotonic() >= deadline:
                what = f"port {port} did not accept connections within {timeout:g} s"
                self.terminate([main], float(spec["sidecar_grace"]))
                raise RunFailed("ServiceNotReady", self.failure_message(main, what))
            delay = min(delay * 1.5, 0.5)


LAUNCHER = (
    "import sys; sys.path.insert(0, sys.argv[1]); from polynb.executors.local.shim import main; main(sys.argv[2])"
)
"""The ``-c`` program that starts a shim. Importing the module (not running it as a script) lets Python use
its cached bytecode: compiling this file on every start would cost more than the rest of the start-up."""


def main(spec: bytes | str, start_time: int | None = None) -> NoReturn:
    """The shim's whole life; ``spec``: its spec (``marshal``, from a fork server's request) or the path of
    ``spec.bin`` (a spawned shim's argument); ``start_time``: this process's, when known already."""
    # Only fds 0-3 are the shim's. A forked one still has its server's socket and its request's fds; a spawned one
    # what the engine inherited (what the engine's own parent left it open: the pipe a CI step reads, say), which is
    # not the op's to keep open.
    os.closerange(LOCK_FD + 1, os.sysconf("SC_OPEN_MAX"))
    # The run's lock: ours until we exit, never our children's (they may outlive us; the lock says we live).
    os.set_inheritable(LOCK_FD, False)
    if isinstance(spec, str):
        with open(spec, "rb") as f:
            spec = f.read()
    # From our engine (a socket pair, or a file of mode 0600 in a folder of mode 0700), same interpreter.
    code = Shim(marshal.loads(spec), start_time).main()  # noqa: S302
    # Skip interpreter teardown: nothing is left to flush but stderr, and it costs milliseconds per op.
    sys.stderr.flush()
    os._exit(code)
