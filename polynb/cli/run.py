"""``polynb run -f FILE``: validate, run on an engine in this process, show progress, wait, report.

Nothing is submitted unless the whole file (with its ``-P`` params) is valid. The command waits for every
non-service op (and the hooks they started); services (TensorBoard) keep running after it exits unless
``--stop-services``: the engine then releases them, and ``polynb stop`` ends them later from any terminal.
Ctrl-C (or SIGTERM) stops the pipeline cleanly (``stopping`` → ``stopped``) and exits with 130.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

from polynb.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    Once,
    ReaderGone,
    format_duration,
    run_duration,
)
from polynb.cli.detach import detach, report_uuid, run_argv, take_uuid_fd
from polynb.cli.follow import Follower, Interrupted
from polynb.cli.progress import Progress, make_progress
from polynb.cli.tree import RunTree
from polynb.executors.registry import EXECUTOR_ENV, KNOWN, BuildOptions, ExecutorSetupError, build, default_name
from polynb.lifecycle import FINAL, Status

if TYPE_CHECKING:
    from polynb.executors.base import Executor
    from polynb.spec.errors import SpecError
    from polynb.store import Store
    from polynb.store.remote import StoreAccess

UNFINISHED = frozenset(Status) - FINAL
"""What a run that an engine may still have to go on with can be in (its engine gone: ``polynb attach``)."""


def register(subparsers: Any) -> None:
    """Add ``run`` to the ``polynb`` argument parser."""
    p = subparsers.add_parser("run", help="run a pipeline (Polyaxonfile) and wait for it")
    p.add_argument("-f", "--file", required=True, action=Once, help="the Polyaxonfile (YAML) to run")
    p.add_argument("-P", "--param", action="append", default=[], metavar="NAME=VALUE", help="set an input (repeatable)")
    p.add_argument("--executor", help=f"where ops run: {' or '.join(KNOWN)} (default: ${EXECUTOR_ENV}, else local)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout (progress on stderr)")
    p.add_argument(
        "--stop-services", action="store_true", help="stop services (TensorBoard) once the other ops are done"
    )
    p.add_argument("--no-wait", action="store_true", help="run in the background: print the run's uuid once submitted")
    k8s = p.add_argument_group(
        "kubernetes", "override the `kubernetes:` section of $POLYNB_HOME/config.yaml and POLYNB_K8S_* for this run"
    )
    k8s.add_argument("--k8s-namespace", metavar="NAME", help="the namespace the runs go to")
    k8s.add_argument(
        "--k8s-artifacts-claim",
        metavar="NAME",
        help="a ReadWriteMany PersistentVolumeClaim shared by the runs as their artifacts store (TensorBoard"
        " reads the experiments' outputs through it); default: a private emptyDir per run",
    )
    k8s.add_argument(
        "--k8s-security-profile",
        choices=["default", "restricted"],
        help="restricted: containers get the securityContext PodSecurity `restricted` demands",
    )
    k8s.add_argument(
        "--k8s-keep",
        action="store_true",
        default=None,
        help="keep finished runs' Jobs/Pods/Services (default: logs archived, then deleted)",
    )
    p.add_argument("--live", dest="live", action="store_true", default=None, help="force the live view")
    p.add_argument("--no-live", dest="live", action="store_false", help="one line per status change")
    p.set_defaults(func=cmd_run)


def parse_params(items: list[str]) -> tuple[dict[str, str], list[str]]:
    """``-P name=value`` items -> {name: raw value} (typed later against the inputs) and the problems."""
    params: dict[str, str] = {}
    problems: list[str] = []
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            problems.append(f"-P {item}: expected NAME=VALUE")
        elif name in params:
            problems.append(f"-P {item}: `{name}` is given twice")
        else:
            params[name] = value
    return params, problems


def load_pipeline(path: Path, params: dict[str, str]) -> Any:
    """Load, resolve, bind and validate: a ``Pipeline``, or ``SpecErrors`` naming every problem.

    The same work as ``polynb check`` (so every problem has its line and column), plus the features that
    parse but cannot run yet ("not supported yet"), which ``check`` only warns about.
    """
    return validate(path, params)[0]


def validate(path: Path, params: dict[str, str], executor: str = "local") -> tuple[Any, list[SpecError]]:
    """``(pipeline, warnings)`` for a runnable file; ``SpecErrors`` with every problem otherwise. What only
    Kubernetes runs (``envFrom``, ``valueFrom``) is a problem when ``executor`` is local."""
    # Imported here (as the engine below): registering `run` must not slow every other command down.
    from polynb.compiler.check import check
    from polynb.compiler.pipeline import KUBERNETES_ONLY
    from polynb.spec.errors import SpecError, SpecErrors

    result = check([path], params=params)
    cluster_only = [w for w in result.warnings if w.message.startswith(KUBERNETES_ONLY)] if executor == "local" else []
    blocking = [*result.errors, *result.unsupported, *cluster_only]
    if blocking or not result.pipelines:
        raise SpecErrors(blocking or [SpecError(str(path), 0, 0, "(root)", "nothing to run in this file")])
    notes = [w for w in result.warnings if w not in result.unsupported]
    return result.pipelines[0], notes


def kubernetes_overrides(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    """The ``--k8s-*`` flags given: as settings, and as arguments for a background run."""
    values = {
        "namespace": args.k8s_namespace,
        "artifacts_claim": args.k8s_artifacts_claim,
        "security_profile": args.k8s_security_profile,
        "keep_finished": args.k8s_keep,
    }
    given = {name: value for name, value in values.items() if value is not None}
    argv: list[str] = []
    for name, value in given.items():
        flag = "--k8s-keep" if name == "keep_finished" else f"--k8s-{name.replace('_', '-')}"
        argv += [flag] if value is True else [flag, str(value)]
    return given, argv


def cmd_run(args: argparse.Namespace) -> int:
    from polynb.spec.errors import SpecErrors

    logging.basicConfig(level=logging.WARNING, format="polynb: %(levelname)s: %(name)s: %(message)s")
    path = Path(args.file)
    params, problems = parse_params(args.param)
    k8s_values, k8s_argv = kubernetes_overrides(args)
    executor = args.executor or default_name()
    if executor not in KNOWN:
        problems.append(f"--executor {executor}: unknown executor; available: {', '.join(KNOWN)}")
    pipeline = None
    try:  # checked even when -P is malformed: every problem is shown at once
        pipeline, notes = validate(path, params, executor)
    except SpecErrors as exc:
        problems += [str(e) for e in exc.errors]
    else:
        for note in notes:
            print(f"{note.file}:{note.line}:{note.column}: {note.path}: warning: {note.message}", file=sys.stderr)
    artifacts_root = artifacts_store = None
    try:
        artifacts_root = local_artifacts_root(executor)
        if not problems:  # a bucket store answers a request: asked only of a run that would start
            artifacts_store = local_artifacts_store(executor)
    except SpecErrors as exc:
        problems += [str(e) for e in exc.errors]
    if problems or pipeline is None:
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"polynb: {path}: not run ({len(problems)} problem{'s' * (len(problems) != 1)})", file=sys.stderr)
        return EXIT_FAILED
    if args.no_wait:
        argv = run_argv(
            path, args.param, executor=executor, json_out=args.json, stop_services=args.stop_services, extra=k8s_argv
        )
        return detach(argv)
    from polynb.store import Store

    store = Store(artifacts_root=artifacts_root, artifacts_store=artifacts_store)
    options = BuildOptions(
        kubernetes=k8s_values,
        kubernetes_origin="command line",
        artifacts_root_of=store.artifacts_root_of,
        artifacts_store_of=store.artifacts_store_of,
    )
    executors: dict[str, Executor] = {}
    try:
        # Made now, so a missing cluster configuration is reported before anything is submitted.
        for name in dict.fromkeys(("local", executor)):
            executors[name] = build(name, options)
        from polynb.scheduler.executor_checks import check_submission

        check_submission(executors[executor], pipeline)  # what it cannot run as configured: refused before all
    except (ExecutorSetupError, RuntimeError) as exc:
        for made in executors.values():
            made.shutdown(stop_running=False)
        store.close()
        print(f"polynb: {exc}", file=sys.stderr)
        print(f"polynb: {path}: not run", file=sys.stderr)
        return EXIT_FAILED
    prestart = getattr(executors[executor], "prestart", None)  # the local executor's: see LocalExecutor.prestart
    if prestart is not None:
        prestart()
    stream = sys.stderr if args.json else sys.stdout
    return Runner(pipeline, executors, executor=executor, stream=stream, live=args.live, store=store).run(
        json_out=args.json, stop_services=args.stop_services
    )


def local_artifacts_root(executor: str) -> Path | None:
    """Where the local executor puts new runs' artifacts: the configuration file's ``artifactsStore`` when it
    is a ``host_path`` connection (:func:`polynb.config_file.local_artifacts_root`), else None (the default).
    Other executors keep their own rules. ``SpecErrors`` (positions in the configuration file) when unusable."""
    if executor != "local":
        return None
    from polynb.config_file import load_config
    from polynb.config_file import local_artifacts_root as from_config

    return from_config(load_config())


def local_artifacts_store(executor: str) -> StoreAccess | None:
    """The bucket new local runs are synced to: the configuration file's ``artifactsStore`` when it is an ``s3``,
    ``gcs`` or ``wasb`` connection (:func:`polynb.config_file.local_artifacts_store`: checked to answer with this
    machine's credentials), else None. ``SpecErrors`` naming the connection when it cannot be used."""
    if executor != "local":
        return None
    from polynb.config_file import load_config
    from polynb.config_file import local_artifacts_store as from_config

    return from_config(load_config())


def _manages(engine: Any, uuid: str) -> bool:
    """Whether ``engine`` runs ``uuid`` (or it is final already)."""
    try:
        engine.wait(uuid, timeout=0)
    except TimeoutError:
        return True
    except LookupError:
        return False
    return True


class Runner:
    """One pipeline on one engine of this process, followed through the store until it is done."""

    def __init__(
        self,
        pipeline: Any,
        executors: dict[str, Executor],
        *,
        executor: str,
        stream: TextIO,
        live: bool | None,
        adopt: str | None = None,
        store: Store | None = None,
    ) -> None:
        """Submit ``pipeline``, or with ``adopt`` follow that run, left by an engine that is gone (``attach``).
        ``store``: the one the executors' ``artifacts_root_of`` reads (closed by :meth:`run`; default: a new one)."""
        self.pipeline = pipeline
        self.executors = executors
        self.executor = executor
        self.stream = cast(TextIO, ReaderGone(stream))  # `polynb run ... | head`: the run goes on, quietly
        self.live = live
        self.adopt = adopt
        self.store = store

    def run(self, *, json_out: bool, stop_services: bool) -> int:
        # Imported here: registering `run` must not slow every other command down.
        from polynb.scheduler import control
        from polynb.scheduler.engine import Engine
        from polynb.store import Store

        uuid_fd = take_uuid_fd()  # set when this is the background half of `--no-wait`
        store = self.store or Store()
        engine = Engine(store=store, executors=self.executors, default_executor=self.executor)
        interrupted = False
        # Whether the engine may leave runs as they are at shutdown: yes once the flow below is through
        # (everything final, or services left on purpose; finished pods then keep their logs on Kubernetes).
        # An unexpected error stops whatever this engine started.
        clean = False
        progress: Progress | None = None
        from polynb.scheduler.ownership import orphaned

        unfinished = store.list_runs(top_level_only=True, statuses=UNFINISHED)  # not the whole history, each run
        others = [r.name for r in orphaned(unfinished) if r.uuid != self.adopt]
        engine.start()  # adopts the runs of engines that are gone
        unserve = control.serve(engine)
        try:
            with Follower(engine) as follower:
                root = self.adopt or engine.submit(self.pipeline, executor=self.executor)
                if not _manages(engine, root):
                    clean = True
                    print(f"polynb: run {root} was taken over by another engine meanwhile; not attached",
                          file=sys.stderr)  # fmt: skip
                    return EXIT_FAILED
                tree = RunTree(store, root)
                report_uuid(uuid_fd, tree.root)
                progress = make_progress(self.stream, live=self.live)
                if self.adopt:
                    progress.note(f"attached to {tree.top.name} ({root}): its engine is gone; this one goes on")
                if others:
                    progress.note(
                        f"also going on with {len(others)} run{'s' * (len(others) != 1)} whose engine is gone"
                        f" ({', '.join(others[:5])}{', …' * (len(others) > 5)}) while this command runs"
                    )
                try:
                    follower.follow(tree, progress, include_services=False)
                except Interrupted as exc:
                    interrupted = True
                    progress.note(f"{exc}: stopping {tree.top.name}… (again to leave without waiting)")
                    engine.stop(tree.root)
                    follower.follow(tree, progress, include_services=True)
                else:
                    services = tree.live_services()
                    if services and stop_services:
                        progress.note(f"stopping {', '.join(s.name for s in services)} (--stop-services)")
                        for service in services:
                            engine.stop(service.uuid)
                        with contextlib.suppress(Interrupted):  # already stopping: shutdown waits for it
                            follower.follow(tree, progress, include_services=True)
                progress.close()
                progress = None
                self._report(tree, json_out=json_out, interrupted=interrupted)
                clean = True
        except Interrupted:
            # Interrupted again while stopping: leave now; whatever still runs is released, not killed.
            clean = True
            interrupted = True
            print("polynb: interrupted again: leaving without waiting; `polynb ls` shows what still runs",
                  file=sys.stderr)  # fmt: skip
        finally:
            if progress is not None:
                progress.close()
            unserve()
            engine.shutdown(stop_running=not clean)
            store.close()
        if interrupted:
            return EXIT_INTERRUPTED
        return EXIT_OK if tree.top.status == Status.SUCCEEDED else EXIT_FAILED

    def _say(self, text: str) -> None:
        print(text, file=self.stream)

    def _report(self, tree: RunTree, *, json_out: bool, interrupted: bool) -> None:
        top = tree.top
        if json_out:
            print(json.dumps(tree.summary(), indent=1), file=ReaderGone(sys.stdout))
        say = self._say
        say(f"{top.name} {top.status.value} in {format_duration(run_duration(top))} — run {top.uuid}")
        short = top.uuid[:12]
        say(f"  events: polynb events {short}   logs: polynb logs {short}")
        services = tree.live_services()
        if services and not interrupted:
            for service in services:
                sid = service.uuid[:12]
                if service.executor == "kubernetes":
                    # The URL shown so far is this command's port-forward, gone once it exits.
                    say(f"  {service.name} keeps running on Kubernetes after this command exits;"
                        f" open it with: polynb open {sid} (or polynb port-forward {sid});"
                        f" stop it with: polynb stop {sid}")  # fmt: skip
                    continue
                where = f" at {service.url}" if service.url else ""
                say(f"  {service.name} keeps running{where} after this command exits;"
                    f" stop it with: polynb stop {sid}")  # fmt: skip
