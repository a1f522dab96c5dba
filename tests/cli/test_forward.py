"""``polynb port-forward RUN`` / ``polynb open RUN`` against the Kubernetes API emulator, as separate
processes: the service keeps running after ``polynb run`` exits, and a later command reaches it over HTTP
through the API server's port-forward. The "process in the pod" is an HTTP server of the test bound to
the pod's address."""

from __future__ import annotations

import signal
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from k8s_emulator import Emulator, testkit
from support.clikit import Cli

from polynb.lifecycle import Status

emulator = testkit.emulator
kubeconfig = testkit.kubeconfig
pod_http = testkit.pod_http

SERVICE = """
version: 1.1
kind: component
name: experiment
run:
  kind: dag
  operations:
    - name: train
      component: {run: {kind: job, container: {image: emu/ok, command: [python, train.py]}}}
    - name: board
      component:
        run: {kind: service, ports: [6006], container: {image: emu/hold, command: [tensorboard, "--port=6006"]}}
"""

JOB = """
version: 1.1
kind: component
name: train
run: {kind: job, container: {image: emu/ok, command: [python, train.py]}}
"""


@pytest.fixture
def cli(emulator: Emulator, kubeconfig: Path, tmp_path: Path) -> Iterator[Cli]:
    emulator.scripts.update({"emu/hold": {"hold": True}, "emu/ok": {}})
    kit = Cli(tmp_path)
    kit.extra_env = {
        "KUBECONFIG": str(kubeconfig),
        "POLYNB_K8S_PORT_FORWARD": "0",
        "POLYNB_K8S_SERVICE_PORT": str(testkit.free_port()),
    }
    yield kit
    kit.cleanup()


@pytest.fixture
def board(cli: Cli, emulator: Emulator, pod_http: testkit.PodServers) -> str:
    """A service run left running by ``polynb run``, served by an HTTP server at its pod's address."""
    done = cli.run("run", "-f", str(cli.write("board.yaml", SERVICE)), "--executor", "kubernetes", "--no-live")
    assert done.returncode == 0, done.stderr
    with cli.store() as store:
        run = next(r for r in store.list_runs() if r.name == "board")
    assert run.status == Status.RUNNING
    assert f"polynb open {run.uuid[:12]}" in done.stdout  # not a URL that died with the command
    pod = emulator.require_pod_of(run.uuid)
    pod_http.start(pod["status"]["podIP"], int(cli.extra_env["POLYNB_K8S_SERVICE_PORT"]), "board {path}")
    return run.uuid


def hold(cli: Cli, *args: str) -> tuple[Any, str]:
    proc = cli.start(*args)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("http://127.0.0.1:"), (line, proc.stderr.read() if proc.poll() is not None else "")  # type: ignore[union-attr]
    return proc, line.split()[0]


def test_port_forward_holds_a_tunnel_until_ctrl_c(cli: Cli, board: str) -> None:
    proc, url = hold(cli, "port-forward", board[:8])
    for path in ("data/runs", "x"):
        with urllib.request.urlopen(url + path, timeout=10) as reply:
            assert reply.read() == f"board /{path}".encode()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "tunnel closed" in err


def test_open_by_name_on_a_chosen_port(cli: Cli, board: str) -> None:
    port = testkit.free_port()
    proc, url = hold(cli, "open", "board", "--no-browser", "--port", str(port))
    assert url == f"http://127.0.0.1:{port}/"
    with urllib.request.urlopen(url, timeout=10) as reply:
        assert reply.read() == b"board /"
    stopped = cli.run("stop", board)
    assert stopped.returncode == 0, stopped.stderr
    _, err = proc.communicate(timeout=30)  # the run ended: so does the tunnel
    assert proc.returncode == 0 and "tunnel closed" in err


def test_clear_errors(cli: Cli) -> None:
    job = cli.run("run", "-f", str(cli.write("train.yaml", JOB)), "--executor", "kubernetes", "--no-live")
    assert job.returncode == 0, job.stderr
    not_service = cli.run("port-forward", "train")
    assert not_service.returncode == 1
    assert "is a job, not a service" in not_service.stderr
    missing = cli.run("open", "nothing-like-this")
    assert missing.returncode == 1 and "nothing-like-this" in missing.stderr
