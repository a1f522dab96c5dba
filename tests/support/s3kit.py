"""A real S3-compatible server for tests: moto's server in its own process on 127.0.0.1, a free port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import Any

DEADLOCK_GUARD = 60.0
"""Seconds before a wait is declared hung: a guard against deadlocks, never a timing assertion."""

KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}
"""What the connection's env gives (moto accepts any key)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoServer:
    """``python -m moto.server`` on ``port``; :meth:`stop` and :meth:`start` again keep the port (its data is
    in memory: a restarted server starts empty)."""

    def __init__(self, port: int | None = None, *, check_keys: bool = False) -> None:
        self.port = port or free_port()
        self.check_keys = check_keys
        """Refuse keys it does not know (moto's IAM checks, on from the first request): every key, here."""
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> MotoServer:
        env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"} if self.check_keys else None
        self._proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)  # fmt: skip
        deadline = time.monotonic() + DEADLOCK_GUARD
        while True:
            assert self._proc.poll() is None, f"moto server exited {self._proc.returncode}"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1.0).close()
                return self
            except OSError:
                assert time.monotonic() < deadline, "deadlock guard: moto server never answered"
                time.sleep(0.05)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=DEADLOCK_GUARD)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def env(self) -> list[dict[str, str]]:
        """A connection's ``env`` pointing at this server."""
        return [{"name": k, "value": v} for k, v in {**KEYS, "AWS_ENDPOINT_URL": self.url}.items()]

    def connection(self, name: str, bucket: str, **extra: Any) -> dict[str, Any]:
        return {"name": name, "kind": "s3", "schema": {"bucket": bucket}, "env": self.env(), **extra}

    def fs(self) -> Any:
        """An s3fs filesystem on this server (to make buckets and put objects)."""
        import s3fs

        return s3fs.S3FileSystem(key=KEYS["AWS_ACCESS_KEY_ID"], secret=KEYS["AWS_SECRET_ACCESS_KEY"],
                                 endpoint_url=self.url, skip_instance_cache=True,
                                 use_listings_cache=False)  # fmt: skip

    def objects(self, root: str) -> dict[str, bytes]:
        """The objects under ``root`` (``bucket/prefix``) by key relative to it, with their bytes, as a reader
        polling a bucket that is being written sees them: only objects, and none that vanished between the
        listing and the read (s3fs may list the prefix itself while a put is under way)."""
        fs = self.fs()
        found: dict[str, bytes] = {}
        for path, info in fs.find(root, detail=True).items():
            if info.get("type") != "file" or not path.startswith(root + "/"):
                continue
            try:
                found[path[len(root) + 1 :]] = fs.cat_file(path)
            except FileNotFoundError:
                continue
        return found
