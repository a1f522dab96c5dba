"""Free TCP ports for local services.

A port is picked by binding port 0 and closing the socket, so another process may take it before the
service binds it: that race cannot be closed without handing the socket itself to the service. What this
module does about it: ports handed out by this process are remembered until released, so two services of
one engine never get the same port while both are alive (the kernel happily returns a just-closed port
again); the probe socket never listens, so it leaves no TIME_WAIT state behind. A service that loses the
race fails (its log says "address already in use") and a retry of the run gets new ports.
"""

from __future__ import annotations

import socket
import threading


class PortAllocator:
    """Hands out distinct free ports on ``host`` and takes them back when a run is cleaned up."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self._lock = threading.Lock()
        self._reserved: dict[int, str] = {}
        self._by_owner: dict[str, list[int]] = {}

    def reserve(self, owner: str, count: int) -> tuple[int, ...]:
        """``count`` free ports for ``owner`` (a run uuid); a second call for the same owner gives new ones."""
        ports: list[int] = []
        with self._lock:
            attempts = 0
            while len(ports) < count:
                port = self._probe()
                attempts += 1
                if port in self._reserved or port in ports:
                    if attempts > 100 * count:
                        raise OSError("no free port found")
                    continue
                ports.append(port)
            for port in ports:
                self._reserved[port] = owner
            self._by_owner.setdefault(owner, []).extend(ports)
        return tuple(ports)

    def reserved(self) -> dict[str, tuple[int, ...]]:
        """The ports held now, by owner."""
        with self._lock:
            return {owner: tuple(ports) for owner, ports in self._by_owner.items()}

    def release(self, owner: str) -> None:
        with self._lock:
            for port in self._by_owner.pop(owner, ()):
                self._reserved.pop(port, None)

    def _probe(self) -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((self.host, 0))
            port: int = sock.getsockname()[1]
            return port
