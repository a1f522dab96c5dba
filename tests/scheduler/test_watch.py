"""Reactive pipelines from real sources: a git repository (the git CLI), a folder (inotify), a registry API
stand-in on 127.0.0.1; the cursor in the store across restarts (docs/semantics.md, "Events")."""

from __future__ import annotations

import itertools
import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from support.schedkit import DEADLOCK_GUARD, PY, Env

from polynb.scheduler.reactive import ReactiveError, load_reactive
from polynb.scheduler.sources.external import FolderSource, GitSource, RegistrySource, Source, SourceError
from polynb.scheduler.watch import Watch, WatchOptions
from polynb.spec.load import load_data
from polynb.spec.yaml_loader import parse
from polynb.store.watches import BASELINE, SUBMITTED, WatchLog


def git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x",
           "HOME": str(repo.parent), "PATH": "/usr/bin:/bin"}  # fmt: skip
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env).stdout


def commit(repo: Path, message: str) -> str:
    (repo / "log.txt").open("a").write(message + "\n")
    git(repo, "add", "log.txt")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    commit(path, "first")
    return path


PIPELINE = """
version: 1.1
kind: component
name: retrain
events: [{{ref: connections.{conn}, kinds: [{kind}]}}]
inputs: [{{name: {key}, type: str}}, {{name: event, type: dict}}]
run:
  kind: job
  container:
    command: [{py}, -c, "{code}", "{{{{ {key} }}}}"]
"""
REPORT = (
    "import json, os, sys; p = os.environ['POLYAXON_RUN_OUTPUTS_PATH']; "
    "json.dump({'got': sys.argv[1]}, open(p + '/outputs.json', 'w'))"
)


def reactive(tmp: Path, connection: dict[str, Any], key: str) -> Any:
    kind = {"git": "connection_git_commit", "host_path": "connection_dataset_version",
            "registry": "connection_registry_image"}[connection["kind"]]  # fmt: skip
    text = PIPELINE.format(conn=connection["name"], kind=kind, key=key, py=json.dumps(PY), code=REPORT)
    path = tmp / "retrain.yaml"
    path.write_text(text)
    return load_reactive(path, load_data(parse(text, str(path))), [connection], {})


def start_watch(env: Env, pipeline: Any, **options: Any) -> Watch:
    watch = Watch(store=env.store, engine=env.engine, sources=pipeline.sources, build=pipeline.build,
                  options=WatchOptions(name="retrain", **options))  # fmt: skip
    watch.start()
    return watch


def runs_of(env: Env) -> list[dict[str, Any]]:
    log = WatchLog(env.store)
    return [dict(env.store.get_run(e.run_uuid).outputs) for e in log.events("retrain", status=SUBMITTED) if e.run_uuid]


def test_each_new_commit_runs_the_pipeline_once_with_its_sha(env: Env, repo: Path) -> None:
    pipeline = reactive(
        env.tmp, {"name": "repo", "kind": "git", "schema": {"url": str(repo), "revision": "main"}}, "sha"
    )
    watch = start_watch(env, pipeline, max_runs=2)
    try:
        log = WatchLog(env.store)
        _wait(lambda: [e.status for e in log.events("retrain")] == [BASELINE])
        second = commit(repo, "second")
        third = commit(repo, "third")
        assert watch.wait_done(timeout=DEADLOCK_GUARD)
    finally:
        watch.stop()
    assert sorted(o["got"] for o in runs_of(env)) == sorted([second, third])
    (event,) = [e for e in WatchLog(env.store).events("retrain") if e.event_id == second]
    assert event.payload["message"] == "second" and event.payload["branch"] == "main"


def test_commits_made_while_no_watch_ran_are_run_after_a_restart_and_none_twice(env: Env, repo: Path) -> None:
    pipeline = reactive(env.tmp, {"name": "repo", "kind": "git", "schema": {"url": str(repo)}}, "sha")
    watch = start_watch(env, pipeline, max_runs=1)
    log = WatchLog(env.store)
    try:
        _wait(lambda: bool(log.events("retrain")))
        first = commit(repo, "while watched")
        assert watch.wait_done(timeout=DEADLOCK_GUARD)
    finally:
        watch.stop()
    missed = [commit(repo, "missed-1"), commit(repo, "missed-2")]
    watch = start_watch(env, pipeline, max_runs=3)  # the same name: resumes from the cursor
    try:
        assert watch.wait_done(timeout=DEADLOCK_GUARD)
    finally:
        watch.stop()
    assert [o["got"] for o in runs_of(env)] == [first, *missed]


def test_a_new_file_in_a_folder_runs_the_pipeline_with_its_path(env: Env) -> None:
    folder = env.tmp / "incoming"
    folder.mkdir()
    (folder / "old.csv").write_text("there before")
    pipeline = reactive(env.tmp, {"name": "data", "kind": "host_path", "schema": {"hostPath": str(folder)}}, "path")
    watch = start_watch(env, pipeline, max_runs=1)
    log = WatchLog(env.store)
    try:
        _wait(lambda: [e.event_id for e in log.events("retrain")] == ["old.csv"])
        (folder / "new.csv.part").write_text("1,2,3")
        (folder / "new.csv.part").rename(folder / "new.csv")
        assert watch.wait_done(timeout=DEADLOCK_GUARD)
    finally:
        watch.stop()
    assert runs_of(env) == [{"got": str(folder / "new.csv")}]


class _Registry(BaseHTTPRequestHandler):
    """The OCI distribution API's tag listing, two tags a page (``?n=2&last=...``, a ``Link`` to the next)."""

    tags: list[str] = []
    failures = 0

    def do_GET(self) -> None:
        if type(self).failures:
            type(self).failures -= 1
            self.send_response(503)
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        if path != "/v2/team/trainer/tags/list":
            self.send_response(404)
            self.end_headers()
            return
        last = dict(p.split("=", 1) for p in query.split("&") if "=" in p).get("last")
        tags = list(type(self).tags)
        start = tags.index(last) + 1 if last in tags else 0
        page = tags[start : start + 2]
        body = json.dumps({"name": "team/trainer", "tags": page}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if start + 2 < len(tags):
            self.send_header("Link", f'</v2/team/trainer/tags/list?n=2&last={page[-1]}>; rel="next"')
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def registry() -> Iterator[str]:
    _Registry.tags = ["v1"]
    _Registry.failures = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_new_image_tag_runs_the_pipeline_with_the_tag(env: Env, registry: str) -> None:
    connection = {"name": "images", "kind": "registry", "schema": {"url": registry, "image": "team/trainer"},
                  "poll": 0.05}  # fmt: skip
    pipeline = reactive(env.tmp, connection, "tag")
    watch = start_watch(env, pipeline, max_runs=1)
    log = WatchLog(env.store)
    try:
        _wait(lambda: [e.event_id for e in log.events("retrain")] == ["v1"])
        _Registry.tags = ["v1", "v2"]
        assert watch.wait_done(timeout=DEADLOCK_GUARD)
    finally:
        watch.stop()
    assert runs_of(env) == [{"got": "v2"}]


def test_registry_tags_are_read_across_pages(registry: str) -> None:
    _Registry.tags = ["v1", "v2", "v3", "v4", "v5"]
    source = RegistrySource("images", {"url": registry, "image": "team/trainer"}, 1.0)
    events = source.poll(None)
    assert [e.id for e in events] == ["v1", "v2", "v3", "v4", "v5"]
    assert events[-1].payload["reference"] == f"{registry.removeprefix('http://')}/team/trainer:v5"


def test_a_remote_repository_is_read_with_ls_remote(repo: Path) -> None:
    source = GitSource("remote", {"url": f"file://{repo}", "revision": "main"}, 30.0)
    assert not source.local and source.folders == []  # polled, every 30 s
    head = git(repo, "rev-parse", "HEAD").strip()
    assert [e.id for e in source.poll(None)] == [head]
    newer = commit(repo, "second")
    assert [(e.id, e.payload["branch"]) for e in source.poll(head)] == [(newer, "main")]


def test_registry_errors_are_retried_with_back_off(registry: str) -> None:
    _Registry.failures = 1
    source = RegistrySource("images", {"url": registry, "image": "team/trainer"}, 0.05)
    with pytest.raises(SourceError, match="503"):
        source.poll(None)
    assert [e.id for e in source.poll(None)] == ["v1"]


def test_sources_name_their_events_for_good(repo: Path, tmp_path: Path) -> None:
    source = GitSource("repo", {"url": str(repo)}, None)
    head = git(repo, "rev-parse", "HEAD").strip()
    assert [e.id for e in source.poll(None)] == [head]
    assert source.poll(head) == []
    folder = FolderSource("data", {"hostPath": str(tmp_path / "nowhere")}, None)
    with pytest.raises(SourceError, match="is not a folder"):
        folder.poll(None)


def test_a_watch_names_a_connection_the_config_does_not_have(tmp_path: Path) -> None:
    text = PIPELINE.format(conn="repo", kind="connection_git_commit", key="sha", py=json.dumps(PY), code=REPORT)
    with pytest.raises(ReactiveError, match="no connection named repo"):
        load_reactive(tmp_path / "p.yaml", load_data(parse(text, "p.yaml")), [], {})
    wrong = {"name": "repo", "kind": "registry", "schema": {"url": "http://x", "image": "i"}}
    with pytest.raises(ReactiveError, match="it emits connection_registry_image, not connection_git_commit"):
        load_reactive(tmp_path / "p.yaml", load_data(parse(text, "p.yaml")), [wrong], {})


def _wait(predicate: Any) -> None:
    import time

    deadline = time.monotonic() + DEADLOCK_GUARD
    while not predicate():
        assert time.monotonic() < deadline, "deadlock guard"
        time.sleep(0.01)


def test_a_failing_source_is_looked_at_less_and_less_often_then_normally_again(registry: str) -> None:
    from polynb.scheduler.sources.external import MAX_BACKOFF, SourceLoop

    _Registry.failures = 10**6  # the registry answers 503 until told otherwise
    source = RegistrySource("images", {"url": registry, "image": "team/trainer"}, 0.01)

    def look(s: Source) -> None:
        s.poll(None)

    loop = SourceLoop([source], look)
    loop.start()
    try:
        _wait(lambda: loop.backoff("images") >= 5)
        delay = loop.next_look("images")
        assert delay is not None and delay <= 0.01 * MAX_BACKOFF  # capped
        _Registry.failures = 0
        _wait(lambda: loop.backoff("images") == 0)  # one success: back to the normal interval
        next_look = loop.next_look("images")
        assert next_look is not None and next_look <= 0.01
    finally:
        loop.stop()


def test_concurrency_one_runs_the_events_one_after_the_other_in_order(env: Env) -> None:
    folder = env.tmp / "batches"
    folder.mkdir()
    pipeline = reactive(env.tmp, {"name": "data", "kind": "host_path", "schema": {"hostPath": str(folder)}}, "path")
    watch = start_watch(env, pipeline, max_runs=3, concurrency=1)
    log = WatchLog(env.store)
    try:
        _wait(lambda: bool(log.events("retrain")))
        for name in ("a.csv", "b.csv", "c.csv"):
            (folder / name).write_text(name)
        assert watch.wait_done(timeout=DEADLOCK_GUARD)
    finally:
        watch.stop()
    runs = [env.store.get_run(e.run_uuid) for e in log.events("retrain", status=SUBMITTED) if e.run_uuid]
    assert [r.outputs["got"].rsplit("/", 1)[-1] for r in runs] == ["a.csv", "b.csv", "c.csv"]
    for earlier, later in itertools.pairwise(runs):
        assert earlier.finished_at is not None and later.created_at >= earlier.finished_at  # never two at once


def test_the_example_reactive_pipelines_load_for_a_watch(tmp_path: Path) -> None:
    from polynb.spec.load import load

    folder = Path(__file__).resolve().parents[2] / "notebooks" / "reactive"
    connections = [{"name": "project", "kind": "git", "schema": {"url": str(tmp_path)}}]
    for path in sorted(folder.glob("*.yaml")):
        pipeline = load_reactive(path, load(path), connections, {})
        assert [s.kind for s in pipeline.sources] == ["connection_git_commit"], path.name


def test_a_watch_killed_right_after_submitting_does_not_submit_the_event_again(
    env: Env, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run and its event marked ``submitted`` are one transaction: a dispatcher that dies the moment the
    engine returned (as a killed watch) leaves the event handled, and the next watch does not run it again."""

    class Killed(BaseException):
        """Not an Exception: nothing in the watch catches it, as nothing runs after a kill."""

    pipeline = reactive(env.tmp, {"name": "repo", "kind": "git", "schema": {"url": str(repo)}}, "sha")
    submit = env.engine.submit
    died = threading.Event()

    def submit_then_die(*args: Any, **kwargs: Any) -> str:
        submit(*args, **kwargs)
        died.set()
        raise Killed

    monkeypatch.setattr(env.engine, "submit", submit_then_die)
    monkeypatch.setattr(threading, "excepthook", lambda args: None)  # the dispatcher's death is the point
    watch = start_watch(env, pipeline)
    log = WatchLog(env.store)
    try:
        _wait(lambda: bool(log.events("retrain")))
        sha = commit(repo, "one")
        assert died.wait(DEADLOCK_GUARD)
    finally:
        watch._loop.stop()  # what is left of the killed watch
    monkeypatch.setattr(env.engine, "submit", submit)
    (event,) = [e for e in log.events("retrain") if e.event_id == sha]
    assert event.status == SUBMITTED and event.run_uuid
    restarted = start_watch(env, pipeline, max_runs=1)
    try:
        assert restarted.wait_done(timeout=DEADLOCK_GUARD)  # the run of the first watch counts; none is added
    finally:
        restarted.stop()
    assert [e.run_uuid for e in log.events("retrain", status=SUBMITTED)] == [event.run_uuid]
    assert [r.uuid for r in env.store.list_runs() if r.name == "retrain"] == [event.run_uuid]
