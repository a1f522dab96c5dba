"""Helpers for CLI tests: ``polynb`` in subprocesses with ``POLYNB_HOME`` in tmp_path, and store queries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from polynb.lifecycle import FINAL
from polynb.store import RunRecord, Store

DEADLOCK_GUARD = 120.0
"""Seconds before a wait is declared hung: a guard against deadlocks, never a timing assertion."""

SMALL_DAG = """
version: 1.1
kind: component
name: small
run:
  kind: dag
  operations:
    - name: a
      component:
        run: {kind: job, container: {command: [sh, -c, "echo hello from a; echo second line"]}}
    - name: b
      dependencies: [a]
      component:
        run: {kind: job, container: {command: ["true"]}}
"""

FAILING_DAG = """
version: 1.1
kind: component
name: failing
run:
  kind: dag
  operations:
    - name: bad
      component:
        run: {kind: job, container: {command: [sh, -c, "echo about to fail; exit 3"]}}
    - name: after
      dependencies: [bad]
      component:
        run: {kind: job, container: {command: ["true"]}}
"""

SLEEPY_DAG = """
version: 1.1
kind: component
name: sleepy
run:
  kind: dag
  operations:
    - name: sleeper
      component:
        run: {kind: job, container: {command: [sleep, "300"]}}
    - name: after
      dependencies: [sleeper]
      component:
        run: {kind: job, container: {command: ["true"]}}
"""

SERVICE_DAG = """
version: 1.1
kind: component
name: with-service
run:
  kind: dag
  operations:
    - name: web
      component:
        run:
          kind: service
          ports: [8000]
          container:
            command: [python, -m, http.server, --bind, 127.0.0.1, "{{ globals.ports[0] }}"]
    - name: job
      events: [{ref: ops.web, kinds: [run_status_running]}]
      component:
        run: {kind: job, container: {command: ["true"]}}
"""
"""A service and a job that starts once the service runs: the DAG is done while the service still runs."""


class Cli:
    """``polynb`` commands run as separate processes against a store in ``tmp_path``."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.home = tmp_path / "home"
        self.hub = tmp_path / "hub"
        self.hub.mkdir(exist_ok=True)
        self.started: list[subprocess.Popen[str]] = []
        self.extra_env: dict[str, str] = {}

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["POLYNB_HOME"] = str(self.home)
        env["POLYNB_HUB_PATH"] = str(self.hub)
        env.pop("COLUMNS", None)
        env.pop("POLYNB_EXECUTOR", None)
        env.update(self.extra_env)
        return env

    def write(self, name: str, text: str) -> Path:
        path = self.tmp / name
        path.write_text(textwrap.dedent(text))
        return path

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "polynb.cli", *args]

    def run(self, *args: str, timeout: float = DEADLOCK_GUARD) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args), cwd=self.tmp, env=self.env(), capture_output=True, text=True, timeout=timeout
        )

    def run_json(self, *args: str) -> tuple[int, Any]:
        result = self.run(*args)
        assert result.stdout.strip(), f"no output; stderr:\n{result.stderr}"
        return result.returncode, json.loads(result.stdout)

    def start(self, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            self.argv(*args), cwd=self.tmp, env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.started.append(proc)
        return proc

    @contextmanager
    def store(self) -> Iterator[Store]:
        with Store(self.home / "polynb.db") as store:
            yield store

    def runs(self) -> list[RunRecord]:
        if not (self.home / "polynb.db").exists():
            return []
        with self.store() as store:
            return store.list_runs()

    def wait_for(self, predicate: Callable[[Store], bool], what: str) -> None:
        deadline = time.monotonic() + DEADLOCK_GUARD
        with self.store() as store:
            while not predicate(store):
                assert time.monotonic() < deadline, f"deadlock guard: never saw {what}"
                time.sleep(0.05)

    def op(self, store: Store, dag_name: str, op_name: str) -> RunRecord | None:
        dags = [r for r in store.list_runs(top_level_only=True) if r.name == dag_name]
        if not dags:
            return None
        return next((r for r in store.children(dags[0].uuid) if r.name == op_name), None)

    def cleanup(self) -> None:
        """Stop whatever a test left running: its processes, then every run not final (services)."""
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        for run in self.runs():
            if run.status not in FINAL and self.run("stop", run.uuid, "--grace", "2").returncode != 0:
                raise RuntimeError(f"could not stop {run.name} ({run.uuid}) after the test")
