"""The sweep view: a matrix run's trials ranked by the metric, best-so-far as trials end, the parallel
coordinates of params → metric, and the stable text nbval compares."""

from __future__ import annotations

import threading
from pathlib import Path

from polynb.lifecycle import Status
from polynb.notebook.model import RunSnapshot, RunTracker
from polynb.notebook.pump import UiPump
from polynb.notebook.render import run_html, run_text
from polynb.scheduler.events import EngineEvent
from polynb.store import NewRun, Store

GUARD = 60.0
SWEEP = "5" * 32


def make_sweep(store: Store, losses: list[float | None], *, maximize: bool = False) -> list[str]:
    """A finished random sweep whose trial i has lr = i / 10 and ``loss`` = losses[i] (None: it failed)."""
    meta = {"role": "sweep", "sweep": {"kind": "random", "metric": "loss", "maximize": maximize,
                                       "total": len(losses)}}  # fmt: skip
    store.create_run(NewRun(name="sweep", kind="matrix", uuid=SWEEP, meta=meta))
    store.set_status(SWEEP, Status.RUNNING)
    uuids = []
    for i, loss in enumerate(losses, start=1):
        params = {"lr": i / 10, "act": "relu" if i % 2 else "gelu"}
        record = store.create_run(NewRun(name=f"sweep-{i}", kind="job", dag_uuid=SWEEP, inputs=params,
                                         meta={"role": "trial", "trial": {"index": i, "params": params}}))  # fmt: skip
        store.set_status(record.uuid, Status.RUNNING)
        if loss is None:
            store.set_status(record.uuid, Status.FAILED, reason="Error")
        else:
            store.set_outputs(record.uuid, {"loss": loss})
            store.set_status(record.uuid, Status.SUCCEEDED)
        uuids.append(record.uuid)
    store.set_status(SWEEP, Status.SUCCEEDED)
    return uuids


def snapshot(store: Store) -> RunSnapshot:
    tracker = RunTracker(store, SWEEP)
    tracker.refresh()
    return tracker.snapshot(0.0)


def test_trials_are_ranked_by_the_metric_and_failed_ones_come_last(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    make_sweep(store, [0.5, None, 0.2, 0.9, 0.1])
    sweep = snapshot(store).sweep
    assert sweep is not None
    assert [t.name for t in sweep.trials] == ["sweep-5", "sweep-3", "sweep-1", "sweep-4", "sweep-2"]
    assert sweep.trials[-1].metric is None and sweep.trials[-1].status == "failed"
    assert sweep.best is not None and dict(sweep.best.params) == {"lr": 0.5, "act": "relu"}
    assert sweep.params == ("lr", "act")


def test_maximizing_ranks_the_highest_first(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    make_sweep(store, [0.5, 0.2, 0.9], maximize=True)
    sweep = snapshot(store).sweep
    assert sweep is not None
    assert [t.metric for t in sweep.trials] == [0.9, 0.5, 0.2]


def test_best_so_far_improves_in_the_order_trials_ended(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    make_sweep(store, [0.5, 0.7, 0.2, None, 0.3, 0.1, 0.4])
    sweep = snapshot(store).sweep
    assert sweep is not None
    # One point per improvement, and the last trial that ended.
    assert sweep.best_so_far == ((1, 0.5), (3, 0.2), (6, 0.1), (7, 0.1))


def test_the_widget_draws_the_table_the_best_so_far_and_the_parallel_coordinates(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    make_sweep(store, [0.5, 0.2, 0.9])
    html = run_html(snapshot(store))
    assert 'class="polynb-sweep"' in html
    assert 'class="polynb-best-so-far"' in html
    assert 'class="polynb-parallel-coordinates"' in html
    table = html[html.index("polynb-sweep-trials") :]
    assert table.index("sweep-2") < table.index("sweep-1") < table.index("sweep-3")
    assert "best loss (min) <b>0.2</b>" in html


def test_the_text_of_a_final_sweep_lists_the_best_trial_and_the_ranking(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    make_sweep(store, [0.5, 0.2, 0.9])
    text = run_text(snapshot(store))
    assert text.splitlines() == [
        "polynb run sweep (matrix): succeeded",
        "  random sweep: 3 trials, ranked by loss (min)",
        "  best: sweep-2  lr=0.2, act=gelu  → loss=0.2",
        "    1. sweep-2  succeeded  lr=0.2, act=gelu  loss=0.2",
        "    2. sweep-1  succeeded  lr=0.1, act=relu  loss=0.5",
        "    3. sweep-3  succeeded  lr=0.3, act=relu  loss=0.9",
    ]


class _View:
    def __init__(self) -> None:
        self.shown: list[RunSnapshot] = []
        self.changed = threading.Condition()

    @property
    def root(self) -> str:
        return SWEEP

    @property
    def alive(self) -> bool:
        return True

    def show(self, snapshot: RunSnapshot) -> None:
        with self.changed:
            self.shown.append(snapshot)
            self.changed.notify_all()


def test_the_pump_routes_trial_events_to_the_sweeps_view(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    make_sweep(store, [0.5, 0.2])
    pump = UiPump(store, snapshot=lambda tracker, now: tracker.snapshot(now), max_rate=10.0)
    pump.start()
    view = _View()
    try:
        pump.attach(view)
        for record in store.events():
            pump.notify(EngineEvent.from_record(record))
        last = store.last_seq()
        with view.changed:
            assert view.changed.wait_for(lambda: bool(view.shown) and view.shown[-1].last_seq >= last, GUARD)
        sweep = view.shown[-1].sweep
        assert sweep is not None and [t.metric for t in sweep.trials] == [0.2, 0.5]
    finally:
        pump.stop()
        store.close()
