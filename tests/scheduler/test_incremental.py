"""Incremental evaluation: counts kept per op and per DAG decide exactly as the pure rules over statuses."""

from __future__ import annotations

import random

from support.schedkit import Env, dag, job

from polynb.lifecycle import Status
from polynb.scheduler.dag_status import DagCounts, OpOutcome, counts_status, dag_status
from polynb.scheduler.plan import OpPlan
from polynb.scheduler.readiness import (
    Action,
    EventWait,
    Tally,
    UpstreamState,
    evaluate,
    evaluate_tallied,
    requirements,
)
from polynb.spec.models import TriggerPolicy

STATUSES = [None, Status.CREATED, Status.QUEUED, Status.RUNNING, Status.RETRYING, Status.SUCCEEDED,
            Status.FAILED, Status.STOPPED, Status.SKIPPED, Status.UPSTREAM_FAILED]  # fmt: skip


def test_tally_updated_move_by_move_decides_like_evaluate_over_the_statuses() -> None:
    rng = random.Random(7)
    names = [f"u{i}" for i in range(12)]
    for policy in TriggerPolicy:
        for skip in (False, True):
            req = requirements(
                upstream=names[:10],
                dependencies=names[:2],
                events=[EventWait("u0", frozenset({"run_status_running"})), EventWait("u11", frozenset({"x"}))],
                trigger=policy,
                skip_on_upstream_skip=skip,
            )
            states: dict[str, UpstreamState] = {}
            tally = Tally.of(req, states)
            for _ in range(300):
                name = rng.choice(names)
                old = states[name].status if name in states else None
                new = rng.choice(STATUSES)
                if new is None:
                    states.pop(name, None)
                else:
                    states[name] = UpstreamState(new, frozenset(rng.sample(["run_status_running", "x"], 1)))
                tally.moved(req, name, old, new)
                assert tally == Tally.of(req, states)
                assert evaluate_tallied(req, tally, states.get) == evaluate(req, states)


def test_dag_counts_updated_move_by_move_decide_like_dag_status() -> None:
    rng = random.Random(11)
    ops = [OpOutcome(Status.CREATED, is_service=i % 5 == 0) for i in range(20)]
    counts = DagCounts.of(ops)
    for _ in range(500):
        i = rng.randrange(len(ops))
        new = OpOutcome(rng.choice(STATUSES[1:]), ops[i].is_service)
        counts.add(ops[i], -1)
        counts.add(new)
        ops[i] = new
        assert counts == DagCounts.of(ops)
        assert counts_status(counts) == dag_status(ops)


def test_a_300_op_fan_in_decides_every_sink_as_its_policy_says(env: Env) -> None:
    # root -> 294 middles (a third succeed, a third fail, a third are skipped by their conditions) -> sinks.
    middles: list[str] = []
    ops = [job("root", ["true"])]
    for i in range(294):
        name = f"m{i}"
        middles.append(name)
        extra = "dependencies: [root]\n" + ('conditions: "{{ false }}"\n' if i % 3 == 2 else "")
        ops.append(job(name, ["true"] if i % 3 == 0 else ["false"], extra=extra))
    deps = ", ".join(middles)
    ok = ", ".join(m for i, m in enumerate(middles) if i % 3 == 0)
    sinks = {
        "all_succeeded": f"dependencies: [{deps}]\n",
        "all_done": f"dependencies: [{deps}]\ntrigger: all_done\n",
        "one_failed": f"dependencies: [{deps}]\ntrigger: one_failed\n",
        "all_failed": f"dependencies: [{deps}]\ntrigger: all_failed\n",
        "skip_on_skip": f"dependencies: [{deps}]\ntrigger: all_done\nskipOnUpstreamSkip: true\n",
        "only_ok": f"dependencies: [{ok}]\n",
    }
    ops += [job(f"sink_{name}", ["true"], extra=extra) for name, extra in sinks.items()]
    uuid = env.run(dag(*ops, name="fan"))
    assert env.wait(uuid) == "failed"

    records = env.ops(uuid)
    assert len(records) == 301
    for i, name in enumerate(middles):
        assert records[name].status == [Status.SUCCEEDED, Status.FAILED, Status.SKIPPED][i % 3], name
    expected = {Action.START: Status.SUCCEEDED, Action.SKIP: Status.SKIPPED, Action.UPSTREAM_FAILED:
                Status.UPSTREAM_FAILED}  # fmt: skip
    for name in sinks:
        record = records[f"sink_{name}"]
        req = OpPlan.from_meta(record.meta["plan"]).requirements
        states = {n: UpstreamState(records[n].status) for n in req.upstream}
        verdict = evaluate(req, states)
        assert record.status == expected[verdict.action], (name, record.status, record.message)
        assert record.reason == verdict.reason or verdict.action == Action.START, (name, record.reason)
    assert records["sink_all_done"].status == Status.SUCCEEDED
    assert records["sink_only_ok"].status == Status.SUCCEEDED
    assert records["sink_all_succeeded"].status == Status.UPSTREAM_FAILED
    assert records["sink_skip_on_skip"].status == Status.SKIPPED
