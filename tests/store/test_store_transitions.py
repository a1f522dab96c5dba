"""Status changes: what one change writes, and the changes the store refuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from polynb.lifecycle import FINAL, Status
from polynb.store import NewRun, RunNotFoundError, Step, Store

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def new_job(store: Store, name: str = "train", **kwargs: object) -> str:
    return store.create_run(NewRun(name=name, kind="job", **kwargs), at=T0).uuid  # type: ignore[arg-type]


def kinds(store: Store, uuid: str) -> list[str]:
    return [e.kind for e in store.events(run_uuid=uuid)]


def test_a_new_run_is_created_with_its_history_row_and_event(store: Store) -> None:
    uuid = new_job(store, inputs={"lr": 0.1}, message="from cell 3")
    run = store.get_run(uuid)
    assert (run.status, run.message, run.inputs, run.attempt) == (Status.CREATED, "from cell 3", {"lr": 0.1}, 0)
    assert run.created_at == T0
    assert (run.started_at, run.finished_at) == (None, None)
    [change] = store.status_history(uuid)
    assert (change.status, change.previous, change.at) == (Status.CREATED, None, T0)
    assert kinds(store, uuid) == ["run_status_created"]


def test_transitions_are_recorded_with_reason_message_and_timestamps(store: Store) -> None:
    uuid = new_job(store)
    assert store.claim(uuid, executor="local", at=at(1))
    assert store.set_status(uuid, Status.STARTING, reason="Submitted", message="pid 42", at=at(3))
    assert store.set_status(uuid, Status.RUNNING, at=at(4))
    done = store.set_status(uuid, Status.SUCCEEDED, reason="Completed", message="exit 0", at=at(10))

    run = store.get_run(uuid)
    assert run == done.run
    assert (run.status, run.reason, run.message) == (Status.SUCCEEDED, "Completed", "exit 0")
    # started_at: the first running-ish status (starting), not the later `running`.
    assert (run.started_at, run.finished_at) == (at(3), at(10))
    assert (run.wait_time, run.duration) == (pytest.approx(3.0), pytest.approx(7.0))
    assert (run.executor, run.attempt) == ("local", 1)
    history = store.status_history(uuid)
    assert [(c.status, c.previous, c.reason, c.message, c.at) for c in history] == [
        (Status.CREATED, None, None, None, T0),
        (Status.QUEUED, Status.CREATED, None, None, at(1)),
        (Status.STARTING, Status.QUEUED, "Submitted", "pid 42", at(3)),
        (Status.RUNNING, Status.STARTING, None, None, at(4)),
        (Status.SUCCEEDED, Status.RUNNING, "Completed", "exit 0", at(10)),
    ]
    events = store.events(run_uuid=uuid)
    assert [e.seq for e in events[:-1]] == [c.seq for c in history]
    assert events[2].payload == {
        "name": "train",
        "run_kind": "job",
        "status": "starting",
        "previous": "queued",
        "reason": "Submitted",
        "message": "pid 42",
        "attempt": 1,
    }


def test_reaching_a_final_status_also_emits_run_status_done(store: Store) -> None:
    uuid = new_job(store)
    store.set_status(uuid, Status.RUNNING)
    result = store.set_status(uuid, Status.FAILED, reason="Error", message="exit 1")
    assert [e.kind for e in result.events] == ["run_status_failed", "run_status_done"]
    assert result.events[1].seq == result.events[0].seq + 1
    assert result.events[1].payload["status"] == "failed"
    assert kinds(store, uuid) == ["run_status_created", "run_status_running", "run_status_failed", "run_status_done"]
    assert result.events == tuple(store.events(run_uuid=uuid)[-2:])


def test_a_non_final_status_emits_no_done_event(store: Store) -> None:
    uuid = new_job(store)
    for status in (Status.QUEUED, Status.RUNNING, Status.WARNING, Status.RETRYING):
        store.set_status(uuid, status)
    assert "run_status_done" not in kinds(store, uuid)


def test_a_run_that_never_started_gets_finished_at_and_a_duration_from_creation(store: Store) -> None:
    uuid = new_job(store)
    store.set_status(uuid, Status.SKIPPED, reason="ConditionsNotMet", at=at(5))
    run = store.get_run(uuid)
    assert (run.started_at, run.wait_time, run.finished_at) == (None, None, at(5))
    assert run.duration == pytest.approx(5.0)


@pytest.mark.parametrize("final", sorted(FINAL))
def test_a_final_status_is_never_overwritten(store: Store, final: Status) -> None:
    uuid = new_job(store)
    store.set_status(uuid, final, reason="First", message="kept")
    before = (store.get_run(uuid), store.status_history(uuid), store.events(run_uuid=uuid))
    for status in Status:
        if status != Status.DONE:
            result = store.set_status(uuid, status, reason="Late", message="ignored")
            assert not result
            assert result.events == ()
    assert (store.get_run(uuid), store.status_history(uuid), store.events(run_uuid=uuid)) == before


def test_from_stopping_only_a_final_status_is_accepted(store: Store) -> None:
    uuid = new_job(store)
    store.set_status(uuid, Status.RUNNING)
    assert store.set_status(uuid, Status.STOPPING, reason="UserStop")
    refused = store.set_status(uuid, Status.RUNNING)
    assert not refused
    assert refused.previous == Status.STOPPING
    assert not store.set_status(uuid, Status.RETRYING)
    assert store.get_run(uuid).status == Status.STOPPING
    assert store.set_status(uuid, Status.STOPPED, reason="UserStop")
    assert [c.status for c in store.status_history(uuid)][-2:] == [Status.STOPPING, Status.STOPPED]


def test_the_same_status_again_adds_no_event_but_updates_the_message(store: Store) -> None:
    uuid = new_job(store)
    store.set_status(uuid, Status.RUNNING, message="epoch 1/10")
    seq = store.last_seq()
    again = store.set_status(uuid, Status.RUNNING, message="epoch 2/10")
    assert not again
    assert again.events == ()
    assert store.last_seq() == seq
    assert len(store.status_history(uuid)) == 2
    assert store.get_run(uuid).message == "epoch 2/10"
    assert again.run.message == "epoch 2/10"


def test_done_is_never_stored(store: Store) -> None:
    uuid = new_job(store)
    with pytest.raises(ValueError, match="pseudo-status"):
        store.set_status(uuid, Status.DONE)
    with pytest.raises(ValueError, match="bogus"):
        store.set_status(uuid, "bogus")
    assert store.get_run(uuid).status == Status.CREATED


def test_expected_makes_a_compare_and_set(store: Store) -> None:
    uuid = new_job(store)
    store.set_status(uuid, Status.RUNNING)
    assert not store.set_status(uuid, Status.STOPPED, expected={Status.CREATED})
    assert store.get_run(uuid).status == Status.RUNNING
    assert store.set_status(uuid, Status.STOPPED, expected={Status.RUNNING})


def test_a_claim_wins_once_and_counts_attempts(store: Store) -> None:
    uuid = new_job(store)
    first = store.claim(uuid, executor="local", spec={"argv": ["python", "train.py"]}, inputs={"lr": 0.1})
    assert first
    assert first.run.status == Status.QUEUED
    assert not store.claim(uuid, executor="local")
    assert not store.claim(uuid, status=Status.STARTING, executor="other")  # queued is taken, whatever the target
    run = store.get_run(uuid)
    assert (run.attempt, run.executor) == (1, "local")
    assert (run.spec, run.inputs) == ({"argv": ["python", "train.py"]}, {"lr": 0.1})
    # A retry goes through `retrying` and may be claimed again: a second attempt.
    store.set_status(uuid, Status.RUNNING)
    store.set_status(uuid, Status.RETRYING, reason="Retry", message="exit 1, 1 retry left")
    assert store.claim(uuid, status=Status.STARTING)
    assert store.get_run(uuid).attempt == 2


def test_a_final_run_cannot_be_claimed(store: Store) -> None:
    uuid = new_job(store)
    store.set_status(uuid, Status.STOPPED)
    assert not store.claim(uuid)
    assert store.get_run(uuid).attempt == 0


def test_unknown_runs_are_reported(store: Store) -> None:
    missing = "0" * 32
    with pytest.raises(RunNotFoundError):
        store.set_status(missing, Status.RUNNING)
    with pytest.raises(RunNotFoundError):
        store.claim(missing)
    with pytest.raises(RunNotFoundError):
        store.get_run(missing)
    assert store.last_seq() == 0


def _written(store: Store, uuid: str) -> tuple[object, ...]:
    """What a run's changes wrote, without what differs between two runs (uuid, event seqs)."""
    run = store.get_run(uuid)
    history = [(c.status, c.previous, c.reason, c.message, c.at) for c in store.status_history(uuid)]
    events = [(e.kind, e.at, e.payload) for e in store.events(run_uuid=uuid)]
    fields = (run.status, run.reason, run.message, run.attempt, run.executor, run.spec, run.inputs)
    times = (run.created_at, run.updated_at, run.started_at, run.finished_at, run.wait_time, run.duration)
    return fields, times, history, events


def test_move_writes_what_set_status_and_claim_write(tmp_path: Path) -> None:
    spec = {"kind": "operation", "component": {"run": {"kind": "job"}}}
    with Store(tmp_path / "a.db") as full, Store(tmp_path / "b.db") as lean:
        a = new_job(full, spec=spec, inputs={"lr": 0.1})
        b = new_job(lean, spec=spec, inputs={"lr": 0.1})
        full.set_status(a, Status.COMPILED, reason="Created", at=at(1))
        full.claim(a, executor="local", reason="Queued", at=at(2))
        full.set_status(a, Status.STARTING, message="pid 42", at=at(3))
        full.set_status(a, Status.RUNNING, at=at(4))
        full.set_status(a, Status.FAILED, reason="Error", message="exit 1", at=at(9))
        moves = [
            lean.move(b, Status.COMPILED, known=Status.CREATED, reason="Created", at=at(1)),
            lean.move(b, Status.QUEUED, known=Status.COMPILED, claim=True, executor="local", reason="Queued", at=at(2)),
            lean.move(b, Status.STARTING, known=Status.QUEUED, message="pid 42", at=at(3)),
            lean.move(b, Status.RUNNING, known=Status.STARTING, at=at(4)),
            lean.move(b, Status.FAILED, known=Status.RUNNING, reason="Error", message="exit 1", at=at(9)),
        ]
        assert all(moves)
        assert [(m.previous, m.status, m.attempt) for m in moves][1:3] == [
            (Status.COMPILED, Status.QUEUED, 1),
            (Status.QUEUED, Status.STARTING, 1),
        ]
        assert [e.kind for e in moves[-1].events] == ["run_status_failed", "run_status_done"]
        assert [e.seq for e in moves[-1].events] == [e.seq for e in lean.events(run_uuid=b)][-2:]
        assert _written(lean, b) == _written(full, a)


def test_move_writes_a_compiled_spec_with_the_status_or_alone_when_refused(store: Store) -> None:
    spec = {"kind": "operation", "component": {"run": {"kind": "job"}}}
    compiled = new_job(store)
    assert store.move(compiled, Status.COMPILED, known=Status.CREATED, spec=spec, inputs={"lr": 0.1}, at=at(1))
    run = store.get_run(compiled)
    assert (run.status, run.spec, run.inputs) == (Status.COMPILED, spec, {"lr": 0.1})
    assert [c.status for c in store.status_history(compiled)] == [Status.CREATED, Status.COMPILED]

    # Stopped meanwhile (by another process, say): the status stays, the spec is stored as set_spec would.
    stopped = new_job(store, inputs={"lr": 0.5})
    store.set_status(stopped, Status.STOPPED, at=at(1))
    for known in (Status.CREATED, Status.STOPPED):  # the UPDATE matches nothing / not a transition at all
        refused = store.move(stopped, Status.COMPILED, known=known, spec={**spec, "v": known.value}, at=at(2))
        run = store.get_run(stopped)
        assert (refused.applied, run.status, run.spec, run.inputs) == (
            False,
            Status.STOPPED,
            {**spec, "v": known.value},
            {"lr": 0.5},
        )


def test_compile_and_claim_writes_what_the_two_moves_write(tmp_path: Path) -> None:
    spec = {"kind": "operation", "component": {"run": {"kind": "job"}}}
    with Store(tmp_path / "a.db") as two, Store(tmp_path / "b.db") as one:
        a, b = new_job(two, inputs={"lr": 0.1}), new_job(one, inputs={"lr": 0.1})
        two.move(a, Status.COMPILED, known=Status.CREATED, reason="Compiled", message="1 input", spec=spec, at=at(1))
        two.move(a, Status.QUEUED, known=Status.COMPILED, claim=True, executor="local", reason="Queued", at=at(1))
        moved = one.compile_and_claim(
            b, spec=spec, inputs=None, executor="local", compiled=("Compiled", "1 input"), at=at(1)
        )
        assert moved is not None
        assert (moved.applied, moved.previous, moved.status, moved.attempt) == (True, Status.CREATED, Status.QUEUED, 1)
        assert [e.seq for e in moved.events] == [e.seq for e in one.events(run_uuid=b)][1:]
        assert _written(one, b) == _written(two, a)


def test_compile_and_claim_writes_nothing_for_a_run_no_longer_created(store: Store) -> None:
    uuid = new_job(store)
    store.set_status(uuid, Status.STOPPED, at=at(1))
    seq = store.last_seq()
    assert store.compile_and_claim(uuid, spec={}, inputs=None, executor="local", compiled=("Compiled", None)) is None
    assert (store.get_run(uuid).status, store.get_run(uuid).attempt, store.last_seq()) == (Status.STOPPED, 0, seq)


def test_advance_writes_what_the_moves_one_by_one_write(tmp_path: Path) -> None:
    with Store(tmp_path / "a.db") as one_by_one, Store(tmp_path / "b.db") as at_once:
        a, b = new_job(one_by_one), new_job(at_once)
        for store, uuid in ((one_by_one, a), (at_once, b)):
            store.move(uuid, Status.QUEUED, known=Status.CREATED, claim=True, executor="local", at=at(1))
        one_by_one.move(a, Status.STARTING, known=Status.QUEUED, reason="ProcessStarted", message="pid 42", at=at(3))
        one_by_one.move(a, Status.RUNNING, known=Status.STARTING, reason="Running", at=at(4))
        steps = [Step(Status.STARTING, "ProcessStarted", "pid 42", at(3)), Step(Status.RUNNING, "Running", at=at(4))]
        moves = at_once.advance(b, steps, known=Status.QUEUED)
        assert moves is not None
        assert [(m.applied, m.previous, m.status, m.attempt) for m in moves] == [
            (True, Status.QUEUED, Status.STARTING, 1),
            (True, Status.STARTING, Status.RUNNING, 1),
        ]
        assert [e.seq for m in moves for e in m.events] == [e.seq for e in at_once.events(run_uuid=b)][-2:]
        assert [e.kind for m in moves for e in m.events] == ["run_status_starting", "run_status_running"]
        assert _written(at_once, b) == _written(one_by_one, a)
        # Then its end, as one move again: started_at (and so duration) is the first running-ish step's.
        for store, uuid in ((one_by_one, a), (at_once, b)):
            done = store.move(uuid, Status.SUCCEEDED, known=Status.RUNNING, reason="Completed", at=at(9))
            assert [e.kind for e in done.events] == ["run_status_succeeded", "run_status_done"]
            assert [e.seq for e in done.events] == [e.seq for e in store.events(run_uuid=uuid)][-2:]
        assert _written(at_once, b) == _written(one_by_one, a)
        assert at_once.get_run(b).duration == pytest.approx(6.0)


def test_advance_writes_nothing_for_a_run_no_longer_where_the_caller_knows_it(store: Store) -> None:
    uuid = new_job(store)
    store.claim(uuid, executor="local", at=at(1))
    store.set_status(uuid, Status.STOPPING, at=at(2))  # another process, say
    seq = store.last_seq()
    steps = [Step(Status.STARTING, at=at(3)), Step(Status.RUNNING, at=at(4))]
    assert store.advance(uuid, steps, known=Status.QUEUED) is None
    assert (store.get_run(uuid).status, store.last_seq()) == (Status.STOPPING, seq)
    # Only non-final steps, each a transition from the one before.
    for bad in ([Step(Status.SUCCEEDED)], [Step(Status.STARTING), Step(Status.STARTING)], [Step(Status.CREATED)]):
        with pytest.raises(ValueError, match="not a step to advance by"):
            store.advance(uuid, bad, known=Status.QUEUED)
    assert store.last_seq() == seq


def test_move_decides_on_the_stored_status_when_the_known_one_is_stale(store: Store) -> None:
    uuid = new_job(store)
    store.claim(uuid, executor="local", at=at(1))
    store.set_status(uuid, Status.RUNNING, at=at(2))
    store.set_status(uuid, Status.STOPPING, reason="Stopped by user", at=at(3))  # another process, say

    refused = store.move(uuid, Status.SUCCEEDED, known=Status.CREATED, claim=True, at=at(4))
    assert (refused.applied, refused.previous, refused.status, refused.events) == (
        False,
        Status.STOPPING,
        Status.STOPPING,
        (),
    )
    assert not store.move(uuid, Status.RUNNING, known=Status.RUNNING, at=at(4))  # not final: refused
    done = store.move(uuid, Status.STOPPED, known=Status.RUNNING, at=at(5))
    assert (done.applied, done.previous, done.status, done.attempt) == (True, Status.STOPPING, Status.STOPPED, 1)
    assert store.status_history(uuid)[-1].previous == Status.STOPPING
    with pytest.raises(RunNotFoundError):
        store.move("f" * 32, Status.RUNNING, known=Status.QUEUED)
