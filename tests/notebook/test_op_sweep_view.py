"""The sweep panel of an op of a DAG that sweeps (its ``matrix``): the DAG's widget follows the op's trials
(which are runs under the op, not the DAG's ops), and choosing the op in the widget's op list draws its trials
ranked by the metric, the best so far and the parallel coordinates, as for a top-level sweep. Run by the real
engine on the local executor."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.schedkit import DEADLOCK_GUARD, PY, build

from polynb.executors.local.executor import LocalExecutor
from polynb.notebook.model import RunSnapshot, RunTracker
from polynb.notebook.pump import UiPump
from polynb.notebook.render import run_html, run_text
from polynb.notebook.session import summary
from polynb.scheduler.engine import Engine
from polynb.store import Store

LOSS = (
    "import json, os, sys; lr = float(sys.argv[1]); json.dump({'loss': round((lr - 0.3) ** 2, 6)}, "
    "open(os.path.join(os.environ['POLYAXON_RUN_OUTPUTS_PATH'], 'outputs.json'), 'w'))"
)
DAG = f"""
version: 1.1
kind: component
name: study
run:
  kind: dag
  operations:
    - name: prep
      component: {{name: prep, run: {{kind: job, container: {{command: ["true"]}}}}}}
    - name: tune
      dependencies: [prep]
      matrix:
        kind: grid
        concurrency: 2
        params: {{lr: {{kind: choice, value: [0.1, 0.3, 0.45, 0.9]}}}}
        earlyStopping: [{{kind: metric_early_stopping, metric: loss, value: -1, optimization: minimize}}]
      component:
        name: train
        inputs: [{{name: lr, type: float}}]
        outputs: [{{name: loss, type: float}}]
        run: {{kind: job, container: {{command: {json.dumps([PY, "-c", LOSS, "{{ lr }}"])}}}}}
    - name: report
      dependencies: [tune]
      component: {{name: report, run: {{kind: job, container: {{command: ["true"]}}}}}}
"""


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path / "home"))
    made = Store(tmp_path / "home" / "polynb.db")
    yield made
    made.close()


def run_study(store: Store, tmp_path: Path, *, before_wait: object = None) -> str:
    engine = Engine(store=store, executors={"local": LocalExecutor(base_dir=tmp_path)})
    engine.start()
    try:
        uuid = engine.submit(build(DAG))
        if callable(before_wait):
            before_wait(uuid)
        assert engine.wait(uuid, timeout=DEADLOCK_GUARD) == "succeeded"
    finally:
        engine.shutdown()
    return uuid


def snapshot_of(store: Store, uuid: str) -> RunSnapshot:
    tracker = RunTracker(store, uuid)
    tracker.refresh()
    return tracker.snapshot(0.0)


def test_a_dags_sweeping_op_has_its_trials_ranked_without_them_among_the_ops(store: Store, tmp_path: Path) -> None:
    uuid = run_study(store, tmp_path)
    snap = snapshot_of(store, uuid)
    assert [op.name for op in snap.ops] == ["study", "prep", "tune", "report"]  # trials are not ops of the DAG
    (tune,) = snap.op_sweeps
    assert tune.name == "tune" and tune.uuid == next(op.uuid for op in snap.ops if op.name == "tune")
    sweep = tune.sweep
    assert (sweep.kind, sweep.metric, sweep.total, sweep.params) == ("grid", "loss", 4, ("lr",))
    assert [dict(t.params)["lr"] for t in sweep.trials] == [0.3, 0.45, 0.1, 0.9]  # best (lowest loss) first
    assert sweep.best is not None and sweep.best.metric == 0.0
    assert sweep.best_so_far[-1] == (4, 0.0)
    assert not any(line.name.startswith("tune-") for line in snap.log)  # the panel has them, not the log
    # The op's kind is matrix (as a top-level sweep's) wherever it is shown: the widget, the lab's runs panel.
    assert {op.name: op.kind for op in snap.ops} == {"study": "dag", "prep": "job", "tune": "matrix", "report": "job"}
    assert [op["kind"] for op in summary(snap)["ops"]] == ["job", "matrix", "job"]
    # The text (what nbval compares) is the DAG's, unchanged by the trials.
    assert run_text(snap).splitlines()[1:] == ["  prep    job      succeeded", "  tune    matrix   succeeded",
                                               "  report  job      succeeded"]  # fmt: skip


def test_choosing_the_op_draws_its_trials_best_so_far_and_parallel_coordinates(store: Store, tmp_path: Path) -> None:
    uuid = run_study(store, tmp_path)
    snap = snapshot_of(store, uuid)
    (tune,) = snap.op_sweeps
    unselected = run_html(snap)
    assert 'class="polynb-op-sweep"' in unselected and "grid sweep · 4/4 trials done" in unselected
    assert "polynb-sweep-trials" not in unselected
    html = run_html(snap, selected=tune.uuid)
    assert 'class="polynb-sweep"' in html
    assert 'class="polynb-best-so-far"' in html
    assert 'class="polynb-parallel-coordinates"' in html
    table = html[html.index("polynb-sweep-trials") :]
    assert table.index("lr") < table.index("<b>0</b>")  # the best trial's loss, first row
    assert "best loss (min) <b>0</b>" in html


def test_the_widget_redraws_the_chosen_ops_sweep_through_the_ui_thread(store: Store, tmp_path: Path) -> None:
    from polynb.notebook.widget import RunWidget

    uuid = run_study(store, tmp_path)
    snap = snapshot_of(store, uuid)
    (tune,) = snap.op_sweeps
    asked: list[str] = []
    widget = RunWidget(snap, on_stop=lambda u: None, on_logs=lambda u: None, on_select=asked.append)
    try:
        assert "polynb-sweep-trials" not in widget.body.value
        widget.target.value = tune.uuid  # the user chooses the op
        assert asked == [uuid]  # the session then has the UI thread redraw it (pump.touch)
        widget.show(snap)
        assert "polynb-sweep-trials" in widget.body.value
    finally:
        widget.close()


class _View:
    def __init__(self, root: str) -> None:
        self._root = root
        self.shown: list[RunSnapshot] = []
        self.changed = threading.Condition()

    @property
    def root(self) -> str:
        return self._root

    @property
    def alive(self) -> bool:
        return True

    def show(self, snapshot: RunSnapshot) -> None:
        with self.changed:
            self.shown.append(snapshot)
            self.changed.notify_all()


def test_the_pump_follows_the_trials_of_a_dags_sweeping_op_live(store: Store, tmp_path: Path) -> None:
    pump = UiPump(store, snapshot=lambda tracker, now: tracker.snapshot(now), max_rate=10.0)
    pump.start()
    views: list[_View] = []

    def attach(uuid: str) -> None:
        view = _View(uuid)
        views.append(view)
        pump.attach(view)

    engine_events: list[object] = []
    try:
        uuid = run_study(store, tmp_path, before_wait=attach)
        for record in store.events():  # as the engine's listener would have sent them
            from polynb.scheduler.events import EngineEvent

            engine_events.append(record)
            pump.notify(EngineEvent.from_record(record))
        (view,) = views
        last = store.last_seq()
        with view.changed:
            assert view.changed.wait_for(lambda: bool(view.shown) and view.shown[-1].last_seq >= last, DEADLOCK_GUARD)
        (tune,) = view.shown[-1].op_sweeps
        assert len(tune.sweep.trials) == 4 and all(t.status == "succeeded" for t in tune.sweep.trials)
        pump.touch(uuid)  # a selection changed: one more redraw, through the same rate limit
        count = len(view.shown)
        with view.changed:
            assert view.changed.wait_for(lambda: len(view.shown) > count, DEADLOCK_GUARD)
    finally:
        pump.stop()
