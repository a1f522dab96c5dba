"""Sweeps in the engine: trials are runs under the matrix run, made lazily up to ``concurrency``, their
params substituted into the component's inputs; the sweep's status, early stopping, hooks and stop."""

from __future__ import annotations

import json
import textwrap

import pytest
from support.schedkit import PY, Env, build

from polynb.lifecycle import Status

_LOSS = (
    "import json, os, sys; lr = float(sys.argv[1]); "
    "json.dump({'loss': round((lr - 0.3) ** 2, 6)}, "
    "open(os.path.join(os.environ['POLYAXON_RUN_OUTPUTS_PATH'], 'outputs.json'), 'w')); "
    "sys.exit(1 if lr < 0 else 0)"
)


def sweep(matrix: str, *, hooks: str = "", component_hooks: str = "") -> str:
    command = json.dumps([PY, "-c", _LOSS, "{{ lr }}"])
    lines = ["version: 1.1", "kind: operation", "name: sweep", "matrix:",
             textwrap.indent(textwrap.dedent(matrix).strip(), "  "), hooks,
             "component:", "  name: train", "  inputs: [{name: lr, type: float}]",
             "  outputs: [{name: loss, type: float}]", f"  {component_hooks}",
             f"  run: {{kind: job, container: {{command: {command}}}}}"]  # fmt: skip
    return "\n".join(lines) + "\n"


def trials(env: Env, uuid: str) -> list:
    return [r for r in env.store.children(uuid) if r.hook_of is None]


def test_grid_sweep_runs_every_combination_as_trials_under_the_sweep(env: Env) -> None:
    uuid = env.run(
        sweep("""
        kind: grid
        concurrency: 2
        params:
          lr: {kind: choice, value: [0.1, 0.3, 0.5]}
    """)
    )
    assert env.wait(uuid) == "succeeded"
    record = env.store.get_run(uuid)
    assert record.kind == "matrix"
    runs = trials(env, uuid)
    assert sorted(r.inputs["lr"] for r in runs) == [0.1, 0.3, 0.5]
    assert all(r.status == Status.SUCCEEDED and r.dag_uuid == uuid for r in runs)
    assert {r.inputs["lr"]: r.outputs["loss"] for r in runs} == {0.1: 0.04, 0.3: 0.0, 0.5: 0.04}
    assert [r.name for r in runs] == ["sweep-1", "sweep-2", "sweep-3"]


def test_trials_are_created_lazily_never_more_than_concurrency_at_once(env: Env) -> None:
    uuid = env.run(
        sweep("""
        kind: random
        numRuns: 6
        seed: 3
        concurrency: 2
        params:
          lr: {kind: uniform, value: [0, 1]}
    """)
    )
    assert env.wait(uuid) == "succeeded"
    runs = trials(env, uuid)
    assert len(runs) == 6
    # Each trial after the first two was created only once an earlier one was final.
    finished = sorted(env.seq(r.uuid, "run_status_succeeded") for r in runs)
    for k, run in enumerate(runs[2:]):
        assert env.seq(run.uuid, "run_status_created") > finished[k]


def test_random_sweep_with_a_seed_gives_the_same_trials_again(env: Env) -> None:
    text = sweep("""
        kind: random
        numRuns: 3
        seed: 7
        params:
          lr: {kind: uniform, value: [0, 1]}
    """)
    first, second = env.run(text), env.run(text)
    env.wait(first)
    env.wait(second)
    assert [r.inputs for r in trials(env, first)] == [r.inputs for r in trials(env, second)]


def test_a_failed_trial_fails_the_sweep_after_every_trial_is_done(env: Env) -> None:
    uuid = env.run(
        sweep("""
        kind: mapping
        concurrency: 1
        values: [{lr: -1.0}, {lr: 0.2}]
    """)
    )
    assert env.wait(uuid) == "failed"
    assert [r.status for r in trials(env, uuid)] == [Status.FAILED, Status.SUCCEEDED]
    assert env.store.get_run(uuid).reason == "TrialsFailed"


def test_failure_early_stopping_stops_the_sweep_once_the_percent_of_trials_failed(env: Env) -> None:
    uuid = env.run(
        sweep("""
        kind: mapping
        concurrency: 1
        earlyStopping: [{kind: failure_early_stopping, percent: 40}]
        values: [{lr: 0.1}, {lr: -1.0}, {lr: -2.0}, {lr: 0.2}, {lr: 0.4}]
    """)
    )
    assert env.wait(uuid) == "failed"
    # 2 of the 5 trials (40%) failed: no trial starts after that.
    assert [r.inputs["lr"] for r in trials(env, uuid)] == [0.1, -1.0, -2.0]
    assert env.store.get_run(uuid).reason == "EarlyStopping"


def test_metric_early_stopping_ends_the_sweep_when_a_trial_reaches_the_value(env: Env) -> None:
    uuid = env.run(
        sweep("""
        kind: grid
        concurrency: 1
        earlyStopping:
          - {kind: metric_early_stopping, metric: loss, value: 0.001, optimization: minimize}
        params:
          lr: {kind: choice, value: [0.1, 0.3, 0.5, 0.7]}
    """)
    )
    assert env.wait(uuid) == "succeeded"
    assert [r.inputs["lr"] for r in trials(env, uuid)] == [0.1, 0.3]
    record = env.store.get_run(uuid)
    assert record.reason == "EarlyStopping" and "loss = 0" in (record.message or "")


def test_hyperband_gives_the_resource_and_keeps_the_best(env: Env) -> None:
    text = textwrap.dedent(f"""\
        version: 1.1
        kind: operation
        name: hb
        matrix:
          kind: hyperband
          maxIterations: 9
          eta: 3
          seed: 1
          resource: {{name: epochs, type: int}}
          metric: {{name: loss, optimization: minimize}}
          params:
            lr: {{kind: uniform, value: [0, 1]}}
        component:
          name: train
          inputs: [{{name: lr, type: float}}, {{name: epochs, type: int}}]
          outputs: [{{name: loss, type: float}}]
          run:
            kind: job
            container: {{command: {json.dumps([PY, "-c", _LOSS, "{{ lr }}"])}}}
        """)
    uuid = env.engine.submit(build(text, registry=env.registry))
    assert env.wait(uuid) == "succeeded"
    runs = trials(env, uuid)
    # maxIterations 9, eta 3: s_max 2; brackets (9 at 1, 3 at 3, 1 at 9), (5 at 3, 1 at 9), (3 at 9).
    assert [r.inputs["epochs"] for r in runs] == [1] * 9 + [3] * 3 + [9] + [3] * 5 + [9] + [9] * 3
    first = runs[:9]
    best3 = sorted(first, key=lambda r: r.outputs["loss"])[:3]
    assert sorted(r.inputs["lr"] for r in runs[9:12]) == sorted(r.inputs["lr"] for r in best3)


def test_tpe_sweep_asks_optuna_and_tells_it_each_trials_metric(env: Env) -> None:
    pytest.importorskip("optuna")
    uuid = env.run(
        sweep("""
        kind: tpe
        numRuns: 3
        maxIterations: 2
        seed: 0
        concurrency: 2
        metric: {name: loss, optimization: minimize}
        params:
          lr: {kind: uniform, value: [0, 1]}
    """)
    )
    assert env.wait(uuid) == "succeeded"
    runs = trials(env, uuid)
    assert len(runs) == 6
    assert all("loss" in r.outputs for r in runs)


def test_operation_hooks_run_for_the_sweep_and_component_hooks_for_each_trial(env: Env) -> None:
    uuid = env.run(
        sweep(
            """
        kind: grid
        params:
          lr: {kind: choice, value: [0.1, 0.2]}
    """,
            hooks="hooks: [{hubRef: webhook, params: {url: {value: 'http://127.0.0.1:9/x'}}}]",
            component_hooks="hooks: [{hubRef: webhook, params: {url: {value: 'http://127.0.0.1:9/y'}}}]",
        )
    )
    env.wait(uuid)
    assert [h.name for h in env.store.hooks_of(uuid)] == ["sweep-webhook"]
    for trial in trials(env, uuid):
        assert [h.name for h in env.store.hooks_of(trial.uuid)] == [f"{trial.name}-webhook"]


def test_stopping_a_sweep_stops_its_trials_and_starts_no_more(env: Env) -> None:
    flag = env.tmp / "go"
    text = textwrap.dedent(f"""\
        version: 1.1
        kind: operation
        name: slow
        matrix:
          kind: grid
          concurrency: 2
          params:
            n: {{kind: range, value: [0, 10, 1]}}
        component:
          name: wait
          inputs: [{{name: n, type: int}}]
          run:
            kind: job
            container: {{command: [sh, -c, 'while [ ! -e "{flag}" ]; do sleep 0.05; done']}}
        """)
    uuid = env.engine.submit(build(text, registry=env.registry))
    env.recorder.wait_for(lambda events: sum(e.kind == "run_status_running" and e.dag_uuid == uuid
                                             for e in events) >= 2)  # fmt: skip
    env.engine.stop(uuid)
    assert env.wait(uuid) == "stopped"
    runs = trials(env, uuid)
    assert len(runs) == 2 and all(r.status == Status.STOPPED for r in runs)


def test_iterative_is_refused_with_the_reason() -> None:
    from polynb.spec.errors import SpecErrors

    with pytest.raises(SpecErrors, match="iterative"):
        build(
            sweep("""
            kind: iterative
            maxIterations: 3
            params:
              lr: {kind: uniform, value: [0, 1]}
        """)
        )


def test_an_op_of_a_dag_sweeps_reading_upstream_outputs_and_its_downstream_waits_for_every_trial(env: Env) -> None:
    from support.schedkit import dag, job, write_outputs

    trial_cmd = json.dumps([PY, "-c", _LOSS, "{{ lr }}"])
    sweep_op = (
        "name: tune\n"
        "dependencies: [prepare]\n"
        "matrix: {kind: grid, concurrency: 2, params: {lr: {kind: choice, value: [0.1, 0.3, 0.5]}}}\n"
        "params: {base: {ref: ops.prepare, value: outputs.base}}\n"
        "component:\n"
        "  name: train\n"
        "  inputs: [{name: lr, type: float}, {name: base, type: int}]\n"
        "  outputs: [{name: loss, type: float}]\n"
        f"  run: {{kind: job, container: {{command: {trial_cmd}}}}}"
    )
    prepare = (
        "name: prepare\ncomponent:\n  name: prepare\n  outputs: [{name: base, type: int}]\n"
        f"  run: {{kind: job, container: {{command: {json.dumps(write_outputs(base=7))}}}}}"
    )
    text = dag(
        prepare,
        sweep_op,
        job("report", [PY, "-c", "print('done')"], extra="dependencies: [tune]\n"),
    )
    uuid = env.run(text)
    assert env.wait(uuid) == "succeeded"
    ops = env.ops(uuid)
    tune = ops["tune"]
    assert tune.status == Status.SUCCEEDED and tune.meta["sweep"]["total"] == 3
    runs = trials(env, tune.uuid)
    assert sorted(r.inputs["lr"] for r in runs) == [0.1, 0.3, 0.5]
    assert {r.inputs["base"] for r in runs} == {7}  # read from the upstream op, as the op would
    last_trial = max(env.seq(r.uuid, "run_status_succeeded") for r in runs)
    assert (
        env.seq(ops["report"].uuid, "run_status_created")
        < last_trial
        < env.seq(ops["report"].uuid, "run_status_compiled")
    )


def test_stopping_a_dag_stops_the_trials_of_its_sweeping_op(env: Env) -> None:
    from support.schedkit import dag

    flag = env.tmp / "never"
    sweep_op = (
        "name: tune\n"
        "matrix: {kind: grid, concurrency: 2, params: {n: {kind: range, value: [0, 10, 1]}}}\n"
        "component:\n"
        "  name: wait\n"
        "  inputs: [{name: n, type: int}]\n"
        f"  run: {{kind: job, container: {{command: [sh, -c, 'while [ ! -e \"{flag}\" ]; do sleep 0.05; done']}}}}"
    )
    uuid = env.run(dag(sweep_op))
    tune = env.ops(uuid)["tune"].uuid
    env.recorder.wait_for(
        lambda events: sum(e.kind == "run_status_running" and e.dag_uuid == tune for e in events) >= 2
    )
    env.engine.stop(uuid)
    assert env.wait(uuid) == "stopped"
    assert env.store.get_run(tune).status == Status.STOPPED
    runs = trials(env, tune)
    assert len(runs) == 2 and all(r.status == Status.STOPPED for r in runs)


def test_polynb_stop_of_a_dag_no_engine_runs_stops_the_trials_of_its_sweeping_op(env: Env) -> None:
    # As for a scheduled op's ticks: the sweeping op's run (kind matrix) is over its trials, which are stopped too.
    from support.schedkit import dag

    from polynb.executors.local.executor import LocalExecutor
    from polynb.scheduler import control

    flag = env.tmp / "never"
    sweep_op = (
        "name: tune\n"
        "matrix: {kind: grid, concurrency: 2, params: {n: {kind: range, value: [0, 10, 1]}}}\n"
        "component:\n"
        "  name: wait\n"
        "  inputs: [{name: n, type: int}]\n"
        f"  run: {{kind: job, container: {{command: [sh, -c, 'while [ ! -e \"{flag}\" ]; do sleep 0.05; done']}}}}"
    )
    uuid = env.run(dag(sweep_op))
    tune = env.ops(uuid)["tune"].uuid
    env.recorder.wait_for(
        lambda events: sum(e.kind == "run_status_running" and e.dag_uuid == tune for e in events) >= 2
    )
    env.engine.shutdown(stop_running=False)
    how = control.stop(env.store, env.store.get_run(uuid), executors=lambda: {"local": LocalExecutor(base_dir=env.tmp)})
    assert how == "direct"
    assert env.store.get_run(uuid).status == Status.STOPPED
    assert env.store.get_run(tune).status == Status.STOPPED
    running = [r for r in env.store.children(tune) if r.hook_of is None]
    assert len(running) == 2 and {r.status for r in running} == {Status.STOPPED}, [r.status for r in running]
