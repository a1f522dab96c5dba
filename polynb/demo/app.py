"""``make demo`` (``python -m polynb.demo``): the seed pipeline, for real, on the local executor.

1. ``notebooks/pipelines/experiment-tensorboard.yaml``: an experiment trains a small network and writes
   TensorBoard scalars; TensorBoard (the built-in hub component, the real ``tensorboard``) starts on the
   experiment's ``run_status_running`` event; a hook on the experiment POSTs a report when it is done.
2. While it runs: the live timeline, and TensorBoard's URL the moment it serves — checked with HTTP GETs of
   ``/`` and of the scalars API, with the experiment's status at that moment.
3. At the end: the hook's report as received, TensorBoard stopped, and where the artifacts are.

Runs live in ``$POLYNB_HOME`` (default ``~/.polynb``), like every polynb run. Exit status 0 only when every
check passed. ``--keep`` leaves TensorBoard up until Ctrl-C; ``--json`` prints the findings as JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from polynb.cli.common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, format_duration, run_duration
from polynb.cli.follow import Follower, Interrupted
from polynb.cli.progress import make_progress
from polynb.cli.run import load_pipeline
from polynb.cli.tree import RunTree
from polynb.demo.probes import ReportReceiver, TensorBoardProbe
from polynb.lifecycle import FINAL, Status
from polynb.spec.errors import SpecErrors
from polynb.store import RunRecord, Store, polynb_home

REPO_ROOT = Path(__file__).resolve().parents[2]
PIPELINE = REPO_ROOT / "notebooks" / "pipelines" / "experiment-tensorboard.yaml"
PROBE_WAIT = 120.0
"""Seconds to wait, after the experiment, for the TensorBoard checks to conclude (a deadlock guard)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m polynb.demo", description=__doc__.splitlines()[0])
    parser.add_argument("-f", "--file", type=Path, default=PIPELINE, help="the pipeline (default: the seed one)")
    parser.add_argument("--max-seconds", type=float, default=15.0, help="the experiment's training budget")
    parser.add_argument("--keep", action="store_true", help="leave TensorBoard up until Ctrl-C")
    parser.add_argument("--json", action="store_true", help="print the findings as JSON on stdout")
    parser.add_argument("--no-live", dest="live", action="store_false", default=None, help="plain lines")
    args = parser.parse_args(argv)
    receiver = ReportReceiver()
    try:
        pipeline = load_pipeline(args.file, {"max_seconds": str(args.max_seconds), "report_url": receiver.url})
    except SpecErrors as exc:
        for e in exc.errors:
            print(e, file=sys.stderr)
        return EXIT_FAILED
    out = sys.stderr if args.json else sys.stdout
    print(f"polynb demo: {args.file.name} on the local executor; runs in {polynb_home()}", file=out)
    try:
        return Demo(pipeline, receiver, out=out, live=args.live).run(keep=args.keep, json_out=args.json)
    finally:
        receiver.close()


class Demo:
    def __init__(self, pipeline: Any, receiver: ReportReceiver, *, out: Any, live: bool | None) -> None:
        self.pipeline = pipeline
        self.receiver = receiver
        self.out = out
        self.live = live
        self.probe: TensorBoardProbe | None = None
        self._scalars_noted = False

    def run(self, *, keep: bool, json_out: bool) -> int:
        from polynb.executors import registry  # as in `polynb run`: only once the input is valid
        from polynb.scheduler import control
        from polynb.scheduler.engine import Engine

        store = Store()
        engine = Engine(store=store, executors={"local": registry.build("local")})
        engine.start()
        unserve = control.serve(engine)
        progress = None
        interrupted = False
        # Whether the demo's own runs are all final: the engine then leaves alone the runs it adopted at
        # start (those of a `polynb run` that was killed), releasing them for `polynb attach`.
        clean = False
        try:
            with Follower(engine) as follower:
                tree = RunTree(store, engine.submit(self.pipeline))
                progress = make_progress(self.out, live=self.live)
                keeping = False
                try:
                    follower.follow(tree, progress, include_services=False, on_poll=self._on_poll(progress))
                    self._await_probe(follower, progress)
                    if keep and self._tensorboard(tree) is not None:
                        progress.note("TensorBoard stays up (--keep): Ctrl-C to stop it and end the demo")
                        keeping = True
                        follower.until_interrupted()
                except Interrupted:
                    interrupted = not keeping  # Ctrl-C is how a --keep demo ends
                if interrupted:
                    progress.note(f"interrupted: stopping {tree.top.name}")
                    engine.stop(tree.root)
                for service in tree.live_services():
                    progress.note(f"stopping {service.name}")
                    engine.stop(service.uuid)
                follower.follow(tree, progress, include_services=True)
                clean = True
                progress.close()
                progress = None
        except Interrupted:
            print("polynb demo: interrupted again; stopping everything", file=sys.stderr)
            return EXIT_INTERRUPTED
        finally:
            if progress is not None:
                progress.close()
            unserve()
            engine.shutdown(stop_running=not clean)
            store.close()
        findings = self._findings(tree)
        if json_out:
            print(json.dumps(findings, indent=1))
        self._print_findings(tree, findings)
        if interrupted:
            return EXIT_INTERRUPTED
        return EXIT_OK if findings["ok"] else EXIT_FAILED

    @staticmethod
    def _by_name(tree: RunTree, name: str) -> RunRecord | None:
        return next((op for op in tree.ops() if op.name == name), None)

    def _tensorboard(self, tree: RunTree) -> RunRecord | None:
        return next((op for op in tree.ops() if op.kind == "service"), None)

    def _on_poll(self, progress: Any) -> Any:
        def check(tree: RunTree) -> None:
            board = self._tensorboard(tree)
            experiment = self._by_name(tree, "experiment")
            if self.probe is None and board is not None and board.status == Status.RUNNING and board.url:
                status = experiment.status.value if experiment else "?"
                progress.note(f"TensorBoard is up: {board.url}   (the experiment is {status})")
                uuid = experiment.uuid if experiment else board.uuid
                self.probe = TensorBoardProbe(board.url, lambda: tree.store.get_run(uuid).status.value)
                self.probe.start()
            elif self.probe is not None and self.probe.points and not self._scalars_noted:
                self._scalars_noted = True
                tags = ", ".join(sorted({t for run in self.probe.tags.values() for t in run}))
                progress.note(f"TensorBoard shows the scalars {tags} ({self.probe.points} points of loss so far;"
                              f" the experiment is {self.probe.watched_status_when_scalars})")  # fmt: skip

        return check

    def _await_probe(self, follower: Follower, progress: Any) -> None:
        """Wait (interruptibly) for the TensorBoard checks to conclude, then say if they failed."""
        deadline = time.monotonic() + PROBE_WAIT
        while self.probe is not None and not self.probe.done.is_set():
            follower.check()
            if time.monotonic() > deadline:
                self.probe.error = self.probe.error or "the TensorBoard checks did not conclude"
                break
            self.probe.done.wait(0.25)
        if self.probe is None:
            progress.note("TensorBoard never ran")
        elif self.probe.error:
            progress.note(f"TensorBoard check failed: {self.probe.error}")

    def _findings(self, tree: RunTree) -> dict[str, Any]:
        experiment = self._by_name(tree, "experiment")
        board = self._tensorboard(tree)
        hooks = tree.hooks(experiment.uuid) if experiment else []
        probe = self.probe.as_dict() if self.probe else None
        report = self.receiver.reports[0] if self.receiver.reports else None
        checks = {
            "dag_succeeded": tree.top.status == Status.SUCCEEDED,
            "tensorboard_served_while_experiment_running": bool(
                probe and probe["served"] and probe["experiment_status_when_served"] == Status.RUNNING.value
            ),
            "scalars_visible": bool(probe and probe["points"] > 0),
            "hook_reported": report is not None and all(h.status == Status.SUCCEEDED for h in hooks) and bool(hooks),
            "tensorboard_stopped": board is not None and board.status in FINAL,
        }
        return {
            "ok": all(checks.values()),
            "checks": checks,
            "uuid": tree.root,
            "status": tree.top.status.value,
            "tensorboard": probe,
            "tensorboard_status": board.status.value if board else None,
            "hook": {
                "runs": [{"uuid": h.uuid, "status": h.status.value, "trigger": h.hook_trigger} for h in hooks],
                "report": report,
            },
            "experiment_outputs": experiment.outputs if experiment else None,
            "artifacts": {op.name: str(polynb_home() / "artifacts" / op.uuid) for op in tree.ops()},
        }

    def _print_findings(self, tree: RunTree, findings: dict[str, Any]) -> None:
        def say(text: str = "") -> None:
            print(text, file=self.out)

        top = tree.top
        say()
        say(f"{top.name} {top.status.value} in {format_duration(run_duration(top))} — run {top.uuid}")
        probe = findings["tensorboard"] or {}
        if probe.get("served"):
            say(f"  TensorBoard    {probe['url']} answered while the experiment was "
                f"{probe['experiment_status_when_served']}")  # fmt: skip
        tags = sorted({t for run in (probe.get("scalar_tags") or {}).values() for t in run})
        if tags:
            say(f"  scalars        {', '.join(tags)} visible while the experiment was "
                f"{probe['experiment_status_when_scalars']} ({probe['points']} points of loss then)")  # fmt: skip
        report = findings["hook"]["report"]
        if report:
            run = report.get("run") or {}
            outputs = run.get("outputs") or {}
            shown = ", ".join(f"{k} {v}" for k, v in outputs.items())
            say(f"  hook report    {run.get('name')} {run.get('status')}" + (f": {shown}" if shown else ""))
        say(f"  TensorBoard    {findings['tensorboard_status']} at the end of the demo")
        say(f"  artifacts      {polynb_home() / 'artifacts'}/<run uuid>/ (outputs/, outputs/tensorboard/, logs/):")
        for name, path in findings["artifacts"].items():
            say(f"                 {name:<12} {path}")
        failed = [name for name, ok in findings["checks"].items() if not ok]
        say("  checks         all passed" if not failed else f"  checks         FAILED: {', '.join(failed)}")
        cmd = polynb_command()
        say(f"  more           {cmd} events {tree.root[:12]}   {cmd} logs {tree.root[:12]}   {cmd} ls --all")
        if cmd != "polynb" and cmd.endswith("/polynb"):
            say(f"                 (`source {Path(cmd).parent}/activate` puts `polynb` on your PATH)")


def polynb_command() -> str:
    """How to type ``polynb`` in this shell: ``polynb`` when PATH finds this installation's, else its path
    (``.venv/bin/polynb`` after ``make demo``, whose virtualenv is not activated)."""
    here = Path(sys.executable).parent / "polynb"
    found = shutil.which("polynb")
    if found is not None and Path(found).resolve() == here.resolve():
        return "polynb"
    if not here.exists():
        return f"{sys.executable} -m polynb.cli"
    try:
        return str(here.relative_to(Path.cwd()))
    except ValueError:
        return str(here)


if __name__ == "__main__":
    sys.exit(main())
