"""DAG status: failed > stopped > succeeded, decided once the non-service ops are final."""

from __future__ import annotations

from polynb.lifecycle import Status
from polynb.scheduler.dag_status import OpOutcome, all_final, dag_status, is_decided


def job(status: Status | None) -> OpOutcome:
    return OpOutcome(status)


def service(status: Status | None) -> OpOutcome:
    return OpOutcome(status, is_service=True)


def test_dag_fails_if_any_op_failed() -> None:
    assert dag_status([job(Status.FAILED), job(Status.STOPPED), job(Status.SUCCEEDED)]) == Status.FAILED


def test_dag_is_stopped_if_an_op_stopped_and_none_failed() -> None:
    assert dag_status([job(Status.STOPPED), job(Status.SUCCEEDED)]) == Status.STOPPED


def test_dag_succeeds_with_skipped_and_upstream_failed_ops() -> None:
    ops = [job(Status.SUCCEEDED), job(Status.SKIPPED), job(Status.UPSTREAM_FAILED)]
    assert dag_status(ops) == Status.SUCCEEDED


def test_dag_is_undecided_while_a_job_runs() -> None:
    assert dag_status([job(Status.SUCCEEDED), job(Status.RUNNING)]) is None
    assert dag_status([job(Status.SUCCEEDED), job(None)]) is None


def test_running_service_does_not_keep_the_dag_undecided() -> None:
    ops = [job(Status.SUCCEEDED), service(Status.RUNNING)]
    assert is_decided(ops)
    assert dag_status(ops) == Status.SUCCEEDED
    assert not all_final(ops)


def test_service_already_failed_counts() -> None:
    assert dag_status([job(Status.SUCCEEDED), service(Status.FAILED)]) == Status.FAILED


def test_dag_of_only_services_waits_for_them() -> None:
    assert dag_status([service(Status.RUNNING)]) is None
    assert dag_status([service(Status.STOPPED)]) == Status.STOPPED
