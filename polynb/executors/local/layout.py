"""The names inside a local run's folder, ``$POLYNB_HOME/artifacts/<uuid>/``: the one place for them.

Written by the shim, read by the executor (and by the next engine after a restart), so both import them
from here. The shim runs in a bare ``-I -S`` interpreter where every import costs start-up time: this
module imports nothing and stays tiny.

``outputs/``, ``outputs/outputs.json``, ``outputs/tensorboard/`` and ``logs/`` are Polyaxon's names, which
users and other layers see too (``store.paths.run_paths``, ``compiler.params.artifacts_of``,
``runtime.tracking``); everything under ``.executor/`` is the executor's own bookkeeping.
"""

from __future__ import annotations

STATUS_FILE = "status.jsonl"
"""One JSON line per transition, appended by the shim: the source of truth for the run's statuses."""
LOGS_DIR = "logs"
MAIN_LOG = "main.log"
OUTPUTS_DIR = "outputs"
OUTPUTS_FILE = "outputs.json"
"""In ``outputs/``: written by ``polynb.tracking`` inside the op, read by the executor at the end."""
SERVICE_PAGE = "service-page.json"
"""A service's page (``path``, under its base URL) and token, written by its program in the run folder
(``polynb.hub.jupyterlab``; its own constant there): the shim reports the page as the run's URL."""
TENSORBOARD_DIR = "tensorboard"
"""In ``outputs/``."""

SPARE_FOLDERS_DIR = ".polynb-spare"
"""In an artifacts root, beside the run folders: run folders made ahead (:mod:`.spare_folders`)."""

INTERNAL_DIR = ".executor"
SPEC_FILE = "spec.bin"
"""marshal: written by the executor, read by the shim (same interpreter); only for a spawned shim or a spec too
large for a fork server request (a forked shim gets its spec with the request)."""
SPARE_MAIN_LOG = "main.log.spare"
"""In a spare run folder (:mod:`.spare_folders`): an empty file the shim renames to ``logs/main.log`` when it starts
the main container (``main.log`` exists once that container has started: readers of the logs rely on it)."""
OP_FILE = "op.json"
"""The CompiledOp, for humans and for TensorBoard run names."""
SHIM_FILE = "shim"
"""``<pid> <start time> <status offset>`` of the shim, one line: where the shims of earlier polynb versions wrote
their identity (read for their runs, never written; see :data:`LOCK_FILE`)."""
LOCK_FILE = "lock"
"""``flock()``ed by the shim all its life: taken by the executor before the spawn and inherited, so "held"
means "a shim of this run is alive" even before its pid is known. Its first line is the shim's identity,
``<pid> <start time> shim <status offset>`` (:func:`identity_line`), written with one ``write`` before its
first status line and read only whole, newline included: the run's handle on disk. The shim then appends
``<pid> <start time> <name>`` per container it starts, to kill the orphans of a lost shim (the file is emptied
by the executor before a retry)."""
IDENTITY_TAG = "shim"
"""The third word of the identity line: never a container's name, which has no spaces (a line of an earlier
polynb's lock file, ``<pid> <start time> <name>``, is never taken for it)."""
LOCK_FD = 3
"""The file descriptor where the shim finds that lock."""
PROCS_FILE = "procs"
"""Where the shims of earlier polynb versions wrote the lines now in the lock file (read for their runs, never
written)."""
CREATED_FILE = "created"
"""Paths made by init entries, one a line, removed by ``cleanup()``."""
STOP_FILE = "stop"
"""The grace period of a requested stop, read by the shim when SIGTERM arrives."""
SHIM_LOG = "shim.log"
"""The shim's own stderr (tracebacks of executor bugs): made by a forked shim when it first writes there."""
STORE_SYNC_LOG = "store-sync.log"
"""The output of the process syncing the run's folder to its bucket artifacts store (if it has one)."""
STORE_SYNCED_FILE = "store-synced"
"""Written by the shim once it tried the final sync to the bucket store (``done`` or ``failed <code>``): a run
without it lost its shim before that, and the engine that ends the run does the final sync."""

KEPT = (LOGS_DIR, OUTPUTS_DIR, STATUS_FILE)
"""What ``cleanup()`` never removes."""


def identity_line(pid: int, start_time: int | None, status_offset: int) -> bytes:
    """The first line of the lock file: who the shim is, and where its status lines begin."""
    return f"{pid} {start_time} {IDENTITY_TAG} {status_offset}\n".encode()


def parse_identity(data: bytes, *, shim_file: bool = False) -> tuple[int, int | None, int] | None:
    """``(pid, start time, status offset)`` from the start of a lock file (``shim_file``: the whole of an earlier
    version's shim file, ``<pid> <start time> <status offset>``); None unless that first line is whole (a line
    without its newline is one being written) and is an identity."""
    line, newline, _ = data.partition(b"\n")
    words = line.split()
    if shim_file and len(words) == 3:
        words.insert(2, IDENTITY_TAG.encode())
    if not newline or len(words) != 4 or words[2] != IDENTITY_TAG.encode():
        return None
    try:
        pid, start, offset = int(words[0]), words[1], int(words[3])
        return pid, None if start == b"None" else int(start), offset
    except ValueError:
        return None


def init_log(index: int, kind: str) -> str:
    """The log of init entry ``index`` (in ``logs/``); logs are read init entries first, in order."""
    return f"init-{index}-{kind}.log"


def init_log_index(name: str) -> int | None:
    """The entry index of an :func:`init_log` name; None for any other file."""
    if not (name.startswith("init-") and name.endswith(".log")):
        return None
    index, sep, _ = name[len("init-") : -len(".log")].partition("-")
    return int(index) if sep and index.isascii() and index.isdecimal() else None


def sidecar_log(name: str) -> str:
    """The log of a sidecar (in ``logs/``)."""
    return f"sidecar-{name}.log"
