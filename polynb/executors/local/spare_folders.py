"""Run folders made ahead of their runs: a submit renames one into place instead of making nine entries.

A first attempt's run folder needs ``<uuid>/``, ``.executor/`` with its ``lock`` and ``op.json``, ``outputs/``,
``outputs/tensorboard/``, ``logs/`` with ``main.log``, and ``status.jsonl``: on ext4 each costs tens of
microseconds, and up to a millisecond when the disk is busy (an inode is allocated), all on the way from an
upstream's end to the next op's start or end. Instead, each shim, once its run's final status is written,
tops up the *spare* folders of its artifacts root, ``<root>/.polynb-spare/``, to ``keep`` (:func:`replenish`), and
the executor's submit renames one into place (:func:`take_spare`: one ``scandir``, one ``rename``). The shims
make them, not a thread of the engine: a shim has nothing left to do then, and the engine's threads, which share
one interpreter lock, keep it for the runs.

What keeps a spare folder the same as one made on the spot:

- **What exists when.** ``logs/main.log`` exists once the main container started (the log readers take it
  to mean the init entries' logs are complete): a spare holds it as ``.executor/main.log.spare``, which the shim
  renames into place then (a rename allocates nothing). ``.executor/op.json`` is there, empty, until the shim
  writes it: its reader takes an empty one as a missing one.
- **Modes.** A folder gets its creator's umask, owner and group: a spare's name starts with those
  (``v1-<euid>-<egid>-<umask>-<token>``), written by the shim, which has the engine's; a submit takes only a spare
  whose prefix is the engine's now.
- **Only complete ones.** A spare is made under a hidden name (``.v1-...``) and renamed to its final name when
  complete: a submit never takes half of one. Hidden leftovers of a process that died meanwhile are removed after
  an hour.
- **Only new runs.** A run folder that exists (a retry) is never replaced: the submit makes what is missing, as
  before.
- **Races.** Two engines sharing a root and taking the same spare: ``rename`` succeeds for one; the other finds
  it gone and tries the next. Shims ending together: one of them tops up (a ``lockf`` on ``.lock``), the others
  leave it.

A spare holds nothing of any run: those left when an engine exits are taken by the next one.

Imported by the shim, whose start-up every op pays: ``os`` and ``time`` only (no ``typing``).
"""

from __future__ import annotations

import os
import time

from polynb.executors.local.layout import (
    INTERNAL_DIR,
    LOCK_FILE,
    LOGS_DIR,
    OP_FILE,
    OUTPUTS_DIR,
    SPARE_FOLDERS_DIR,
    SPARE_MAIN_LOG,
    STATUS_FILE,
    TENSORBOARD_DIR,
)

KEEP = 2
"""Spares kept ready per artifacts root and prefix: a chain takes one per hop, made while the ops before it ran."""
STALE_AFTER = 3600.0
"""Seconds after which a hidden (incomplete) spare is the leftover of a process that died making it."""
VERSION = "v1"
"""In every spare's name: a later layout of the run folder changes it, and older spares are then never taken."""
TOP_UP_LOCK = ".lock"
"""In the spares' folder: held by the shim topping them up."""


def spares_dir(root: str) -> str:
    """Where the spare folders of the run folders in ``root`` are kept."""
    return os.path.join(root, SPARE_FOLDERS_DIR)


def spare_prefix(umask: int) -> str:
    """The start of the name of a spare made by this process's user and group under ``umask``."""
    return f"{VERSION}-{os.geteuid()}-{os.getegid()}-{umask:03o}-"


def take_spare(run_dir: str, prefix: str) -> bool:
    """Rename a spare of ``run_dir``'s root whose name starts with ``prefix`` into place as ``run_dir``, which
    must not exist: True if done, False to make the folder on the spot."""
    if os.path.lexists(run_dir):  # a retry: its folder stays as it is
        return False
    spares = spares_dir(os.path.dirname(run_dir))
    try:
        with os.scandir(spares) as entries:
            names = [e.name for e in entries if e.name.startswith(prefix)]
    except OSError:  # none made yet
        return False
    for name in names:
        try:
            os.rename(os.path.join(spares, name), run_dir)
        except FileNotFoundError:
            continue  # taken by another engine sharing the root
        except OSError:  # (ENOTEMPTY: made meanwhile; EXDEV: a mount in between) on the spot
            return False
        try:  # noqa: SIM105 - contextlib costs start-up time
            os.utime(run_dir)  # made now, as far as `ls -t` can tell: not when the spare was
        except OSError:
            pass
        return True
    return False


def make_spare(spares: str, prefix: str) -> str:
    """Make one complete spare in ``spares`` (which must exist): its name."""
    name = prefix + os.urandom(6).hex()
    building = os.path.join(spares, "." + name)
    os.mkdir(building)
    try:
        # The modes the executor and the shim give each entry when they make it on the spot.
        internal = os.path.join(building, INTERNAL_DIR)
        os.mkdir(internal, 0o700)
        _create(os.path.join(internal, LOCK_FILE), 0o600)
        _create(os.path.join(internal, OP_FILE), 0o666)  # (the shim's ``open(..., "w")``)
        _create(os.path.join(internal, SPARE_MAIN_LOG), 0o644)
        outputs = os.path.join(building, OUTPUTS_DIR)
        os.mkdir(outputs)
        os.mkdir(os.path.join(outputs, TENSORBOARD_DIR))
        os.mkdir(os.path.join(building, LOGS_DIR))
        _create(os.path.join(building, STATUS_FILE), 0o644)
        os.rename(building, os.path.join(spares, name))
    except BaseException:
        _remove(building)
        raise
    return name


def _create(path: str, mode: int) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))


def replenish(spares: str, prefix: str, keep: int = KEEP) -> None:
    """Make spares in ``spares`` until ``keep`` of ``prefix`` are there, unless another process is at it. Raises
    OSError when none can be made (a read-only or full disk): the runs there make their folders on the spot."""
    try:
        fd = os.open(os.path.join(spares, TOP_UP_LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except FileNotFoundError:
        os.makedirs(spares, exist_ok=True)
        fd = os.open(os.path.join(spares, TOP_UP_LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            os.lockf(fd, os.F_TLOCK, 0)
        except OSError:  # EAGAIN, EACCES: held by another shim ending now
            return
        with os.scandir(spares) as entries:
            names = [e.name for e in entries]
        for _ in range(keep - sum(n.startswith(prefix) for n in names)):
            make_spare(spares, prefix)
        hidden = [n for n in names if n.startswith(".") and n != TOP_UP_LOCK]
        if hidden:
            _sweep(spares, hidden)
    finally:
        os.close(fd)  # (the lock goes with it)


def _sweep(spares: str, hidden: list[str]) -> None:
    """Remove the incomplete spares of processes that died while making them."""
    now = time.time()
    for name in hidden:
        path = os.path.join(spares, name)
        try:
            if now - os.lstat(path).st_mtime > STALE_AFTER:
                _remove(path)
        except OSError:
            pass


def _remove(path: str) -> None:
    import shutil  # only for leftovers: the shim does not load it otherwise

    shutil.rmtree(path, ignore_errors=True)
