"""What the scheduler and the CLI read back: DAG children, hooks, events, prefixes, unfinished runs."""

from __future__ import annotations

import dataclasses

import pytest

from polynb.lifecycle import Status
from polynb.store import (
    AmbiguousRunError,
    DuplicateRunError,
    NewRun,
    RunNotFoundError,
    Store,
    StoreError,
)


def make_dag(store: Store, ops: int = 2) -> tuple[NewRun, list[NewRun]]:
    dag = NewRun(name="pipeline", kind="dag", spec={"operations": ["..."]}, inputs={"epochs": 3})
    children = [NewRun(name=f"op{i}", kind="job", dag_uuid=dag.uuid) for i in range(ops)]
    # The DAG run is listed last: its ops may come before it in one batch.
    store.create_runs([*children, dag])
    return dag, children


def test_create_runs_is_all_or_nothing(store: Store) -> None:
    existing = store.create_run(NewRun(name="x", kind="job"))
    batch = [NewRun(name="a", kind="job"), NewRun(name="dup", kind="job", uuid=existing.uuid)]
    with pytest.raises(DuplicateRunError):
        store.create_runs(batch)
    with pytest.raises(RunNotFoundError):
        store.get_run(batch[0].uuid)
    assert [r.uuid for r in store.list_runs()] == [existing.uuid]
    assert store.last_seq() == 1


def test_references_to_unknown_runs_and_bad_uuids_are_refused(store: Store) -> None:
    with pytest.raises(RunNotFoundError, match="dag_uuid or hook_of"):
        store.create_run(NewRun(name="a", kind="job", dag_uuid="f" * 32))
    with pytest.raises(ValueError, match="not a run uuid"):
        store.create_run(NewRun(name="a", kind="job", uuid="../../etc"))
    with pytest.raises(StoreError, match="hook_trigger"):
        store.create_run(NewRun(name="a", kind="job", hook_trigger="done"))
    assert store.list_runs() == []


def test_dag_runs_keep_their_spec_and_params_for_a_resume(store: Store) -> None:
    dag, _ = make_dag(store)
    run = store.get_run(dag.uuid)
    assert (run.kind, run.spec, run.inputs) == ("dag", {"operations": ["..."]}, {"epochs": 3})
    assert store.set_meta(dag.uuid, {"base_dir": "nb"}) == {"base_dir": "nb"}
    assert store.set_meta(dag.uuid, {"kernel": "k1"}) == {"base_dir": "nb", "kernel": "k1"}
    store.set_spec(dag.uuid, {"operations": []})
    assert store.get_run(dag.uuid).spec == {"operations": []}
    assert store.get_run(dag.uuid).inputs == {"epochs": 3}


def test_get_runs_reads_many_runs_at_once_as_get_run_reads_each(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("polynb.store.store._IN_CHUNK", 3)  # several statements, as for more than 500 uuids
    _dag, children = make_dag(store, ops=7)
    store.set_status(children[4].uuid, Status.COMPILED)
    wanted = [c.uuid for c in children] + [children[0].uuid, "f" * 32]  # a duplicate, an unknown uuid
    found = store.get_runs(wanted)
    assert set(found) == {c.uuid for c in children}
    assert all(found[c.uuid] == store.get_run(c.uuid) for c in children)
    assert found[children[4].uuid].status == Status.COMPILED
    assert store.get_runs([]) == {}


def test_children_hooks_and_listing(store: Store) -> None:
    dag, ops = make_dag(store, ops=3)
    hook = store.create_run(
        NewRun(name="notify", kind="job", dag_uuid=dag.uuid, hook_of=ops[0].uuid, hook_trigger="failed")
    )
    other = store.create_run(NewRun(name="alone", kind="job"))

    assert [r.name for r in store.children(dag.uuid)] == ["op0", "op1", "op2"]
    assert [r.name for r in store.children(dag.uuid, include_hooks=True)] == ["op0", "op1", "op2", "notify"]
    [found] = store.hooks_of(ops[0].uuid)
    assert (found.uuid, found.hook_of, found.hook_trigger) == (hook.uuid, ops[0].uuid, "failed")
    assert store.hooks_of(ops[1].uuid) == []
    # Newest first; top level excludes ops and hooks.
    assert [r.uuid for r in store.list_runs(top_level_only=True)] == [other.uuid, dag.uuid]
    assert [r.name for r in store.list_runs(dag.uuid)] == ["notify", "op2", "op1", "op0"]
    assert len(store.list_runs(limit=2)) == 2
    store.set_status(ops[1].uuid, Status.RUNNING)
    assert [r.name for r in store.list_runs(statuses=[Status.RUNNING])] == ["op1"]


def test_children_are_the_ops_of_the_dags_current_attempt(store: Store) -> None:
    """A DAG's ``maxRetries`` makes new op runs with the same names per attempt (``meta.dag_attempt``): readers
    see the current attempt's ops and their hooks, and the DAG's own hooks; ``all_attempts`` shows every one."""
    dag = NewRun(name="pipeline", kind="dag")
    first = [NewRun(name=n, kind="job", dag_uuid=dag.uuid, meta={"dag_attempt": 1}) for n in ("a", "b")]
    store.create_runs([dag, *first])
    store.set_status(dag.uuid, Status.COMPILED)
    assert store.claim(dag.uuid, status=Status.RUNNING, expected={Status.COMPILED})  # attempt 1
    old_hook = NewRun(name="a-notify", kind="job", dag_uuid=dag.uuid, hook_of=first[0].uuid, hook_trigger="done")
    store.create_run(old_hook)
    assert [r.name for r in store.children(dag.uuid)] == ["a", "b"]
    store.set_status(dag.uuid, Status.RETRYING)
    assert [r.name for r in store.children(dag.uuid)] == ["a", "b"]  # the failed attempt, until the next starts

    assert store.claim(dag.uuid, status=Status.RUNNING, expected={Status.RETRYING})  # attempt 2
    second = [NewRun(name=n, kind="job", dag_uuid=dag.uuid, meta={"dag_attempt": 2}) for n in ("a", "b")]
    store.create_runs(second)
    new_hook = NewRun(name="b-notify", kind="job", dag_uuid=dag.uuid, hook_of=second[1].uuid, hook_trigger="done")
    dag_hook = NewRun(name="pipeline-notify", kind="job", dag_uuid=dag.uuid, hook_of=dag.uuid, hook_trigger="done")
    store.create_runs([new_hook, dag_hook])

    assert store.get_run(dag.uuid).dag_attempt == 2
    assert [r.uuid for r in store.children(dag.uuid)] == [r.uuid for r in second]
    assert [r.uuid for r in store.children(dag.uuid, include_hooks=True)] == [
        *(r.uuid for r in second),
        new_hook.uuid,
        dag_hook.uuid,
    ]
    every = store.children(dag.uuid, all_attempts=True)
    assert [(r.name, r.dag_attempt) for r in every] == [("a", 1), ("b", 1), ("a", 2), ("b", 2)]
    assert len(store.children(dag.uuid, include_hooks=True, all_attempts=True)) == 7


def test_ops_made_before_dag_retries_existed_belong_to_the_first_attempt(store: Store) -> None:
    dag, ops = make_dag(store)  # no meta.dag_attempt, and the DAG run never claimed (attempt 0)
    assert store.get_run(dag.uuid).dag_attempt == 1
    assert [r.dag_attempt for r in store.children(dag.uuid)] == [1, 1]
    assert [r.uuid for r in store.children(dag.uuid)] == [r.uuid for r in ops]


def test_outputs_merge_handle_and_url(store: Store) -> None:
    run = store.create_run(NewRun(name="tb", kind="service"))
    assert store.set_outputs(run.uuid, {"loss": 0.5, "acc": 0.8}) == {"loss": 0.5, "acc": 0.8}
    assert store.set_outputs(run.uuid, {"loss": 0.25}) == {"loss": 0.25, "acc": 0.8}
    record = {"pid": 4242, "pgid": 4242, "start_time": 1234.5, "ports": [6006], "paths": {"logs": "x"}}
    store.set_handle(run.uuid, record, executor="local")
    store.set_url(run.uuid, "http://127.0.0.1:6006/")
    got = store.get_run(run.uuid)
    assert (got.outputs, got.handle, got.executor, got.url) == (
        {"loss": 0.25, "acc": 0.8},
        record,
        "local",
        "http://127.0.0.1:6006/",
    )
    store.set_handle(run.uuid, None)
    assert store.get_run(run.uuid).handle is None
    assert store.get_run(run.uuid).executor == "local"
    with pytest.raises(RunNotFoundError):
        store.set_outputs("0" * 32, {"a": 1})
    with pytest.raises(RunNotFoundError):
        store.set_url("0" * 32, None)


def test_records_are_frozen_snapshots(store: Store) -> None:
    run = store.create_run(NewRun(name="a", kind="job"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.status = Status.RUNNING  # type: ignore[misc]
    run.outputs["x"] = 1
    assert store.get_run(run.uuid).outputs == {}


def test_events_filter_by_run_dag_and_seq(store: Store) -> None:
    dag, ops = make_dag(store)
    loner = store.create_run(NewRun(name="loner", kind="job"))
    store.set_status(dag.uuid, Status.RUNNING)
    store.set_status(ops[0].uuid, Status.RUNNING)
    custom = store.append_event(ops[0].uuid, "run_new_artifacts", {"path": "outputs/model.pt"})
    store.set_status(loner.uuid, Status.RUNNING)

    everything = store.events()
    assert [e.seq for e in everything] == list(range(1, store.last_seq() + 1))
    assert everything[-2] == custom
    assert (custom.kind, custom.dag_uuid, custom.payload) == (
        "run_new_artifacts",
        dag.uuid,
        {"path": "outputs/model.pt"},
    )
    of_dag = store.events(dag_uuid=dag.uuid)
    assert {e.run_uuid for e in of_dag} == {dag.uuid, ops[0].uuid, ops[1].uuid}
    assert [e.kind for e in store.events(run_uuid=ops[0].uuid)] == [
        "run_status_created",
        "run_status_running",
        "run_new_artifacts",
    ]
    tail = store.events(after_seq=custom.seq - 1)
    assert [e.seq for e in tail] == [custom.seq, custom.seq + 1]
    assert store.events(after_seq=0, limit=2) == everything[:2]


def test_status_events_only_come_from_status_changes(store: Store) -> None:
    run = store.create_run(NewRun(name="a", kind="job"))
    with pytest.raises(ValueError, match="set_status"):
        store.append_event(run.uuid, "run_status_running")
    with pytest.raises(RunNotFoundError):
        store.append_event("0" * 32, "run_new_artifacts")
    assert store.last_seq() == 1


def test_find_by_prefix_takes_short_uuids_dashed_uuids_and_names(store: Store) -> None:
    a = store.create_run(NewRun(name="train", kind="job", uuid="abc" + "0" * 29))
    b = store.create_run(NewRun(name="eval", kind="job", uuid="abd" + "0" * 29))
    assert store.find_by_prefix("abc").uuid == a.uuid
    assert store.find_by_prefix("ABD").uuid == b.uuid
    assert store.find_by_prefix("abc00000-0000-0000").uuid == a.uuid
    assert store.find_by_prefix(a.uuid).uuid == a.uuid
    assert store.find_by_prefix("eval").uuid == b.uuid
    with pytest.raises(AmbiguousRunError) as info:
        store.find_by_prefix("ab")
    assert {uuid for uuid, _ in info.value.candidates} == {a.uuid, b.uuid}
    assert "abc000000000 (train)" in str(info.value)
    with pytest.raises(RunNotFoundError):
        store.find_by_prefix("abe")
    with pytest.raises(RunNotFoundError):
        store.find_by_prefix("nosuchname")


def test_a_full_name_wins_over_uuids_it_prefixes(store: Store) -> None:
    named = store.create_run(NewRun(name="b", kind="job", uuid="25" + "0" * 30))
    store.create_run(NewRun(name="c", kind="job", uuid="b0" + "0" * 30))
    assert store.find_by_prefix("b").uuid == named.uuid


def test_find_by_prefix_with_a_name_used_in_several_dags(store: Store) -> None:
    first, [op_a, _] = make_dag(store)
    second, [op_b, _] = make_dag(store)
    with pytest.raises(AmbiguousRunError):
        store.find_by_prefix("op0")
    assert store.find_by_prefix("op0", dag_uuid=first.uuid).uuid == op_a.uuid
    assert store.find_by_prefix("op0", dag_uuid=second.uuid).uuid == op_b.uuid


def test_unfinished_runs_are_what_a_restarted_engine_must_look_at(store: Store) -> None:
    dag, [queued, done, pending] = make_dag(store, ops=3)
    store.claim(queued.uuid)
    store.set_handle(queued.uuid, {"pid": 1})
    store.set_status(done.uuid, Status.SUCCEEDED)
    unfinished = store.unfinished_runs()
    assert [r.uuid for r in unfinished] == [queued.uuid, pending.uuid, dag.uuid]
    assert unfinished[0].handle == {"pid": 1}
    assert unfinished[0].status == Status.QUEUED
