"""Where polynb keeps its files: POLYNB_HOME, the store file and run artifact folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from polynb.store import (
    ARTIFACTS_ROOT_KEY,
    NewRun,
    Store,
    artifacts_dir,
    db_path,
    default_artifacts_root,
    polynb_home,
    recorded_root,
    run_paths,
)
from polynb.store.paths import check_uuid
from polynb.store.records import new_uuid, new_uuids

UUID = "0123456789abcdef0123456789abcdef"


def test_polynb_home_defaults_to_dot_polynb_in_the_home_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("POLYNB_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert polynb_home() == tmp_path / ".polynb"
    assert db_path() == tmp_path / ".polynb" / "polynb.db"


def test_polynb_home_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path / "home"))
    assert polynb_home() == tmp_path / "home"
    assert artifacts_dir(UUID) == tmp_path / "home" / "artifacts" / UUID


def test_run_paths_layout_and_creation(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path))
    paths = run_paths(UUID)
    root = tmp_path / "artifacts" / UUID
    assert (paths.root, paths.outputs, paths.tensorboard, paths.logs) == (
        root,
        root / "outputs",
        root / "outputs" / "tensorboard",
        root / "logs",
    )
    assert not root.exists()
    paths.create()
    assert paths.tensorboard.is_dir()
    assert paths.logs.is_dir()


@pytest.mark.parametrize("bad", ["..", "../" + UUID, UUID.upper(), "0123-4567", UUID + "0", ""])
def test_anything_but_a_run_uuid_is_refused_as_a_path(bad: str) -> None:
    with pytest.raises(ValueError, match="not a run uuid"):
        artifacts_dir(bad)


def test_the_default_store_lives_in_polynb_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path / "fresh"))
    with Store() as store:
        store.create_run(NewRun(name="a", kind="job"))
        assert store.path == tmp_path / "fresh" / "polynb.db"
    assert (tmp_path / "fresh" / "polynb.db").is_file()


def test_a_store_records_its_artifacts_root_on_the_runs_it_creates(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path / "home"))
    shared = tmp_path / "shared"
    with Store(tmp_path / "polynb.db", artifacts_root=shared) as store:
        dag, op = store.create_runs([NewRun(name="d", kind="dag"), NewRun(name="a", kind="job")])
        assert dag.meta[ARTIFACTS_ROOT_KEY] == str(shared)
        assert store.get_run(op.uuid).meta[ARTIFACTS_ROOT_KEY] == str(shared)
        assert store.artifacts_root_of(op.uuid) == shared
        assert run_paths(op.uuid, store.artifacts_root_of(op.uuid)).logs == shared / op.uuid / "logs"
        # A run that says where its artifacts are keeps it.
        other = store.create_run(NewRun(name="b", kind="job", meta={ARTIFACTS_ROOT_KEY: str(tmp_path / "elsewhere")}))
        assert store.artifacts_root_of(other.uuid) == tmp_path / "elsewhere"


def test_runs_without_a_recorded_root_keep_the_default_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path / "home"))
    with Store(tmp_path / "polynb.db") as store:
        before = store.create_run(NewRun(name="before", kind="job"))
    # The configuration changes: the runs created before stay where they were written.
    with Store(tmp_path / "polynb.db", artifacts_root=tmp_path / "shared") as store:
        after = store.create_run(NewRun(name="after", kind="job"))
        assert ARTIFACTS_ROOT_KEY not in store.get_run(before.uuid).meta
        assert store.artifacts_root_of(before.uuid) == default_artifacts_root() == tmp_path / "home" / "artifacts"
        assert store.artifacts_root_of(after.uuid) == tmp_path / "shared"
        assert store.artifacts_root_of(UUID) == default_artifacts_root()  # no such run
    assert recorded_root({}) == artifacts_dir(UUID).parent
    assert recorded_root({ARTIFACTS_ROOT_KEY: "/data/runs"}) == Path("/data/runs")


def test_the_root_of_a_run_is_the_one_recorded_whichever_store_created_it(tmp_path: Path) -> None:
    with (
        Store(tmp_path / "polynb.db", artifacts_root=tmp_path / "a") as a,
        Store(tmp_path / "polynb.db", artifacts_root=tmp_path / "b") as b,
    ):
        in_a, in_b = a.create_run(NewRun(name="x", kind="job")), b.create_run(NewRun(name="y", kind="job"))
        for store in (a, b):  # each store remembers the runs it made; the other's it reads from the file
            assert (store.artifacts_root_of(in_a.uuid), store.artifacts_root_of(in_b.uuid)) == (
                tmp_path / "a",
                tmp_path / "b",
            )


def test_a_relative_artifacts_root_is_recorded_absolute(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    with Store(tmp_path / "polynb.db", artifacts_root="runs") as store:
        run = store.create_run(NewRun(name="a", kind="job"))
        assert store.artifacts_root_of(run.uuid) == tmp_path / "runs"


def test_uuids_made_together_are_run_uuids_like_one_made_alone() -> None:
    made = new_uuids(300)
    assert len(set(made)) == 300 and new_uuids(0) == []
    for uuid in [*made, new_uuid()]:
        assert check_uuid(uuid) == uuid
        assert uuid[12] == "4" and uuid[16] in "89ab"  # version 4, RFC 4122 variant, as uuid4() gives


def test_a_run_whose_meta_sqlite_cannot_read_breaks_no_query(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Python writes NaN as a bare ``NaN``, which SQLite's JSON functions refuse: every statement that read such a
    row failed (an older version stored a ``-P lr=nan`` so), for as long as the row was in the store."""
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path / "home"))
    shared = tmp_path / "shared"
    with Store(tmp_path / "polynb.db", artifacts_root=shared) as store:
        dag, op, cached = store.create_runs(
            [
                NewRun(name="d", kind="dag"),
                NewRun(name="a", kind="job", meta={"plan": {"lr": float("nan")}}),
                NewRun(name="b", kind="job", meta={"cache_key": "k"}),
            ]
        )
        store.set_meta(op.uuid, {"cache_key": "k", "lr": float("inf")})
        for run in (op, cached):
            for status in ("compiled", "queued", "running", "succeeded"):
                store.set_status(run.uuid, status)
    with Store(tmp_path / "polynb.db") as store:  # a new process's store: the roots are read from the rows
        assert store.artifacts_root_of(op.uuid) == shared  # read by Python when SQLite cannot
        assert store.artifacts_root_of(cached.uuid) == shared
        hit = store.find_cached("k", since=None, exclude=dag.uuid)
        assert hit is not None and hit.uuid == cached.uuid  # the unreadable row is no hit, and no failure
        assert store.get_run(op.uuid).meta["lr"] == float("inf")
