"""Events beyond statuses: event observed -> op submitted, per source, and the CPU of idle watchers.

    .venv/bin/python bench/events.py [--n 30] [--idle 5]

Latency = when the downstream run is claimed for its executor (its ``run_status_queued`` in the store; for a
watch, the moment its run was submitted) minus when the event happened:

* ``run_new_artifacts``: the time the op wrote the line (``tracking.log_artifact``), read by the engine from
  the run's events file;
* ``project_custom_event`` / ``run_approved_actor``: just before ``Engine.emit`` / ``Engine.approve``;
* ``connection_git_commit``: the mtime of the branch's ref file (git renames it into place), seen through
  inotify; ``connection_dataset_version``: just before the file is renamed into the watched folder; for a
  bucket (an S3-compatible server, moto's, on 127.0.0.1, listed every 0.1 s), once the object's PUT returned.
  Each under ``polynb watch`` (a reactive pipeline: the run submitted) and, for git and a folder, awaited by an
  op of a running DAG (``ref: connections.NAME``; its ``run_status_queued``), a new DAG per event so each
  event is met by a freshly armed source, as in use.

Idle CPU: the process's CPU time (``getrusage``) over ``--idle`` seconds, as a share of one core, with ten
ops awaiting ``run_new_artifacts`` from ten sleeping ops, then with ten watches armed (five folders, five
git repositories) and nothing happening. Goals (issue 14): in-process p99 < 10 ms, inotify p99 < 100 ms,
idle < 1 % of a core. Everything runs in this process with a temporary ``POLYNB_HOME``; prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from polynb.compiler.pipeline import build_pipeline
from polynb.compiler.registry import ComponentRegistry
from polynb.executors.local.executor import LocalExecutor
from polynb.scheduler.connection_waits import watch_name
from polynb.scheduler.engine import Engine
from polynb.scheduler.reactive import load_reactive
from polynb.scheduler.watch import Watch, WatchOptions
from polynb.spec.load import load_text
from polynb.store import Store
from polynb.store.watches import BASELINE, SUBMITTED, WatchLog

PY = json.dumps(sys.executable)


def pipeline(text: str) -> Any:
    return build_pipeline(load_text(text), registry=ComponentRegistry(), base_dir=Path.cwd())


def dag(first: str, second_extra: str) -> str:
    """Two ops: ``first`` (its command is put in later with ``command``) and ``second`` awaiting an event."""
    return (
        (
            "version: 1.1\nkind: component\nname: bench\nrun:\n  kind: dag\n  operations:\n"
            "    - name: first\n      FIRST_EXTRA\n"
            "      component: {run: {kind: job, container: {command: FIRST_COMMAND}}}\n"
            "    - name: second\n      SECOND_EXTRA\n"
            '      component: {run: {kind: job, container: {command: ["true"]}}}\n'
        )
        .replace("FIRST_EXTRA", first)
        .replace("SECOND_EXTRA", second_extra)
    )


FIRST = "FIRST_COMMAND"


def queued_at(store: Store, uuid: str) -> float:
    (event,) = [e for e in store.events(run_uuid=uuid) if e.kind == "run_status_queued"]
    return event.at.timestamp()


def wait_until(predicate: Callable[[], bool], guard: float = 60.0) -> None:
    deadline = time.monotonic() + guard
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("deadlock guard")
        time.sleep(0.002)


def ops(store: Store, dag_uuid: str) -> dict[str, str]:
    return {r.name: r.uuid for r in store.children(dag_uuid)}


def artifacts(engine: Engine, store: Store, n: int) -> list[float]:
    code = "from polynb.runtime import tracking; import time; tracking.log_artifact('ckpt'); time.sleep(0.3)"
    text = dag("", "events: [{ref: ops.first, kinds: [run_new_artifacts]}]")
    text = text.replace(FIRST, json.dumps([sys.executable, "-c", code]))
    out = []
    for _ in range(n):
        uuid = engine.submit(pipeline(text))
        engine.wait(uuid, timeout=60)
        names = ops(store, uuid)
        (artifact,) = [e for e in store.events(run_uuid=names["first"]) if e.kind == "run_new_artifacts"]
        out.append(queued_at(store, names["second"]) - artifact.at.timestamp())
    return out


def held(engine: Engine, store: Store, n: int, second: str, fire: Callable[[str, str], None]) -> list[float]:
    flag = Path(tempfile.mkdtemp()) / "go"
    code = f"import os, time\nwhile not os.path.exists({str(flag)!r}): time.sleep(0.01)"
    text = dag("", second).replace(FIRST, json.dumps([sys.executable, "-c", code]))
    out = []
    for _ in range(n):
        flag.unlink(missing_ok=True)
        uuid = engine.submit(pipeline(text))
        names = ops(store, uuid)
        first, second = names["first"], names["second"]
        wait_until(lambda first=first: store.get_run(first).status.value == "running")  # type: ignore[misc]
        before = time.time()
        fire(uuid, second)
        wait_until(lambda second=second: any(e.kind == "run_status_queued" for e in store.events(run_uuid=second)))  # type: ignore[misc]
        out.append(queued_at(store, second) - before)
        flag.touch()
        engine.wait(uuid, timeout=60)
    return out


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@x"}  # fmt: skip
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env).stdout


WATCHED = """
version: 1.1
kind: component
name: {name}
events: [{{ref: connections.{name}, kinds: [{kind}]}}]
run: {{kind: job, container: {{command: ["true"]}}}}
"""


def watch_of(engine: Engine, store: Store, base: Path, connection: dict[str, Any], kind: str) -> Watch:
    path = base / f"{connection['name']}.yaml"
    text = WATCHED.format(name=connection["name"], kind=kind)
    path.write_text(text)
    reactive = load_reactive(path, load_text(text), [connection], {})
    watch = Watch(store=store, engine=engine, sources=reactive.sources, build=reactive.build,
                  options=WatchOptions(name=connection["name"], concurrency=1000))  # fmt: skip
    watch.start()
    log = WatchLog(store)
    wait_until(lambda: bool(log.events(connection["name"])))  # its baseline is taken: armed
    return watch


def submitted_after(store: Store, name: str, count: int) -> float:
    log = WatchLog(store)
    wait_until(lambda: len(log.events(name, status=SUBMITTED)) >= count)
    last = log.events(name, status=SUBMITTED)[-1]
    assert last.submitted_at is not None
    return last.submitted_at.timestamp()


def git_commits(engine: Engine, store: Store, base: Path, n: int) -> list[float]:
    repo = base / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "commit", "-q", "--allow-empty", "-m", "0")
    watch = watch_of(engine, store, base, {"name": "repo", "kind": "git", "schema": {"url": str(repo)}},
                     "connection_git_commit")  # fmt: skip
    out = []
    try:
        for i in range(n):
            git(repo, "commit", "-q", "--allow-empty", "-m", str(i + 1))
            changed = (repo / ".git" / "refs" / "heads" / "main").stat().st_mtime_ns / 1e9
            out.append(submitted_after(store, "repo", i + 1) - changed)
    finally:
        watch.stop()
    return out


def folder_files(engine: Engine, store: Store, base: Path, n: int) -> list[float]:
    folder = base / "incoming"
    folder.mkdir()
    connection = {"name": "incoming", "kind": "host_path", "schema": {"hostPath": str(folder)}}
    watch = watch_of(engine, store, base, connection, "connection_dataset_version")
    out = []
    try:
        for i in range(n):
            part = folder / f"{i}.csv.part"
            part.write_text("1,2,3\n")
            before = time.time()
            part.rename(folder / f"{i}.csv")
            out.append(submitted_after(store, "incoming", i + 1) - before)
    finally:
        watch.stop()
    return out


IN_DAG_CONNECTIONS = ("dag-repo", "dag-incoming")
"""The connections the in-DAG forms await (written to the config file before the engine starts)."""


def in_dag_config(base: Path) -> None:
    """``$POLYNB_HOME/config.yaml`` with a git repository and a folder for the in-DAG forms (created here)."""
    repo, folder = base / "dag-repo", base / "dag-incoming"
    repo.mkdir()
    folder.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "commit", "-q", "--allow-empty", "-m", "0")
    connections = [
        {"name": "dag-repo", "kind": "git", "schema": {"url": str(repo)}},
        {"name": "dag-incoming", "kind": "host_path", "schema": {"hostPath": str(folder)}},
    ]
    home = base / "home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text(json.dumps({"connections": connections}))


def in_dag(
    engine: Engine, store: Store, n: int, connection: str, kind: str, fire: Callable[[int], float]
) -> list[float]:
    """An op of a running DAG awaits ``connection``'s ``kind``: ``fire(i)`` makes the event and returns when it
    happened; the latency ends at the op's ``run_status_queued``."""
    text = dag("", f"events: [{{ref: connections.{connection}, kinds: [{kind}]}}]").replace(FIRST, '["true"]')
    log = WatchLog(store)
    out = []
    for i in range(n):
        uuid = engine.submit(pipeline(text))
        second = ops(store, uuid)["second"]
        wait_until(lambda uuid=uuid: any(e.status == BASELINE for e in log.events(watch_name(uuid))))  # type: ignore[misc]
        happened = fire(i)
        wait_until(lambda second=second: any(e.kind == "run_status_queued" for e in store.events(run_uuid=second)))  # type: ignore[misc]
        out.append(queued_at(store, second) - happened)
        engine.wait(uuid, timeout=60)
    return out


def in_dag_commit(base: Path) -> Callable[[int], float]:
    repo = base / "dag-repo"

    def fire(i: int) -> float:
        git(repo, "commit", "-q", "--allow-empty", "-m", str(i + 1))
        return (repo / ".git" / "refs" / "heads" / "main").stat().st_mtime_ns / 1e9

    return fire


def in_dag_file(base: Path) -> Callable[[int], float]:
    folder = base / "dag-incoming"

    def fire(i: int) -> float:
        part = folder / f"{i}.csv.part"
        part.write_text("1,2,3\n")
        before = time.time()
        part.rename(folder / f"{i}.csv")
        return before

    return fire


BUCKET_POLL = 0.1
"""Seconds between two listings of the bench's bucket: its latency is about half of it, plus the listing."""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bucket_objects(engine: Engine, store: Store, base: Path, n: int) -> list[float]:
    """A real S3-compatible server (moto's, the test extra) on 127.0.0.1, listed every ``BUCKET_POLL`` s."""
    import socket

    import s3fs

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
            return True
        except OSError:
            return False

    out = []
    try:
        wait_until(answers)
        fs = s3fs.S3FileSystem(key="bench", secret="bench", endpoint_url=url, skip_instance_cache=True)
        fs.mkdir("landing")
        keys = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_ENDPOINT_URL": url}
        connection = {"name": "landing", "kind": "s3", "schema": {"bucket": "s3://landing/in"}, "poll": BUCKET_POLL,
                      "env": [{"name": k, "value": v} for k, v in keys.items()]}  # fmt: skip
        watch = watch_of(engine, store, base, connection, "connection_dataset_version")
        try:
            for i in range(n):
                fs.pipe(f"landing/in/{i}.csv", b"1,2,3\n")
                landed = time.time()
                out.append(submitted_after(store, "landing", i + 1) - landed)
        finally:
            watch.stop()
    finally:
        server.terminate()
        server.wait()
    return out


def idle_cpu(seconds: float) -> float:
    start = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.monotonic()
    time.sleep(seconds)
    end = resource.getrusage(resource.RUSAGE_SELF)
    used = (end.ru_utime - start.ru_utime) + (end.ru_stime - start.ru_stime)
    return 100.0 * used / (time.monotonic() - wall)


def idle_awaiting(engine: Engine, store: Store, seconds: float) -> float:
    flag = Path(tempfile.mkdtemp()) / "go"
    code = f"import os, time\nwhile not os.path.exists({str(flag)!r}): time.sleep(0.5)"
    text = dag("", "events: [{ref: ops.first, kinds: [run_new_artifacts]}]")
    text = text.replace(FIRST, json.dumps([sys.executable, "-c", code]))
    uuids = [engine.submit(pipeline(text)) for _ in range(10)]
    for uuid in uuids:
        first = ops(store, uuid)["first"]
        wait_until(lambda first=first: store.get_run(first).status.value == "running")
    time.sleep(0.5)
    share = idle_cpu(seconds)
    flag.touch()
    for uuid in uuids:
        engine.wait(uuid, timeout=60)
    return share


def idle_watches(engine: Engine, store: Store, base: Path, seconds: float) -> float:
    watches = []
    for i in range(5):
        folder = base / f"idle-{i}"
        folder.mkdir()
        data = {"name": f"idle-{i}", "kind": "host_path", "schema": {"hostPath": str(folder)}}
        watches.append(watch_of(engine, store, base, data, "connection_dataset_version"))
        repo = base / f"idle-repo-{i}"
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        git(repo, "commit", "-q", "--allow-empty", "-m", "0")
        code = {"name": f"idle-repo-{i}", "kind": "git", "schema": {"url": str(repo)}}
        watches.append(watch_of(engine, store, base, code, "connection_git_commit"))
    time.sleep(0.5)
    try:
        return idle_cpu(seconds)
    finally:
        for watch in watches:
            watch.stop()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30, help="events per source (default 30)")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of each idle measurement (default 5)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="polynb-bench-events-"))
    os.environ["POLYNB_HOME"] = str(base / "home")
    os.chdir(base)
    in_dag_config(base)
    store = Store(base / "home" / "polynb.db")
    engine = Engine(store=store, executors={"local": LocalExecutor(base_dir=base)})
    engine.start()
    rows: list[tuple[str, list[float]]] = []
    try:
        rows.append(("run_new_artifacts (events file)", artifacts(engine, store, args.n)))
        rows.append((
            "project_custom_event (Engine.emit)",
            held(engine, store, args.n, "events: [{ref: dag, kinds: [project_custom_event]}]",
                 lambda dag_uuid, _op: engine.emit("project_custom_event", {"name": "go"}) and None),
        ))  # fmt: skip
        rows.append((
            "run_approved_actor (Engine.approve)",
            held(engine, store, args.n, "isApproved: false", lambda _dag, op: engine.approve(op) and None),
        ))  # fmt: skip
        rows.append(("connection_git_commit (inotify)", git_commits(engine, store, base, args.n)))
        rows.append(("connection_dataset_version (inotify)", folder_files(engine, store, base, args.n)))
        rows.append((
            "connection_git_commit (in a DAG, inotify)",
            in_dag(engine, store, args.n, "dag-repo", "connection_git_commit", in_dag_commit(base)),
        ))  # fmt: skip
        rows.append((
            "connection_dataset_version (in a DAG, inotify)",
            in_dag(engine, store, args.n, "dag-incoming", "connection_dataset_version", in_dag_file(base)),
        ))  # fmt: skip
        rows.append(
            (f"connection_dataset_version (s3, poll {BUCKET_POLL:g} s)", bucket_objects(engine, store, base, args.n))
        )
        awaiting = idle_awaiting(engine, store, args.idle)
        watching = idle_watches(engine, store, base, args.idle)
    finally:
        engine.shutdown(stop_running=True)
        store.close()
    print(
        f"polynb events benchmark: {args.n} events per source, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    print()
    print(f"{'source':48} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, values in rows:
        ms = [v * 1000 for v in values]
        print(f"{name:48} {statistics.median(ms):8.1f} {pct(ms, 0.99):8.1f} {max(ms):8.1f}")
    print()
    print(f"idle CPU, ten ops awaiting run_new_artifacts:   {awaiting:.2f} % of a core")
    print(f"idle CPU, ten watches armed (5 folders, 5 git): {watching:.2f} % of a core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
