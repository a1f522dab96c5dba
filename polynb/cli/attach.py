"""``polynb attach RUN``: finish a run whose ``polynb run`` is gone (killed, its terminal closed).

Every top-level run records the engine that owns it. When that process dies, its runs stay as they were in
the store (ops still running as processes of their own, pending ops never started). ``attach`` starts an
engine here, which adopts them (``Engine.start`` re-attaches to live ops through their stored handles and
schedules what is pending, never submitting an op twice), then shows the progress and waits exactly as
``polynb run`` does: the same output, ``--json``, ``--stop-services``, Ctrl-C stops the run, exit status 0
when the DAG succeeded. A run owned by a live engine is left to it.

The engine adopts every run whose owner is gone, not only RUN: the others are followed silently while this
command runs and released again (for the next engine) when it exits.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from polynb.cli.common import EXIT_FAILED, EXIT_OK, error
from polynb.executors.registry import BuildOptions, ExecutorSetupError, build
from polynb.lifecycle import FINAL, PIPELINE_KINDS, Status


def register(subparsers: Any) -> None:
    """Add ``attach`` to the ``polynb`` argument parser."""
    p = subparsers.add_parser(
        "attach", help="continue and wait for a run whose polynb run is gone (killed, terminal closed)"
    )
    p.add_argument("run", metavar="RUN", help="uuid, uuid prefix or run name (latest); an op means its DAG")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout (progress on stderr)")
    p.add_argument(
        "--stop-services", action="store_true", help="stop services (TensorBoard) once the other ops are done"
    )
    p.add_argument("--live", dest="live", action="store_true", default=None, help="force the live view")
    p.add_argument("--no-live", dest="live", action="store_false", help="one line per status change")
    p.set_defaults(func=cmd_attach)


def cmd_attach(args: argparse.Namespace) -> int:
    from polynb.cli.run import (  # the engine and executors once there is work
        Runner,
        local_artifacts_root,
        local_artifacts_store,
    )
    from polynb.scheduler.ownership import OWNER_KEY, new_owner, owner_alive, shown_pid
    from polynb.spec.errors import SpecErrors
    from polynb.store import Store, resolve_run, root_of

    with Store() as store:
        try:
            run = resolve_run(store, args.run)
        except (LookupError, ValueError) as exc:
            error(str(exc))
            return EXIT_FAILED
        root = root_of(store, run)
        members = (
            [root, *store.list_runs(root.uuid)] if root.kind in PIPELINE_KINDS else [root, *store.hooks_of(root.uuid)]
        )
    label = f"{root.name} ({root.uuid[:12]})"
    live = [r for r in members if r.status not in FINAL]
    if not live:
        print(f"{label} is already {root.status.value}: nothing to attach to")
        return EXIT_OK if root.status == Status.SUCCEEDED else EXIT_FAILED  # as after attaching: how it ended
    owner = root.meta.get(OWNER_KEY)
    if owner_alive(owner, me=new_owner()):
        assert owner is not None
        where = f"process {shown_pid(owner)}" + (f" on {owner.get('host')}" if owner.get("host") else "")
        error(
            f"{label} is run by the engine in {where}, which is alive: follow it with `polynb logs -f"
            f" {root.uuid[:12]}` or `polynb events {root.uuid[:12]}`, stop it with `polynb stop {root.uuid[:12]}`"
        )
        return EXIT_FAILED
    if root.status in FINAL:
        services = ", ".join(f"{s.name} ({s.uuid[:12]})" for s in live)
        print(f"{label} is already {root.status.value}; still running: {services} (`polynb stop RUN` stops one)")
        return EXIT_OK
    names = dict.fromkeys(r.executor or "local" for r in members)
    executor = root.executor or "local"
    try:
        # Runs the engine still creates (hooks, retries) go where new runs go now; the others keep their root.
        # A bucket store that does not answer refuses too: the runs attached here finish their syncs to it.
        store = Store(artifacts_root=local_artifacts_root(executor), artifacts_store=local_artifacts_store(executor))
    except SpecErrors as exc:
        error(f"{exc}\n{label} was not attached")
        return EXIT_FAILED
    options = BuildOptions(artifacts_root_of=store.artifacts_root_of, artifacts_store_of=store.artifacts_store_of)
    try:
        executors = {name: build(name, options) for name in dict.fromkeys(("local", *names))}
    except ExecutorSetupError as exc:
        store.close()
        error(f"{exc}; {label} was not attached")
        return EXIT_FAILED
    stream = sys.stderr if args.json else sys.stdout
    runner = Runner(None, executors, executor=executor, stream=stream, live=args.live, adopt=root.uuid, store=store)
    return runner.run(json_out=args.json, stop_services=args.stop_services)


__all__ = ["cmd_attach", "register"]
