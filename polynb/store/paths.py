"""Where polynb keeps its files: ``$POLYNB_HOME`` (default ``~/.polynb``), the store and run artifacts."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "POLYNB_HOME"
DB_FILENAME = "polynb.db"
ARTIFACTS_ROOT_KEY = "artifacts_root"
"""The run meta key holding the run's artifacts root when it is not the default (an absolute path)."""

_UUID_RE = re.compile(r"[0-9a-f]{32}")


def polynb_home() -> Path:
    """``$POLYNB_HOME`` if set and not empty, else ``~/.polynb``. Read on every call so tests can move it."""
    value = os.environ.get(HOME_ENV)
    return Path(value).expanduser() if value else Path.home() / ".polynb"


def db_path() -> Path:
    """The default store file, ``$POLYNB_HOME/polynb.db``."""
    return polynb_home() / DB_FILENAME


def check_uuid(uuid: str) -> str:
    """Return ``uuid`` if it is 32 lowercase hex digits; raise ValueError otherwise.

    Run uuids become path components, so anything else (``..``, slashes, dashes) is refused here.
    """
    if not _UUID_RE.fullmatch(uuid):
        raise ValueError(f"not a run uuid (32 lowercase hex digits, no dashes): {uuid!r}")
    return uuid


@dataclass(frozen=True, slots=True)
class RunPaths:
    """The artifact folders of one run (local executor layout, Polyaxon-compatible names)."""

    root: Path
    outputs: Path
    tensorboard: Path
    logs: Path

    def create(self) -> RunPaths:
        """Create every folder (idempotent) and return self."""
        for path in (self.outputs, self.tensorboard, self.logs):
            path.mkdir(parents=True, exist_ok=True)
        return self


def default_artifacts_root() -> Path:
    """``$POLYNB_HOME/artifacts``: the artifacts root of every run that has none recorded."""
    return polynb_home() / "artifacts"


def recorded_root(meta: Mapping[str, object]) -> Path:
    """The artifacts root recorded in a run's ``meta`` when it was created, else the default one."""
    value = meta.get(ARTIFACTS_ROOT_KEY)
    return Path(value) if isinstance(value, str) and value else default_artifacts_root()


def artifacts_dir(uuid: str, root: Path | None = None) -> Path:
    """``<root>/<uuid>/`` (``root`` defaults to ``$POLYNB_HOME/artifacts``): the run's artifacts folder
    (``POLYAXON_RUN_ARTIFACTS_PATH``)."""
    return (root or default_artifacts_root()) / check_uuid(uuid)


def run_paths(uuid: str, root: Path | None = None) -> RunPaths:
    """The run's ``outputs/``, ``outputs/tensorboard/`` and ``logs/`` folders under ``root`` (not created)."""
    run_root = artifacts_dir(uuid, root)
    outputs = run_root / "outputs"
    return RunPaths(root=run_root, outputs=outputs, tensorboard=outputs / "tensorboard", logs=run_root / "logs")
