"""The local executor: every op runs as subprocesses on this machine, supervised by a shim per run.

``submit`` makes ``<run>/.executor/`` and starts a shim (:mod:`.shim`) in a session of its own, forked by the
executor's fork server (its spec sent with the request) or spawned (:mod:`.launch`, ``POLYNB_LOCAL_SPAWN``; its
spec written to ``.executor/spec.bin``); the shim
runs the containers and appends each transition to ``<run>/status.jsonl`` (the folder's names:
:mod:`.layout`). One watcher thread serves every run: it blocks in ``epoll`` on the shims' stdout pipes (a
byte per transition, EOF at exit) and, for runs re-attached after an engine restart, on pidfds, and turns
new lines of the status files into :class:`ExecutorUpdate` calls. The file, not the pipe, carries the
data, so a restarted engine replays exactly what the old one may have missed. A shim that is not our child
(forked, or re-attached) is signalled through a pidfd, never by a pid that may have been reused.

Whether a run's shim is alive is never guessed from what an engine managed to record before it died: the
engine takes ``<run>/.executor/lock`` (``flock``) before the spawn and the shim inherits it (a fork server
gets it with the request and closes its copy before it replies), so the lock is held from before the shim
exists until it exits. The shim writes its identity (pid, start time, status offset) as the lock file's first
line before its first status line (runs of earlier versions have it in ``.executor/shim``). A re-attaching
engine that finds the lock held but no pid yet follows the run and looks for its pid at every tick; a
submit that finds the lock held refuses to start a second shim.

Working directory: a container's ``working_dir`` if absolute; if relative, or unset, it is taken from the
*base folder*: the op's ``polynb.io/base-dir`` label, else the executor's ``base_dir`` (default: the
current folder when the executor was made, i.e. the notebook's folder), so ``python train.py`` works as
it does in a terminal beside the notebook.

Environment of every container: the engine's environment, the engine interpreter's folder in front of
``PATH`` and ``PYTHONUNBUFFERED=1`` (so ``python`` is this environment's and prints reach the log live),
then the container's ``env``, then ``POLYAXON_RUN_UUID``, ``POLYAXON_RUN_OUTPUTS_PATH``,
``POLYAXON_RUN_ARTIFACTS_PATH`` and ``POLYNB_HOME``, which always win (``tracking`` depends on them).
``command``/``args`` and ``env`` values get Kubernetes' ``$(VAR_NAME)`` expansion, against the variables a pod
declares for the container (not the engine's environment): the same file gives the same argv on a cluster.

Outputs: ``outputs.json`` in the run's outputs folder is read when the final status arrives. A file that
is not a JSON object does not change the status (the op did run); the final update then carries no
outputs and its message says what is wrong with the file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import marshal
import os
import re
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from polynb.compiler.types import CompiledOp, ContainerSpec, OpKind, Placement
from polynb.connections import cluster_env_refusal, local_env, local_init_refusal, local_refusal
from polynb.executors.base import BASE_DIR_LABEL as BASE_DIR_LABEL
from polynb.executors.base import FINAL_EXECUTOR_STATUSES, ExecutorUpdate, UpdateCallback
from polynb.executors.expansion import declared_env, expand_argv
from polynb.executors.local import shim as local_shim
from polynb.executors.local.launch import (
    INLINE_SPEC_MAX,
    ForkServer,
    ForkServerError,
    RequestTooLarge,
    StartedShim,
    fork_unavailable,
    read_umask,
    spawn_mode,
    spawn_shim,
)
from polynb.executors.local.launch import PACKAGE_ROOT as PACKAGE_ROOT
from polynb.executors.local.layout import (
    CREATED_FILE,
    IDENTITY_TAG,
    INTERNAL_DIR,
    KEPT,
    LOCK_FD,
    LOCK_FILE,
    LOGS_DIR,
    MAIN_LOG,
    OUTPUTS_DIR,
    OUTPUTS_FILE,
    PROCS_FILE,
    SHIM_FILE,
    SHIM_LOG,
    SPEC_FILE,
    STATUS_FILE,
    STOP_FILE,
    STORE_SYNC_LOG,
    STORE_SYNCED_FILE,
    TENSORBOARD_DIR,
    init_log_index,
    parse_identity,
)
from polynb.executors.local.ports import PortAllocator
from polynb.executors.local.shim import proc_start_time, status_line
from polynb.executors.local.spare_folders import spare_prefix, spares_dir, take_spare
from polynb.log_archive import LogArchive
from polynb.store.paths import artifacts_dir, check_uuid, default_artifacts_root, polynb_home
from polynb.store.remote import StoreAccess

log = logging.getLogger(__name__)


STATUS_READ: Final = 1 << 16
"""Bytes of a status file read at once (a wake-up brings one line of about a hundred)."""
IDENTITY_READ: Final = 256
"""Bytes of the lock file that surely hold its first line, the shim's identity (about 40)."""
TAIL_INTERVAL: Final = 0.25
"""How often the status file of a re-attached live run is re-read (no pipe to it any more)."""
STOP_SLACK: Final = 5.0
TIMEOUT_BACKSTOP: Final = 2.0
"""Seconds after an op's ``termination.timeout`` at which its shim stops it itself, if no engine has (as
``activeDeadlineSeconds`` backs a pod's up on Kubernetes)."""
STORE_GRACE: Final = 120.0
"""Seconds the shim waits for a run's final sync to its bucket store before it gives up on it (the files stay in
the run's folder, and the run gets a warning)."""
STORE_CONNECTION_ENV: Final = "POLYNB_STORE_CONNECTION"
""":data:`polynb.runtime.store_sync.CONNECTION_ENV` (not imported: the sync's module loads fsspec)."""
"""After ``grace`` plus this, a shim that has not ended the run itself is killed by the engine."""
_LOG_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_UUID = re.compile(r"[0-9a-f]{32}")


@dataclass(eq=False)
class _Watch:
    """One run followed by the watcher thread."""

    uuid: str
    on_update: UpdateCallback
    run_dir: Path
    outputs_dir: Path
    offset: int
    pid: int
    start_time: int | None
    child: bool  # our own child: waitpid reaps it; else a pidfd tells when it ends (or, if forked, the pipe)
    pipe_fd: int | None = None
    pidfd: int | None = None  # signals go through it when the shim is not our child
    forked: bool = False  # by our fork server, which alone can tell how it exited
    alive: bool = True  # False: nothing to wait for, read what the file has and finish
    final: bool = False
    stop_requested: bool = False
    kill_at: float | None = None
    seq: int = 0
    exit_code: int | None = None
    status_fd: int | None = None  # the status file, open while the watcher thread reads it
    bucket: bool | None = None  # synced to a bucket store (None: not asked yet)
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def status_path(self) -> Path:
        return self.run_dir / STATUS_FILE


class LocalExecutor:
    """Runs compiled ops as local subprocesses; see the module docstring for the rules."""

    name = "local"

    def __init__(
        self,
        *,
        base_dir: str | os.PathLike[str] | None = None,
        readiness_timeout: float = 120.0,
        sidecar_grace: float = 5.0,
        stop_grace: float = 10.0,
        host: str = "127.0.0.1",
        python: str = sys.executable,
        artifacts_root_of: Callable[[str], Path] | None = None,
        artifacts_store_of: Callable[[str], StoreAccess | None] | None = None,
        store_grace: float = STORE_GRACE,
        log_archive: LogArchive | None = None,
    ) -> None:
        """``artifacts_root_of``: a run's artifacts root by uuid, the one recorded in the store when the run was
        created (``Store.artifacts_root_of``); without it every run's is ``$POLYNB_HOME/artifacts``.
        ``artifacts_store_of``: the bucket a run is synced to (``Store.artifacts_store_of``), None for none.
        ``log_archive``: the artifacts store where the logs of a run that is not synced to a bucket are copied when
        it ends, before its final status is delivered (a host-path store that is the run's own root already holds
        them); its bucket, if it is one, is where ``artifacts``/``paths`` init entries fetch what is not here."""
        self.log_archive = log_archive
        self._archiving: set[threading.Thread] = set()
        self._root_of = artifacts_root_of or (lambda _uuid: default_artifacts_root())
        self._store_of = artifacts_store_of or (lambda _uuid: None)
        self.store_grace = store_grace
        self._catch_ups: list[threading.Thread] = []
        self.base_dir = Path(base_dir or os.getcwd()).resolve()
        self.readiness_timeout = readiness_timeout
        self.sidecar_grace = sidecar_grace
        self.stop_grace = stop_grace
        self.host = host
        self.python = python
        self._ports = PortAllocator(host)
        self._lock = threading.Lock()  # guards _runs and every signal sent to a shim (vs. its reaping)
        self._runs: dict[str, _Watch] = {}
        self._image_noted = False
        self._closed = False
        self._children: set[int] = set()  # shims spawned as our children, not reaped yet
        self._identities: dict[int, tuple[int, int | None]] = {}  # forked shims' pidfds and start times, by pid
        self._forkserver: ForkServer | None = None
        if spawn_mode() == "fork":
            unavailable = fork_unavailable()
            if unavailable is None:
                self._forkserver = ForkServer(python)  # started when the first run is placed
            else:
                log.info("local executor: %s; each shim is spawned (a new interpreter per run)", unavailable)
        self._watcher = _Watcher(self)
        self._watcher.start()

    # -- placement and submission ------------------------------------------------------------------

    def run_dir(self, run_uuid: str) -> Path:
        """The run's artifacts folder: ``<its recorded artifacts root>/<uuid>``."""
        return artifacts_dir(run_uuid, self._root_of(check_uuid(run_uuid)))

    def prestart(self) -> None:
        """Start the fork server now, without waiting for it, when a submit is coming: its interpreter then starts
        while the caller does the rest (``polynb run`` loads the engine; a placed run compiles). Idempotent."""
        if (server := self._forkserver) is not None:
            server.prestart()

    def place(self, run_uuid: str, kind: OpKind, port_count: int) -> Placement:
        self.prestart()  # a submit follows
        run_dir = self.run_dir(run_uuid)
        ports = self._ports.reserve(run_uuid, port_count) if port_count else ()
        return Placement(
            artifacts_path=str(run_dir.parent),
            run_artifacts_path=str(run_dir),
            run_outputs_path=str(run_dir / OUTPUTS_DIR),
            ports=ports,
            base_url=f"http://{self.host}:{ports[0]}/" if ports else None,
            host=self.host,
        )

    def reserved_ports(self) -> dict[str, tuple[int, ...]]:
        """The ports this executor holds, by run: from ``place`` until ``cleanup`` (after the run's ``ttl``, or at
        once for a run that ends without being submitted)."""
        return self._ports.reserved()

    def submit(self, op: CompiledOp, on_update: UpdateCallback) -> dict[str, Any]:
        if self._closed:
            raise RuntimeError("the local executor is shut down")
        refused = [r for r in map(local_refusal, op.connections) if r is not None]
        containers = [("container", op.container), *((f"sidecars[{i}]", c) for i, c in enumerate(op.sidecars))]
        containers += [(f"init[{i}].container", s.container) for i, s in enumerate(op.init) if s.container]
        refused += [r for w, c in containers if (r := cluster_env_refusal(c.k8s, w)) is not None]
        refused += [
            f"init[{i}]: {r}"
            for i, s in enumerate(op.init)
            if s.spec.get("connection") and (r := local_init_refusal(s.spec["connection"])) is not None
        ]
        if refused:  # before anything is written: nothing of the run is half-started
            raise RuntimeError("; ".join(refused))
        self._note_images(op)
        run_dir = Path(op.placement.run_artifacts_path)
        outputs_dir = Path(op.placement.run_outputs_path)
        internal = run_dir / INTERNAL_DIR
        # A spare folder has every entry of a first attempt's (else logs/ and outputs/ are made by the shim); a
        # spare is taken only if made under the umask and by the user its folders would have here.
        umask = read_umask()
        prefix = None if umask is None else spare_prefix(umask)
        premade = prefix is not None and take_spare(str(run_dir), prefix)
        fresh = premade or _make_internal(internal)
        with self._lock:
            current = self._runs.get(op.uuid)
            # A final status seen is enough: that shim has nothing left to do but exit.
            if current is not None and not current.final and not current.done.is_set():
                raise RuntimeError(f"run {op.uuid} is already running here")
        if current is not None:
            current.done.wait(STOP_SLACK)  # let the previous attempt's shim exit (and free the run's lock)
        lock_fd = _lock_run(internal)
        if lock_fd is None:
            raise RuntimeError(f"run {op.uuid} is already running: a supervisor holds {internal / LOCK_FILE}")
        try:
            # Ours until the shim inherits it: no other shim of this run may start, and what an earlier
            # attempt left is ours to clear (a stale identity would name the wrong process).
            if not fresh:
                os.ftruncate(lock_fd, 0)  # the previous attempt's identity and containers
                for stale in (STOP_FILE, SHIM_FILE, STORE_SYNCED_FILE, PROCS_FILE):  # (shim, procs: earlier versions')
                    with contextlib.suppress(FileNotFoundError):
                        (internal / stale).unlink()
            offset = _size(run_dir / STATUS_FILE)  # a retry appends (kept by cleanup(), so looked for even if fresh)
            store = self._store_of(op.uuid)  # asked once a run: a run keeps the store it was created with
            spec = self._shim_spec(op, offset, store, premade=premade, spare_prefix=prefix)
            pid, pipe_fd = self._spawn_shim(marshal.dumps(spec), internal, lock_fd, umask)
        finally:
            os.close(lock_fd)  # the shim holds the lock now (or, if it did not start, nobody)
        with self._lock:
            child = pid in self._children
            identity = self._identities.pop(pid, None)
        if child:
            pidfd, start_time = None, proc_start_time(pid)
        elif identity is not None:  # from the fork server
            pidfd, start_time = identity
        else:
            pidfd, start_time = _identify(pid, pipe_fd)
        watch = _Watch(
            uuid=op.uuid,
            on_update=on_update,
            run_dir=run_dir,
            outputs_dir=outputs_dir,
            offset=offset,
            pid=pid,
            start_time=start_time,
            child=child,
            pipe_fd=pipe_fd,
            pidfd=pidfd,
            forked=not child,
            bucket=store is not None,
        )
        with self._lock:
            self._runs[op.uuid] = watch
        self._watcher.add(watch)
        return {
            "executor": self.name,
            "run_uuid": op.uuid,
            "run_dir": str(run_dir),
            "shim_pid": pid,
            "shim_start_time": start_time,
            "status_offset": offset,
            "ports": list(op.placement.ports),
            "base_url": op.placement.base_url,
        }

    def _spawn_shim(self, spec: bytes, internal: Path, lock_fd: int, umask: int | None) -> tuple[int, int]:
        """Start a shim holding ``lock_fd`` on fd 3: (pid, read end of its stdout); see :mod:`.launch`. A forked
        shim's pidfd and start time, from the fork server, are left in ``_identities`` for ``submit``.

        A forked shim gets its spec (``marshal``) inside the fork server's request; ``spec.bin`` is written only
        for a spawned shim or a spec too large for one message.
        """
        shim_log = internal / SHIM_LOG
        server = self._forkserver
        if server is not None and len(spec) <= INLINE_SPEC_MAX:
            try:
                return self._forked(server.spawn(spec, shim_log, lock_fd, umask))
            except RequestTooLarge:
                pass  # with the environment sent along: the spec goes by file
            except ForkServerError as exc:
                self._drop_forkserver(str(exc))
        spec_path = internal / SPEC_FILE
        with open(os.open(spec_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
            f.write(spec)
        if (server := self._forkserver) is not None:
            try:
                return self._forked(server.spawn(spec_path, shim_log, lock_fd, umask))
            except ForkServerError as exc:
                self._drop_forkserver(str(exc))
        started = spawn_shim(self.python, spec_path, shim_log, lock_fd)
        with self._lock:
            self._children.add(started.pid)
        return started.pid, started.pipe_fd

    def _forked(self, started: StartedShim) -> tuple[int, int]:
        if started.pidfd is not None:
            with self._lock:
                self._identities[started.pid] = (started.pidfd, started.start_time)
        return started.pid, started.pipe_fd

    def _drop_forkserver(self, why: str) -> None:
        """Spawn every shim from now on, and say why once."""
        with self._lock:
            server, self._forkserver = self._forkserver, None
        if server is not None:
            log.warning("local executor: %s; each shim is spawned from now on (a new interpreter per run)", why)
            server.close()

    def _shim_spec(
        self,
        op: CompiledOp,
        status_offset: int,
        store: StoreAccess | None,
        *,
        premade: bool = False,
        spare_prefix: str | None = None,
    ) -> dict[str, Any]:
        placement = op.placement
        base_dir = Path(op.labels.get(BASE_DIR_LABEL) or self.base_dir)
        bin_dir = os.path.dirname(self.python)
        path = os.environ.get("PATH", os.defpath)
        defaults = {"PYTHONUNBUFFERED": os.environ.get("PYTHONUNBUFFERED", "1")}
        if path.split(os.pathsep, 1)[0] != bin_dir:
            defaults["PATH"] = bin_dir + os.pathsep + path
        run_env = {
            "POLYAXON_RUN_UUID": op.uuid,
            "POLYAXON_RUN_OUTPUTS_PATH": placement.run_outputs_path,
            "POLYAXON_RUN_ARTIFACTS_PATH": placement.run_artifacts_path,
        }
        return {
            "uuid": op.uuid,
            "name": op.name,
            "kind": op.kind,
            "run_dir": placement.run_artifacts_path,
            "artifacts_root": str(Path(placement.artifacts_path)),
            "run_roots": self._run_roots(op),
            "artifacts_store": self._bucket_store(),
            "base_dir": str(base_dir),
            "package_root": PACKAGE_ROOT,
            "env_defaults": defaults,
            "env": {**run_env, "POLYNB_HOME": str(polynb_home())},
            "main": _container(op.container, base_dir, "main", run_env, op.connections),
            "init": [
                {
                    "kind": step.kind,
                    "spec": step.spec,
                    "path": step.path,
                    "container": _container(step.container, base_dir, f"init-{i}", run_env) if step.container else None,
                }
                for i, step in enumerate(op.init)
            ],
            "sidecars": [_container(c, base_dir, f"sidecar-{i}", run_env) for i, c in enumerate(op.sidecars)],
            "ports": list(placement.ports),
            "host": placement.host,
            "base_url": placement.base_url,
            "readiness_timeout": self.readiness_timeout,
            "sidecar_grace": self.sidecar_grace,
            "stop_grace": self.stop_grace,
            # The engine's timer stops a run at its timeout; the shim's own, a little later, holds without an engine.
            "timeout": op.termination.timeout,
            "timeout_at": time.time() + op.termination.timeout + TIMEOUT_BACKSTOP if op.termination.timeout else None,
            "status_offset": status_offset,
            "store": self._store_sync(op.uuid, placement.run_artifacts_path, store, final=False),
            "store_grace": self.store_grace,
            # Written by the shim (a file created costs the submitting thread a fraction of a millisecond).
            "op_json": json.dumps(op.to_dict(), indent=1, default=str),
            # Topped up by the shim once its run's final status is written (see ``spare_folders``).
            "spares": None if spare_prefix is None else [spares_dir(placement.artifacts_path), spare_prefix],
            "premade": premade,
            "folders": []
            if premade
            else [
                placement.run_outputs_path,
                os.path.join(placement.run_outputs_path, TENSORBOARD_DIR),
                os.path.join(placement.run_artifacts_path, LOGS_DIR),
            ],
        }

    def _bucket_store(self) -> dict[str, Any] | None:
        """The artifacts store's connection entry when it is a bucket: ``artifacts``/``paths`` init entries fetch
        from it what is not on this machine (runs of another machine, or whose folder is gone)."""
        archive = self.log_archive
        if archive is None or archive.bucket is None or archive.connection is None:
            return None
        return dict(archive.connection)

    def _store_sync(self, uuid: str, run_dir: str, store: StoreAccess | None, *, final: bool) -> dict[str, Any] | None:
        """The process that syncs the run's folder to its bucket ``store`` (:mod:`polynb.runtime.store_sync`): every
        ``artifactsSyncInterval`` seconds while the shim lives, then once more; or (``final``) once."""
        if store is None:
            return None
        argv = [self.python, "-m", "polynb.runtime.store_sync", "up", "--source", run_dir,
                "--target", store.record.run_url(uuid), "--exclude", INTERNAL_DIR, "--exclude", STATUS_FILE,
                "--alert"]  # fmt: skip
        if not final:
            argv += ["--every", f"{store.record.every:g}", "--while-parent"]
        path = os.environ.get("PYTHONPATH")
        env = {
            **store.env(),
            STORE_CONNECTION_ENV: json.dumps(dict(store.connection), default=str),
            "PYTHONPATH": PACKAGE_ROOT + (os.pathsep + path if path else ""),
        }
        return {"name": "store-sync", "argv": argv, "env": env, "cwd": run_dir, "connection": store.record.name}

    def _run_roots(self, op: CompiledOp) -> dict[str, str]:
        """The artifacts roots of the other runs the op's init entries read (``tensorboard`` uuids, ``artifacts``
        and ``paths`` sources starting with a uuid) whose root is not this run's: a run keeps the root it was
        created with, so a TensorBoard may show runs from before and after the configuration changed."""
        uuids: set[str] = set()
        for step in op.init:
            spec = step.spec or {}
            if step.kind == "tensorboard":
                listed = spec.get("uuids") or []
                uuids.update(u.strip() for u in (listed.split(",") if isinstance(listed, str) else map(str, listed)))
            elif step.kind in ("artifacts", "paths"):
                for value in spec.values() if isinstance(spec, Mapping) else ():
                    for item in value if isinstance(value, list) else ():
                        source = item[0] if isinstance(item, list | tuple) and item else item
                        if isinstance(source, str) and not os.path.isabs(source):
                            uuids.add(source.split("/", 1)[0])
        own = op.placement.artifacts_path
        roots = {u: str(self._root_of(u)) for u in sorted(uuids) if _UUID.fullmatch(u) and u != op.uuid}
        return {u: root for u, root in roots.items() if root != own}

    def _note_images(self, op: CompiledOp) -> None:
        if self._image_noted:
            return
        containers = [op.container, *op.sidecars, *(s.container for s in op.init if s.container)]
        if any(c.image for c in containers):
            self._image_noted = True
            log.info("local executor: container images are ignored; ops run with %s", self.python)

    # -- control -----------------------------------------------------------------------------------

    def stop(self, run_uuid: str, *, grace: float | None = None) -> None:
        grace = self.stop_grace if grace is None else grace
        with self._lock:
            watch = self._runs.get(run_uuid)
            if watch is None or watch.done.is_set():
                self._stop_unwatched(run_uuid, grace)
                return
            if watch.final or watch.stop_requested:
                return
            watch.stop_requested = True
            _write_stop(watch.run_dir, grace)
            self._signal(watch, signal.SIGTERM)
            watch.kill_at = time.monotonic() + grace + STOP_SLACK
        self._watcher.wake()

    def _signal(self, watch: _Watch, sig: int) -> None:
        """Signal a watched shim; called under the lock, so the watcher cannot reap it meanwhile."""
        if not watch.alive:
            return
        with contextlib.suppress(ProcessLookupError):
            if watch.child:
                os.kill(watch.pid, sig)  # not reaped yet, so the pid is still this shim's
            elif watch.pidfd is not None:
                signal.pidfd_send_signal(watch.pidfd, sig)

    def _stop_unwatched(self, run_uuid: str, grace: float) -> None:
        """Best effort for a run this engine does not watch (e.g. another process's)."""
        run_dir = self.run_dir(run_uuid)
        shim = _read_shim_file(run_dir)
        if shim is None or proc_start_time(shim[0]) != shim[1]:
            return
        _write_stop(run_dir, grace)
        with contextlib.suppress(ProcessLookupError):
            os.kill(shim[0], signal.SIGTERM)

    def reattach(self, op: CompiledOp, record: dict[str, Any], on_update: UpdateCallback) -> bool:
        if self._closed:
            raise RuntimeError("the local executor is shut down")
        run_dir = Path(record.get("run_dir") or op.placement.run_artifacts_path)
        # The size first: a shim writes its identity before its first line, so if it is missing
        # below, every line of this attempt comes after this size.
        size = _size(run_dir / STATUS_FILE)
        shim = _read_shim_file(run_dir)
        locked = _run_locked(run_dir)  # a shim of this run is alive, known or not
        if record.get("shim_pid"):
            pid, start_time = int(record["shim_pid"]), record.get("shim_start_time")
            offset = int(record.get("status_offset", shim[2] if shim else 0))
        elif shim is not None:
            pid, start_time, offset = shim
        elif locked:
            pid, start_time, offset = 0, None, size  # started, not yet known by pid: found once it writes
        else:
            return False  # never started here (or its engine died before the shim could start)
        watch = _Watch(
            uuid=op.uuid,
            on_update=on_update,
            run_dir=run_dir,
            outputs_dir=Path(op.placement.run_outputs_path),
            offset=offset,
            pid=pid,
            start_time=start_time,
            child=False,
        )
        pidfd: int | None = None
        if pid > 0:
            with contextlib.suppress(ProcessLookupError):
                pidfd = os.pidfd_open(pid)
        # Check the start time after opening the pidfd: the pidfd then names the process we checked.
        if pidfd is not None and (start_time is None or proc_start_time(watch.pid) != start_time):
            os.close(pidfd)
            pidfd = None
        watch.pidfd = pidfd
        watch.alive = pidfd is not None or locked
        with self._lock:
            self._runs[op.uuid] = watch
        self._watcher.add(watch)
        return True

    def cleanup(self, run_uuid: str) -> None:
        with self._lock:
            watch = self._runs.get(run_uuid)
        if watch is not None:
            if not watch.final:
                return  # still running: ttl counts from the end of the run
            watch.done.wait(STOP_SLACK)  # the shim is exiting: let it finish writing
            with self._lock:
                self._runs.pop(run_uuid, None)
        self._ports.release(run_uuid)
        run_dir = self.run_dir(run_uuid)
        internal = run_dir / INTERNAL_DIR
        created = internal / CREATED_FILE
        if created.exists():
            for line in created.read_text().splitlines():
                _remove_inside(Path(line), run_dir)
        if internal.is_dir():
            _remove_inside(internal, run_dir)

    def shutdown(self, *, stop_running: bool = True) -> None:
        if self._closed:
            return
        self._closed = True
        if stop_running:
            with self._lock:
                live = [w for w in self._runs.values() if not w.done.is_set()]
            for watch in live:
                self.stop(watch.uuid, grace=self.stop_grace)
            for watch in live:
                watch.done.wait(self.stop_grace + STOP_SLACK + 5.0)
        self._watcher.close()
        with self._lock:
            catch_ups, self._catch_ups = self._catch_ups, []
            archiving = [t for t in self._archiving if t is not threading.current_thread()]
        for thread in catch_ups:  # a final sync left to do is done before the engine goes
            thread.join(self.store_grace + STOP_SLACK)
        for thread in archiving:  # each upload is bounded by the store client's timeouts and retries
            thread.join()
        with self._lock:
            server, self._forkserver = self._forkserver, None
        if server is not None:
            server.close()  # the shims it forked carry on

    # -- logs --------------------------------------------------------------------------------------

    def logs(self, run_uuid: str, *, follow: bool = False) -> Iterator[str]:
        """Init logs in order, then the main container's; lines come without their line endings."""
        with self._lock:
            watch = self._runs.get(run_uuid)
        run_dir = watch.run_dir if watch else self.run_dir(run_uuid)
        logs_dir = run_dir / LOGS_DIR
        index, pos, pending, delay = 0, 0, b"", 0.05
        while True:
            final = not follow or self._is_final(watch, run_dir)
            files = _log_files(logs_dir)
            got = False
            while index < len(files):
                with open(files[index], "rb") as f:
                    f.seek(pos)
                    data = f.read()
                pos += len(data)
                got = got or bool(data)
                *lines, pending = (pending + data).split(b"\n")
                for line in lines:
                    yield line.decode("utf-8", "replace")
                if index + 1 < len(files) or final:  # this file is complete
                    if pending:
                        yield pending.decode("utf-8", "replace")
                    index, pos, pending = index + 1, 0, b""
                else:
                    break
            if final:
                return
            # A file tail has no event to wait on without inotify: back off while nothing comes.
            delay = 0.05 if got else min(delay * 2, 1.0)
            time.sleep(delay)

    @staticmethod
    def _is_final(watch: _Watch | None, run_dir: Path) -> bool:
        if watch is not None:
            return watch.final or watch.done.is_set()
        last = _last_status(run_dir / STATUS_FILE)
        return last is None or last in FINAL_EXECUTOR_STATUSES

    # -- called by the watcher thread --------------------------------------------------------------

    def _read_status(self, watch: _Watch) -> None:
        """Deliver every complete line of the status file after ``watch.offset``.

        The file is kept open while the run is watched (one ``pread`` per wake-up, not an open, a few seeks and
        a close: the watcher thread shares the engine's GIL).
        """
        if watch.status_fd is None:
            try:
                watch.status_fd = os.open(watch.status_path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return
        chunks: list[bytes] = []
        position = watch.offset
        while chunk := os.pread(watch.status_fd, STATUS_READ, position):
            chunks.append(chunk)
            position += len(chunk)
            if len(chunk) < STATUS_READ:
                break
        data = b"".join(chunks)
        end = data.rfind(b"\n") + 1
        watch.offset += end
        for raw in data[:end].splitlines():
            try:
                line = json.loads(raw)
            except ValueError:
                log.warning("run %s: unreadable status line %r", watch.uuid, raw)
                continue
            self._deliver(watch, line)

    def _deliver(self, watch: _Watch, line: dict[str, Any]) -> None:
        if watch.final:
            return  # a final status is never followed by another one
        watch.seq = max(watch.seq, int(line.get("seq", 0)))
        status = str(line["status"])
        message = str(line.get("message") or "")
        outputs = None
        if status in FINAL_EXECUTOR_STATUSES:
            watch.final = True
            outputs, problem = read_outputs(watch.outputs_dir)
            if problem:
                message = f"{message}\n{problem}" if message else problem
        update = ExecutorUpdate(
            run_uuid=watch.uuid,
            status=status,
            reason=str(line.get("reason") or ""),
            message=message,
            outputs=outputs,
            url=line.get("url"),
            at=float(line.get("at") or time.time()),
        )
        archive = self.log_archive
        # A run synced to a bucket has its folder, logs included, there already.
        if (
            watch.final
            and archive is not None
            and not self._bucket(watch)
            and not archive.holds(watch.run_dir / LOGS_DIR)
        ):
            # Off the watcher thread (an upload may take seconds); the final status follows the archive, so a
            # run reported final has its logs in the store (or a warning saying they stayed here).
            thread = threading.Thread(target=self._archive_then_deliver, args=(watch, update, archive),
                                      name=f"polynb-log-archive-{watch.uuid[:8]}", daemon=True)  # fmt: skip
            with self._lock:
                self._archiving.add(thread)
            thread.start()
            return
        _call(watch, update)

    def _archive_then_deliver(self, watch: _Watch, update: ExecutorUpdate, archive: LogArchive) -> None:
        try:
            archive.archive(watch.uuid, watch.run_dir / LOGS_DIR)
        except Exception:  # never lose the final status to a store's bug
            log.exception("run %s: archiving its logs to the %s failed", watch.uuid, archive)
        finally:
            _call(watch, update)
            with self._lock:
                self._archiving.discard(threading.current_thread())

    def _finish(self, watch: _Watch) -> None:
        """The shim is gone: reap it, deliver the rest, and end the run ourselves if it could not."""
        with self._lock:
            if watch.child:
                try:
                    _, wait_status = os.waitpid(watch.pid, 0)
                except ChildProcessError:  # reaped by the kernel: this process ignores SIGCHLD (its parent did)
                    pass
                else:
                    watch.exit_code = os.waitstatus_to_exitcode(wait_status)
                self._children.discard(watch.pid)
            elif watch.pid > 0 and not watch.forked:  # (waitpid(0) would reap any child of ours)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(watch.pid, os.WNOHANG)  # a shim of an earlier executor in this process
            watch.alive = False
        self._read_status(watch)
        if not watch.final and watch.forked and (server := self._forkserver) is not None:
            watch.exit_code = server.exit_code(watch.pid)  # for the verdict: the server reaped it
        if not watch.final:
            with _run_lock(watch.run_dir) as ours:
                self._read_status(watch)  # another engine may have written the verdict meanwhile
                if ours and not watch.final:
                    self._write_verdict(watch)
            if not ours and not watch.final:
                # A live process holds the run's lock (a shim not known here, or an engine writing the
                # verdict): follow the run as one whose shim is not known by pid, until the lock is free.
                with self._lock:
                    watch.pid, watch.start_time, watch.child, watch.alive = 0, None, False, True
                    watch.pipe_fd = watch.pidfd = None  # the caller closes the old ones
                    watch.forked = False
                self._watcher.add(watch)
                return
        self._catch_up(watch)
        _close_status(watch)
        watch.done.set()

    def _bucket(self, watch: _Watch) -> bool:
        """Whether the run is synced to a bucket store (asked of the store once per run)."""
        if watch.bucket is None:
            watch.bucket = self._store_of(watch.uuid) is not None
        return watch.bucket

    def _catch_up(self, watch: _Watch) -> None:
        """Redo the final sync of a run whose shim did not finish it (killed, or the machine went down): in a
        thread of its own, since the watcher serves every run."""
        if not self._bucket(watch) or (watch.run_dir / INTERNAL_DIR / STORE_SYNCED_FILE).exists():
            return
        sync = self._store_sync(watch.uuid, str(watch.run_dir), self._store_of(watch.uuid), final=True)
        if sync is None:
            return
        thread = threading.Thread(target=self._final_sync, args=(watch, sync), name=f"polynb-store-sync-{watch.uuid}")
        with self._lock:
            self._catch_ups = [t for t in self._catch_ups if t.is_alive()] + [thread]
        thread.start()

    def _final_sync(self, watch: _Watch, sync: dict[str, Any]) -> None:
        import subprocess

        log_path = watch.run_dir / INTERNAL_DIR / STORE_SYNC_LOG
        try:
            env = {**os.environ, **watch_env(watch), **sync["env"]}
            with open(log_path, "ab") as out:
                done = subprocess.run(sync["argv"], env=env, stdout=out, stderr=subprocess.PIPE,
                                      timeout=self.store_grace, check=False)  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            why = str(exc)
        else:
            with contextlib.suppress(OSError):
                (watch.run_dir / INTERNAL_DIR / STORE_SYNCED_FILE).write_text(
                    "done\n" if done.returncode == 0 else f"failed {done.returncode}\n"
                )
            if done.returncode == 0:
                return
            why = done.stderr.decode("utf-8", "replace").strip() or f"exit code {done.returncode}"
        log.warning("run %s: artifacts store %s: the final sync failed (%s); the run's files are kept at %s",
                    watch.uuid, sync["connection"], why, watch.run_dir)  # fmt: skip

    def _write_verdict(self, watch: _Watch) -> None:
        """End a run whose shim died without a final status (under the run's lock: one writer, one seq)."""
        _kill_orphans(watch.run_dir)
        if watch.stop_requested:
            status, reason, message = "stopped", "Stopped", "stopped on request (the run was killed)"
        else:
            code = "" if watch.exit_code is None else f" ({local_shim.exit_description(watch.exit_code)})"
            status, reason = "failed", "ProcessLost"
            who = f"pid {watch.pid}" if watch.pid > 0 else "its pid not known yet"
            message = f"the run's supervisor ({who}) ended without a final status{code}"
        line = status_line(watch.seq + 1, time.time(), status, reason, message, None)
        with open(watch.status_path, "ab") as f:
            f.write(line)
        self._read_status(watch)

    def _locate(self, watch: _Watch) -> bool:
        """A re-attached run whose shim was not known by pid: open a pidfd once its identity names it.

        Returns False when there is nothing to wait for any more (the shim is gone: it held the run's lock).
        """
        shim = _read_shim_file(watch.run_dir)
        if shim is not None:
            pid, start_time, _ = shim
            with contextlib.suppress(ProcessLookupError):
                pidfd = os.pidfd_open(pid)
                if start_time is not None and proc_start_time(pid) == start_time:
                    with self._lock:
                        watch.pid, watch.start_time, watch.pidfd = pid, start_time, pidfd
                        if watch.stop_requested:
                            self._signal(watch, signal.SIGTERM)  # asked while we could not reach it
                    return True
                os.close(pidfd)
        return _run_locked(watch.run_dir)

    def _kill_overdue(self, watch: _Watch) -> None:
        """A stop's grace is long past and the shim still runs: kill it; ``_finish`` ends the run."""
        watch.kill_at = None
        with self._lock:
            self._signal(watch, signal.SIGKILL)


class _Watcher(threading.Thread):
    """The one thread that waits on every run (epoll: pipes, pidfds, a wake-up pipe)."""

    def __init__(self, executor: LocalExecutor) -> None:
        super().__init__(name="polynb-local-executor", daemon=True)
        self._executor = executor
        self._epoll = select.epoll()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._epoll.register(self._wake_r, select.EPOLLIN)
        self._lock = threading.Lock()
        self._pending: list[_Watch] = []
        self._by_fd: dict[int, _Watch] = {}
        self._watches: set[_Watch] = set()
        self._closing = False

    def add(self, watch: _Watch) -> None:
        with self._lock:
            self._pending.append(watch)
        self.wake()

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"x")

    def close(self) -> None:
        """Stop watching (the shims carry on: their writes to our closed pipes fail and are ignored)."""
        self._closing = True
        self.wake()
        if threading.current_thread() is not self:  # shutdown() may be called from an on_update callback
            self.join()
        with self._lock:
            watches = [*self._watches, *self._pending]
        for watch in watches:
            for fd in (watch.pipe_fd, watch.pidfd):
                if fd is not None:
                    os.close(fd)
            _close_status(watch)
        self._by_fd.clear()
        self._epoll.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def run(self) -> None:
        while not self._closing:
            try:
                self._step()
            except Exception:  # one bad run must not stop the thread that serves them all
                log.exception("local executor watcher")

    def _step(self) -> None:
        self._take_pending()
        events = self._epoll.poll(self._timeout())
        for fd, _ in events:
            if fd == self._wake_r:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 4096)
                continue
            watch = self._by_fd.get(fd)
            if watch is None:
                continue
            if fd == watch.pipe_fd and os.read(fd, 4096):
                self._executor._read_status(watch)
            else:  # EOF on the pipe or a pidfd readable: the shim has exited
                self._end(watch)
        now = time.monotonic()
        for watch in list(self._watches):
            if watch.pipe_fd is None:
                self._executor._read_status(watch)
            if watch.pipe_fd is None and watch.pidfd is None:
                if not self._executor._locate(watch):
                    self._end(watch)
                elif watch.pidfd is not None:
                    self._by_fd[watch.pidfd] = watch
                    self._epoll.register(watch.pidfd, select.EPOLLIN)
                continue
            if watch.kill_at is not None and now >= watch.kill_at:
                self._executor._kill_overdue(watch)

    def _timeout(self) -> float:
        timeout = -1.0
        if any(w.pipe_fd is None for w in self._watches):
            timeout = TAIL_INTERVAL
        deadlines = [w.kill_at for w in self._watches if w.kill_at is not None]
        if deadlines:
            until = max(0.0, min(deadlines) - time.monotonic())
            timeout = until if timeout < 0 else min(timeout, until)
        return timeout

    def _take_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for watch in pending:
            fd = watch.pipe_fd if watch.pipe_fd is not None else watch.pidfd
            if watch.pipe_fd is None:
                # A re-attached run replays what it has so far. A submitted one (its pipe ours) is read when its shim
                # wakes us: a line it writes without a wake-up (a quick run's ``starting``) waits for the next
                # one's, and read here it would cost a turn of the engine of its own while the op starts.
                self._executor._read_status(watch)
            if not watch.alive:
                self._executor._finish(watch)
                continue
            self._watches.add(watch)
            if fd is not None:  # else a live shim not known by pid yet: looked for at every tick
                self._by_fd[fd] = watch
                self._epoll.register(fd, select.EPOLLIN)

    def _end(self, watch: _Watch) -> None:
        fd = watch.pipe_fd if watch.pipe_fd is not None else watch.pidfd
        fds = [f for f in (watch.pipe_fd, watch.pidfd) if f is not None]
        if fd is not None:
            self._epoll.unregister(fd)
            del self._by_fd[fd]
        self._watches.discard(watch)
        self._executor._finish(watch)
        if fds:
            with self._executor._lock:  # _signal() checks alive under this lock before using the pidfd
                for f in fds:
                    os.close(f)


def _close_status(watch: _Watch) -> None:
    fd, watch.status_fd = watch.status_fd, None
    if fd is not None:
        os.close(fd)


def _call(watch: _Watch, update: ExecutorUpdate) -> None:
    try:
        watch.on_update(update)
    except Exception:
        log.exception("run %s: on_update failed", watch.uuid)


def _container(
    spec: ContainerSpec,
    base_dir: Path,
    default_name: str,
    run_env: Mapping[str, str],
    connections: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """A container as the shim runs it: ``command``/``args`` and ``env`` values expanded by Kubernetes' rule
    (:mod:`polynb.executors.expansion`) against what a pod declares for it, in the pod's order: its own ``env``,
    polynb's run variables (``run_env``), then the ``env`` of its connections that these do not set. What
    only this machine has (a host path's variable, the engine's environment) is in the process's environment
    but is not a reference, as on a cluster."""
    name = _LOG_NAME.sub("-", spec.name or default_name).strip("-") or default_name
    declared = {**declared_env(spec.env), **run_env}
    linked = [(str(v["name"]), str(v.get("value", ""))) for c in connections for v in c.get("env") or ()]
    declared = declared_env([(k, v) for k, v in linked if k not in declared], declared)
    return {
        "name": name,
        "argv": expand_argv(spec.argv, declared),
        # A connection's host path first: the op's own env wins, as on Kubernetes.
        "env": {**local_env(connections), **declared},
        "cwd": str(base_dir / spec.working_dir) if spec.working_dir else str(base_dir),
    }


def watch_env(watch: _Watch) -> dict[str, str]:
    """What the sync of a run needs of the run's own variables (its warnings go to the run's events file)."""
    return {"POLYAXON_RUN_OUTPUTS_PATH": str(watch.outputs_dir), "POLYAXON_RUN_UUID": watch.uuid}


def read_outputs(outputs_dir: Path) -> tuple[dict[str, Any] | None, str]:
    """The run's ``outputs.json`` (``{}`` when there is none) and a problem to report, if any."""
    path = outputs_dir / OUTPUTS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, ""
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"outputs: cannot read {path}: {exc}"
    try:
        data = json.loads(text)
    except ValueError as exc:
        return None, f"outputs: {path} is not valid JSON: {exc}"
    if not isinstance(data, dict):
        return None, f"outputs: {path} must hold a JSON object, not {type(data).__name__}"
    return data, ""


def _write_stop(run_dir: Path, grace: float) -> None:
    with contextlib.suppress(OSError):
        (run_dir / INTERNAL_DIR / STOP_FILE).write_text(f"{grace}\n")


def _make_internal(internal: Path) -> bool:
    """Make the run's bookkeeping folder (and the run's folder): True if it was not there (a first attempt, so
    nothing stale is left in it)."""
    try:
        os.mkdir(internal.parent)  # a first attempt's run folder is new: two mkdir calls, no os.makedirs walk
    except FileExistsError:
        pass
    except FileNotFoundError:  # a new artifacts root
        os.makedirs(internal.parent, exist_ok=True)
    try:
        # Its owner's only: op.json and the shim's spec hold the env of the connections the op names.
        os.mkdir(internal, 0o700)
    except FileExistsError:
        return False
    return True


def _lock_run(internal: Path) -> int | None:
    """Take the run's lock for a shim about to start (an fd above 3: see ``launch.spawn_shim``), None if held."""
    fd = os.open(internal / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    if fd <= LOCK_FD:  # dup2() onto itself keeps close-on-exec, and 0-2 are replaced in the shim
        moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, LOCK_FD + 1)
        os.close(fd)
        fd = moved
    return fd


@contextlib.contextmanager
def _run_lock(run_dir: Path) -> Iterator[bool]:
    """Hold the run's lock if free: yields False while a live process (a shim) holds it."""
    try:
        fd = _lock_run(run_dir / INTERNAL_DIR)
    except OSError:  # no bookkeeping folder (cleaned up): nothing runs there
        yield True
        return
    if fd is None:
        yield False
        return
    try:
        yield True
    finally:
        os.close(fd)


def _run_locked(run_dir: Path) -> bool:
    """Whether a shim of this run is alive: it holds the run's lock from before it starts until it exits."""
    try:
        fd = os.open(run_dir / INTERNAL_DIR / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _identify(pid: int, pipe_fd: int) -> tuple[int | None, int | None]:
    """A pidfd and the start time of a shim that is not our child, if it is still alive: else (None, None).

    Someone else reaps it, so its pid may name another process once it has exited. The shim alone holds
    the pipe's write end (the fork server closes its copy before it replies), until it exits: no hang-up
    after the pidfd is open and the start time read means both are the shim's.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None, None
    start_time = proc_start_time(pid)
    poller = select.poll()
    poller.register(pipe_fd, select.POLLIN)
    if any(events & select.POLLHUP for _, events in poller.poll(0)):
        os.close(pidfd)  # it has exited: the pipe's EOF ends the run, nothing is left to signal
        return None, None
    return pidfd, start_time


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _read_shim_file(run_dir: Path) -> tuple[int, int | None, int] | None:
    """The shim's ``(pid, start time, status offset)``: the first line of the run's lock file, or for a run of an
    earlier polynb its ``.executor/shim`` file; None while neither has it whole (the shim writes it in place: a
    line without its newline is one being written)."""
    internal = run_dir / INTERNAL_DIR
    with contextlib.suppress(OSError):
        with open(internal / LOCK_FILE, "rb") as f:
            identity = parse_identity(f.read(IDENTITY_READ))
        if identity is not None:
            return identity
    try:
        return parse_identity((internal / SHIM_FILE).read_bytes(), shim_file=True)
    except OSError:
        return None


def _kill_orphans(run_dir: Path) -> None:
    """Kill the process groups of a lost shim's containers.

    A group whose leader is alive is killed only if the leader's start time matches; a group whose leader
    is gone is killed by id, which the kernel does not hand out again while the group has members.
    """
    lines: list[str] = []
    for name in (LOCK_FILE, PROCS_FILE):  # the procs file: a run started by an earlier polynb
        with contextlib.suppress(OSError):
            lines += (run_dir / INTERNAL_DIR / name).read_text().splitlines()
    for line in lines:
        parts = line.split(maxsplit=2)
        if len(parts) < 2 or (len(parts) == 3 and parts[2].startswith(IDENTITY_TAG + " ")):
            continue  # (the identity line: the shim, gone already)
        pid, start = int(parts[0]), parts[1]
        current = proc_start_time(pid)
        if current is not None and str(current) != start:
            continue  # the pid now belongs to someone else
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)


def _last_status(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            lines = f.read().splitlines()
    except OSError:
        return None
    for raw in reversed(lines):
        with contextlib.suppress(ValueError, KeyError, TypeError):
            return str(json.loads(raw)["status"])
    return None


def _log_files(logs_dir: Path) -> list[Path]:
    inits: list[tuple[int, Path]] = []
    with contextlib.suppress(FileNotFoundError):
        for path in logs_dir.iterdir():
            index = init_log_index(path.name)
            if index is not None:
                inits.append((index, path))
    files = [path for _, path in sorted(inits)]
    main = logs_dir / MAIN_LOG
    if main.exists():
        files.append(main)
    return files


def _remove_inside(path: Path, run_dir: Path) -> None:
    """Remove a file, link or folder, but only strictly inside the run folder, and never logs/outputs."""
    root = run_dir.resolve()
    parent = path.parent.resolve()
    if not (parent == root or root in parent.parents):
        return
    rel = (parent / path.name).relative_to(root)
    if rel.parts and rel.parts[0] in KEPT:
        return
    import shutil

    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
