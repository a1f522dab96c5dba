"""The emulated cluster network on loopback: pod and Service addresses, a kube-proxy stand-in, and the API
server's service proxy.

* **Addresses.** Linux routes all of ``127.0.0.0/8`` to loopback, so every pod gets its own ``127.x.y.z``
  (``status.podIP``) and every Service its own ``spec.clusterIP`` there: a process listening on its pod's
  address (or on ``0.0.0.0``) is reached as it would be on a pod network. The blocks start at a random
  offset per process, so emulators of concurrent test processes do not meet.
* **kube-proxy.** For each Service port, a listener on ``clusterIP:port`` relays every connection to the
  ``targetPort`` of one ready endpoint pod (selector match, ``Ready`` condition, not terminating —
  https://kubernetes.io/docs/reference/networking/virtual-ips/). With no ready endpoint kube-proxy rejects
  the connection (iptables ``REJECT``): here it is reset at once. A port the process may not bind (below
  1024 when not root, or taken) is logged and not served.
* **Service proxy.** ``/api/v1/namespaces/{ns}/services/[scheme:]{name}[:port]/proxy/{path}`` (HTTP only),
  authenticated as any API request: the API server picks a ready endpoint and forwards the request to it
  (https://kubernetes.io/docs/tasks/access-application-cluster/access-cluster-services/#manually-constructing-apiserver-proxy-urls);
  ``503`` "no endpoints available" without one, ``503`` "error trying to reach service" when it refuses.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import random
import socket
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from .errors import ApiError, not_found

if TYPE_CHECKING:
    from . import Emulator
    from .server import Handler
    from .store import Change, Store

log = logging.getLogger(__name__)


class _Block:
    """Addresses ``127.<a>.<b>.<c>`` handed out in order from a random start, never twice in a process."""

    def __init__(self, low: int, high: int) -> None:
        self._lock = threading.Lock()
        self._low, self._size = low << 16, (high - low) << 16
        self._next = random.randrange(self._size)

    def take(self) -> str:
        with self._lock:
            while True:
                n = self._low + self._next % self._size
                self._next += 1
                if n & 0xFF not in (0, 255):
                    return f"127.{n >> 16}.{(n >> 8) & 0xFF}.{n & 0xFF}"


_PODS = _Block(16, 120)
_SERVICES = _Block(120, 250)


def pod_ip() -> str:
    """A fresh pod address (the kubelet sets it as ``status.podIP`` when the pod's sandbox is up)."""
    return _PODS.take()


def cluster_ip() -> str:
    """A fresh Service address (``spec.clusterIP``)."""
    return _SERVICES.take()


def _ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or ()}
    return (
        status.get("phase") == "Running"
        and conditions.get("Ready") == "True"
        and bool(status.get("podIP"))
        and not pod["metadata"].get("deletionTimestamp")
    )


def _target_port(pod: dict[str, Any], target: Any) -> int | None:
    """A Service port's ``targetPort`` in this pod: a number, or a named container port."""
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for container in pod["spec"].get("containers") or ():
        for port in container.get("ports") or ():
            if port.get("name") == target:
                return int(port["containerPort"])
    return None


def endpoint(store: Store, service: dict[str, Any], port: dict[str, Any]) -> tuple[str, int] | None:
    """A ready endpoint ``(podIP, targetPort)`` of ``service`` for ``port``, None when there is none."""
    selector = (service.get("spec") or {}).get("selector") or {}
    if not selector:
        return None  # a Service without selector has the Endpoints someone else writes: none here
    ns = service["metadata"]["namespace"]
    pods, _ = store.list("pods", ns)
    for pod in pods:
        labels = pod["metadata"].get("labels") or {}
        if all(labels.get(k) == v for k, v in selector.items()) and _ready(pod):
            target = _target_port(pod, port.get("targetPort", port.get("port")))
            if target is not None:
                return str(pod["status"]["podIP"]), target
    return None


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


class _Relay:
    """kube-proxy for one Service port: ``clusterIP:port`` to a ready endpoint, per connection."""

    def __init__(self, store: Store, ns: str, name: str, ip: str, port: int) -> None:
        self.store, self.ns, self.name, self.port = store, ns, name, port
        self.server = socket.create_server((ip, port))
        self.closed = False
        threading.Thread(target=self._accept, name=f"k8s-emulator-proxy-{ip}:{port}", daemon=True).start()

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        service = self.store.find("services", self.ns, self.name)
        ports = ((service or {}).get("spec") or {}).get("ports") or ()
        port = next((p for p in ports if p.get("port") == self.port), None)
        target = endpoint(self.store, service, port) if service is not None and port is not None else None
        try:
            upstream = socket.create_connection(target, timeout=10.0) if target else None
        except OSError:
            upstream = None
        if upstream is None:
            # REJECT: the client sees the connection refused/reset, not a hang.
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            conn.close()
            return
        upstream.settimeout(None)
        back = threading.Thread(target=_pump, args=(upstream, conn), daemon=True)
        back.start()
        _pump(conn, upstream)
        back.join()
        conn.close()
        upstream.close()


class Network:
    """Keeps a relay per Service port in step with the Services in the store (fed by the controllers)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._relays: dict[tuple[str, str], list[_Relay]] = {}
        self._lock = threading.Lock()

    def on_change(self, change: Change) -> None:
        if change.plural != "services":
            return
        meta = change.obj["metadata"]
        key = (meta["namespace"], meta["name"])
        with self._lock:
            for relay in self._relays.pop(key, []):
                relay.close()
            if change.type == "DELETED":
                return
            spec = change.obj.get("spec") or {}
            ip = spec.get("clusterIP")
            relays = []
            for port in spec.get("ports") or ():
                if not ip or ip == "None" or port.get("protocol", "TCP") != "TCP":
                    continue
                try:
                    relays.append(_Relay(self.store, key[0], key[1], ip, int(port["port"])))
                except OSError as exc:
                    log.warning("emulator kube-proxy: cannot serve %s:%s of %s/%s: %s", ip, port["port"], *key, exc)
            self._relays[key] = relays

    def close(self) -> None:
        with self._lock:
            relays = [r for rs in self._relays.values() for r in rs]
            self._relays.clear()
        for relay in relays:
            relay.close()


HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers", "transfer-encoding",
     "upgrade", "content-length", "host", "authorization"}
)  # fmt: skip
"""Not forwarded (RFC 9110 section 7.6.1), and the user's credentials stay with the API server."""


def serve_service_proxy(emu: Emulator, handler: Handler, method: str, ns: str, ref: str) -> None:
    """``ref`` is ``[scheme:]name[:port]`` as in the URL; the rest of the path after ``/proxy`` is forwarded."""
    pieces = ref.split(":")
    scheme = pieces.pop(0) if len(pieces) == 3 else "http"
    name, port_ref = pieces[0], (pieces[1] if len(pieces) > 1 else "")
    if scheme != "http":
        raise ApiError(400, "BadRequest", f"the emulator's service proxy speaks http only, not {scheme}")
    service = emu.store.find("services", ns, name)
    if service is None:
        raise not_found("services", "", name)
    ports = (service.get("spec") or {}).get("ports") or []
    if port_ref:
        port = next((p for p in ports if p.get("name") == port_ref or str(p.get("port")) == port_ref), None)
    else:
        port = ports[0] if len(ports) == 1 else None
    if port is None:
        raise ApiError(503, "ServiceUnavailable", f'no endpoints available for service "{name}"')
    target = endpoint(emu.store, service, port)
    if target is None:
        raise ApiError(503, "ServiceUnavailable", f'no endpoints available for service "{name}"')
    url = urlparse(handler.path)
    marker = f"/services/{ref}/proxy"
    rest = url.path.split(marker, 1)[1] if marker in url.path else "/"
    path = (rest or "/") + (f"?{url.query}" if url.query else "")
    headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP}
    conn = http.client.HTTPConnection(*target, timeout=30.0)
    try:
        conn.request(method, path, body=handler._raw or None, headers=headers)
        response = conn.getresponse()
        body = response.read()
    except OSError as exc:
        raise ApiError(
            503, "ServiceUnavailable", f"error trying to reach service: dial tcp {target[0]}:{target[1]}: {exc}"
        ) from None
    finally:
        conn.close()
    handler.send_response(response.status, response.reason)
    for key, value in response.getheaders():
        if key.lower() not in HOP_BY_HOP:
            handler.send_header(key, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
    if handler._request is not None:
        handler._request.status = response.status
