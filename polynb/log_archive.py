"""Run logs in the artifacts store: archived at the end of each run, read once the pod or process is gone and from
any ``POLYNB_HOME`` whose configuration names the same store.

The store is the connection ``artifactsStore`` names: a ``host_path`` folder or a bucket (``s3``, ``gcs``, ``wasb``,
through fsspec, :mod:`polynb.buckets`). A run's logs go to ``<store root>/<uuid>/logs/``, each container's file
under the name its executor gave it (``init-0-git.log``, ``main.log`` on the local executor; ``00-init-0-file.log``,
``01-main.log`` on Kubernetes). A ``volume_claim`` lives on the cluster, where this machine cannot write: such a
store has no archive here (the Kubernetes executor keeps its archive under ``$POLYNB_HOME``).

Nothing is lost when the store fails: the executor's own copy stays where it was written, each upload is retried,
and the last failure is a warning naming the connection and the folder that keeps the logs.

A DAG (or a sweep, a schedule) has no logs of its own: when it ends the engine writes its **index** next to where
they would be, ``<store root>/<dag uuid>/logs/dag.json`` (:data:`INDEX_FILE`): its runs that have logs, in the order
and with the labels ``polynb logs DAG`` prints (``op``, ``outer-op/inner-op``, hooks), so a home that never saw the
DAG lists its logs op by op (:func:`log_runs`, :meth:`LogArchive.write_index`, :meth:`LogArchive.read_index`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from polynb.buckets import BUCKET_KINDS, Bucket, BucketError, bucket_of
from polynb.lifecycle import PIPELINE_KINDS

if TYPE_CHECKING:
    from polynb.store import RunRecord, Store

log = logging.getLogger(__name__)

LOGS_DIR: Final = "logs"
ATTEMPTS: Final = 3
"""Uploads tried before the store is given up on for a run (its local copy stays)."""
RETRY_WAIT: Final = 0.5
"""Seconds before the second attempt; doubled before each later one."""
_UUID: Final = re.compile(r"[0-9a-f]{32}")
_HEX: Final = re.compile(r"[0-9a-f]+")
_NUMBERED: Final = re.compile(r"(\d+)-.+\.log")
_INIT: Final = re.compile(r"init-(\d+)-.+\.log")
MAIN_LOG: Final = "main.log"
INDEX_FILE: Final = "dag.json"
"""A DAG's index of its runs' logs, in its own ``logs/`` folder of the store."""
INDEX_VERSION: Final = 1


class ArchiveError(Exception):
    """The store could not be written or read; the message names the connection."""


def ordered_logs(names: list[str]) -> list[str]:
    """The run's log files in reading order: Kubernetes' numbered files (``00-…``), else init entries by index
    then ``main.log``. Sidecars' logs (``sidecar-*.log``) are not the run's and are left out, as executors do."""
    numbered = sorted((int(m.group(1)), n) for n in names if (m := _NUMBERED.fullmatch(n)))
    if numbered:
        return [n for _, n in numbered]
    inits = sorted((int(m.group(1)), n) for n in names if (m := _INIT.fullmatch(n)))
    return [n for _, n in inits] + ([MAIN_LOG] if MAIN_LOG in names else [])


def log_runs(store: Store, dag_uuid: str, prefix: str = "") -> list[tuple[str, RunRecord]]:
    """The runs of a DAG that have logs, with their label: its ops and hooks, and in place of an op running a
    nested DAG or a schedule, the runs under it (``outer-op/inner-op``, ``op/op-1``)."""
    found: list[tuple[str, RunRecord]] = []
    for run in store.children(dag_uuid, include_hooks=True):
        if run.kind in PIPELINE_KINDS and run.hook_of is None:
            found += log_runs(store, run.uuid, f"{prefix}{run.name}/")
        else:
            found.append((prefix + run.name, run))
    return found


def dag_index(store: Store, dag_uuid: str, *, status: str | None = None) -> dict[str, Any]:
    """What :meth:`LogArchive.write_index` stores for a DAG: the DAG (with ``status``, its final status, when
    given), then its runs with logs as ``polynb logs`` lists them (label, uuid, kind)."""
    dag = store.get_run(dag_uuid)
    return {
        "version": INDEX_VERSION,
        "uuid": dag.uuid,
        "name": dag.name,
        "kind": dag.kind,
        "status": status or str(dag.status),
        "runs": [{"label": label, "uuid": run.uuid, "kind": run.kind} for label, run in log_runs(store, dag_uuid)],
    }


@dataclass(frozen=True)
class LogArchive:
    """The artifacts store as this machine reaches it, for logs."""

    name: str
    """The connection's name (every message about the store names it)."""
    kind: str
    where: str
    """The store root as a user reads it (a folder, ``s3://bucket/prefix``)."""
    folder: Path | None = None
    bucket: Bucket | None = None
    connection: Mapping[str, Any] | None = None
    """The store's connection entry (as in the configuration file)."""

    def __str__(self) -> str:
        return f"artifacts store {self.name} ({self.where})"

    # -- writing ------------------------------------------------------------------------------------------

    def holds(self, logs_dir: Path) -> bool:
        """Whether ``logs_dir`` is already the store's copy (a local run under a host-path store)."""
        if self.folder is None:
            return False
        try:
            return logs_dir.resolve().parent.parent == self.folder.resolve()
        except OSError:
            return False

    def archive(self, uuid: str, logs_dir: Path, *, sleep: Callable[[float], None] = time.sleep) -> bool:
        """Copy the log files of ``logs_dir`` to ``<root>/<uuid>/logs/``, retried; True when they are there.
        On failure the logs stay in ``logs_dir`` and a warning says so, naming the connection."""
        if _UUID.fullmatch(uuid) is None or self.holds(logs_dir):
            return True
        try:
            files = sorted(p for p in logs_dir.iterdir() if p.is_file() and p.suffix == ".log")
        except OSError:
            return True  # no logs: nothing to keep
        if not files:
            return True
        wait, problem = RETRY_WAIT, ""
        for attempt in range(ATTEMPTS):
            if attempt:
                sleep(wait)
                wait *= 2
            try:
                self._put(uuid, files)
                return True
            except ArchiveError as exc:
                problem = str(exc)
        log.warning("run %s: logs not archived to the %s after %d attempts: %s; they stay in %s",
                    uuid, self, ATTEMPTS, problem, logs_dir)  # fmt: skip
        return False

    def _put(self, uuid: str, files: list[Path]) -> None:
        if self.folder is not None:
            target = self.folder / uuid / LOGS_DIR
            try:
                target.mkdir(parents=True, exist_ok=True)
                for file in files:
                    partial = target / f".{file.name}.partial"
                    partial.write_bytes(file.read_bytes())
                    os.replace(partial, target / file.name)  # readers never see half a file
            except OSError as exc:
                raise ArchiveError(f"{target}: {exc.strerror or exc}") from None
            return
        assert self.bucket is not None
        fs = self._fs()
        prefix = self._key(uuid)
        try:
            for file in files:
                fs.put_file(str(file), f"{prefix}/{file.name}")
        except Exception as exc:  # any failure of the client (network, auth, missing bucket) is the store's
            raise ArchiveError(self._describe(exc)) from None

    def write_index(self, dag_uuid: str, index: Mapping[str, Any]) -> None:
        """Store a DAG's index (:func:`dag_index`) in ``<root>/<dag uuid>/logs/dag.json``, whole or not at all;
        :class:`ArchiveError` when the store cannot be written."""
        if _UUID.fullmatch(dag_uuid) is None:
            return
        data = json.dumps(index, indent=1, sort_keys=True).encode("utf-8")
        if self.folder is not None:
            target = self.folder / dag_uuid / LOGS_DIR
            try:
                target.mkdir(parents=True, exist_ok=True)
                partial = target / f".{INDEX_FILE}.partial"
                partial.write_bytes(data)
                os.replace(partial, target / INDEX_FILE)
            except OSError as exc:
                raise ArchiveError(f"{self}: {target}: {exc.strerror or exc}") from None
            return
        fs = self._fs()
        try:
            fs.pipe_file(f"{self._key(dag_uuid)}/{INDEX_FILE}", data)
        except Exception as exc:
            raise ArchiveError(self._describe(exc)) from None

    def read_index(self, uuid: str) -> list[tuple[str, str]] | None:
        """A DAG's runs with logs as ``(label, uuid)`` from its index in the store, or None when the store has
        no index for ``uuid`` (not a DAG, or a DAG that has not ended)."""
        if INDEX_FILE not in self._names(uuid):
            return None
        try:
            if self.folder is not None:
                data = (self.folder / uuid / LOGS_DIR / INDEX_FILE).read_bytes()
            else:
                data = self._fs().cat_file(f"{self._key(uuid)}/{INDEX_FILE}")
        except ArchiveError:
            raise
        except Exception as exc:
            raise ArchiveError(self._describe(exc)) from None
        try:
            index = json.loads(data)
            runs = [(str(r["label"]), str(r["uuid"])) for r in index["runs"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise ArchiveError(f"{self}: {uuid}/{LOGS_DIR}/{INDEX_FILE} is not a DAG's index: {exc}") from None
        return [(label, run) for label, run in runs if _UUID.fullmatch(run)]

    # -- reading ------------------------------------------------------------------------------------------

    def read(self, uuid: str) -> list[str] | None:
        """The archived log lines of run ``uuid`` (its containers in order), or None when the store has none."""
        chosen = ordered_logs(self._names(uuid))
        if not chosen:
            return None
        if self.folder is not None:
            folder = self.folder / uuid / LOGS_DIR
            try:
                return [line for n in chosen for line in _lines((folder / n).read_bytes())]
            except OSError as exc:
                raise ArchiveError(f"{self}: {folder}: {exc.strerror or exc}") from None
        fs, prefix = self._fs(), self._key(uuid)
        try:
            return [line for n in chosen for line in _lines(fs.cat_file(f"{prefix}/{n}"))]
        except Exception as exc:
            raise ArchiveError(self._describe(exc)) from None

    def has(self, uuid: str) -> bool:
        """Whether the store has logs of run ``uuid``, or the index of DAG ``uuid`` (one listing, nothing read)."""
        names = self._names(uuid)
        return bool(ordered_logs(names)) or INDEX_FILE in names

    def find(self, ref: str) -> list[str]:
        """The uuids of runs the store has logs (or a DAG's index) for that are ``ref`` or start with it (one
        listing of the root, then one of each match's logs folder)."""
        ref = ref.strip().lower().replace("-", "")
        if _HEX.fullmatch(ref) is None or len(ref) > 32:
            return []
        if len(ref) == 32:
            return [ref] if self.has(ref) else []
        if self.folder is not None:
            try:
                names = [e.name for e in os.scandir(self.folder) if e.is_dir()]
            except OSError:
                return []
        else:
            fs = self._fs()
            root = self.bucket.root if self.bucket is not None else ""
            try:
                names = [str(p).rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(root, detail=False)]
            except FileNotFoundError:
                return []
            except Exception as exc:
                raise ArchiveError(self._describe(exc)) from None
        found = sorted(n for n in names if _UUID.fullmatch(n) and n.startswith(ref))
        return [u for u in found if self.has(u)]

    def _names(self, uuid: str) -> list[str]:
        """The file names in the run's logs folder of the store ([] when there is none)."""
        if _UUID.fullmatch(uuid) is None:
            return []
        if self.folder is not None:
            try:
                return [p.name for p in (self.folder / uuid / LOGS_DIR).iterdir() if p.is_file()]
            except OSError:
                return []
        fs = self._fs()
        try:
            return [str(p).rsplit("/", 1)[-1] for p in fs.ls(self._key(uuid), detail=False)]
        except FileNotFoundError:
            return []
        except Exception as exc:
            raise ArchiveError(self._describe(exc)) from None

    # -- helpers ------------------------------------------------------------------------------------------

    def _fs(self) -> Any:
        assert self.bucket is not None
        try:
            return self.bucket.filesystem()
        except BucketError as exc:
            raise ArchiveError(f"{self}: {exc}") from None

    def _key(self, uuid: str) -> str:
        assert self.bucket is not None
        return f"{self.bucket.root}/{uuid}/{LOGS_DIR}"

    def _describe(self, exc: Exception) -> str:
        text = str(exc).strip() or type(exc).__name__
        if isinstance(exc, FileNotFoundError):
            return f"{self}: no such bucket or folder ({text})"
        if isinstance(exc, PermissionError) or "credentials" in text.lower() or "denied" in text.lower():
            return f"{self}: credentials refused or missing: {text}"
        return f"{self}: {text}"


def _lines(data: bytes) -> list[str]:
    return data.decode("utf-8", "replace").splitlines()


def archive_of(config: Any, environ: Mapping[str, str] | None = None) -> LogArchive | None:
    """The store ``artifactsStore`` names in ``config`` (a :class:`~polynb.config_file.ConfigFile`) as a log
    archive this machine can reach; None without one, or for a ``volume_claim`` (the cluster's)."""
    name = getattr(config, "artifacts_store", None)
    connection: Mapping[str, Any] | None = next(
        (c for c in getattr(config, "connections", ()) if c.get("name") == name), None
    )
    if name is None or connection is None:
        return None
    kind = str(connection.get("kind"))
    schema = connection.get("schema") or {}
    if kind == "host_path":
        folder = Path(str(schema.get("hostPath") or "")).expanduser()
        path = getattr(config, "path", None)
        if not folder.is_absolute() and path is not None:
            folder = Path(path).absolute().parent / folder
        return LogArchive(str(name), kind, str(folder), folder=folder, connection=connection)
    if kind in BUCKET_KINDS:
        try:
            bucket = bucket_of(connection, environ)
        except ValueError as exc:
            log.warning("artifacts store %s: %s", name, exc)
            return None
        return LogArchive(str(name), kind, f"{bucket.scheme}://{bucket.root}", bucket=bucket, connection=connection)
    return None


def configured_archive(environ: Mapping[str, str] | None = None) -> LogArchive | None:
    """:func:`archive_of` the configuration file; a file that cannot be read gives none (with a warning: the
    commands that start runs refuse such a file themselves, with its positions)."""
    from polynb.config_file import load_config
    from polynb.spec.errors import SpecErrors

    try:
        config = load_config(environ)
    except SpecErrors as exc:
        log.warning("the configuration file cannot be read, so logs are not archived to a store: %s", exc)
        return None
    return archive_of(config, environ)
