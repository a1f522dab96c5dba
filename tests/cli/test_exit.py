"""How the ``polynb`` command ends: without the interpreter's teardown, but with its output and exit status whole."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROBE = """
import atexit, sys
atexit.register(lambda: print("atexit ran", flush=True))
print("x" * 200_000)  # more than a pipe holds: written out before the process ends
from polynb.cli import main
main(sys.argv[1:])
"""


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "POLYNB_HOME": str(tmp_path / "home")}
    argv = [sys.executable, "-c", PROBE, *args]
    return subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, check=False)


def test_the_output_the_atexit_functions_and_the_exit_status_survive_the_quick_exit(tmp_path: Path) -> None:
    done = run(tmp_path, "ls")
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert lines[0] == "x" * 200_000
    assert lines[-1] == "atexit ran"
    assert any("no runs yet" in line for line in lines)


def test_a_usage_error_keeps_its_exit_status(tmp_path: Path) -> None:
    done = run(tmp_path, "no-such-command")
    assert done.returncode == 2
    assert "invalid choice" in done.stderr
    assert done.stdout.splitlines()[-1] == "atexit ran"
