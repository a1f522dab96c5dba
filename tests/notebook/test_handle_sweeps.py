"""``RunHandle.sweep``/``best`` for a top-level sweep, ``sweeps[op]``/``best_of(op)`` for the ops of a DAG that
sweep (and ``sweep``/``best`` for a DAG's only one), as a notebook user reads them after ``polynb.run``."""

from __future__ import annotations

import pytest

import polynb
from polynb.notebook.session import KernelSession

from .test_op_sweep_view import DAG, LOSS

GUARD = 120.0


def two_sweeps() -> str:
    """``DAG`` with a second sweeping op (``again``), after ``tune``."""
    again = DAG.split("    - name: tune\n", 1)[1].split("    - name: report\n", 1)[0]
    again = again.replace("dependencies: [prep]", "dependencies: [tune]").replace("[0.1, 0.3, 0.45, 0.9]", "[0.2, 0.3]")
    return DAG.replace("name: study", "name: study2") + "    - name: again\n" + again


def test_a_dags_only_sweeping_op_is_its_sweep_and_best(session: KernelSession) -> None:
    handle = polynb.run(DAG)
    assert handle.wait(timeout=GUARD) == "succeeded"
    assert list(handle.sweeps) == ["tune"]
    assert [dict(t.params)["lr"] for t in handle.sweeps["tune"].trials] == [0.3, 0.45, 0.1, 0.9]
    best = {"trial": handle.sweeps["tune"].trials[0].name, "params": {"lr": 0.3}, "loss": 0.0}
    assert handle.best_of("tune") == best
    assert handle.sweep == handle.sweeps["tune"] and handle.best == best
    with pytest.raises(KeyError, match=r"no op 'prep' that sweeps and has started .*: tune"):
        handle.best_of("prep")


def test_a_dag_with_two_sweeping_ops_has_no_single_sweep_but_one_per_op(session: KernelSession) -> None:
    handle = polynb.run(two_sweeps())
    assert handle.wait(timeout=GUARD) == "succeeded"
    assert list(handle.sweeps) == ["tune", "again"]
    assert handle.sweep is None and handle.best is None
    assert (handle.best_of("tune") or {})["params"] == {"lr": 0.3}
    assert (handle.best_of("again") or {})["params"] == {"lr": 0.3}
    assert [dict(t.params)["lr"] for t in handle.sweeps["again"].trials] == [0.3, 0.2]


def test_a_top_level_sweep_is_its_own_sweep(session: KernelSession) -> None:
    import json

    from support.schedkit import PY

    text = f"""
version: 1.1
kind: operation
name: tune
matrix:
  kind: grid
  params: {{lr: {{kind: choice, value: [0.1, 0.3]}}}}
  earlyStopping: [{{kind: metric_early_stopping, metric: loss, value: -1, optimization: minimize}}]
component:
  name: train
  inputs: [{{name: lr, type: float}}]
  outputs: [{{name: loss, type: float}}]
  run: {{kind: job, container: {{command: {json.dumps([PY, "-c", LOSS, "{{ lr }}"])}}}}}
"""
    handle = polynb.run(text)
    assert handle.wait(timeout=GUARD) == "succeeded"
    assert handle.sweeps == {}
    assert handle.sweep is not None and (handle.best or {})["params"] == {"lr": 0.3}
