"""One version: the Python package reports the one in labextension/package.json, which the extension announces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import polynb
from polynb.cli.app import main

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_polynb_reports_the_extension_package_version() -> None:
    package = json.loads((REPO_ROOT / "labextension" / "package.json").read_text(encoding="utf-8"))

    assert polynb.__version__ == package["version"]


def test_the_command_prints_the_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"polynb {polynb.__version__}\n"


def test_an_unknown_attribute_of_polynb_is_an_attribute_error() -> None:
    assert not hasattr(polynb, "__no_such_name__")
