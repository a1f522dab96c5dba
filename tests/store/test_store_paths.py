"""Where polynb keeps its files: POLYNB_HOME, the store file and run artifact folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from polynb.store import NewRun, Store, artifacts_dir, db_path, polynb_home, run_paths

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
