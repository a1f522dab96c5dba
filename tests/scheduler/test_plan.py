"""Plans survive the store: what a restarted engine reloads is what was submitted."""

from __future__ import annotations

from support.schedkit import build, dag, job

from polynb.scheduler.plan import (
    DagPlan,
    OpPlan,
    TerminationPlan,
    dag_op_termination,
    make_op_plan,
    plan_from_pipeline_op,
)
from polynb.spec.models import Termination


def test_op_plan_round_trips_through_meta() -> None:
    pipeline = build(
        dag(
            job("a", ["true"]),
            job(
                "b",
                ["true"],
                extra="dependencies: [a]\ntrigger: one_done\nskipOnUpstreamSkip: true\n"
                "termination: {maxRetries: 2, timeout: 30}\nconditions: '{{ true }}'\n"
                "events: [{ref: ops.a, kinds: [run_status_running, run_status_done]}]\n",
            ),
        )
    )
    plan = plan_from_pipeline_op(pipeline.ops["b"])
    again = OpPlan.from_meta(plan.to_meta())
    assert again.requirements == plan.requirements
    assert again.operation.termination == plan.operation.termination
    assert again.conditions == plan.conditions
    assert again.requirements.policy_upstream == frozenset({"a"})  # explicit dependency wins
    assert again.operation.termination is not None and again.operation.termination.max_retries == 2


def test_a_nested_dag_ops_termination_is_the_operations_over_its_components() -> None:
    pipeline = build(dag(job("a", ["true"], extra="termination: {timeout: 5}\n")))
    op = pipeline.ops["a"]
    component = op.component.model_copy(update={"termination": Termination(timeout=9, max_retries=2)})
    plan = make_op_plan(name="a", operation=op.operation, component=component, upstream=())
    assert dag_op_termination(plan) == TerminationPlan(max_retries=2, timeout=5.0)


def test_dag_plan_round_trips_through_meta() -> None:
    plan = DagPlan(name="d", inputs={"lr": 0.1}, concurrency=2, base_dir="/x", timeout=30.0, max_retries=2)
    assert DagPlan.from_meta(plan.to_meta()) == plan
    # A DAG stored before DAG retries existed is never retried.
    assert DagPlan.from_meta({"name": "d"}).max_retries == 0
