"""Pod port-forward as kubectl speaks it: SPDY/3.1 streams (``portforward.k8s.io``), either tunnelled in a
WebSocket (subprotocol ``SPDY/3.1+portforward.k8s.io``, KEP-4006: every binary message is a piece of the
SPDY byte stream, kubectl's first choice since 1.31) or over a plain ``Upgrade: SPDY/3.1`` connection
(kubectl's fallback).

The SPDY side follows the SPDY/3 draft (framing, section 2; header blocks, 2.6.10, zlib with the
dictionary of 2.6.10.1, one compression context per direction) as far as the port-forward uses it, and
the kubelet's ``pkg/kubelet/cri/streaming/portforward/httpstream.go`` for the streams: per local
connection the client opens an ``error`` stream then a ``data`` stream with headers ``streamType``,
``port`` and ``requestID``; every SYN_STREAM is answered with a SYN_REPLY; once both streams of a request
are there the pod's port is dialled, bytes are copied, and a failure is written on the error stream. Both
streams are half-closed (a FIN) when the pod's side ends. PINGs are echoed; flow control is not used
(kubectl's spdystream does not use it either).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from . import Emulator

SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
PROTOCOL = "portforward.k8s.io"

# The SPDY/3 header compression dictionary (draft-mbelshe-httpbis-spdy-00 section 2.6.10.1): length-prefixed
# words, then plain text.
_DICTIONARY_WORDS = (
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
)
_DICTIONARY_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505203 Non-Au"
    "thoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized403 Forbidd"
    "en404 Not Found500 Internal Server Error501 Not Implemented503 Service UnavailableJan Feb Mar Apr Ma"
    "y Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,imag"
    "e/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,publicpri"
    "vatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY = b"".join(len(w).to_bytes(4, "big") + w.encode() for w in _DICTIONARY_WORDS) + _DICTIONARY_TAIL.encode()


class Transport:
    """Where the SPDY bytes travel: ``read()`` returns the next bytes (b"" at the end), ``write`` sends."""

    def __init__(self, read: Callable[[], bytes], write: Callable[[bytes], None]) -> None:
        self.read, self.write = read, write


class _Stream:
    def __init__(self, sid: int, headers: dict[str, str]) -> None:
        self.sid = sid
        self.kind = headers.get("streamtype", "")
        self.port = headers.get("port", "")
        self.request = headers.get("requestid", "")
        self.conn: socket.socket | None = None
        self.pending = b""
        self.client_done = False


class Session:
    """The server end of one SPDY connection carrying port-forward streams to pod ``pod``."""

    def __init__(self, emu: Emulator, transport: Transport, namespace: str, pod: str) -> None:
        self.emu, self.transport, self.namespace, self.pod = emu, transport, namespace, pod
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, 15, 8, zdict=DICTIONARY)
        self._buffer = b""
        self._send_lock = threading.Lock()
        self._lock = threading.Lock()
        self._streams: dict[int, _Stream] = {}
        self._requests: dict[str, dict[str, _Stream]] = {}

    # -- frames ---------------------------------------------------------------------------------------

    def _need(self, n: int) -> bytes | None:
        while len(self._buffer) < n:
            data = self.transport.read()
            if not data:
                return None
            self._buffer += data
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def _send(self, frame: bytes) -> None:
        with self._send_lock, contextlib.suppress(OSError, ConnectionError):
            self.transport.write(frame)

    def _control(self, kind: int, flags: int, body: bytes) -> None:
        self._send(struct.pack("!HHI", 0x8000 | 3, kind, (flags << 24) | len(body)) + body)

    def _data(self, sid: int, data: bytes, *, fin: bool = False) -> None:
        self._send(struct.pack("!II", sid & 0x7FFFFFFF, ((FLAG_FIN if fin else 0) << 24) | len(data)) + data)

    def _headers(self, block: bytes) -> dict[str, str]:
        raw = self._inflate.decompress(block)
        (count,) = struct.unpack("!I", raw[:4])
        pos, out = 4, {}
        for _ in range(count):
            (n,) = struct.unpack("!I", raw[pos : pos + 4])
            name = raw[pos + 4 : pos + 4 + n].decode().lower()
            pos += 4 + n
            (n,) = struct.unpack("!I", raw[pos : pos + 4])
            out[name] = raw[pos + 4 : pos + 4 + n].decode().split("\x00")[0]
            pos += 4 + n
        return out

    def _empty_headers(self) -> bytes:
        with self._send_lock:  # one compression context: blocks go out in the order they are made
            return self._deflate.compress(struct.pack("!I", 0)) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    # -- the loop -------------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            while (head := self._need(8)) is not None:
                first, second = struct.unpack("!II", head)
                flags, length = second >> 24, second & 0xFFFFFF
                body = self._need(length) if length else b""
                if body is None:
                    break
                if first & 0x80000000:
                    self._on_control((first >> 16) & 0x7FFF, first & 0xFFFF, flags, body)
                else:
                    self._on_data(first & 0x7FFFFFFF, flags, body)
        except (OSError, ConnectionError, zlib.error, struct.error):
            pass
        finally:
            with self._lock:
                streams = list(self._streams.values())
            for stream in streams:
                if stream.conn is not None:
                    with contextlib.suppress(OSError):
                        stream.conn.shutdown(socket.SHUT_RDWR)

    def _on_control(self, version: int, kind: int, flags: int, body: bytes) -> None:
        if version != 3:
            return
        if kind == SYN_STREAM:
            (sid,) = struct.unpack("!I", body[:4])
            sid &= 0x7FFFFFFF
            stream = _Stream(sid, self._headers(body[10:]))
            self._control(SYN_REPLY, 0, struct.pack("!I", sid) + self._empty_headers())
            with self._lock:
                self._streams[sid] = stream
                pair = self._requests.setdefault(stream.request, {})
                pair[stream.kind] = stream
                ready = "data" in pair and "error" in pair
            if flags & FLAG_FIN:
                stream.client_done = True
            if ready:
                threading.Thread(target=self._forward, args=(pair["data"], pair["error"]), daemon=True).start()
        elif kind == HEADERS:
            self._headers(body[4:])  # keeps the decompression context in step
        elif kind == PING:
            self._control(PING, 0, body)
        elif kind == RST_STREAM:
            (sid,) = struct.unpack("!I", body[:4])
            with self._lock:
                reset = self._streams.pop(sid & 0x7FFFFFFF, None)
            if reset is not None and reset.conn is not None:
                with contextlib.suppress(OSError):
                    reset.conn.shutdown(socket.SHUT_RDWR)
        # SETTINGS, WINDOW_UPDATE, GOAWAY: nothing to do for a port-forward server.

    def _on_data(self, sid: int, flags: int, data: bytes) -> None:
        with self._lock:
            stream = self._streams.get(sid)
            if stream is None:
                return
            conn = stream.conn
            if conn is None:
                stream.pending += data  # before the pod's port is dialled
            if flags & FLAG_FIN:
                stream.client_done = True
        if conn is not None:
            with contextlib.suppress(OSError):
                if data:
                    conn.sendall(data)
                if flags & FLAG_FIN:
                    conn.shutdown(socket.SHUT_WR)

    def _forward(self, data: _Stream, error: _Stream) -> None:
        obj = self.emu.store.find("pods", self.namespace, self.pod)
        status = (obj or {}).get("status") or {}
        try:
            port = int(data.port)
            ip = status.get("podIP")
            if obj is None or status.get("phase") in ("Succeeded", "Failed") or not ip:
                raise OSError(f"the pod sandbox of {self.pod} is not running")
            conn = socket.create_connection((ip, port), timeout=10.0)
        except (OSError, ValueError) as exc:
            message = (
                f"error forwarding port {data.port} to pod {self.pod}, uid : failed to connect to "
                f"localhost:{data.port} inside the pod's network namespace: {exc}"
            )
            self._data(error.sid, message.encode(), fin=True)
            self._data(data.sid, b"", fin=True)
            return
        conn.settimeout(None)
        with self._lock:
            data.conn = conn
            pending, data.pending = data.pending, b""
            done = data.client_done
        with contextlib.suppress(OSError):
            if pending:
                conn.sendall(pending)
            if done:
                conn.shutdown(socket.SHUT_WR)
        try:
            while chunk := conn.recv(65536):
                self._data(data.sid, chunk)
        except OSError:
            pass
        finally:
            conn.close()
            self._data(data.sid, b"", fin=True)
            self._data(error.sid, b"", fin=True)
