"""Trial generation against Polyaxon's documented semantics: what each generator gives, grid's cartesian
product, random's numRuns with a seed, mapping's rows and hyperband's bracket arithmetic."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from pydantic import TypeAdapter

from polynb.compiler.trials import HyperbandMath, TrialsError, grid, mapping, random_search, sample, unrunnable, values
from polynb.spec.matrix import HpParam, Hyperband, Matrix, MatrixSpec

MATRIX: TypeAdapter[MatrixSpec] = TypeAdapter(Matrix)


def hp(kind: str, value: Any) -> HpParam:
    return HpParam.model_validate({"kind": kind, "value": value})


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("choice", [1, "a", None], [1, "a", None]),
        ("range", [1, 10, 3], [1, 4, 7]),  # the stop is excluded, as numpy.arange
        ("range", "0:1:0.25", [0.0, 0.25, 0.5, 0.75]),
        ("linspace", {"start": 0, "stop": 1, "num": 5}, [0.0, 0.25, 0.5, 0.75, 1.0]),  # the stop is included
        ("logspace", "0:3:4", [1.0, 10.0, 100.0, 1000.0]),
        ("logspace", [0, 3, 4, 2], [1.0, 2.0, 4.0, 8.0]),
        ("geomspace", [1, 1000, 4], [1.0, 10.0, 100.0, 1000.0]),
        ("daterange", ["2024-06-01", "2024-06-07", 2], ["2024-06-01", "2024-06-03", "2024-06-05"]),
    ],
)
def test_enumerating_generators_give_their_values(kind: str, value: Any, expected: list[Any]) -> None:
    assert values(hp(kind, value)) == pytest.approx(expected) if kind != "daterange" else expected


def test_a_distribution_has_no_values_to_enumerate() -> None:
    with pytest.raises(TrialsError, match="samples"):
        values(hp("uniform", [0, 1]))


def test_loguniform_bounds_are_in_log_space_and_q_rounds_to_a_multiple() -> None:
    rng = random.Random(0)
    drawn = [sample(hp("loguniform", [math.log(1e-3), math.log(1e-1)]), rng) for _ in range(200)]
    assert all(1e-3 <= x <= 1e-1 for x in drawn)
    steps = [sample(hp("quniform", [0, 10, 2.5]), rng) for _ in range(200)]
    assert {x / 2.5 for x in steps} <= {0.0, 1.0, 2.0, 3.0, 4.0}
    assert all(sample(hp("pchoice", [["a", 0.0], ["b", 0.9]]), rng) == "b" for _ in range(50))


def test_grid_is_the_cartesian_product_in_the_order_written_capped_by_num_runs() -> None:
    params = {"lr": hp("choice", [0.1, 0.01]), "layers": hp("range", [1, 4, 1])}
    full = list(grid(params))
    assert full == [{"lr": lr, "layers": n} for lr in (0.1, 0.01) for n in (1, 2, 3)]
    assert list(grid(params, num_runs=4)) == full[:4]


def test_random_search_is_deterministic_with_a_seed_and_gives_distinct_trials() -> None:
    params = {"lr": hp("uniform", [0, 1]), "act": hp("choice", ["relu", "gelu"])}
    first, again = random_search(params, 10, seed=42), random_search(params, 10, seed=42)
    assert first == again and len(first) == 10
    assert len({repr(sorted(t.items())) for t in first}) == 10
    assert random_search(params, 10, seed=43) != first


def test_random_search_over_discrete_params_never_exceeds_the_grid() -> None:
    params = {"a": hp("choice", [1, 2]), "b": hp("range", [0, 3, 1])}
    trials = random_search(params, 50, seed=1)
    assert len(trials) == 6
    assert sorted((t["a"], t["b"]) for t in trials) == [(a, b) for a in (1, 2) for b in (0, 1, 2)]


def test_mapping_gives_one_trial_per_row_in_order() -> None:
    assert mapping([{"lr": 0.1, "d": "x"}, {"lr": 0.2, "d": "y"}]) == [{"lr": 0.1, "d": "x"}, {"lr": 0.2, "d": "y"}]
    with pytest.raises(TrialsError, match="template"):
        mapping("{{ rows }}")


def test_hyperband_brackets_match_polyaxons_formulas() -> None:
    """maxIterations 81, eta 3 (Polyaxon's docs' example): s_max = 4, B = 5 * 81; bracket s starts
    ceil(B/R * eta**s / (s+1)) configs with R * eta**-s of the resource; each round keeps 1/eta of them."""
    math_ = HyperbandMath(81, 3.0)
    assert (math_.s_max, math_.budget, math_.iterations) == (4, 405, 5)
    table = [math_.rounds(math_.bracket(i)) for i in range(math_.iterations)]
    assert table == [
        [(81, 1.0), (27, 3.0), (9, 9.0), (3, 27.0), (1, 81.0)],
        [(34, 3.0), (11, 9.0), (3, 27.0), (1, 81.0)],
        [(15, 9.0), (5, 27.0), (1, 81.0)],
        [(8, 27.0), (2, 81.0)],
        [(5, 81.0)],
    ]


def test_hyperband_needs_eta_above_one() -> None:
    spec = MATRIX.validate_python(
        {"kind": "hyperband", "maxIterations": 9, "eta": 1, "resource": {"name": "e"},
         "metric": {"name": "loss", "optimization": "minimize"}}
    )  # fmt: skip
    assert isinstance(spec, Hyperband)
    with pytest.raises(TrialsError, match="more than 1"):
        HyperbandMath.of(spec)


def test_what_polynb_cannot_run_is_said_with_the_reason() -> None:
    iterative = MATRIX.validate_python({"kind": "iterative", "maxIterations": 2, "params": {}})
    assert "tuner" in (unrunnable(iterative) or "")
    tpe = MATRIX.validate_python(
        {"kind": "tpe", "numRuns": 2, "metric": {"name": "loss", "optimization": "minimize"},
         "params": {"w": {"kind": "qnormal", "value": [0, 1, 1]}}}
    )  # fmt: skip
    assert "Optuna" in (unrunnable(tpe) or "")
    grid_ = MATRIX.validate_python({"kind": "grid", "params": {"a": {"kind": "choice", "value": [1]}}})
    assert unrunnable(grid_) is None
