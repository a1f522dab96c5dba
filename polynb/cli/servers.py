"""``polynb server status`` and ``polynb server stop``: the command servers of this user (see :mod:`.served`)."""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path
from typing import Any

from polynb.cli import served
from polynb.cli.common import EXIT_OK


def register(subparsers: Any) -> None:
    """Add ``server status`` and ``server stop`` to the ``polynb`` argument parser."""
    parser = subparsers.add_parser("server", help="the warm processes that serve polynb commands: status, stop")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    status = actions.add_parser("status", help="list the command servers and whether they serve this installation")
    status.set_defaults(func=cmd_status)
    stop = actions.add_parser("stop", help="stop every command server (commands they run finish first)")
    stop.set_defaults(func=cmd_stop)


def _servers() -> list[tuple[int, Path]]:
    """(pid, socket) of every live server in the folder; each wrote its pid into its lock file."""
    folder = Path(served.runtime_dir())
    found = []
    for lock in sorted(folder.glob("cmd-*.lock")) if folder.is_dir() else []:
        try:
            text = lock.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and _alive(int(text)):
            found.append((int(text), lock.with_suffix(".sock")))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process under a reused pid: not our server
    return True


def cmd_status(args: argparse.Namespace) -> int:
    servers = _servers()
    state = "on" if served.enabled(os.environ) else f"off ({served.SWITCH}=0)"
    print(f"command servers in {served.runtime_dir()}: {len(servers)}; serving commands: {state}")
    current = served.socket_path(served.runtime_dir(), served.signature())
    for pid, sock in servers:
        role = "this installation" if str(sock) == current else "another interpreter or older sources"
        listening = "" if sock.exists() else ", stopping"
        print(f"  pid {pid}  {sock.name}  ({role}{listening})")
    return EXIT_OK


def cmd_stop(args: argparse.Namespace) -> int:
    stopped = 0
    for pid, _ in _servers():
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        stopped += 1
    print(f"stopped {stopped} command server{'s' * (stopped != 1)} (the commands they run finish first)")
    return EXIT_OK
