"""``polynb connections list|check``: the connections of the config file (``$POLYNB_CONFIG`` or
``$POLYNB_HOME/config.yaml``) and what can be checked about them from this machine (``polynb.connections``).

``check`` exits 1 when a connection is known to be unusable (a missing host path, a git url that does not
answer); what only the cluster can tell (a claim, a bucket's credentials in a secret) is ``unchecked``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from polynb.cli.common import EXIT_FAILED, EXIT_OK


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("connections", help="the config file's connections: list them, check them")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="one line per connection: name, kind, where it points, what it brings")
    listing.set_defaults(func=cmd_list)
    checking = sub.add_parser("check", help="check what can be checked from here (exit 1 if one is unusable)")
    checking.add_argument("names", nargs="*", metavar="NAME", help="only these connections (default: all)")
    checking.set_defaults(func=cmd_check)


def _load() -> tuple[Any, int]:
    from polynb.config_file import load_config
    from polynb.spec.errors import SpecErrors

    try:
        return load_config(), EXIT_OK
    except SpecErrors as exc:
        for error in exc.errors:
            print(str(error), file=sys.stderr)
        return None, EXIT_FAILED


def cmd_list(args: argparse.Namespace) -> int:
    from polynb.connections import summary

    config, status = _load()
    if config is None:
        return status
    if not config.connections:
        where = config.path or "no config file"
        print(f"no connections ({where})", file=sys.stderr)
        return EXIT_OK
    width = max(len(str(c["name"])) for c in config.connections)
    for connection in config.connections:
        store = "  (artifacts store)" if connection["name"] == config.artifacts_store else ""
        print(f"{connection['name']:<{width}}  {connection['kind']:<12}  {summary(connection)}{store}")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from polynb.connections import by_name, check

    config, status = _load()
    if config is None:
        return status
    known = by_name(config.connections)
    unknown = [n for n in args.names if n not in known]
    if unknown:
        print(f"polynb: no connection named {', '.join(unknown)} in {config.path or 'the config file (none found)'}"
              f" (connections: {', '.join(sorted(known)) or 'none'})", file=sys.stderr)  # fmt: skip
        return EXIT_FAILED
    failed = False
    for name in args.names or list(known):
        result = check(known[name])
        failed = failed or result.status == "failed"
        print(f"{result.name}  {result.kind}  {result.status}  {result.detail}")
    return EXIT_FAILED if failed else EXIT_OK
