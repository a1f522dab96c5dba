"""Suggesters: lazily asked for at most ``limit`` trials, told each trial's metric; hyperband's rounds keep
the best; tpe and bayes drive an Optuna study with ask/tell."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
from pydantic import TypeAdapter

from polynb.compiler.trials import TrialsError
from polynb.scheduler.suggesters import PastTrial, Suggester, suggester_for
from polynb.spec.matrix import Matrix, MatrixSpec

MATRIX: TypeAdapter[MatrixSpec] = TypeAdapter(Matrix)


def drive(suggester: Suggester, score: Any, limit: int = 3) -> list[dict[str, Any]]:
    """Run the suggester to the end, ``limit`` trials at a time, telling each its score."""
    seen: list[dict[str, Any]] = []
    while not suggester.finished:
        batch = suggester.ask(limit)
        assert batch, "a suggester that is not finished must suggest once its round is told"
        assert len(batch) <= limit
        for s in batch:
            seen.append(s.params)
            suggester.tell(s.key, score(s.params))
    return seen


def test_grid_is_asked_lazily() -> None:
    spec = MATRIX.validate_python({"kind": "grid", "params": {"n": {"kind": "range", "value": [0, 1000, 1]}}})
    suggester = suggester_for(spec)
    assert suggester.total == 1000
    assert [s.params for s in suggester.ask(2)] == [{"n": 0}, {"n": 1}]
    assert not suggester.finished


def test_hyperband_keeps_the_best_third_with_three_times_the_resource() -> None:
    spec = MATRIX.validate_python(
        {"kind": "hyperband", "maxIterations": 9, "eta": 3, "seed": 5,
         "resource": {"name": "epochs", "type": "int"}, "metric": {"name": "acc", "optimization": "maximize"},
         "params": {"x": {"kind": "uniform", "value": [0, 1]}}}
    )  # fmt: skip
    suggester = suggester_for(spec)
    seen = drive(suggester, lambda p: p["x"], limit=100)
    assert len(seen) == suggester.total == 9 + 3 + 1 + 5 + 1 + 3
    first, second = seen[:9], seen[9:12]
    best = sorted((p["x"] for p in first), reverse=True)[:3]
    assert sorted(p["x"] for p in second) == sorted(best)
    assert {p["epochs"] for p in first} == {1} and {p["epochs"] for p in second} == {3}
    assert seen[12]["x"] == max(best) and seen[12]["epochs"] == 9


def test_hyperband_waits_for_a_round_before_the_next() -> None:
    spec = MATRIX.validate_python(
        {"kind": "hyperband", "maxIterations": 9, "eta": 3, "seed": 5, "resource": {"name": "epochs"},
         "metric": {"name": "acc", "optimization": "maximize"}, "params": {"x": {"kind": "uniform", "value": [0, 1]}}}
    )  # fmt: skip
    suggester = suggester_for(spec)
    round_one = suggester.ask(100)
    assert len(round_one) == 9 and suggester.ask(100) == []
    for s in round_one[:-1]:
        suggester.tell(s.key, 0.5)
    assert suggester.ask(100) == []
    suggester.tell(round_one[-1].key, 0.9)
    assert suggester.ask(100)[0].params["x"] == round_one[-1].params["x"]


def test_tpe_rounds_of_num_runs_for_max_iterations_and_it_learns() -> None:
    spec = MATRIX.validate_python(
        {"kind": "tpe", "numRuns": 10, "maxIterations": 4, "seed": 1,
         "metric": {"name": "loss", "optimization": "minimize"},
         "params": {"x": {"kind": "uniform", "value": [-3, 3]}, "c": {"kind": "choice", "value": ["a", "b"]}}}
    )  # fmt: skip
    suggester = suggester_for(spec)
    assert suggester.total == 40
    seen = drive(suggester, lambda p: p["x"] ** 2 + (0 if p["c"] == "a" else 1), limit=4)
    assert len(seen) == 40
    early = sum(abs(p["x"]) for p in seen[:10]) / 10
    late = sum(abs(p["x"]) for p in seen[30:]) / 10
    assert late < early  # the sampler moves towards the minimum at x = 0
    again = drive(suggester_for(spec), lambda p: p["x"] ** 2 + (0 if p["c"] == "a" else 1), limit=4)
    assert again == seen  # deterministic with the seed


def test_tpe_marks_a_trial_without_a_metric_failed_and_carries_on() -> None:
    spec = MATRIX.validate_python(
        {"kind": "tpe", "numRuns": 3, "maxIterations": 2, "seed": 1,
         "metric": {"name": "loss", "optimization": "minimize"}, "params": {"x": {"kind": "uniform", "value": [0, 1]}}}
    )  # fmt: skip
    assert len(drive(suggester_for(spec), lambda p: None)) == 6


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="torch is installed: bayes runs")
def test_bayes_without_torch_is_refused_with_the_reason() -> None:
    spec = MATRIX.validate_python(
        {"kind": "bayes", "numInitialRuns": 2, "maxIterations": 2,
         "metric": {"name": "loss", "optimization": "minimize"},
         "utilityFunction": {"acquisitionFunction": "ucb", "kappa": 1.2},
         "params": {"x": {"kind": "uniform", "value": [0, 1]}}}
    )  # fmt: skip
    with pytest.raises(TrialsError, match="torch"):
        suggester_for(spec)


HYPERBAND = {"kind": "hyperband", "maxIterations": 9, "eta": 3, "seed": 5, "resource": {"name": "epochs"},
             "metric": {"name": "acc", "optimization": "maximize"},
             "params": {"x": {"kind": "uniform", "value": [0, 1]}}}  # fmt: skip


@pytest.mark.parametrize(
    "matrix",
    [
        {"kind": "grid", "params": {"n": {"kind": "range", "value": [0, 7, 1]}}},
        {"kind": "random", "numRuns": 7, "seed": 3, "params": {"x": {"kind": "uniform", "value": [0, 1]}}},
        {"kind": "mapping", "values": [{"n": i} for i in range(7)]},
        HYPERBAND,
    ],
    ids=["grid", "random", "mapping", "hyperband"],
)
def test_a_resumed_suggester_goes_on_as_the_one_that_made_the_trials(matrix: dict[str, Any]) -> None:
    spec = MATRIX.validate_python(matrix)

    def score(p: dict[str, Any]) -> float:
        return float(p.get("x", p.get("n", 0)))

    whole = drive(suggester_for(spec), score, limit=2)
    # A restart after 5 trials were made, the last one still running (not told).
    first = suggester_for(spec)
    made = first.ask(2) + first.ask(2)
    for s in made:
        first.tell(s.key, score(s.params))
    made += first.ask(1)
    past = [PastTrial(s.params, final=i < 4, metric=score(s.params)) for i, s in enumerate(made)]
    resumed = suggester_for(spec)
    keys = resumed.resume(past)
    assert keys is not None
    resumed.tell(keys[-1], score(made[-1].params))  # the live trial ends after the restart
    assert [s.params for s in made] + drive(resumed, score, limit=2) == whole


def test_a_suggester_refuses_trials_it_would_not_make() -> None:
    spec = MATRIX.validate_python({"kind": "grid", "params": {"n": {"kind": "range", "value": [0, 3, 1]}}})
    assert suggester_for(spec).resume([PastTrial({"n": 1}, final=True, metric=None)]) is None


def test_a_resumed_tpe_study_is_told_the_final_trials_and_asks_the_rest_of_its_rounds() -> None:
    pytest.importorskip("optuna")
    spec = MATRIX.validate_python(
        {"kind": "tpe", "numRuns": 3, "maxIterations": 2, "seed": 1,
         "metric": {"name": "loss", "optimization": "minimize"}, "params": {"x": {"kind": "uniform", "value": [0, 1]}}}
    )  # fmt: skip
    first = suggester_for(spec)
    made = first.ask(3)
    for s in made:
        first.tell(s.key, s.params["x"])
    made += first.ask(2)
    past = [PastTrial(s.params, final=i < 4, metric=s.params["x"] if i != 1 else None) for i, s in enumerate(made)]
    resumed = suggester_for(spec)
    keys = resumed.resume(past)
    assert keys is not None
    rest = resumed.ask(5)
    assert len(rest) == 1  # round 2 had one trial left
    assert resumed.ask(5) == []
    assert not resumed.finished  # until the live trial is told
    resumed.tell(rest[0].key, 0.5)
    resumed.tell(keys[-1], made[-1].params["x"])
    assert resumed.finished
    xs = [s.params["x"] for s in made + rest]
    assert len(set(xs)) == 6
