"""A command imports only what it needs: what keeps ``polynb --help``, ``ls`` and ``check`` quick to start.

Each command runs in a fresh interpreter (as from a shell, its output piped); the modules it loaded are
read from ``sys.modules`` once it returned.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ONE_STEP = """\
version: 1.1
kind: component
name: one
run: {kind: job, container: {command: ["true"]}}
"""

PROBE = """
import json, sys
from polynb.cli.app import main
status = main(sys.argv[2:])
with open(sys.argv[1], "w") as out:
    json.dump({"status": status, "modules": sorted(sys.modules)}, out)
"""

# The kubernetes client, the template engine, the terminal UI and the spec models (pydantic) are each tens of
# milliseconds to import; the engine pulls in all but the first.
HEAVY = ("kubernetes", "jinja2", "rich", "pydantic", "yaml", "polynb.spec.models", "polynb.scheduler.engine")


def loaded(tmp_path: Path, *args: str) -> tuple[int, set[str]]:
    """Run ``polynb ARGS`` in a new interpreter; its exit status and which of HEAVY it imported."""
    record = tmp_path / "modules.json"
    env = {**os.environ, "POLYNB_HOME": str(tmp_path / "home")}
    subprocess.run(
        [sys.executable, "-c", PROBE, str(record), *args], cwd=tmp_path, env=env, capture_output=True, check=False
    )
    data = json.loads(record.read_text())
    modules = set(data["modules"])
    return data["status"], {name for name in HEAVY if name in modules or any(m.startswith(name + ".") for m in modules)}


@pytest.mark.parametrize("args", [("--help",), ("ls",), ("ls", "--json"), ("run", "--help")])
def test_help_and_ls_import_none_of_the_heavy_libraries(tmp_path: Path, args: tuple[str, ...]) -> None:
    status, heavy = loaded(tmp_path, *args)
    assert status == 0
    assert heavy == set()


def test_check_loads_the_spec_but_not_the_engine_nor_templates(tmp_path: Path) -> None:
    (tmp_path / "one.yaml").write_text(ONE_STEP)
    status, heavy = loaded(tmp_path, "check", "-f", "one.yaml")
    assert status == 0
    assert heavy == {"pydantic", "yaml", "polynb.spec.models"}


def test_a_piped_local_run_loads_neither_the_kubernetes_client_nor_the_live_view(tmp_path: Path) -> None:
    (tmp_path / "one.yaml").write_text(ONE_STEP)
    status, heavy = loaded(tmp_path, "run", "-f", "one.yaml")
    assert status == 0
    assert "kubernetes" not in heavy and "rich" not in heavy
    assert "jinja2" not in heavy  # loaded when a template is rendered, and this spec has none
    assert "polynb.scheduler.engine" in heavy  # the probe sees what a run needs
