"""A service's URL through the executor's port-forward, over the real WebSocket protocol (the official
client against the emulator): reachable over HTTP while the run runs, the pod looked up per connection,
closed when the run ends — before its final status is told. The "process in the pod" is an HTTP server of
the test bound to the pod's address."""

from __future__ import annotations

import http.client
import socket
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from k8s_emulator import Emulator, testkit
from k8s_emulator.testkit import MakeExecutor, free_port, make_op
from support.recorder import UpdateRecorder

from polynb.executors.base import ExecutorUpdate
from polynb.executors.kubernetes.executor import preferred_local_port
from polynb.executors.kubernetes.portforward import PortForward

emulator = testkit.emulator
kubeconfig = testkit.kubeconfig
make_executor = testkit.make_executor


pod_http = testkit.pod_http


@pytest.fixture
def pod_server(pod_http: testkit.PodServers) -> Callable[[str, int], object]:
    return lambda ip, port: pod_http.start(ip, port, "scalars at {path}")


def refused(url: str) -> bool:
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname or "", parts.port or 0), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def test_service_url_is_served_through_the_tunnel_and_closed_at_the_end(
    emulator: Emulator, make_executor: MakeExecutor, pod_server: Any
) -> None:
    executor = make_executor(port_forward=True, service_port_base=free_port())
    closed_when_final: list[bool] = []
    rec = UpdateRecorder()
    url_box: list[str] = []

    def on_update(update: ExecutorUpdate) -> None:
        if update.url:
            url_box.append(update.url)
        if update.status in ("succeeded", "failed", "stopped") and url_box:
            closed_when_final.append(refused(url_box[0]))
        rec(update)

    op = make_op(executor, name="tensorboard", kind="service", ports=1, script={"main": {"hold": True}})
    executor.submit(op, on_update)
    ready = rec.until("running", reason="ServiceReady")
    assert ready.url is not None and ready.url.startswith("http://127.0.0.1:")
    pod = emulator.require_pod_of(op.uuid)
    pod_server(pod["status"]["podIP"], op.placement.ports[0])
    for path in ("data/runs", "data/plugin/scalars/tags"):  # one tunnel per connection, same local port
        with urllib.request.urlopen(ready.url + path, timeout=10) as reply:
            assert reply.read() == f"scalars at /{path}".encode()
    emulator.finish(pod["metadata"]["name"])
    assert rec.final().status == "succeeded"
    assert closed_when_final == [True]


def test_nothing_listening_yet_is_a_closed_connection_not_a_hang(
    emulator: Emulator, make_executor: MakeExecutor
) -> None:
    executor = make_executor(port_forward=True, service_port_base=free_port())
    rec = UpdateRecorder()
    op = make_op(executor, name="tensorboard", kind="service", ports=1, script={"main": {"hold": True}})
    executor.submit(op, rec)
    ready = rec.until("running", reason="ServiceReady")
    assert ready.url is not None
    # The API server's error channel ends the tunnel: an empty reply.
    with pytest.raises(http.client.RemoteDisconnected):
        urllib.request.urlopen(ready.url, timeout=10)
    executor.stop(op.uuid)
    assert rec.final().status == "stopped"
    assert refused(ready.url)


def test_local_port_choice() -> None:
    """``prefer`` falls back to any free port when taken; an explicit ``port`` that is taken is an error."""

    def never() -> Any:
        raise AssertionError("no connection expected")

    taken = socket.create_server(("127.0.0.1", 0))
    busy = taken.getsockname()[1]
    try:
        fallback = PortForward(never, prefer=busy)
        assert fallback.port != busy
        fallback.close()
        with pytest.raises(OSError, match="in use"):
            PortForward(never, port=busy)
    finally:
        taken.close()
    first = PortForward(never, prefer=preferred_local_port("0123abcd"))
    try:
        assert first.port == preferred_local_port("0123abcd")
        assert 20000 <= first.port < 30000
    finally:
        first.close()
