"""Fixtures for the notebook layer: ``POLYNB_HOME`` and the working folder in ``tmp_path``, a fresh kernel
session per test (shut down after it), and an in-process IPython shell with ``%load_ext polynb``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

from polynb.notebook.session import KernelSession, SessionConfig, set_session

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "home"
    monkeypatch.setenv("POLYNB_HOME", str(path))
    python_path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", f"{REPO_ROOT}{os.pathsep}{python_path}" if python_path else str(REPO_ROOT))
    monkeypatch.chdir(tmp_path)
    return path


@pytest.fixture
def session() -> Iterator[KernelSession]:
    s = KernelSession(SessionConfig(stop_grace=2.0))
    previous = set_session(s)
    if previous is not None:
        previous.shutdown()
    try:
        yield s
    finally:
        set_session(None)
        s.shutdown()


@pytest.fixture
def ip(session: KernelSession) -> Iterator[InteractiveShell]:
    config = Config()
    config.HistoryAccessor.enabled = False  # no history database in the home folder
    shell = InteractiveShell.instance(config=config)
    shell.run_line_magic("load_ext", "polynb")
    try:
        yield shell
    finally:
        shell.run_line_magic("unload_ext", "polynb")
        assert shell.extension_manager is not None
        shell.extension_manager.loaded.discard("polynb")
        InteractiveShell.clear_instance()
