"""``polynb ls``, ``logs``, ``events`` and ``stop``: what the store recorded, read from any process.

RUN is a uuid, a unique uuid prefix, or a run name (the latest run of that name). ``logs`` also reads the artifacts
store's archive (:mod:`polynb.log_archive`): for a run whose pod or folder is gone, and for a run this home has no
record of (another home's, by uuid or unique prefix).
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from polynb.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    error,
    format_duration,
    iso,
    local_datetime,
    local_time,
    one_line,
    pipe_safe,
    positive_int,
    print_table,
    run_duration,
)
from polynb.cli.tree import RunTree, short_kind
from polynb.executors.registry import LazyExecutors
from polynb.lifecycle import FINAL, PIPELINE_KINDS, Status, is_status_event

if TYPE_CHECKING:  # the store is imported when a command runs: `polynb --help` does without it
    from polynb.executors.base import Executor
    from polynb.store import EventRecord, RunRecord, Store

"""Runs with runs under them (``dag_uuid``): a DAG's ops, a sweep's trials."""
FOLLOW_POLL = 0.2
"""Seconds between looks at the store while following (another process writes it: no event to wait on)."""
STOP_WAIT = 60.0
"""Seconds ``polynb stop`` waits for the run to be final after the stop was delivered."""


def register(subparsers: Any) -> None:
    """Add ``ls``, ``logs``, ``events`` and ``stop`` to the ``polynb`` argument parser."""
    p = subparsers.add_parser("ls", help="list runs (top-level runs; --all: with their ops and hooks)")
    p.add_argument("--all", "-a", action="store_true", help="include the ops and hooks of each run")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--limit", "-n", type=positive_int, default=50, help="at most this many top-level runs (default 50)")
    p.set_defaults(func=cmd_ls)

    p = subparsers.add_parser(
        "logs", help="print the logs of a run (of every op of a DAG); also from the artifacts store's archive"
    )
    p.add_argument("run", metavar="RUN", help="uuid, uuid prefix or run name (latest)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the run is final")
    p.set_defaults(func=cmd_logs)

    p = subparsers.add_parser(
        "events", help="print the event log of a run (a DAG: with its ops and hooks); no RUN: the latest events"
    )
    p.add_argument("run", metavar="RUN", nargs="?", help="uuid, uuid prefix or run name (latest)")
    p.add_argument("--limit", "-n", type=positive_int, default=50,
                   help="without RUN: this many latest events (default 50)")  # fmt: skip
    p.add_argument("--watch", metavar="NAME", help="the events a `polynb watch` handled (its cursor), with their runs")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_events)

    p = subparsers.add_parser("stop", help="stop a run (a DAG, an op or a service) from any terminal")
    p.add_argument("run", metavar="RUN", help="uuid, uuid prefix or run name (latest)")
    p.add_argument("--grace", type=float, default=None,
                   help="seconds between SIGTERM and SIGKILL (default: the engine's own, 10 without one)")  # fmt: skip
    p.add_argument("--no-wait", action="store_true", help="return once the stop is delivered")
    p.set_defaults(func=cmd_stop)


def _open_store() -> Store:
    from polynb.store import Store

    return Store()


def _find(store: Store, ref: str) -> RunRecord | None:
    from polynb.store import resolve_run

    try:
        return resolve_run(store, ref)
    except (LookupError, ValueError) as exc:
        error(str(exc))
        return None


# -- ls -------------------------------------------------------------------------------------------------


@pipe_safe
def cmd_ls(args: argparse.Namespace) -> int:
    from polynb.scheduler.ownership import orphaned

    with _open_store() as store:
        tops = store.list_runs(top_level_only=True, limit=args.limit)
        rows: list[tuple[RunRecord, int]] = []
        for top in tops:
            rows.append((top, 0))
            if args.all:
                if top.kind in PIPELINE_KINDS:
                    rows.extend(_ops_rows(store, top.uuid, 1))
                rows.extend((hook, 1) for hook in store.hooks_of(top.uuid))
    now = datetime.now(UTC)
    if args.json:
        orphans = {run.uuid for run in orphaned(tops)}
        print(json.dumps([_run_json(run, now, orphans) for run, _ in rows], indent=1))
        return EXIT_OK
    if not rows:
        print("no runs yet (polynb run -f FILE starts one)")
        return EXIT_OK
    print_table(
        ("uuid", "name", "kind", "status", "created", "duration"),
        [
            (
                run.uuid[:12],
                "  " * depth + ("↳ " if run.hook_of else "") + run.name + _trial_summary(run),
                run.kind,
                run.status.value,
                local_datetime(run.created_at),
                format_duration(run_duration(run, now=now)),
            )
            for run, depth in rows
        ],
        status_column=3,
    )
    for run in orphaned(tops):
        short = run.uuid[:12]
        print(f"{short} ({run.name}) is {run.status.value} but no engine runs it any more (its polynb run was"
              f" killed?): `polynb attach {short}` goes on with it, `polynb stop {short}` stops it")  # fmt: skip
    return EXIT_OK


def _trial_summary(run: RunRecord) -> str:
    """A trial's params and outputs after its name (``sweep-3  lr=0.1 → loss=0.04``); a sweep's progress."""
    trial = run.meta.get("trial")
    if isinstance(trial, dict):
        params = " ".join(f"{k}={_short(v)}" for k, v in (trial.get("params") or {}).items())
        outputs = " ".join(f"{k}={_short(v)}" for k, v in run.outputs.items() if isinstance(v, int | float | str))
        return f"  {params}" + (f" → {outputs}" if outputs else "")
    sweep = run.meta.get("sweep")
    if isinstance(sweep, dict) and sweep.get("total") is not None:
        return f"  ({sweep.get('kind')}, {sweep['total']} trials)"
    tick = run.meta.get("tick")
    if isinstance(tick, dict) and tick.get("at"):
        return f"  tick at {local_datetime(datetime.fromisoformat(tick['at']))}"
    schedule = run.meta.get("schedule")
    if isinstance(schedule, dict) and isinstance(schedule.get("spec"), dict):
        next_at = schedule.get("next_at")
        after = f", next {local_datetime(datetime.fromisoformat(next_at))}" if next_at else ""
        return f"  ({schedule['spec'].get('kind')} schedule, {schedule.get('fired', 0)} ticks{after})"
    return ""


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _run_json(run: RunRecord, now: datetime, orphans: set[str]) -> dict[str, Any]:
    trial = run.meta.get("trial")
    extra = {"trial": {"index": trial.get("index"), "params": trial.get("params")}} if isinstance(trial, dict) else {}
    tick = run.meta.get("tick")
    if isinstance(tick, dict):
        extra["tick"] = {"index": tick.get("index"), "at": tick.get("at")}
    return {
        **extra,
        "uuid": run.uuid,
        "name": run.name,
        "kind": run.kind,
        "status": run.status.value,
        "reason": run.reason,
        "attempt": run.attempt,
        "dag_uuid": run.dag_uuid,
        "hook_of": run.hook_of,
        "created_at": iso(run.created_at),
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "duration": run_duration(run, now=now),
        "url": run.url,
        "orphaned": run.uuid in orphans,
    }


# -- events ---------------------------------------------------------------------------------------------


def _ops_rows(store: Store, dag_uuid: str, depth: int) -> list[tuple[RunRecord, int]]:
    """The ops of a DAG at ``depth``, each followed by what is under it: a sweep's trials, a schedule's ticks,
    the ops of the nested DAG it runs (any depth), its hooks."""
    rows: list[tuple[RunRecord, int]] = []
    for run in store.children(dag_uuid):
        rows.append((run, depth))
        if "sweep" in run.meta or "schedule" in run.meta:  # an op of a DAG that sweeps or ticks: its runs under it
            rows.extend((trial, depth + 1) for trial in store.children(run.uuid))
        elif run.kind == "dag":  # an op running a nested DAG: its ops under it
            rows.extend(_ops_rows(store, run.uuid, depth + 1))
        rows.extend((hook, depth + 1) for hook in store.hooks_of(run.uuid))
    return rows


def _log_runs(store: Store, dag_uuid: str) -> list[tuple[str, RunRecord]]:
    """The runs of a DAG that have logs, with their label (what a DAG's index in the store keeps, too)."""
    from polynb.log_archive import log_runs

    return log_runs(store, dag_uuid)


@pipe_safe
def cmd_events(args: argparse.Namespace) -> int:
    if args.watch is not None:
        return _watch_events(args.watch, as_json=args.json)
    with _open_store() as store:
        if args.run is None:
            events = store.events(after_seq=max(0, store.last_seq() - args.limit))
            names = _names(store, events)
            return _print_events(events, names, as_json=args.json)
        run = _find(store, args.run)
        if run is None:
            return EXIT_FAILED
        # A DAG's events, with those of the nested DAGs its ops run (their ops as ``outer-op/inner-op``).
        tree = RunTree(store, run.uuid)
        events = tree.poll()
        names = {**_names(store, events), **{uuid: tree.label(r) for uuid, r in tree.runs.items()}}
    return _print_events(events, names, as_json=args.json)


def _watch_events(name: str, *, as_json: bool) -> int:
    from polynb.store.watches import WatchLog

    with _open_store() as store:
        events = WatchLog(store).events(name)
    if as_json:
        print(json.dumps([{"seq": e.seq, "at": iso(e.at), "source": e.source, "kind": e.kind, "id": e.event_id,
                           "status": e.status, "run": e.run_uuid, "message": e.message, "payload": e.payload}
                          for e in events], indent=1))  # fmt: skip
        return EXIT_OK
    if not events:
        error(f"no watch named {name} has recorded anything in this store")
        return EXIT_FAILED
    rows = [
        (str(e.seq), local_time(e.at), e.source, short_kind(e.kind), e.event_id[:40], e.status,
         (e.run_uuid or "")[:12], one_line(e.message or json.dumps(e.payload, sort_keys=True)))
        for e in events
    ]  # fmt: skip
    print_table(("seq", "time", "source", "event", "id", "status", "run", "detail"), rows)
    return EXIT_OK


def _print_events(events: list[EventRecord], names: Mapping[str, str], *, as_json: bool) -> int:
    if as_json:
        print(json.dumps([_event_json(e, names) for e in events], indent=1))
        return EXIT_OK
    rows = []
    for event in events:
        if is_status_event(event.kind):
            detail = ": ".join(str(p) for p in (event.payload.get("reason"), event.payload.get("message")) if p)
        else:  # artifacts, metrics, alerts, approvals, custom events: their payload is the news
            detail = json.dumps(event.payload, sort_keys=True)
        name = names.get(event.run_uuid, event.run_uuid[:12])
        rows.append((str(event.seq), local_time(event.at), name, short_kind(event.kind), one_line(detail)))
    print_table(("seq", "time", "op", "event", "detail"), rows, status_column=3)
    return EXIT_OK


def _names(store: Store, events: list[EventRecord]) -> dict[str, str]:
    names: dict[str, str] = {}
    for event in events:
        if event.run_uuid not in names:
            # A status event carries its run's name; other payloads may use `name` for something else.
            name = event.payload.get("name") if is_status_event(event.kind) else None
            names[event.run_uuid] = str(name) if name else store.get_run(event.run_uuid).name
    return names


def _event_json(event: EventRecord, names: Mapping[str, str]) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "at": iso(event.at),
        "kind": event.kind,
        "run": event.run_uuid,
        "op": names.get(event.run_uuid),
        "dag": event.dag_uuid,
        "status": event.payload.get("status"),
        "reason": event.payload.get("reason"),
        "message": event.payload.get("message"),
        **({} if is_status_event(event.kind) else {"payload": dict(event.payload)}),
    }


# -- logs -----------------------------------------------------------------------------------------------


def _executors(store: Store) -> LazyExecutors:
    """Executors that find each run's folder under the artifacts root recorded in ``store`` for it."""
    from polynb.executors.registry import BuildOptions

    return LazyExecutors(BuildOptions(artifacts_root_of=store.artifacts_root_of))


@pipe_safe
def cmd_logs(args: argparse.Namespace) -> int:
    from polynb.store import RunNotFoundError, StoreError, resolve_run

    with _open_store() as store:
        try:
            run = resolve_run(store, args.run)
        except RunNotFoundError as exc:
            return _store_logs(args.run, str(exc))
        except (LookupError, ValueError) as exc:
            error(str(exc))
            return EXIT_FAILED
        executors = _executors(store)
        try:
            if run.kind in PIPELINE_KINDS:
                _dag_logs(store, run, executors, follow=args.follow)
            else:
                for line in _run_logs(store, run, executors, follow=args.follow):
                    print(line, flush=args.follow)
        except KeyboardInterrupt:
            pass
        except StoreError as exc:
            error(str(exc))
            return EXIT_FAILED
        finally:
            executors.shutdown()
    return EXIT_OK


def _store_logs(ref: str, not_here: str) -> int:
    """A run this home has no record of: its logs from the artifacts store, when the configuration names one
    this machine reaches (another home, another machine, ran it and archived them there). A DAG's are its runs'
    logs, op by op as here (``label | line``), from the index the engine wrote in the store when it ended."""
    from polynb.log_archive import ArchiveError, configured_archive

    archive = configured_archive()
    if archive is None:
        error(f"{not_here} in this POLYNB_HOME, and no artifacts store is configured to look in")
        return EXIT_FAILED
    try:
        found = archive.find(ref)
        if len(found) > 1:
            error(f"{ref!r} starts several runs' uuids in the {archive}: {', '.join(found[:10])}")
            return EXIT_FAILED
        index = archive.read_index(found[0]) if found else None
        lines: list[str] | None
        if index is not None:
            lines = [f"{label} | {line}" for label, uuid in index for line in archive.read(uuid) or ()]
        else:
            lines = archive.read(found[0]) if found else None
    except ArchiveError as exc:
        error(f"{not_here} in this POLYNB_HOME; the {archive} cannot be read: {exc}")
        return EXIT_FAILED
    if lines is None:
        error(f"{not_here} in this POLYNB_HOME, nor any logs under {ref!r} in the {archive}")
        return EXIT_FAILED
    for line in lines:
        print(line)
    return EXIT_OK


def _run_logs(store: Store, run: RunRecord, executors: Mapping[str, Executor], *, follow: bool) -> Iterator[str]:
    """The log lines of one run, where they are: its live process or pod, its executor's archive on this
    machine, then the artifacts store (a final run whose local copy is gone, or whose executor is not here);
    with ``follow``, first wait until it was handed to an executor."""
    from polynb.store import StoreError

    while follow and run.handle is None and run.status not in FINAL:
        time.sleep(FOLLOW_POLL)
        run = store.get_run(run.uuid)
    executor = executors.get(run.executor or "local")
    shown = False
    if executor is not None:
        for line in executor.logs(run.uuid, follow=follow and run.status not in FINAL):
            shown = True
            yield line
    if shown or store.get_run(run.uuid).status not in FINAL:
        return
    stored = _archived(run.uuid)
    if stored is not None:
        yield from stored
    elif executor is None:
        raise StoreError(f"run {run.uuid} ran on executor {run.executor!r}, which cannot be reached from here, "
                         "and no artifacts store has its logs")  # fmt: skip


def _archived(uuid: str) -> list[str] | None:
    """The run's logs in the configured artifacts store (None: no store, or none there; a store that cannot be
    read is said on stderr)."""
    from polynb.log_archive import ArchiveError, configured_archive

    archive = configured_archive()
    if archive is None:
        return None
    try:
        return archive.read(uuid)
    except ArchiveError as exc:
        error(str(exc))
        return None


def _dag_logs(store: Store, dag: RunRecord, executors: Mapping[str, Executor], *, follow: bool) -> None:
    """Each op's logs prefixed with its name: one op after another, or interleaved as they come with
    ``follow`` (a thread per op that has started, until the DAG and every op followed are final)."""
    if not follow:
        for label, op in _log_runs(store, dag.uuid):
            for line in _run_logs(store, op, executors, follow=False):
                print(f"{label} | {line}")
        return
    lines: queue.Queue[str] = queue.Queue()
    followed: dict[str, threading.Thread] = {}

    def pump(label: str, op: RunRecord) -> None:
        for line in _run_logs(store, op, executors, follow=True):
            lines.put(f"{label} | {line}")

    while True:
        dag = store.get_run(dag.uuid)
        for label, op in _log_runs(store, dag.uuid):
            if op.uuid not in followed and (op.handle is not None or op.status in FINAL):
                thread = threading.Thread(target=pump, args=(label, op), daemon=True)
                followed[op.uuid] = thread
                thread.start()
        _drain(lines)
        if dag.status in FINAL and not any(t.is_alive() for t in followed.values()):
            ops = [op for _, op in _log_runs(store, dag.uuid)]
            if all(op.uuid in followed or op.status in FINAL for op in ops) and all(
                op.status in FINAL or op.kind == "service" for op in ops
            ):
                _drain(lines)
                return
        time.sleep(FOLLOW_POLL)


def _drain(lines: queue.Queue[str]) -> None:
    while True:
        try:
            print(lines.get_nowait(), flush=True)
        except queue.Empty:
            return


# -- stop -----------------------------------------------------------------------------------------------


def cmd_stop(args: argparse.Namespace) -> int:
    from polynb.scheduler.control import DEFAULT_GRACE, ControlError, hook_runs, stop  # lazily, with the executors
    from polynb.store import root_of

    with _open_store() as store:
        run = _find(store, args.run)
        if run is None:
            return EXIT_FAILED
        before = {h.uuid for h in hook_runs(store, run)}
        try:
            how = stop(store, run, executors=lambda: _executors(store), grace=args.grace)
        except ControlError as exc:
            error(str(exc))
            return EXIT_FAILED
        if how == "final":
            print(f"{run.name} ({run.uuid}) is already {run.status.value}: nothing to stop")
            return EXIT_OK
        if how == "engine" and not args.no_wait:
            deadline = time.monotonic() + (DEFAULT_GRACE if args.grace is None else args.grace) + STOP_WAIT
            while store.get_run(run.uuid).status not in FINAL and time.monotonic() < deadline:
                time.sleep(FOLLOW_POLL)
        final = store.get_run(run.uuid)
        hooks = [h for h in hook_runs(store, final) if h.uuid not in before]
        root = root_of(store, final)
    if how == "pending":
        print(f"{final.name} ({final.uuid}): its processes are stopped; no engine runs {root.name}, so its end is"
              f" recorded and its hooks run when one goes on with it: polynb attach {root.uuid[:12]}")  # fmt: skip
        return EXIT_OK
    where = "by the engine running it" if how == "engine" else "directly (no engine was running it)"
    if hooks:
        failed = sum(h.status != Status.SUCCEEDED for h in hooks)
        where += f"; {len(hooks)} hook{'s' * (len(hooks) != 1)} ran" + (f", {failed} did not succeed" * bool(failed))
    print(f"{final.name} ({final.uuid}): {final.status.value}, stopped {where}", file=sys.stdout)
    return EXIT_OK if final.status in FINAL or args.no_wait else EXIT_FAILED


__all__ = ["register"]
