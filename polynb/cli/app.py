"""The ``polynb`` command: one argparse parser, one module per group of subcommands.

Each command module has ``register(subparsers)``, which adds its subcommands with ``set_defaults(func=...)``;
``func(args) -> int`` is the exit status. ``main`` never lets a traceback reach the user for bad input: the
commands report problems themselves, and usage errors exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from polynb.cli import approvals, attach, check, connections, forward, run, runs, servers, watch

EXIT_USAGE = 2

# Command modules, in the order of `polynb --help`. Each imports what its commands need only when they run.
COMMAND_MODULES = (check, run, runs, approvals, watch, attach, forward, connections, servers)


class _Version(argparse.Action):
    """``--version``: the installed version, looked up only when asked (``importlib.metadata`` costs tens of
    milliseconds, which argparse's own ``version`` action would spend on every command)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        from polynb.version import installed_version

        print(f"polynb {installed_version()}")  # on stdout, as ``--version`` conventionally is
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="polynb",
        description="Polyaxon-style ML pipelines (events, hooks, trigger policies), local or on Kubernetes.",
    )
    parser.add_argument("--version", action=_Version, help="print the version of polynb and exit")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


_prebuilt: list[argparse.ArgumentParser] = []
"""A parser the command server built before forking (:func:`prebuild`): the next ``main`` takes it."""


def prebuild() -> None:
    """Build the parser now, for the next command of this process (argparse's help texts pass through
    ``gettext``, which looks for catalogues on disk for every one of them: ~15 ms a command)."""
    _prebuilt[:] = [build_parser()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _prebuilt.pop() if _prebuilt else build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on usage errors and --help
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        status: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
