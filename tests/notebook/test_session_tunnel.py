"""A Kubernetes service seen from a notebook: the kernel holds the tunnel while it lives, the widget's link
goes through jupyter-server-proxy (``/proxy/<port>/``) to the tunnel's port, and a restarted kernel that
re-attaches to the still-running service opens a tunnel again (against the API emulator; the "process in
the pod" is an HTTP server of the test bound to the pod's address)."""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from k8s_emulator import Emulator, testkit

import polynb
from polynb.notebook.model import RunTracker
from polynb.notebook.session import KernelSession, SessionConfig, set_session
from polynb.store import RunRecord

emulator = testkit.emulator
kubeconfig = testkit.kubeconfig

GUARD = 60.0

SPEC = """
version: 1.1
kind: component
name: experiment
run:
  kind: dag
  operations:
    - name: train
      component: {run: {kind: job, container: {image: emu/ok, command: [python, train.py]}}}
    - name: tensorboard
      component:
        run: {kind: service, ports: [6006], container: {image: emu/hold, command: [tensorboard, "--port=6006"]}}
"""


@pytest.fixture
def k8s_env(emulator: Emulator, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    emulator.scripts.update({"emu/hold": {"hold": True}, "emu/ok": {}})
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("POLYNB_K8S_PORT_FORWARD", "1")  # as outside a cluster
    monkeypatch.setenv("POLYNB_K8S_KERNEL_ID", "nb-kernel")
    monkeypatch.setenv("POLYNB_K8S_SERVICE_PORT", str(testkit.free_port()))
    return emulator


pod_http = testkit.pod_http


@pytest.fixture
def pod_server(pod_http: testkit.PodServers) -> Callable[[str, int], object]:
    return lambda ip, port: pod_http.start(ip, port, "board {path}")


def served_url(session: KernelSession, uuid: str) -> RunRecord:
    """The service's record once its URL is served by a tunnel (the stored one may be a gone kernel's)."""
    deadline = time.monotonic() + GUARD
    while True:
        record = session.store.get_run(uuid)
        if record.url and record.status.value == "running" and not refused(record.url):
            return record
        assert time.monotonic() < deadline, f"deadlock guard: no new URL for {record.name}"
        time.sleep(0.05)


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as reply:
        body: bytes = reply.read()
        return body


def refused(url: str) -> bool:
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname or "", parts.port or 0), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def test_the_kernel_holds_the_tunnel_and_a_restarted_kernel_opens_it_again(
    session: KernelSession, k8s_env: Emulator, pod_server: Any
) -> None:
    session.config.proxy = "always"
    session.config.keep_runs_on_exit = True  # a kernel restart leaves the service running
    handle = polynb.run(SPEC, executor="kubernetes")
    assert handle.wait(timeout=GUARD) == "succeeded"
    board = next(r for r in session.store.list_runs() if r.name == "tensorboard")
    record = served_url(session, board.uuid)
    first = record.url or ""
    assert first.startswith("http://127.0.0.1:")
    port = int(k8s_env.objects("services")[0]["spec"]["ports"][0]["targetPort"])
    pod_server(k8s_env.require_pod_of(board.uuid)["status"]["podIP"], port)
    assert get(first + "data/runs") == b"board /data/runs"

    tracker = RunTracker(session.store, handle.uuid)
    tracker.refresh()
    links = session._snapshot(tracker, time.time(), open_pages=False).links
    assert [link.url for link in links] == [
        f"/proxy/{urlsplit(first).port}/"
    ]  # jupyter-server-proxy to the kernel's tunnel

    set_session(None)
    session.shutdown()  # the kernel goes away: so does its tunnel, not the service
    assert refused(first)

    restarted = KernelSession(SessionConfig(stop_grace=2.0, proxy="always"))
    set_session(restarted)
    try:
        assert restarted.start_if_unfinished()
        again = served_url(restarted, board.uuid)
        assert again.url is not None and get(again.url + "x") == b"board /x"
        assert again.url == first  # the same local port (the run's preferred one): open Lab tabs keep working
    finally:
        restarted.config.keep_runs_on_exit = False
        restarted.shutdown()
