"""The emulated network against real clients: the official client's WebSocket port-forward, kubectl's
port-forward (SPDY in a WebSocket, and over an SPDY upgrade), the kube-proxy stand-in and the API server's
service proxy. A "process in the pod" is a TCP server of the test bound to the pod's ``status.podIP``."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import portforward

from k8s_emulator import Emulator, script_annotation, testkit
from k8s_emulator.testkit import wait_for

NS = "default"


def _free_ports(n: int) -> list[int]:
    """Ports nothing listens on now (held together, so they differ): pods share the host's loopback, and a
    process on ``0.0.0.0:8080`` elsewhere on the machine would take a fixed one."""
    probes = [socket.create_server(("127.0.0.1", 0)) for _ in range(n)]
    try:
        return [int(p.getsockname()[1]) for p in probes]
    finally:
        for probe in probes:
            probe.close()


PORT, PORT2, *SVC_PORTS = _free_ports(6)


@pytest.fixture
def api(emulator: Emulator, kubeconfig: Path) -> Iterator[Any]:
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    with client.ApiClient(cfg) as api_client:
        yield client.CoreV1Api(api_client)


def running_pod(emulator: Emulator, name: str = "web", labels: dict[str, str] | None = None) -> dict[str, Any]:
    emulator.store.create(
        "pods",
        NS,
        {
            "metadata": {
                "name": name,
                "labels": labels or {"app": name},
                "annotations": script_annotation({"main": {"hold": True}}),
            },
            "spec": {
                "containers": [
                    {"name": "main", "image": "python:3.11-slim", "ports": [{"name": "http", "containerPort": PORT}]}
                ]
            },
        },
    )

    def ready() -> dict[str, Any] | None:
        pod = emulator.store.find("pods", NS, name)
        return pod if pod and pod["status"].get("phase") == "Running" else None

    pod: dict[str, Any] = wait_for(ready, emulator, what=f"pod {name} running")
    return pod


pod_http = testkit.pod_http


@pytest.fixture
def serve(pod_http: testkit.PodServers) -> Callable[[str, int], ThreadingHTTPServer]:
    """``serve(ip, port)``: an HTTP server "in the pod" at ``ip:port``."""
    return lambda ip, port: pod_http.start(ip, port, "hello from {host} {path}")


def http_over(sock: Any, path: str = "/") -> bytes:
    """One HTTP exchange over a forwarded socket, read to its Content-Length: with ``v4.channel.k8s.io``
    the end of one port's connection is not signalled until the whole WebSocket closes (``v5`` added that)."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: pod\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < _length(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _length(data: bytes) -> int:
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 1 << 30


def test_pods_get_their_own_loopback_address(emulator: Emulator) -> None:
    one, two = running_pod(emulator, "one"), running_pod(emulator, "two")
    ips = {one["status"]["podIP"], two["status"]["podIP"]}
    assert len(ips) == 2 and all(ip.startswith("127.") for ip in ips)
    assert one["status"]["podIPs"] == [{"ip": one["status"]["podIP"]}]


def test_official_client_port_forward_round_trips_bytes(emulator: Emulator, api: Any, serve: Any) -> None:
    pod = running_pod(emulator)
    serve(pod["status"]["podIP"], PORT)
    forward = portforward(api.connect_get_namespaced_pod_portforward, "web", NS, ports=str(PORT))
    reply = http_over(forward.socket(PORT), "/x")
    assert reply.startswith(b"HTTP/1.0 200") and reply.endswith(f"hello from {pod['status']['podIP']} /x".encode())
    assert forward.error(PORT) is None
    request = next(r for r in emulator.requests if r.resource == "pods/portforward")
    assert (request.verb, request.status) == ("get", 101)


def test_two_ports_in_one_port_forward(emulator: Emulator, api: Any, serve: Any) -> None:
    pod = running_pod(emulator)
    serve(pod["status"]["podIP"], PORT)
    serve(pod["status"]["podIP"], PORT2)
    forward = portforward(api.connect_get_namespaced_pod_portforward, "web", NS, ports=f"{PORT},{PORT2}")
    first, second = http_over(forward.socket(PORT), "/a"), http_over(forward.socket(PORT2), "/b")
    assert first.endswith(b" /a") and second.endswith(b" /b")


def test_nothing_listening_is_reported_on_the_error_channel(emulator: Emulator, api: Any) -> None:
    running_pod(emulator)
    forward = portforward(api.connect_get_namespaced_pod_portforward, "web", NS, ports=str(PORT))
    assert forward.socket(PORT).recv(1024) == b""  # closed: nothing to forward to
    assert f"error forwarding port {PORT} to pod web" in (forward.error(PORT) or "")
    assert "connection refused" in (forward.error(PORT) or "").lower()


def test_port_forward_to_a_missing_pod_is_404(emulator: Emulator, api: Any) -> None:
    with pytest.raises(ApiException) as err:
        portforward(api.connect_get_namespaced_pod_portforward, "ghost", NS, ports=str(PORT))
    assert "404" in str(err.value)


def test_port_forward_needs_ports(emulator: Emulator) -> None:
    running_pod(emulator)
    conn = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=10)
    upgrade = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Protocol": "v4.channel.k8s.io",
    }
    conn.request("GET", f"/api/v1/namespaces/{NS}/pods/web/portforward", headers=upgrade)
    reply = conn.getresponse()
    assert reply.status == 400 and json.loads(reply.read())["message"] == 'query parameter "port" is required'
    conn.close()


def test_a_plain_request_is_not_upgraded(emulator: Emulator) -> None:
    running_pod(emulator)
    request = urllib.request.Request(
        f"{emulator.url}/api/v1/namespaces/{NS}/pods/web/portforward?ports=80", method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=10)
    assert err.value.code == 400


def service(emulator: Emulator, name: str = "web", port: int = 80, target: Any = None) -> dict[str, Any]:
    return emulator.store.create(
        "services",
        NS,
        {
            "metadata": {"name": name},
            "spec": {
                "selector": {"app": name},
                "ports": [{"name": "http", "port": port, "targetPort": PORT if target is None else target}],
            },
        },
    )


def test_kube_proxy_relays_cluster_ip_to_a_ready_endpoint(emulator: Emulator, serve: Any) -> None:
    pod = running_pod(emulator)
    serve(pod["status"]["podIP"], PORT)
    svc = service(emulator, port=SVC_PORTS[0], target="http")  # a named targetPort, resolved in the pod
    emulator.settle()
    ip = svc["spec"]["clusterIP"]
    assert ip.startswith("127.")
    with urllib.request.urlopen(f"http://{ip}:{SVC_PORTS[0]}/via-service", timeout=10) as reply:
        assert reply.read() == f"hello from {pod['status']['podIP']} /via-service".encode()


def test_kube_proxy_rejects_when_no_endpoint_is_ready(emulator: Emulator) -> None:
    svc = service(emulator, name="lonely", port=SVC_PORTS[1])
    emulator.settle()
    # Reset at once (kube-proxy's REJECT), not left hanging: on a loaded machine the reset can even arrive
    # before the client's connect() returns.
    with (
        pytest.raises(ConnectionResetError),
        socket.create_connection((svc["spec"]["clusterIP"], SVC_PORTS[1]), timeout=10) as conn,
    ):
        conn.recv(1)


def test_service_proxy_forwards_http_with_the_users_credentials(emulator: Emulator, serve: Any) -> None:
    emulator.faults.token = "s3cret"
    pod = running_pod(emulator)
    serve(pod["status"]["podIP"], PORT)
    service(emulator, port=SVC_PORTS[2])
    url = f"{emulator.url}/api/v1/namespaces/{NS}/services/web:http/proxy/data/run?x=1"
    request = urllib.request.Request(url, headers={"Authorization": "Bearer s3cret"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.read().endswith(b" /data/run?x=1")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(url, timeout=10)
    assert err.value.code == 401


def test_service_proxy_errors(emulator: Emulator) -> None:
    service(emulator, name="idle", port=SVC_PORTS[3])
    for name, code, text in (
        ("nope", 404, 'services "nope" not found'),
        ("idle", 503, 'no endpoints available for service "idle"'),
    ):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{emulator.url}/api/v1/namespaces/{NS}/services/{name}/proxy/", timeout=10)
        assert err.value.code == code
        assert json.loads(err.value.read())["message"] == text


def kubectl_forward(kubeconfig: Path, home: Path, *, websockets: bool) -> subprocess.Popen[str]:
    """``kubectl port-forward pod/web :PORT``: SPDY tunnelled in a WebSocket (kubectl's default since 1.31),
    or with ``KUBECTL_PORT_FORWARD_WEBSOCKETS=false`` a plain SPDY upgrade."""
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(home)}
    env["KUBECTL_PORT_FORWARD_WEBSOCKETS"] = "true" if websockets else "false"
    return subprocess.Popen(
        ["kubectl", "--request-timeout=20s", "port-forward", "pod/web", f":{PORT}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not on PATH")
@pytest.mark.parametrize("websockets", [True, False], ids=["spdy-over-websocket", "spdy-upgrade"])
def test_kubectl_port_forward(
    emulator: Emulator, kubeconfig: Path, tmp_path: Path, serve: Any, websockets: bool
) -> None:
    pod = running_pod(emulator)
    serve(pod["status"]["podIP"], PORT)
    proc = kubectl_forward(kubeconfig, tmp_path, websockets=websockets)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "Forwarding from 127.0.0.1:NNNNN -> PORT"
        assert line.startswith("Forwarding from 127.0.0.1:"), line + (proc.stderr.read() if proc.stderr else "")
        local = line.split()[2]
        for path in ("/one", "/two"):  # a connection each: new streams on the same SPDY connection
            with urllib.request.urlopen(f"http://{local}{path}", timeout=10) as reply:
                assert reply.read() == f"hello from {pod['status']['podIP']} {path}".encode()
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    upgrades = [r for r in emulator.requests if r.resource == "pods/portforward"]
    assert upgrades and upgrades[-1].status == 101
    assert upgrades[-1].method == ("GET" if websockets else "POST")


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not on PATH")
def test_kubectl_port_forward_reports_nothing_listening(emulator: Emulator, kubeconfig: Path, tmp_path: Path) -> None:
    running_pod(emulator)
    proc = kubectl_forward(kubeconfig, tmp_path, websockets=True)
    try:
        assert proc.stdout is not None
        local = proc.stdout.readline().split()[2]
        with pytest.raises(http.client.RemoteDisconnected):
            urllib.request.urlopen(f"http://{local}/", timeout=10)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert f"error forwarding port {PORT} to pod web" in err
