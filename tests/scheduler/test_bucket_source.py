"""A bucket watched through fsspec: a real S3-compatible server (moto's, in its own process on 127.0.0.1);
a new object runs the reactive pipeline with its path, the cursor across restarts, back-off while the server
is down (docs/semantics.md, "Reactive pipelines")."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support.s3kit import MotoServer
from support.schedkit import DEADLOCK_GUARD, PY, Env

from polynb.scheduler.reactive import load_reactive
from polynb.scheduler.sources.buckets import BucketSource
from polynb.scheduler.sources.external import SourceError
from polynb.scheduler.sources.kinds import source_for
from polynb.scheduler.watch import Watch, WatchOptions
from polynb.spec.load import load_data
from polynb.spec.yaml_loader import parse
from polynb.store.watches import BASELINE, SUBMITTED, WatchLog

PIPELINE = """
version: 1.1
kind: component
name: ingest
events: [{ref: connections.data, kinds: [connection_dataset_version]}]
inputs: [{name: path, type: str}, {name: size, type: int}, {name: etag, type: str}]
run:
  kind: job
  container:
    command: [PY, -c, CODE, "{{ path }}", "{{ size }}", "{{ etag }}"]
""".replace("PY", json.dumps(PY)).replace(
    "CODE",
    json.dumps(
        "import json, os, sys; p = os.environ['POLYAXON_RUN_OUTPUTS_PATH']; "
        "json.dump({'path': sys.argv[1], 'size': sys.argv[2], 'etag': sys.argv[3]}, open(p + '/outputs.json', 'w'))"
    ),
)


@pytest.fixture
def server() -> Iterator[MotoServer]:
    moto = MotoServer().start()
    try:
        yield moto
    finally:
        moto.stop()


def reactive(env: Env, connection: dict[str, Any]) -> Any:
    path = env.tmp / "ingest.yaml"
    path.write_text(PIPELINE)
    return load_reactive(path, load_data(parse(PIPELINE, str(path))), [connection], {})


def start_watch(env: Env, pipeline: Any, **options: Any) -> Watch:
    watch = Watch(store=env.store, engine=env.engine, sources=pipeline.sources, build=pipeline.build,
                  options=WatchOptions(name="ingest", **options))  # fmt: skip
    watch.start()
    return watch


def runs_of(env: Env) -> list[dict[str, Any]]:
    log = WatchLog(env.store)
    return [dict(env.store.get_run(e.run_uuid).outputs) for e in log.events("ingest", status=SUBMITTED) if e.run_uuid]


def wait(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLOCK_GUARD
    while not predicate():
        assert time.monotonic() < deadline, "deadlock guard"
        time.sleep(0.02)


def test_a_new_object_under_the_prefix_runs_the_pipeline_with_its_path(env: Env, server: MotoServer) -> None:
    fs = server.fs()
    fs.mkdir("data")
    fs.pipe("data/incoming/old.csv", b"there before")
    pipeline = reactive(env, server.connection("data", "s3://data/incoming", poll=0.05))
    watch = start_watch(env, pipeline, max_runs=1)
    log = WatchLog(env.store)
    try:
        seen = lambda: [(e.status, e.payload.get("key")) for e in log.events("ingest")]  # noqa: E731
        wait(lambda: seen() == [(BASELINE, "incoming/old.csv")])
        fs.pipe("data/elsewhere/x.csv", b"not under the prefix")
        fs.pipe("data/incoming/new.csv", b"1,2,3")
        assert watch.wait_done(timeout=DEADLOCK_GUARD)
    finally:
        watch.stop()
    etag = fs.info("data/incoming/new.csv")["ETag"].strip('"')
    assert runs_of(env) == [{"path": "s3://data/incoming/new.csv", "size": "5", "etag": etag}]
    (event,) = log.events("ingest", status=SUBMITTED)
    assert event.event_id == f"incoming/new.csv@{etag}"
    assert event.payload["relative_path"] == "new.csv" and event.payload["bucket"] == "s3://data/incoming"
    assert event.payload["last_modified"].endswith("+00:00") and event.payload["connection"] == "data"


def test_objects_put_while_no_watch_ran_are_run_after_a_restart_and_none_twice(env: Env, server: MotoServer) -> None:
    fs = server.fs()
    fs.mkdir("data")
    pipeline = reactive(env, server.connection("data", "s3://data", poll=0.05))
    watch = start_watch(env, pipeline, max_runs=1)
    log = WatchLog(env.store)
    try:
        wait(lambda: bool(log.events("ingest")))  # the baseline: an empty bucket
        fs.pipe("data/a.csv", b"a")
        assert watch.wait_done(timeout=DEADLOCK_GUARD)
    finally:
        watch.stop()
    fs.pipe("data/b.csv", b"b")
    fs.pipe("data/a.csv", b"a, written again")  # other content: another version of a.csv
    watch = start_watch(env, pipeline, max_runs=3)  # the same name: resumes from the cursor
    try:
        assert watch.wait_done(timeout=DEADLOCK_GUARD)
    finally:
        watch.stop()
    got = [(o["path"], o["size"]) for o in runs_of(env)]
    assert got[0] == ("s3://data/a.csv", "1")
    assert sorted(got[1:]) == [("s3://data/a.csv", "16"), ("s3://data/b.csv", "1")]


def test_a_server_down_is_backed_off_with_a_warning_then_watched_again(
    env: Env, server: MotoServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="polynb.scheduler.sources.external")
    server.fs().mkdir("data")
    pipeline = reactive(env, server.connection("data", "s3://data", poll=0.05))
    watch = start_watch(env, pipeline, max_runs=1)
    log = WatchLog(env.store)
    try:
        wait(lambda: bool(log.events("ingest")))
        server.stop()
        wait(lambda: sum("next look in" in r.getMessage() for r in caplog.records) >= 2)
        warning = next(r.getMessage() for r in caplog.records if "next look in" in r.getMessage())
        assert warning.startswith(f"connection data: s3://data at {server.url}: ")
        server.start()  # an empty server: the bucket comes back with the new object
        fs = server.fs()
        fs.mkdir("data")
        fs.pipe("data/after.csv", b"back")
        assert watch.wait_done(timeout=DEADLOCK_GUARD)
    finally:
        watch.stop()
    assert [o["path"] for o in runs_of(env)] == ["s3://data/after.csv"]
    assert any("connection data: back after" in r.getMessage() for r in caplog.records)


def test_a_missing_bucket_is_a_source_error_and_the_same_object_keeps_its_id(server: MotoServer) -> None:
    source = source_for(server.connection("data", "s3://data/in"))
    assert isinstance(source, BucketSource) and not source.local and source.folders == []
    with pytest.raises(SourceError, match="no such bucket"):
        source.poll(None)
    fs = server.fs()
    fs.mkdir("data")
    fs.pipe("data/in/a.csv", b"a")
    fs.pipe("data/in/sub/", b"")  # a folder's marker object: not an object of the dataset
    first = [e.id for e in source.poll(None)]
    assert len(first) == 1 and first[0].startswith("in/a.csv@")
    assert [e.id for e in source.poll(first[0])] == first  # listed again: the same id, dropped by the cursor
    fs.pipe("data/in/a.csv", b"other content")
    (again,) = [e.id for e in source.poll(first[0])]
    assert again != first[0] and again.startswith("in/a.csv@")


def test_refused_keys_are_a_source_error_that_says_so() -> None:
    server = MotoServer(check_keys=True).start()
    try:
        source = source_for(server.connection("data", "s3://data", secret={"name": "aws-creds"}))
        with pytest.raises(SourceError, match="credentials refused or missing") as raised:
            source.poll(None)
        assert "the connection's secret is on the cluster: give the keys in its env here" in str(raised.value)
    finally:
        server.stop()
