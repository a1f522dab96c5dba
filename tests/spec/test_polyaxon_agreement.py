"""polynb and Polyaxon 2.18 agree on which corpus files are valid, except the deliberate differences.

Polyaxon runs in its own virtualenv (``$POLYAXON_PYTHON``; ``make test`` sets it). The driver
``polyaxon_oracle.py`` imports it once and checks the whole corpus in one process; hubRef components
are read from polynb's built-in hub (``polynb/hub/NAME.yaml``) and urlRef is refused (the corpus names an
unreachable URL, which polynb fails to fetch), since the tests run offline (see the driver's docstring).

Every deliberate difference is listed, with its reason, in ``polyaxon_differences.yaml``. A listed
difference that is no longer a difference fails the test, so the list stays honest.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

HERE = Path(__file__).parent
CORPUS = HERE / "corpus"
ORACLE = HERE / "polyaxon_oracle.py"
DIFFERENCES = HERE / "polyaxon_differences.yaml"
HUB = HERE.parents[1] / "polynb" / "hub"
FILES = sorted([*CORPUS.glob("valid/*.yaml"), *CORPUS.glob("invalid/*.yaml")])
IDS = [str(f.relative_to(CORPUS)) for f in FILES]

pytestmark = pytest.mark.polyaxon


def _verdict(valid: bool) -> str:
    return "valid" if valid else "invalid"


def load_differences() -> dict[str, dict[str, str]]:
    data = yaml.safe_load(DIFFERENCES.read_text())
    entries = data["differences"]
    out: dict[str, dict[str, str]] = {}
    for entry in entries:
        assert set(entry) == {"file", "polyaxon", "polynb", "reason"}, entry
        assert entry["file"] not in out, f"listed twice: {entry['file']}"
        out[entry["file"]] = entry
    return out


@pytest.fixture(scope="session")
def polyaxon_verdicts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Polyaxon's answer for every corpus file, from one run of the oracle."""
    python = os.environ.get("POLYAXON_PYTHON", "")
    if not python:
        pytest.skip("POLYAXON_PYTHON is not set (make test sets it to .polyaxon-venv/bin/python)")
    if not Path(python).is_file() or not os.access(python, os.X_OK):
        pytest.skip(f"POLYAXON_PYTHON={python} is not an executable file (run `make polyaxon-venv`)")
    proc = subprocess.run(
        [python, str(ORACLE), "--hub-dir", str(HUB), *map(str, FILES)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path_factory.mktemp("polyaxon-oracle"),
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    raw: dict[str, dict[str, Any]] = json.loads(proc.stdout)
    return {str(Path(k).relative_to(CORPUS)): v for k, v in raw.items()}


def test_differences_file_is_well_formed() -> None:
    diffs = load_differences()
    assert diffs, "the list of deliberate differences is empty: remove this test or the file"
    for name, entry in diffs.items():
        file = CORPUS / name
        assert file.is_file(), f"{name}: not a corpus file"
        assert entry["polyaxon"] in {"valid", "invalid"}
        assert entry["polynb"] in {"valid", "invalid"}
        assert entry["polyaxon"] != entry["polynb"], f"{name}: not a difference"
        assert entry["polynb"] == file.parent.name, f"{name}: polynb's verdict must be the corpus folder"
        assert len(entry["reason"].split()) >= 8, f"{name}: give the reason in a sentence"


def test_oracle_ran_on_every_file(polyaxon_verdicts: dict[str, dict[str, Any]]) -> None:
    assert set(polyaxon_verdicts) == set(IDS)


@pytest.mark.parametrize("name", IDS)
def test_polyaxon_agrees_with_the_corpus(name: str, polyaxon_verdicts: dict[str, dict[str, Any]]) -> None:
    """What Polyaxon 2.18 says about each file is what the corpus (polynb's contract) says, or listed."""
    got = polyaxon_verdicts[name]
    expected = (CORPUS / name).parent.name
    listed = load_differences().get(name)
    if listed is None:
        assert _verdict(got["valid"]) == expected, f"Polyaxon says {_verdict(got['valid'])}: {got['error']}"
    else:
        assert _verdict(got["valid"]) == listed["polyaxon"], (
            f"listed as a difference but Polyaxon now says {_verdict(got['valid'])}: "
            f"update polyaxon_differences.yaml. {got['error']}"
        )


@pytest.mark.parametrize("name", IDS)
def test_polynb_agrees_with_polyaxon(name: str, polyaxon_verdicts: dict[str, dict[str, Any]]) -> None:
    from polynb.compiler.check import check

    result = check([str(CORPUS / name)])
    ours = _verdict(result.valid)
    theirs = _verdict(polyaxon_verdicts[name]["valid"])
    listed = load_differences().get(name)
    detail = "\n".join(str(e) for e in result.errors) + "\nPolyaxon: " + polyaxon_verdicts[name]["error"]
    if listed is None:
        assert ours == theirs, f"polynb says {ours}, Polyaxon says {theirs}\n{detail}"
    else:
        assert (ours, theirs) == (listed["polynb"], listed["polyaxon"]), (
            f"listed difference no longer holds (polynb {ours}, Polyaxon {theirs}): "
            f"update polyaxon_differences.yaml\n{detail}"
        )
