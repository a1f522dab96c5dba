"""Running a container's process in a sandbox: its own mount and UTS namespaces, chrooted into its root
filesystem (see ``sandbox_init``), stdout and stderr captured line by line as the container log.

This needs root with CAP_SYS_ADMIN. Without it the executing kubelet refuses to start (``require``):
running the process on the host's filesystem would let pods see what no image contains, a kinder world
than a cluster's. The process is not PID 1 and shares the host's network and PID namespaces (known gaps).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from .rootfs import Mount, host_python

INIT = Path(__file__).with_name("sandbox_init.py")


class SandboxUnavailable(RuntimeError):
    pass


def require() -> None:
    """Fail loudly unless mount and UTS namespaces can be made here."""
    try:
        done = subprocess.run(
            ["unshare", "--mount", "--uts", "true"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxUnavailable(f"the executing kubelet needs util-linux's unshare: {exc}") from exc
    if done.returncode != 0:
        raise SandboxUnavailable(
            "the executing kubelet needs root with CAP_SYS_ADMIN to give each container its own mount and UTS "
            f"namespaces (`unshare --mount --uts true` failed: {done.stderr.strip()})"
        )


class Process:
    """One run of a container: a process group led by the container's command."""

    def __init__(
        self,
        *,
        root: Path,
        state: Path,
        hostname: str,
        mounts: list[Mount],
        argv: list[str],
        env: dict[str, str],
        workdir: str,
        user: tuple[int, int] = (0, 0),
        on_line: Callable[[str], None],
    ) -> None:
        read_end, write_end = os.pipe()
        spec = {
            "root": str(root),
            "hostname": hostname,
            "mounts": [asdict(m) for m in mounts],
            "argv": argv,
            "env": env,
            "workdir": workdir,
            "uid": user[0],
            "gid": user[1],
            "status_fd": write_end,
        }
        spec_file = state / "sandbox.json"
        spec_file.write_text(json.dumps(spec))
        self.popen = subprocess.Popen(
            ["unshare", "--mount", "--uts", str(host_python()), "-I", "-S", str(INIT), str(spec_file)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={},
            start_new_session=True,  # its own process group: the pod sandbox's teardown kills it all
            pass_fds=(write_end,),
        )
        os.close(write_end)
        with os.fdopen(read_end, "rb") as status:
            error = status.read().decode("utf-8", "replace")
        self.start_error = error or None
        """runc's message when the command could not be started (then the process exits 128)."""
        self.pid = self.popen.pid
        self.exit_code: int | None = None
        self.exited = threading.Event()
        self._lock = threading.Lock()
        self._on_line = on_line
        self._readers = [
            threading.Thread(target=self._read, args=(stream,), daemon=True, name=f"log-{hostname}")
            for stream in (self.popen.stdout, self.popen.stderr)
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: object) -> None:
        assert hasattr(stream, "readline")
        for raw in iter(stream.readline, b""):
            text = raw.decode("utf-8", "replace").rstrip("\n")
            with self._lock:
                self._on_line(text)
        stream.close()  # type: ignore[attr-defined]

    def signal(self, sig: int) -> None:
        """The runtime signals the container's main process."""
        if self.popen.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def watch(self, on_exit: Callable[[], None]) -> None:
        """Wait for the exit on a thread of its own, then call ``on_exit`` (``exit_code`` is set)."""

        def wait() -> None:
            self.exit_code = self._reap()
            self.exited.set()
            on_exit()

        threading.Thread(target=wait, daemon=True, name=f"wait-{self.pid}").start()

    def _reap(self) -> int:
        """Its exit code once it has exited; then the rest of its group is killed, as a PID namespace dies
        with its first process, and the log is complete."""
        code = self.popen.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        for reader in self._readers:
            reader.join()
        return 128 - code if code < 0 else code
