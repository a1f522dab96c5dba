"""Linux inotify through ``ctypes``: the kernel tells when a folder changes, so a watched folder or git
repository costs no CPU while nothing happens, and a change is seen within milliseconds.

Why not ``watchfiles`` (Rust ``notify`` underneath, the modern choice for Python): it is not a dependency of
polynb, and the three calls needed here (``inotify_init1``, ``inotify_add_watch``, ``read``) are part of
Linux's C library; on a system without inotify, :func:`available` is False and the sources poll instead.
See inotify(7) for the event layout read by :meth:`Inotify.read`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import struct
from dataclasses import dataclass
from pathlib import Path

IN_MODIFY = 0x00000002
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_Q_OVERFLOW = 0x00004000
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

_HEADER = struct.Struct("iIII")  # struct inotify_event: int wd; uint32 mask, cookie, len; char name[len]


@dataclass(frozen=True, slots=True)
class Change:
    folder: Path
    name: str
    mask: int


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        lib = ctypes.CDLL(name, use_errno=True)
        lib.inotify_init1  # noqa: B018 -- missing on non-Linux C libraries
    except (OSError, AttributeError):
        return None
    return lib


_LIBC = _libc()


def available() -> bool:
    return _LIBC is not None


class Inotify:
    """One inotify instance: ``add`` folders, ``select`` on ``fileno()``, then ``read()`` the changes."""

    def __init__(self) -> None:
        if _LIBC is None:
            raise OSError(errno.ENOSYS, "inotify is not available")
        fd = _LIBC.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)}")
        self._fd: int = int(fd)
        self._folders: dict[int, Path] = {}

    def fileno(self) -> int:
        return int(self._fd)

    def add(self, folder: Path, mask: int) -> int:
        assert _LIBC is not None
        wd = _LIBC.inotify_add_watch(self._fd, os.fsencode(folder), mask)
        if wd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_add_watch {folder}: {os.strerror(err)}")
        self._folders[wd] = folder
        return int(wd)

    def remove(self, wd: int) -> None:
        assert _LIBC is not None
        if self._folders.pop(wd, None) is not None:
            _LIBC.inotify_rm_watch(self._fd, wd)  # fails harmlessly if the folder is gone (the watch went with it)

    def read(self) -> list[Change]:
        """Every change queued (none if nothing is); ``IN_Q_OVERFLOW`` comes as a change with mask and no name."""
        changes: list[Change] = []
        while True:
            try:
                data = os.read(self._fd, 64 * 1024)
            except BlockingIOError:
                return changes
            offset = 0
            while offset + _HEADER.size <= len(data):
                wd, mask, _cookie, length = _HEADER.unpack_from(data, offset)
                raw = data[offset + _HEADER.size : offset + _HEADER.size + length]
                offset += _HEADER.size + length
                name = os.fsdecode(raw.rstrip(b"\0"))
                changes.append(Change(self._folders.get(wd, Path()), name, mask))

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
