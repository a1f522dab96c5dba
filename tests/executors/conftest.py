"""Fixtures for every executor test: ``POLYNB_HOME`` in tmp_path, and ``PYTHONPATH`` that reaches this checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$POLYNB_HOME`` for the test; jobs can import polynb (``tracking``) even from a source tree."""
    path = tmp_path / "home"
    monkeypatch.setenv("POLYNB_HOME", str(path))
    python_path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", f"{REPO_ROOT}{os.pathsep}{python_path}" if python_path else str(REPO_ROOT))
    return path
