"""The SQLite (WAL) store: runs, status history, the append-only event log, hook links, outputs."""

from polynb.store.connections import Batch
from polynb.store.errors import (
    AmbiguousRunError,
    DuplicateRunError,
    RunNotFoundError,
    SchemaVersionError,
    StoreError,
)
from polynb.store.lookup import resolve_run, root_of
from polynb.store.paths import (
    ARTIFACTS_ROOT_KEY,
    RunPaths,
    artifacts_dir,
    db_path,
    default_artifacts_root,
    polynb_home,
    recorded_root,
    run_paths,
)
from polynb.store.records import (
    EventRecord,
    Move,
    NewRun,
    RunRecord,
    StatusChange,
    Step,
    Transition,
    new_uuid,
    new_uuids,
)
from polynb.store.schema import SCHEMA_VERSION
from polynb.store.store import Store

__all__ = [
    "ARTIFACTS_ROOT_KEY",
    "SCHEMA_VERSION",
    "AmbiguousRunError",
    "Batch",
    "DuplicateRunError",
    "EventRecord",
    "Move",
    "NewRun",
    "RunNotFoundError",
    "RunPaths",
    "RunRecord",
    "SchemaVersionError",
    "StatusChange",
    "Step",
    "Store",
    "StoreError",
    "Transition",
    "artifacts_dir",
    "db_path",
    "default_artifacts_root",
    "new_uuid",
    "new_uuids",
    "polynb_home",
    "recorded_root",
    "resolve_run",
    "root_of",
    "run_paths",
]
