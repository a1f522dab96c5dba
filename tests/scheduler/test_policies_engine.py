"""Trigger policies decided as soon as certain, skipOnUpstreamSkip and conditions, on a real executor."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support.schedkit import Env, dag, job, wait_flag

from polynb.lifecycle import Status
from polynb.scheduler.events import EngineEvent


def done(env: Env, uuid: str) -> Callable[[list[EngineEvent]], bool]:
    return lambda evs: any(e.run_uuid == uuid and e.kind == "run_status_done" for e in evs)


def test_one_succeeded_starts_at_the_first_success_while_another_upstream_runs(env: Env) -> None:
    flag = env.tmp / "release"
    uuid = env.run(
        dag(
            job("fast", ["true"]),
            job("slow", wait_flag(flag)),
            job("after", ["true"], extra="dependencies: [fast, slow]\ntrigger: one_succeeded\n"),
        )
    )
    ops = env.ops(uuid)
    env.recorder.wait_for(done(env, ops["after"].uuid))
    assert not env.store.get_run(ops["slow"].uuid).is_final
    flag.touch()
    assert env.wait(uuid) == "succeeded"
    assert env.ops(uuid)["after"].status == Status.SUCCEEDED


def test_one_succeeded_gives_upstream_failed_only_when_all_upstreams_are_final(env: Env) -> None:
    flag = env.tmp / "release"
    uuid = env.run(
        dag(
            job("bad", ["false"]),
            job("slow_bad", [*wait_flag(flag)[:2], f'while [ ! -e "{flag}" ]; do sleep 0.05; done; exit 3']),
            job("after", ["true"], extra="dependencies: [bad, slow_bad]\ntrigger: one_succeeded\n"),
        )
    )
    ops = env.ops(uuid)
    env.recorder.wait_for(done(env, ops["bad"].uuid))
    assert env.store.get_run(ops["after"].uuid).status == Status.CREATED
    flag.touch()
    assert env.wait(uuid) == "failed"
    after = env.ops(uuid)["after"]
    assert after.status == Status.UPSTREAM_FAILED
    assert env.seq(ops["slow_bad"].uuid, "run_status_done") < env.seq(after.uuid, "run_status_upstream_failed")


def test_all_succeeded_gives_upstream_failed_as_soon_as_one_upstream_fails(env: Env) -> None:
    flag = env.tmp / "release"
    uuid = env.run(
        dag(
            job("bad", ["false"]),
            job("slow", wait_flag(flag)),
            job("after", ["true"], extra="dependencies: [bad, slow]\n"),
        )
    )
    ops = env.ops(uuid)
    env.recorder.wait_for(done(env, ops["after"].uuid))
    assert env.store.get_run(ops["after"].uuid).status == Status.UPSTREAM_FAILED
    assert not env.store.get_run(ops["slow"].uuid).is_final
    flag.touch()
    assert env.wait(uuid) == "failed"


@pytest.mark.parametrize(
    ("policy", "upstreams", "expected"),
    [
        ("all_failed", [["false"], ["false"]], Status.SUCCEEDED),
        ("all_failed", [["false"], ["true"]], Status.UPSTREAM_FAILED),
        ("all_done", [["false"], ["true"]], Status.SUCCEEDED),
        ("one_failed", [["true"], ["false"]], Status.SUCCEEDED),
        ("one_failed", [["true"], ["true"]], Status.UPSTREAM_FAILED),
        ("one_done", [["false"], ["true"]], Status.SUCCEEDED),
        ("one_succeeded", [["false"], ["true"]], Status.SUCCEEDED),
        ("all_succeeded", [["true"], ["true"]], Status.SUCCEEDED),
    ],
)
def test_trigger_policy_outcome(env: Env, policy: str, upstreams: list[list[str]], expected: Status) -> None:
    uuid = env.run(
        dag(
            job("u0", upstreams[0]),
            job("u1", upstreams[1]),
            job("after", ["true"], extra=f"dependencies: [u0, u1]\ntrigger: {policy}\n"),
        )
    )
    env.wait(uuid)
    assert env.ops(uuid)["after"].status == expected


def test_one_failed_starts_at_the_first_failure(env: Env) -> None:
    flag = env.tmp / "release"
    uuid = env.run(
        dag(
            job("bad", ["false"]),
            job("slow", wait_flag(flag)),
            job("cleanup", ["true"], extra="dependencies: [bad, slow]\ntrigger: one_failed\n"),
        )
    )
    ops = env.ops(uuid)
    env.recorder.wait_for(done(env, ops["cleanup"].uuid))
    assert env.store.get_run(ops["cleanup"].uuid).status == Status.SUCCEEDED
    assert not env.store.get_run(ops["slow"].uuid).is_final
    flag.touch()
    env.wait(uuid)


def test_skip_on_upstream_skip_skips_the_op(env: Env) -> None:
    uuid = env.run(
        dag(
            job("gate", ["true"], extra='conditions: "{{ false }}"\n'),
            job("after", ["true"], extra="dependencies: [gate]\nskipOnUpstreamSkip: true\n"),
            job("plain", ["true"], extra="dependencies: [gate]\n"),
        )
    )
    assert env.wait(uuid) == "succeeded"
    ops = env.ops(uuid)
    assert ops["gate"].status == Status.SKIPPED
    assert ops["after"].status == Status.SKIPPED
    assert ops["after"].reason == "UpstreamSkipped"
    # Without the flag a skipped upstream is not a success (Polyaxon's code, not its docs).
    assert ops["plain"].status == Status.UPSTREAM_FAILED


def test_conditions_true_runs_the_op(env: Env) -> None:
    uuid = env.run(dag(job("op", ["true"], extra='params: {x: {value: 3}}\nconditions: "{{ x > 2 }}"\n')))
    env.wait(uuid)
    assert env.ops(uuid)["op"].status == Status.SUCCEEDED


def test_conditions_false_skips_the_op(env: Env) -> None:
    uuid = env.run(dag(job("op", ["true"], extra='params: {x: {value: 1}}\nconditions: "{{ x > 2 }}"\n')))
    assert env.wait(uuid) == "succeeded"
    op = env.ops(uuid)["op"]
    assert op.status == Status.SKIPPED
    assert op.reason == "ConditionsNotMet"
    assert "run_status_running" not in env.kinds(op.uuid)


def test_conditions_error_fails_the_op_with_the_message(env: Env) -> None:
    uuid = env.run(dag(job("op", ["true"], extra='conditions: "{{ missing > 2 }}"\n')))
    assert env.wait(uuid) == "failed"
    op = env.ops(uuid)["op"]
    assert op.status == Status.FAILED
    assert op.message is not None
    assert "missing" in op.message


def test_conditions_non_boolean_fails_the_op(env: Env) -> None:
    uuid = env.run(dag(job("op", ["true"], extra="conditions: \"{{ 'maybe' }}\"\n")))
    env.wait(uuid)
    op = env.ops(uuid)["op"]
    assert op.status == Status.FAILED
    assert op.message is not None
    assert "boolean" in op.message


def test_conditions_see_upstream_outputs_pulled_in_as_params(env: Env) -> None:
    from support.schedkit import write_outputs

    tune = job(
        "tune",
        ["true"],
        extra="params: {loss: {ref: ops.train, value: outputs.loss, contextOnly: true}}\n"
        'conditions: "{{ loss > 0.5 }}"\n',
    )
    uuid = env.run(dag(job("train", write_outputs(loss=0.9)), tune))
    env.wait(uuid)
    assert env.ops(uuid)["tune"].status == Status.SUCCEEDED
