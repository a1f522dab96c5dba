"""``polynb approve|invalidate RUN`` and ``polynb emit NAME``: events a person sends to running pipelines.

An ``isApproved: false`` op waits, ``created``, until ``polynb approve`` (``run_approved_actor``);
``polynb invalidate`` (``run_invalidated_actor``) makes it ``skipped``. A DAG given as RUN stands for every op
of it waiting for an approval. ``polynb emit`` sends a
``project_custom_event`` (``--org``: ``org_custom_event``) to every running DAG on this host: the ops awaiting
``{ref: dag, kinds: [project_custom_event]}`` start. See ``polynb.scheduler.remote_events``.
"""

from __future__ import annotations

import argparse
import getpass
import json
from typing import Any

from polynb.cli.common import EXIT_FAILED, EXIT_OK, error


def register(subparsers: Any) -> None:
    for name, approved, text in (
        ("approve", True, "approve a run waiting for it (isApproved: false): it starts"),
        ("invalidate", False, "invalidate a run waiting for an approval: it is skipped"),
    ):
        p = subparsers.add_parser(name, help=text)
        p.add_argument("run", metavar="RUN", help="uuid, uuid prefix or run name (latest)")
        p.add_argument("--actor", default=None, help="who approves (default: your user name)")
        p.set_defaults(func=cmd_approve, approved=approved)

    p = subparsers.add_parser("emit", help="send a custom event to the running DAGs (ops awaiting `ref: dag`)")
    p.add_argument("name", metavar="NAME", help="the event's name (payload key `name`)")
    p.add_argument("values", metavar="KEY=VALUE", nargs="*", help="payload entries; VALUE is JSON or a string")
    p.add_argument("--org", action="store_true", help="an org_custom_event (default: project_custom_event)")
    p.set_defaults(func=cmd_emit)


def cmd_approve(args: argparse.Namespace) -> int:
    from polynb.scheduler.control import ControlError
    from polynb.scheduler.remote_events import approval_targets, approve
    from polynb.store import Store, resolve_run

    verb = "approved" if args.approved else "invalidated"
    with Store() as store:
        try:
            run = resolve_run(store, args.run)
            targets = approval_targets(store, run)
            if not targets:
                error(f"{run.name} ({run.uuid}) has no op waiting for an approval")
                return EXIT_FAILED
            done = [
                (t, approve(store, t, approved=args.approved, actor=args.actor or getpass.getuser())) for t in targets
            ]
        except (LookupError, ValueError, ControlError) as exc:
            error(str(exc))
            return EXIT_FAILED
    for target, how in done:
        where = "by the engine running it" if how == "engine" else "in the store (the next engine to attach acts on it)"
        print(f"{target.name} ({target.uuid}) {verb}, {where}")
    return EXIT_OK


def parse_values(values: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; a value that parses as JSON is taken as JSON (``n=3`` is a number)."""
    payload: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{item!r}: payload entries are KEY=VALUE")
        try:
            payload[key] = json.loads(raw)
        except ValueError:
            payload[key] = raw
    return payload


def cmd_emit(args: argparse.Namespace) -> int:
    from polynb.scheduler.control import ControlError
    from polynb.scheduler.remote_events import emit
    from polynb.store import Store

    kind = "org_custom_event" if args.org else "project_custom_event"
    try:
        payload = {**parse_values(args.values), "name": args.name}
        with Store() as store:
            seqs = emit(store, kind, payload)
    except (ValueError, ControlError) as exc:
        error(str(exc))
        return EXIT_FAILED
    if not seqs:
        print(f"{kind} {args.name!r}: no DAG is running on this host; nothing recorded")
        return EXIT_OK
    print(f"{kind} {args.name!r} recorded on {len(seqs)} running DAG{'s' * (len(seqs) != 1)}")
    return EXIT_OK
