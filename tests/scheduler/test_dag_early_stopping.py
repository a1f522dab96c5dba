"""A DAG's ``earlyStopping``: an op's metric or the share of failed ops stops the DAG."""

from __future__ import annotations

from support.schedkit import Env, dag, describe, job, wait_flag, write_outputs, yaml_list

from polynb.lifecycle import Status


def producer(name: str, loss: float) -> str:
    return f"""name: {name}
component:
  name: {name}
  outputs: [{{name: loss, type: float}}]
  run: {{kind: job, container: {{command: {yaml_list(write_outputs(loss=loss))}}}}}"""


METRIC = "  earlyStopping:\n    - {kind: metric_early_stopping, metric: loss, value: 0.1, optimization: minimize}\n"


def with_policy(text: str, policy: str) -> str:
    return text.replace("  operations:\n", policy + "  operations:\n", 1)


def test_an_op_reaching_the_metric_stops_the_rest_and_the_dag_succeeds(env: Env) -> None:
    never = env.tmp / "never"
    text = with_policy(
        dag(producer("good", 0.05), job("slow", wait_flag(never)), job("after", ["true"], "dependencies: [slow]\n")),
        METRIC,
    )
    uuid = env.run(text)
    assert env.wait(uuid) == "succeeded", describe(env.store, uuid)
    record = env.store.get_run(uuid)
    assert record.reason == "EarlyStopping"
    assert (record.message or "").startswith("op good reached loss = 0.05 (<= 0.1)")
    ops = env.ops(uuid)
    assert ops["good"].status == Status.SUCCEEDED
    assert ops["slow"].status == Status.STOPPED  # running: asked to stop, reason EarlyStopping
    stopping = [c for c in env.store.status_history(ops["slow"].uuid) if c.status == Status.STOPPING]
    assert [c.reason for c in stopping] == ["EarlyStopping"]
    assert ops["after"].status == Status.STOPPED  # never started


def test_a_metric_not_reached_changes_nothing(env: Env) -> None:
    uuid = env.run(with_policy(dag(producer("meh", 0.5), job("next", ["true"])), METRIC))
    assert env.wait(uuid) == "succeeded", describe(env.store, uuid)
    assert env.store.get_run(uuid).reason == "OpsDone"
    assert {r.status for r in env.ops(uuid).values()} == {Status.SUCCEEDED}


def test_failures_over_the_percent_stop_the_dag_which_fails(env: Env) -> None:
    never = env.tmp / "never"
    policy = "  earlyStopping:\n    - {kind: failure_early_stopping, percent: 30}\n"
    uuid = env.run(with_policy(dag(job("bad", ["false"]), job("slow", wait_flag(never)), job("ok", ["true"])), policy))
    assert env.wait(uuid) == "failed", describe(env.store, uuid)
    record = env.store.get_run(uuid)
    assert record.reason == "EarlyStopping" and (record.message or "").startswith("1 of 3 ops failed (>= 30%)")
    assert env.ops(uuid)["slow"].status == Status.STOPPED


def test_an_op_waiting_for_a_slot_is_not_started_once_the_policy_is_met(env: Env) -> None:
    # concurrency 1: `later` waits for the slot `good` holds; `good` meets the policy as it ends, so the slot it
    # frees must not go to `later` (it was queued, then stopped, in the same pass).
    ran = env.tmp / "later-ran"
    policy = METRIC + "  concurrency: 1\n"
    uuid = env.run(with_policy(dag(producer("good", 0.05), job("later", ["touch", str(ran)])), policy))
    assert env.wait(uuid) == "succeeded", describe(env.store, uuid)
    later = env.ops(uuid)["later"]
    assert later.status == Status.STOPPED
    history = [c.status for c in env.store.status_history(later.uuid)]
    assert Status.QUEUED not in history, history
    assert not ran.exists()
