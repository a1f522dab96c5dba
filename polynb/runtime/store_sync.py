"""Sync a run's folder with its artifacts store: the process beside a local run, and the Kubernetes sidecar.

    python -m polynb.runtime.store_sync up   --source DIR --target URL [--every SECONDS]
    python -m polynb.runtime.store_sync down --source URL --target DIR [--every SECONDS]

``up`` copies the files under ``DIR`` that are new or changed (size and modification time) to ``URL``
(``s3://bucket/prefix``, ``gs://...``, ``az://...``/``wasbs://...``, or a plain folder); ``down`` the reverse.
With ``--every`` it syncs every that many seconds until SIGTERM or SIGINT, then once more (the final sync) and
exits 0; without, it syncs once. Nothing is ever deleted on either side. An object appears whole or not at all:
a bucket's put is atomic, a folder's file is written beside its name and renamed.

A failing pass is retried with back-off (``--retries``); when a pass still fails the periodic loop says so on
stderr (and, with ``--alert``, as a ``warning`` alert event of the run: :func:`polynb.runtime.tracking.alert`)
and carries on at the next tick. A single sync, or the final one, that fails after its retries exits 1 with a
one-line reason on stderr. The local side is only read (``up``) or written (``down``): a store that fails never
costs the local copy.

Credentials and the endpoint come from the environment as for any bucket connection (:mod:`polynb.buckets`:
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, ...), after the ``env`` of the
connection entry in ``POLYNB_STORE_CONNECTION`` (JSON: ``name``, ``kind``, ``schema``, ``env``), whose name is
the one errors give. This module imports nothing of the engine: it runs in pods from polynb's image.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final, Protocol, TypeVar

from polynb.buckets import BUCKET_KINDS, Bucket, BucketError, bucket_of

CONNECTION_ENV: Final = "POLYNB_STORE_CONNECTION"
"""The artifacts store's connection entry as JSON (its ``name`` names the store in errors, its ``env`` comes
before this process's environment)."""
RETRIES: Final = 4
"""Attempts of one pass before it counts as failed."""
FIRST_BACKOFF: Final = 0.5
"""Seconds before the second attempt; doubled for each next one."""
MAX_BACKOFF: Final = 30.0
SMALL_FILE: Final = 16 * 2**20
"""Files up to this size are read whole and put in one request (what was read is what the size says); larger
ones go through the backend's own (multipart) upload."""
_KINDS_OF_SCHEME: Final = {
    "s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs",
    "wasb": "wasb", "wasbs": "wasb", "abfs": "wasb", "abfss": "wasb", "az": "wasb",
}  # fmt: skip
_TMP_MARK: Final = ".store-sync-"
"""In the names of files being written into a folder (renamed once whole; never synced themselves)."""

T = TypeVar("T")


class StoreError(Exception):
    """The store could not be read or written (after the back-end's own retries): one line, for humans."""


@dataclass(frozen=True, slots=True)
class Entry:
    size: int
    mtime: float
    """Seconds since the epoch: a file's modification time, an object's upload time."""


class Side(Protocol):
    """The store side of a sync: a bucket prefix or a folder, by paths relative to its root."""

    label: str

    def listing(self) -> dict[str, Entry]: ...

    def put(self, local: Path, rel: str, size: int, mtime: float) -> None: ...

    def get(self, rel: str, local: Path) -> None: ...


class FolderSide:
    """A plain folder (a host path, a mounted claim)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.label = str(root)

    def listing(self) -> dict[str, Entry]:
        if not self.root.exists():
            return {}
        if not self.root.is_dir():
            raise StoreError(f"{self.root}: not a folder")
        return {rel: Entry(st.st_size, st.st_mtime) for rel, _, st in walk(self.root, ())}

    def put(self, local: Path, rel: str, size: int, mtime: float) -> None:
        dest = self.root / rel
        with open(local, "rb") as src:  # a local error (gone, unreadable) is the caller's, not the store's
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                _copy_atomic(src, dest, size, mtime)
            except OSError as exc:
                raise StoreError(f"{self.root}: cannot write {rel}: {exc.strerror or exc}") from None

    def get(self, rel: str, local: Path) -> None:
        try:
            src = open(self.root / rel, "rb")  # noqa: SIM115 - closed below, errors told apart from the local side's
            size = os.fstat(src.fileno()).st_size
        except OSError as exc:
            raise StoreError(f"{self.root}: cannot read {rel}: {exc.strerror or exc}") from None
        with src:
            mtime = os.fstat(src.fileno()).st_mtime
            local.parent.mkdir(parents=True, exist_ok=True)
            _copy_atomic(src, local, size, mtime)


class BucketSide:
    """A bucket prefix through fsspec (``s3fs``, ``gcsfs``, ``adlfs``), reached as :mod:`polynb.buckets` does."""

    def __init__(self, bucket: Bucket) -> None:
        self.bucket = bucket
        self.label = f"{bucket.scheme}://{bucket.root}"

    def _fs(self) -> Any:
        try:
            return self.bucket.filesystem()
        except BucketError as exc:
            raise StoreError(str(exc)) from None

    def listing(self) -> dict[str, Entry]:
        try:
            objects = self.bucket.objects()
        except BucketError as exc:
            raise StoreError(str(exc)) from None
        cut = len(self.bucket.prefix) + 1 if self.bucket.prefix else 0
        return {
            o.key[cut:]: Entry(o.size, o.last_modified.timestamp() if o.last_modified else 0.0)
            for o in objects
            if o.key[cut:]
        }

    def put(self, local: Path, rel: str, size: int, mtime: float) -> None:
        fs, path = self._fs(), f"{self.bucket.root}/{rel}"
        data = None
        if size <= SMALL_FILE:
            with open(local, "rb") as f:  # a local error (gone, unreadable) is the caller's, not the store's
                data = f.read(size)  # what the size recorded for this pass says, even if the file grows
        try:
            if data is not None:
                fs.pipe_file(path, data)
            else:
                fs.put_file(str(local), path)
        except FileNotFoundError:
            if not local.exists():
                raise  # the file went away meanwhile: nothing to send
            raise StoreError(self.bucket.describe(FileNotFoundError("no such bucket"))) from None
        except Exception as exc:  # anything the client raises (network, auth, server) is the store's failure
            raise StoreError(self.bucket.describe(exc)) from None

    def get(self, rel: str, local: Path) -> None:
        fs, path = self._fs(), f"{self.bucket.root}/{rel}"
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f"{local.name}{_TMP_MARK}{os.getpid()}")
        try:
            fs.get_file(path, str(tmp))
            os.replace(tmp, local)
        except Exception as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise StoreError(self.bucket.describe(exc)) from None


def side_of(where: str, environ: Mapping[str, str] | None = None) -> Side:
    """The store side named by a URL or a folder path (``file://`` is a folder)."""
    env = os.environ if environ is None else environ
    parts = urllib.parse.urlsplit(where)
    if "://" not in where or parts.scheme == "file":
        return FolderSide(Path(parts.path if parts.scheme == "file" else where).expanduser().absolute())
    kind = _KINDS_OF_SCHEME.get(parts.scheme)
    if kind is None:
        raise StoreError(f"{where}: not a store URL (s3://, gs://, az://, wasbs:// or a folder path)")
    connection = store_connection(env)
    connection = {**connection, "name": connection.get("name") or "store", "kind": kind, "schema": {"bucket": where}}
    try:
        return BucketSide(bucket_of(connection, env))
    except ValueError as exc:
        raise StoreError(str(exc)) from None


def store_connection(environ: Mapping[str, str]) -> dict[str, Any]:
    """The connection entry given in ``POLYNB_STORE_CONNECTION`` ({} when unset)."""
    text = environ.get(CONNECTION_ENV)
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise StoreError(f"${CONNECTION_ENV} is not JSON: {exc}") from None
    if not isinstance(value, dict) or value.get("kind", "s3") not in (*BUCKET_KINDS, "host_path", "volume_claim"):
        raise StoreError(f"${CONNECTION_ENV} must be a connection entry (name, kind, schema), not {text[:80]!r}")
    return value


def walk(root: Path, excludes: Sequence[str]) -> Iterator[tuple[str, Path, os.stat_result]]:
    """Every regular file under ``root`` (``rel`` with ``/``), minus top-level ``excludes`` and our temp files."""
    top = str(root)
    for folder, dirs, files in os.walk(top):
        rel_folder = os.path.relpath(folder, top)
        if rel_folder == ".":
            dirs[:] = [d for d in dirs if d not in excludes]
            files = [f for f in files if f not in excludes]
        for name in files:
            if _TMP_MARK in name:
                continue
            path = os.path.join(folder, name)
            try:
                st = os.stat(path)
            except OSError:
                continue  # gone meanwhile
            if not _is_file(st):
                continue
            rel = name if rel_folder == "." else f"{rel_folder}/{name}".replace(os.sep, "/")
            yield rel, Path(path), st


def _is_file(st: os.stat_result) -> bool:
    import stat

    return stat.S_ISREG(st.st_mode)


def _copy_atomic(src: BinaryIO, dest: Path, size: int, mtime: float) -> None:
    """``size`` bytes of ``src`` to ``dest`` through a temp name beside it, with ``mtime``."""
    tmp = dest.with_name(f"{dest.name}{_TMP_MARK}{os.getpid()}")
    try:
        with open(tmp, "wb") as out:
            left = size
            while left > 0:
                chunk = src.read(min(left, 1 << 20))
                if not chunk:
                    break
                out.write(chunk)
                left -= len(chunk)
        os.utime(tmp, (mtime, mtime))
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@dataclass
class Totals:
    passes: int = 0
    files: int = 0
    bytes: int = 0


class Sync:
    """One direction between a local folder and a store, incremental across passes.

    What a pass sent (or fetched) is remembered by size and modification time: a file is sent again only when
    either changed. The first pass lists the other side once, so a sync restarted after a crash (a later engine
    finishing a run's final sync) skips what is already there: same size, and stored no earlier than the local
    file was last changed."""

    def __init__(self, direction: str, local: Path, store: Side, excludes: Sequence[str] = ()) -> None:
        self.direction = direction
        self.local = local
        self.store = store
        self.excludes = tuple(excludes)
        self.done: dict[str, tuple[int, float]] = {}
        self.unreadable: dict[str, tuple[int, float]] = {}
        self.primed = False
        self.totals = Totals()

    def run_pass(self) -> int:
        """One pass; returns the files moved (raises :class:`StoreError`)."""
        moved = self._up() if self.direction == "up" else self._down()
        self.totals.passes += 1
        return moved

    def _up(self) -> int:
        if not self.local.is_dir():
            return 0  # nothing written yet
        there = {} if self.primed else self.store.listing()
        self.primed = True
        moved = 0
        for rel, path, st in walk(self.local, self.excludes):
            key = (st.st_size, st.st_mtime)
            if self.done.get(rel) == key:
                continue
            known = there.get(rel)
            if known is not None and known.size == st.st_size and known.mtime >= st.st_mtime:
                self.done[rel] = key
                continue
            try:
                self.store.put(path, rel, st.st_size, st.st_mtime)
            except FileNotFoundError:
                continue  # removed since it was listed
            except PermissionError as exc:  # this file only: the others still go
                if self.unreadable.get(rel) != key:
                    self.unreadable[rel] = key
                    _say(f"store_sync: {path}: not sent: {exc.strerror or exc}")
                continue
            self.done[rel] = key
            moved += 1
            self.totals.files += 1
            self.totals.bytes += st.st_size
        return moved

    def _down(self) -> int:
        moved = 0
        for rel, entry in sorted(self.store.listing().items()):
            if not _safe(rel):
                continue
            key = (entry.size, entry.mtime)
            if self.done.get(rel) == key:
                continue
            dest = self.local / rel
            with contextlib.suppress(OSError):
                st = dest.stat()
                if not self.primed and st.st_size == entry.size and st.st_mtime >= entry.mtime:
                    self.done[rel] = key
                    continue
            self.store.get(rel, dest)
            if entry.mtime:
                with contextlib.suppress(OSError):
                    os.utime(dest, (entry.mtime, entry.mtime))  # the next start compares against it
            self.done[rel] = key
            moved += 1
            self.totals.files += 1
            self.totals.bytes += entry.size
        self.primed = True
        return moved


def _safe(rel: str) -> bool:
    """An object's relative name that stays inside the target folder."""
    parts = rel.split("/")
    return bool(rel) and not rel.startswith("/") and ".." not in parts and "" not in parts


def with_retries(
    attempt: Callable[[], T], *, retries: int, backoff: float, wait: Callable[[float], object] = time.sleep
) -> T:
    """``attempt()`` up to ``retries`` times, waiting ``backoff``, then twice that, ... between failures."""
    delay = backoff
    for left in range(retries - 1, -1, -1):
        try:
            return attempt()
        except StoreError:
            if left == 0:
                raise
        wait(delay)
        delay = min(delay * 2, MAX_BACKOFF)
    raise AssertionError("unreachable")


class Runner:
    """The command: a single sync, or a loop until a signal and then the final sync."""

    def __init__(
        self, sync: Sync, *, every: float | None, retries: int, alert: bool, name: str | None, parent: int | None = None
    ) -> None:
        self.sync = sync
        self.every = every
        self.parent = parent
        """Stop (with the final sync) once this process is no longer our parent (the local run's shim died)."""
        self.retries = max(1, retries)
        self.alert = alert
        self.name = name
        self.stop = threading.Event()
        self.failing = False

    def main(self) -> int:
        if self.every is None:
            return self._final()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop.set())
        # A local run's shim starts us with both blocked, so a stop sent before this point waits for the handler.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGTERM, signal.SIGINT))
        while not self.stop.is_set():
            if self.parent is not None and os.getppid() != self.parent:
                break
            try:
                with_retries(self.sync.run_pass, retries=self.retries, backoff=FIRST_BACKOFF, wait=self.stop.wait)
            except StoreError as exc:
                self._failed(str(exc), final=False)
            else:
                if self.failing:
                    self.failing = False
                    _say(f"store_sync: {self.sync.store.label} answers again")
            self.stop.wait(self.every)
        return self._final()

    def _final(self) -> int:
        try:
            with_retries(self.sync.run_pass, retries=self.retries, backoff=FIRST_BACKOFF)
        except StoreError as exc:
            self._failed(str(exc), final=True)
            return 1
        totals = self.sync.totals
        print(f"store_sync: {self.sync.direction} {totals.files} files, {totals.bytes} bytes, "
              f"{totals.passes} passes: {self.sync.store.label}", flush=True)  # fmt: skip
        return 0

    def _failed(self, reason: str, *, final: bool) -> None:
        kept = f"the local copy is kept at {self.sync.local}" if self.sync.direction == "up" else "nothing was removed"
        what = "the final sync failed" if final else "sync failed, retrying at the next tick"
        store = f"artifacts store {self.name}: " if self.name else ""
        line = f"store_sync: {store}{reason}; {what}; {kept}"
        _say(line)
        if self.alert and (final or not self.failing):
            _alert(line, self.name or self.sync.store.label, self.sync.local)
        self.failing = True


def _say(line: str) -> None:
    print(" ".join(line.split()), file=sys.stderr, flush=True)


def _alert(message: str, connection: str, path: Path) -> None:
    """A ``warning`` alert on the run (its events file), when this process runs inside one."""
    if not os.environ.get("POLYAXON_RUN_OUTPUTS_PATH"):
        return
    from polynb.runtime.tracking import alert

    try:
        alert("warning", message, connection=connection, path=str(path), reason="ArtifactsStoreUnreachable")
    except (OSError, ValueError) as exc:
        _say(f"store_sync: could not record the warning: {exc}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m polynb.runtime.store_sync", description=__doc__.split("\n\n")[0])
    parser.add_argument("direction", choices=("up", "down"), help="up: folder to store; down: store to folder")
    parser.add_argument("--source", required=True, help="up: a folder; down: a store URL or folder")
    parser.add_argument("--target", required=True, help="up: a store URL or folder; down: a folder")
    parser.add_argument("--every", type=float, help="sync every SECONDS until SIGTERM/SIGINT, then once more")
    parser.add_argument("--retries", type=int, default=RETRIES, help=f"attempts of a pass (default {RETRIES})")
    parser.add_argument("--exclude", action="append", default=[], help="a top-level name of DIR not to send")
    parser.add_argument("--alert", action="store_true", help="a failing store is also a warning alert of the run")
    parser.add_argument("--while-parent", action="store_true", help="end (with the final sync) when the parent does")
    args = parser.parse_args(argv)
    if args.every is not None and not args.every > 0:
        parser.error("--every must be a number of seconds above 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    local_arg, store_arg = (args.source, args.target) if args.direction == "up" else (args.target, args.source)
    try:
        store = side_of(store_arg)
        name = store_connection(os.environ).get("name")
    except StoreError as exc:
        _say(f"store_sync: {exc}")
        return 1
    local = Path(local_arg).expanduser().absolute()
    sync = Sync(args.direction, local, store, args.exclude)
    parent = os.getppid() if args.while_parent else None
    name = name and str(name)
    return Runner(sync, every=args.every, retries=args.retries, alert=args.alert, name=name, parent=parent).main()


if __name__ == "__main__":
    sys.exit(main())
