"""The first step of every emulated container, run by the host interpreter inside fresh mount and UTS
namespaces (``unshare --mount --uts``): bind the image's and the pod's mounts into the container's root,
set the hostname to the pod's name, ``chroot`` into it and exec the container's command, resolved on the
container's own ``PATH`` (as runc does). Standalone (run with ``python -I -S``), stdlib only.

When the executable is missing, runc fails the container start and containerd's CRI plugin records the
container as exited with ``errorStartReason = "StartError"`` and ``errorStartExitCode = 128`` ("the same
with Docker's behavior"), the runtime's error as its message (containerd ``pkg/cri/server/
container_start.go``); the kubelet shows that as the terminated state. So this writes runc's message
(``START_ERROR``) to the status pipe the kubelet reads, and exits 128. A shell that cannot find a command
exits 127 on its own, as in a real container.
"""

import ctypes
import ctypes.util
import json
import os
import socket
import sys
from typing import Any

MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

START_ERROR = (
    "failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create "
    'failed: unable to start container process: exec: "{0}": {1}: unknown'
)


SETUP_ERROR = (
    "failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create "
    "failed: unable to start container process: error during container init: {0}: unknown"
)


def mount(
    libc: ctypes.CDLL, source: bytes, target: bytes, flags: int, fstype: bytes | None = None, data: bytes | None = None
) -> None:
    if libc.mount(source, target, fstype, flags, data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source!r} on {target!r}: {os.strerror(err)}")


def main() -> None:
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    errors = spec["status_fd"]  # closes on a successful exec (the kubelet reads EOF), else gets the error
    os.set_inheritable(errors, False)
    try:
        enter(spec)
    except OSError as exc:  # a mount or the chroot failed: the container does not start
        os.write(errors, SETUP_ERROR.format(exc).encode())
        os._exit(128)
    run(spec, errors)


def enter(spec: dict[str, Any]) -> None:
    """Mounts, hostname, chroot and working directory: the container's view of the world."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    root = spec["root"]
    mount(libc, b"none", b"/", MS_REC | MS_PRIVATE)
    for m in spec["mounts"]:
        target = root + m["target"]
        if os.path.isdir(m["source"]):
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if not os.path.exists(target):
                open(target, "a").close()
        mount(libc, m["source"].encode(), target.encode(), MS_BIND | MS_REC)
        if m["readonly"]:
            mount(libc, b"none", target.encode(), MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC)
    # What a runtime gives every container: /proc (of the host's PID namespace here: a known gap) and a
    # 64 MiB tmpfs on /dev/shm (Docker's and containerd's default), for multiprocessing and friends.
    os.makedirs(root + "/proc", exist_ok=True)
    mount(libc, b"proc", (root + "/proc").encode(), 0, b"proc")
    os.makedirs(root + "/dev/shm", exist_ok=True)
    mount(libc, b"shm", (root + "/dev/shm").encode(), 0, b"tmpfs", b"mode=1777,size=65536k")
    socket.sethostname(spec["hostname"])
    os.chroot(root)
    workdir = spec["workdir"]
    os.makedirs(workdir, exist_ok=True)  # runc creates a missing working directory
    os.chdir(workdir)
    if spec["uid"] or spec["gid"]:  # runAsUser / runAsGroup, or the image's USER
        os.setgroups([])
        os.setgid(spec["gid"])
        os.setuid(spec["uid"])


def run(spec: dict[str, Any], errors: int) -> None:
    """Exec the command, found on the container's PATH; report a failure as runc does."""
    argv, env = spec["argv"], spec["env"]
    if not argv:
        os.write(errors, SETUP_ERROR.format("no command specified").encode())
        os._exit(128)
    program = argv[0]
    candidates = (
        [program] if "/" in program else [os.path.join(d or ".", program) for d in env.get("PATH", "").split(":")]
    )
    found = next((c for c in candidates if os.path.isfile(c) and os.access(c, os.X_OK)), None)
    if found is None:
        reason = (
            f"stat {program}: no such file or directory" if "/" in program else "executable file not found in $PATH"
        )
        os.write(errors, START_ERROR.format(program, reason).encode())
        os._exit(128)
    try:
        os.execve(found, argv, env)
    except OSError as exc:
        os.write(errors, START_ERROR.format(program, exc.strerror or "exec failed").encode())
        os._exit(128)


if __name__ == "__main__":
    main()
