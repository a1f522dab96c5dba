"""The JupyterLab extension's package metadata agrees with the Python package it ships in."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LABEXT = ROOT / "labextension"


def test_versions_agree() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package = json.loads((LABEXT / "package.json").read_text())
    # One source: the Python package's version is read from the extension's package.json at build time.
    assert "version" not in pyproject["project"]
    assert "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["hatch"]["version"] == {"source": "nodejs", "path": "labextension/package.json"}
    # the version the extension announces in its comm `hello`
    assert f"VERSION = '{package['version']}'" in (LABEXT / "src" / "version.ts").read_text()


def test_build_lands_in_the_python_package() -> None:
    package = json.loads((LABEXT / "package.json").read_text())
    assert package["name"] == "polynb"
    assert package["jupyterlab"]["extension"] is True
    assert (LABEXT / package["jupyterlab"]["outputDir"]).resolve() == ROOT / "polynb" / "labextension"


def test_install_json_names_the_python_package() -> None:
    install = json.loads((LABEXT / "install.json").read_text())
    assert install == {
        "packageManager": "python",
        "packageName": "polynb",
        "uninstallInstructions": install["uninstallInstructions"],
    }
    assert "pip" in install["uninstallInstructions"]


def test_lockfiles_are_committed_beside_their_package_json() -> None:
    for folder in (LABEXT, LABEXT / "ui-tests"):
        assert (folder / "yarn.lock").is_file(), folder
        assert (folder / ".yarnrc.yml").is_file(), folder
