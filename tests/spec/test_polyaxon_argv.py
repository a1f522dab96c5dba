"""polynb gives a container the argv Polyaxon 2.18 gives it, for the files of ``argv/`` and the params listed here.

Polyaxon runs in its own virtualenv (``$POLYAXON_PYTHON``; ``make test`` sets it): ``polyaxon_compile.py`` compiles
and resolves a file as Polyaxon's agent does and prints the main container's ``command`` and ``args`` as they go
into the pod. polynb compiles the same file with the same params (``compiler.compile``).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from polynb.compiler.compile import compile_op
from polynb.compiler.context import run_globals
from polynb.compiler.params import bind_params
from polynb.compiler.types import Placement
from polynb.spec.load import load
from polynb.spec.models import Component

HERE = Path(__file__).parent
DRIVER = HERE / "polyaxon_compile.py"
UUID = "11111111111111111111111111111111"

CASES = [
    ("optional_inputs.yaml", {}),  # optional inputs given no value: `{{ n }}` is left out, `--n={{ n }}` keeps None
    ("optional_inputs.yaml", {"n": 5, "s": "None"}),  # a value whose text is None is left out too
    ("optional_inputs.yaml", {"n": 0, "s": "a b"}),
]

pytestmark = pytest.mark.polyaxon


def polynb_argv(path: Path, params: dict[str, Any]) -> dict[str, list[str]]:
    component = load(path)
    assert isinstance(component, Component)
    inputs, contexts = bind_params(component, params, op_name="run")
    op = compile_op(
        uuid=UUID,
        name="run",
        component=component,
        inputs=inputs,
        contexts=contexts,
        placement=Placement(artifacts_path="/a", run_artifacts_path=f"/a/{UUID}", run_outputs_path=f"/a/{UUID}/o"),
        globals_=run_globals(uuid=UUID, name="run"),
    )
    return {"command": list(op.container.command), "args": list(op.container.args)}


@pytest.mark.parametrize(("name", "params"), CASES, ids=[f"{n}-{json.dumps(p)}" for n, p in CASES])
def test_polynb_gives_the_container_polyaxons_argv(name: str, params: dict[str, Any], tmp_path: Path) -> None:
    python = os.environ.get("POLYAXON_PYTHON", "")
    if not python or not Path(python).is_file():
        pytest.skip("POLYAXON_PYTHON is not set to an interpreter (make test sets it to .polyaxon-venv/bin/python)")
    path = HERE / "argv" / name
    proc = subprocess.run([python, str(DRIVER), str(path), json.dumps(params)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    theirs = json.loads(proc.stdout)
    assert "error" not in theirs, theirs["error"]
    assert polynb_argv(path, params) == theirs
