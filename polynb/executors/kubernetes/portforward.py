"""A local port that forwards to a pod's port through the API server (``kubectl port-forward``'s job).

Used when the notebook (or ``polynb port-forward``) runs outside the cluster, where a Service's DNS name
does not resolve. The local port is bound once and stays the same while the forward lives; each accepted
connection opens its own port-forward WebSocket (``v4.channel.k8s.io``, the official client's
``kubernetes.stream.portforward``: one connection per port per WebSocket) to the pod that serves the run
*now* (looked up per connection: a replaced pod is followed), and two threads copy bytes each way. The
official helper swaps ``call_api`` on the ``ApiClient`` it is given while it connects, so every tunnel gets
an ``ApiClient`` of its own rather than sharing the executor's (whose watch thread uses it concurrently).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Tunnel(Protocol):
    """One forwarded connection to the pod's port: a socket-like object."""

    def sendall(self, data: bytes) -> None: ...
    def recv(self, size: int) -> bytes: ...
    def close(self) -> None: ...


Connect = Callable[[], Tunnel]
"""Opens a tunnel to the pod's port (one per accepted local connection)."""

PodLookup = Callable[[], str]
"""The name of the pod to forward to now; raises ``LookupError`` (with the reason) when there is none."""


class _OfficialTunnel:
    """The socket of one official port-forward; on its end, says why when the API server said why."""

    def __init__(self, forward: Any, port: int, pod: str) -> None:
        self._forward, self._port, self._pod = forward, port, pod
        self._sock = forward.socket(port)

    def sendall(self, data: bytes) -> None:
        self._sock.sendall(data)

    def recv(self, size: int) -> bytes:
        data: bytes = self._sock.recv(size)
        if not data:
            error = self._forward.error(self._port)
            if error:  # e.g. nothing listens on the port in the pod (yet)
                log.warning("port-forward to pod %s port %d: %s", self._pod, self._port, error)
        return data

    def close(self) -> None:
        self._forward.close()  # closes our end; the client's thread then closes the WebSocket


def official_connect(configuration: Any, namespace: str, pod: str | PodLookup, port: int) -> Connect:
    """A :data:`Connect` through the official client's WebSocket port-forward to ``pod`` (a name, or a
    lookup made for every connection)."""
    from kubernetes import client as k8s
    from kubernetes.stream import portforward

    def connect() -> Tunnel:
        name = pod() if callable(pod) else pod
        api = k8s.CoreV1Api(k8s.ApiClient(configuration))
        forward = portforward(api.connect_get_namespaced_pod_portforward, name, namespace, ports=str(port))
        return _OfficialTunnel(forward, port, name)

    return connect


class PortForward:
    """Listens on ``host:port`` (loopback; port 0: any free one) and forwards every connection through
    ``connect``. ``prefer`` tries that port first and takes any free one when it is taken (a restarted kernel
    keeps its links when it can); an explicit ``port`` that is taken is an ``OSError``."""

    def __init__(self, connect: Connect, *, host: str = "127.0.0.1", port: int = 0, prefer: int = 0) -> None:
        self._connect = connect
        server = None
        if prefer and not port:
            with contextlib.suppress(OSError):
                server = socket.create_server((host, prefer))
        self._server = server or socket.create_server((host, port))
        self.host = host
        self.port: int = self._server.getsockname()[1]
        self._closed = threading.Event()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name=f"polynb-k8s-forward-{self.port}", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            tunnel = self._connect()
        except Exception as exc:
            log.warning("port-forward: cannot open a tunnel: %s", exc)
            self._drop(conn)
            return
        upstream = threading.Thread(target=self._pump_up, args=(conn, tunnel), daemon=True)
        upstream.start()
        try:
            while True:
                data = tunnel.recv(65536)
                if not data:
                    break
                conn.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(Exception):
                tunnel.close()
            self._drop(conn)
            upstream.join(timeout=5.0)

    @staticmethod
    def _pump_up(conn: socket.socket, tunnel: Tunnel) -> None:
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                tunnel.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(Exception):
                tunnel.close()

    def _drop(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.discard(conn)
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)
        conn.close()
