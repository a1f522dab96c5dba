"""``polynb watch -f FILE``: run a pipeline once per event of the connections its top-level ``events`` name
(a new commit, a new file, a new image tag), until ``--max-runs`` runs are done or Ctrl-C.

The watch's cursor lives in the store under ``--name`` (default: the pipeline's name), so a watch started
again goes on where it stopped: what came meanwhile is run, nothing is run twice (``store.watches``).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from polynb.cli.common import EXIT_FAILED, EXIT_OK, Once, local_time

EXIT_INTERRUPTED = 130


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("watch", help="run a pipeline once per event of the connections it names")
    p.add_argument("-f", "--file", required=True, action=Once,
                   help="the Polyaxonfile; its top-level `events` name connections")  # fmt: skip
    p.add_argument("-P", "--param", action="append", default=[], metavar="NAME=VALUE", help="set an input (repeatable)")
    p.add_argument("--name", help="the watch's name: its cursor in the store (default: the pipeline's name)")
    p.add_argument("--max-runs", type=int, default=None, help="stop after this many runs are done")
    p.add_argument("--concurrency", type=int, default=1, help="runs of this watch at once (default 1)")
    p.add_argument(
        "--catch-up", action="store_true", help="a first watch runs what is there already (default: its baseline)"
    )
    p.add_argument("--executor", default="local", help="where ops run (default: local)")
    p.set_defaults(func=cmd_watch)


def cmd_watch(args: argparse.Namespace) -> int:
    from polynb.cli.run import parse_params
    from polynb.config_file import load_config, local_artifacts_root, local_artifacts_store
    from polynb.executors.registry import BuildOptions, build
    from polynb.scheduler import control
    from polynb.scheduler.engine import Engine
    from polynb.scheduler.reactive import ReactiveError, load_reactive
    from polynb.scheduler.watch import Watch, WatchOptions
    from polynb.spec.errors import SpecErrors
    from polynb.spec.load import load
    from polynb.store import Store
    from polynb.store.watches import WatchEvent

    logging.basicConfig(level=logging.WARNING, format="polynb: %(levelname)s: %(name)s: %(message)s")
    path = Path(args.file)
    params, problems = parse_params(args.param)
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        return EXIT_FAILED
    try:
        config = load_config()
        reactive = load_reactive(path, load(path), config.connections, params)
        artifacts_root = local_artifacts_root(config) if args.executor == "local" else None
        artifacts_store = local_artifacts_store(config) if args.executor == "local" else None
    except SpecErrors as exc:
        for error in exc.errors:
            print(str(error), file=sys.stderr)
        return EXIT_FAILED
    except ReactiveError as exc:
        print(f"polynb: {exc}", file=sys.stderr)
        return EXIT_FAILED
    name = args.name or reactive.name
    store = Store(artifacts_root=artifacts_root, artifacts_store=artifacts_store)
    build_options = BuildOptions(artifacts_root_of=store.artifacts_root_of, artifacts_store_of=store.artifacts_store_of)
    executors = {"local": build("local", build_options)}
    if args.executor != "local":
        executors[args.executor] = build(args.executor, build_options)
    engine = Engine(store=store, executors=executors, default_executor=args.executor)
    lock = threading.Lock()

    def report(event: WatchEvent) -> None:
        with lock:
            current = next((e for e in watch.log.events(name) if e.seq == event.seq), event)
            where = f" -> run {current.run_uuid[:12]}" if current.run_uuid else ""
            why = f": {current.message}" if current.message else ""
            print(f"{local_time(current.at)}  {current.source}  {current.kind}  {current.event_id}  {current.status}"
                  f"{where}{why}", flush=True)  # fmt: skip

    options = WatchOptions(name=name, max_runs=args.max_runs, concurrency=args.concurrency, catch_up=args.catch_up)
    watch = Watch(store=store, engine=engine, sources=reactive.sources, build=reactive.build, options=options,
                  executor=args.executor, on_change=report)  # fmt: skip
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    engine.start()
    unserve = control.serve(engine)
    interrupted = False
    try:
        watch.start()
        limit = f"; at most {args.max_runs} runs" if args.max_runs else ""
        watched = ", ".join(f"{s.name} ({s.kind})" for s in reactive.sources)
        print(f"watching {watched} for {name}{limit} (Ctrl-C to stop)", flush=True)
        while not stop.is_set():
            if watch.wait_done(timeout=1.0):  # the signal handler only sets `stop`: look at it now and then
                break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        signal.signal(signal.SIGTERM, previous)
        watch.stop()
        unserve()
        engine.shutdown(stop_running=True)
        store.close()
    print(f"{name}: {watch.submitted} run{'s' * (watch.submitted != 1)} submitted", flush=True)
    return EXIT_INTERRUPTED if interrupted else EXIT_OK
