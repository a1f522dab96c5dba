"""``polynb run --no-wait``: the same run, in a background process of its own; this one prints the uuid.

The background ``polynb run`` (a new session, so a Ctrl-C in this terminal does not reach it) owns the
engine until every non-service op is done, exactly as a foreground one; its output goes to a file under
``$POLYNB_HOME/detached/``. It hands the run's uuid back through a pipe once the runs exist in the store,
so the uuid printed here can be given to ``polynb logs``, ``events`` or ``stop`` at once.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

from polynb.cli.common import EXIT_FAILED, EXIT_OK

UUID_FD_ENV = "POLYNB_RUN_UUID_FD"
HANDOVER_TIMEOUT = 120.0
"""Seconds to wait for the background run to report its uuid (it validates the file again first)."""


def detach(run_argv: list[str]) -> int:
    """Start ``polynb run *run_argv`` in the background; print its uuid when it has submitted."""
    from polynb.store import polynb_home

    folder = polynb_home() / "detached"
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    read_fd, write_fd = os.pipe()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "polynb.cli", "run", *run_argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=(write_fd,),
            env={**os.environ, UUID_FD_ENV: str(write_fd)},
        )
    os.close(write_fd)
    uuid = _read_line(read_fd, HANDOVER_TIMEOUT)
    if not uuid:
        code = proc.poll()
        print(f"polynb: the background run did not start (exit status {code}); its output, {log}:", file=sys.stderr)
        print(log.read_text(errors="replace")[-4000:], file=sys.stderr)
        return EXIT_FAILED
    print(uuid)
    print(
        f"running in the background (pid {proc.pid}, output in {log});"
        f" polynb events {uuid[:12]} · polynb logs -f {uuid[:12]} · polynb stop {uuid[:12]}",
        file=sys.stderr,
    )
    return EXIT_OK


def _read_line(fd: int, timeout: float) -> str:
    """The first line written to ``fd`` ("" at EOF: the writer died first)."""
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while b"\n" not in data:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return ""
            chunk = os.read(fd, 256)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    return data.decode().strip()


def take_uuid_fd() -> int | None:
    """In a background run: the pipe to report the uuid on, kept from every process the run starts."""
    value = os.environ.pop(UUID_FD_ENV, None)
    if value is None:
        return None
    fd = int(value)
    os.set_inheritable(fd, False)
    return fd


def report_uuid(fd: int | None, uuid: str) -> None:
    if fd is not None:
        try:
            os.write(fd, uuid.encode() + b"\n")
        finally:
            os.close(fd)


def run_argv(
    file: Path,
    params: list[str],
    *,
    executor: str,
    json_out: bool,
    stop_services: bool,
    extra: list[str] | None = None,
) -> list[str]:
    """The arguments of the background ``polynb run`` (the file made absolute, progress as lines); ``extra``
    are passed on as they are (``--k8s-*`` flags)."""
    argv = ["-f", str(file.resolve()), "--executor", executor, "--no-live", *(extra or ())]
    for item in params:
        argv += ["-P", item]
    if json_out:
        argv.append("--json")
    if stop_services:
        argv.append("--stop-services")
    return argv
