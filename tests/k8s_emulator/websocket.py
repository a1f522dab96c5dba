"""Pod port-forward over WebSocket, as the kubelet serves it behind the API server.

The protocol (``pkg/kubelet/cri/streaming/portforward/websocket.go``; KEP-4006 "Transition from SPDY to
WebSockets" for the history): a ``GET .../pods/{name}/portforward?ports=P1,P2`` upgraded to a WebSocket
(RFC 6455) with the subprotocol ``v4.channel.k8s.io`` (or none). Port ``i`` of ``ports`` owns two channels:
data ``2*i`` and error ``2*i+1``. Every binary message starts with its channel byte. The first message on
each channel carries the port number as two little-endian bytes; after that the data channel carries the
TCP stream both ways and the error channel, server to client only, a text explaining why forwarding failed.
The kubelet dials the pod's port as soon as the WebSocket is up, once per port (one connection per port per
WebSocket: a client wanting N connections opens N WebSockets), and closes the WebSocket when every port's
connection is over.

Here the pod's port is ``status.podIP:port`` (pods get loopback addresses, see ``network``), so a process
listening in the "pod" — a thread in a test, or a process the executing kubelet started — is reached.

kubectl's way — SPDY streams, tunnelled in a WebSocket (``SPDY/3.1+portforward.k8s.io``) or over an
``Upgrade: SPDY/3.1`` connection — is in ``spdy``. Not served: ``v4.base64.channel.k8s.io`` (text frames).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import socket
import struct
import threading
from typing import IO, TYPE_CHECKING
from urllib.parse import parse_qs, urlparse

from .errors import ApiError

if TYPE_CHECKING:
    from . import Emulator
    from .server import Handler

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
SPDY_TUNNEL = "SPDY/3.1+portforward.k8s.io"
PROTOCOLS = ("v4.channel.k8s.io", "")
"""What the kubelet's port-forward accepts (binary ones); the client's first offered match wins."""

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class WebSocket:
    """The server end of an upgraded connection: RFC 6455 framing (the standard library has none).

    Client frames must be masked (section 5.1); server frames are not. ``send`` is thread-safe."""

    def __init__(self, rfile: IO[bytes] | io.BufferedIOBase, sock: socket.socket) -> None:
        self._rfile = rfile
        self._sock = sock
        self._send_lock = threading.Lock()
        self.closed = False

    def _read(self, n: int) -> bytes:
        data = self._rfile.read(n)
        if data is None or len(data) < n:
            raise ConnectionError("the client went away mid-frame")
        return data

    def _frame(self) -> tuple[bool, int, bytes]:
        b0, b1 = self._read(2)
        fin, opcode, masked, length = bool(b0 & 0x80), b0 & 0x0F, bool(b1 & 0x80), b1 & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._read(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read(8))
        if not masked:
            raise ConnectionError("an unmasked client frame (RFC 6455 section 5.1)")
        mask = self._read(4)
        payload = bytearray(self._read(length))
        for i in range(length):
            payload[i] ^= mask[i % 4]
        return fin, opcode, bytes(payload)

    def recv(self) -> tuple[int, bytes] | None:
        """The next data message ``(opcode, payload)``; None once the client closed (the close is answered)."""
        message = b""
        first = None
        while True:
            fin, opcode, payload = self._frame()
            if opcode == PING:
                self.send(PONG, payload)
                continue
            if opcode == PONG:
                continue
            if opcode == CLOSE:
                self.close(payload[:2] if len(payload) >= 2 else b"")
                return None
            if first is None:
                first = opcode
            message += payload
            if fin:
                return first, message

    def send(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, n)
        elif n < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 127, n)
        with self._send_lock:
            if self.closed:
                raise ConnectionError("the WebSocket is closed")
            self._sock.sendall(header + payload)
            if opcode == CLOSE:
                self.closed = True

    def close(self, code: bytes = struct.pack("!H", 1000)) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            self.send(CLOSE, code)


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()  # RFC 6455 section 4.2.2


def requested_ports(handler: Handler) -> list[int]:
    """``ports`` as the apiserver converts it (repeated and comma-separated values both work:
    apimachinery's ``Convert_Slice_string_To_Slice_int32``)."""
    values = parse_qs(urlparse(handler.path).query).get("ports", [])
    ports: list[int] = []
    for value in values:
        for item in value.split(","):
            try:
                port = int(item)
            except ValueError:
                raise ApiError(400, "BadRequest", f'invalid port "{item}"') from None
            if not 0 < port < 65536:
                raise ApiError(400, "BadRequest", f"port {port} must be > 0 and < 65536")
            ports.append(port)
    if not ports:
        # The kubelet's parsePortsFromQuery (the apiserver passes each one on as "port").
        raise ApiError(400, "BadRequest", 'query parameter "port" is required')
    return ports


def serve_portforward(emu: Emulator, handler: Handler, namespace: str, pod: str, query: dict[str, str]) -> None:
    obj = emu.store.get("pods", namespace, pod)  # 404 `pods "x" not found`, before any upgrade
    if not obj["spec"].get("nodeName"):
        # registry/core/pod/strategy.go PortForwardLocation: no node, nowhere to go.
        raise ApiError(400, "BadRequest", f"pod {pod} does not have a host assigned")
    headers = handler.headers
    upgrade = (headers.get("Upgrade") or "").lower()
    if upgrade == "spdy/3.1":
        _serve_spdy_upgrade(emu, handler, namespace, pod)
        return
    if "websocket" not in upgrade or not headers.get("Sec-WebSocket-Key"):
        # httpstream's handshake (k8s.io/apimachinery/pkg/util/httpstream/spdy/upgrade.go) on a plain request.
        raise ApiError(400, "BadRequest", "unable to upgrade: missing upgrade headers in request")
    offered = [p.strip() for p in (headers.get("Sec-WebSocket-Protocol") or "").split(",") if p.strip()] or [""]
    if SPDY_TUNNEL in offered:
        _serve_spdy_tunnel(emu, handler, namespace, pod)
        return
    ports = requested_ports(handler)
    chosen = next((p for p in offered if p in PROTOCOLS), None)
    if chosen is None:
        # wsstream's handshake refuses; golang.org/x/net/websocket answers a refused handshake with 403.
        handler.send_text(403, f"requested protocol(s) are not supported: {offered}; supports {list(PROTOCOLS)}")
        handler.close_connection = True
        return
    handler.send_response(101, "Switching Protocols")
    handler.send_header("Upgrade", "websocket")
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Sec-WebSocket-Accept", accept_key(headers["Sec-WebSocket-Key"]))
    if chosen:
        handler.send_header("Sec-WebSocket-Protocol", chosen)
    handler.end_headers()
    handler.wfile.flush()
    handler.close_connection = True
    if handler._request is not None:
        handler._request.status = 101
    ws = WebSocket(handler.rfile, handler.connection)
    _Forward(emu, ws, namespace, pod, ports).run()


def _switch(handler: Handler, headers: dict[str, str]) -> None:
    handler.send_response(101, "Switching Protocols")
    for key, value in headers.items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.flush()
    handler.close_connection = True
    if handler._request is not None:
        handler._request.status = 101


def _serve_spdy_tunnel(emu: Emulator, handler: Handler, namespace: str, pod: str) -> None:
    """KEP-4006: SPDY inside WebSocket binary messages (the API server's translation to the kubelet)."""
    from .spdy import Session, Transport

    _switch(
        handler,
        {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Accept": accept_key(handler.headers["Sec-WebSocket-Key"]),
            "Sec-WebSocket-Protocol": SPDY_TUNNEL,
        },
    )
    ws = WebSocket(handler.rfile, handler.connection)

    def read() -> bytes:
        while True:
            try:
                message = ws.recv()
            except (OSError, ConnectionError):
                return b""
            if message is None:
                return b""
            if message[0] == BINARY and message[1]:
                return message[1]

    Session(emu, Transport(read, lambda data: ws.send(BINARY, data)), namespace, pod).run()
    ws.close()


def _serve_spdy_upgrade(emu: Emulator, handler: Handler, namespace: str, pod: str) -> None:
    """kubectl's fallback: ``Upgrade: SPDY/3.1`` with ``X-Stream-Protocol-Version: portforward.k8s.io``."""
    from .spdy import PROTOCOL, Session, Transport

    offered = handler.headers.get_all("X-Stream-Protocol-Version") or []
    versions = [v.strip() for value in offered for v in value.split(",")]
    if PROTOCOL not in versions:
        # httpstream.Handshake: no protocol in common.
        raise ApiError(
            403,
            "Forbidden",
            f"unable to upgrade: unable to negotiate protocol: client supports {versions}, server supports "
            f"[{PROTOCOL}]",
        )
    _switch(handler, {"Connection": "Upgrade", "Upgrade": "SPDY/3.1", "X-Stream-Protocol-Version": PROTOCOL})
    rfile = handler.rfile

    def read() -> bytes:
        try:
            return bytes(rfile.read1(65536))
        except (OSError, ValueError):
            return b""

    Session(emu, Transport(read, handler.connection.sendall), namespace, pod).run()


class _Forward:
    """One port-forward WebSocket: a connection to the pod per port, copied both ways."""

    def __init__(self, emu: Emulator, ws: WebSocket, namespace: str, pod: str, ports: list[int]) -> None:
        self.emu, self.ws, self.namespace, self.pod, self.ports = emu, ws, namespace, pod, ports
        self.conns: dict[int, socket.socket] = {}
        self.lock = threading.Lock()
        self.remaining = len(ports)

    def send(self, channel: int, data: bytes) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            self.ws.send(BINARY, bytes((channel,)) + data)

    def run(self) -> None:
        for i, port in enumerate(self.ports):
            prefix = struct.pack("<H", port)
            self.send(2 * i, prefix)
            self.send(2 * i + 1, prefix)
        # Dialled before reading the client: bytes it sends at once have somewhere to go.
        dialled = [(i, port, self._dial(port)) for i, port in enumerate(self.ports)]
        for i, port, conn in dialled:
            threading.Thread(
                target=self._port, args=(i, port, conn), name=f"k8s-emulator-forward-{port}", daemon=True
            ).start()
        try:
            while True:
                message = self.ws.recv()
                if message is None:
                    break
                opcode, data = message
                if opcode != BINARY or not data:
                    continue
                channel, payload = data[0], data[1:]
                if channel % 2 or channel // 2 >= len(self.ports):
                    continue  # error channels are the server's to write
                with self.lock:
                    target = self.conns.get(channel // 2)
                if target is not None:
                    with contextlib.suppress(OSError):
                        target.sendall(payload)
        except (OSError, ConnectionError):
            pass
        finally:
            self._shutdown()

    def _port(self, i: int, port: int, conn: socket.socket | OSError) -> None:
        if isinstance(conn, OSError):
            # What the kubelet writes when the runtime cannot connect (websocket.go portForward, wording of
            # containerd's PortForward): the error channel, then the port is done.
            self.send(
                2 * i + 1,
                (
                    f"error forwarding port {port} to pod {self.pod}, uid : failed to connect to "
                    f"localhost:{port} inside the pod's network namespace: {conn}"
                ).encode(),
            )
            self._done()
            return
        with self.lock:
            self.conns[i] = conn
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                self.send(2 * i, data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                conn.close()
            self._done()

    def _dial(self, port: int) -> socket.socket | OSError:
        obj = self.emu.store.find("pods", self.namespace, self.pod)
        status = (obj or {}).get("status") or {}
        ip = status.get("podIP")
        if obj is None or status.get("phase") in ("Succeeded", "Failed") or not ip:
            return OSError(f"the pod sandbox of {self.pod} is not running")
        try:
            conn = socket.create_connection((ip, port), timeout=10.0)
        except OSError as exc:
            return exc
        conn.settimeout(None)
        return conn

    def _done(self) -> None:
        with self.lock:
            self.remaining -= 1
            last = self.remaining == 0
        if last:
            self.ws.close()  # the client answers the close; ``run`` returns then

    def _shutdown(self) -> None:
        with self.lock:
            conns = list(self.conns.values())
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
