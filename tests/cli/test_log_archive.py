"""Logs outlive the process that wrote them: each local run's logs are archived to the artifacts store when it ends,
and ``polynb logs`` reads them there once this machine's copy is gone, and from a second ``POLYNB_HOME`` whose
configuration names the same store (a host-path folder, a bucket on a real S3-compatible server)."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from k8s_emulator.testkit import eventually, executing
from support.clikit import Cli
from support.s3kit import MotoServer

JOB = """
version: 1.1
kind: component
name: talker
inputs: [{name: word, type: str}]
run:
  kind: job
  init:
    - file: {filename: note.txt, content: hi}
  container:
    command: [sh, -c, 'echo "said {{ word }}"; echo "to stderr" >&2']
"""


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    kit = Cli(tmp_path)
    yield kit
    kit.cleanup()


@contextlib.contextmanager
def _moto() -> Iterator[MotoServer]:
    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def moto() -> Iterator[MotoServer]:
    with _moto() as server:
        yield server


def _config(cli: Cli, text: str) -> Path:
    path = cli.tmp / "team" / "config.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    cli.extra_env["POLYNB_CONFIG"] = str(path)
    return path


def _s3_config(server: MotoServer, bucket: str) -> str:
    env = ", ".join(f"{{name: {e['name']}, value: '{e['value']}'}}" for e in server.env())
    return f"connections:\n  - {{name: lake, kind: s3, schema: {{bucket: 's3://{bucket}/team'}}, env: [{env}]}}\n" \
           "artifactsStore: lake\n"  # fmt: skip


def _second_home(cli: Cli) -> None:
    """The same configuration, a home that has never seen the run."""
    cli.home = cli.tmp / "other-home"


def _run(cli: Cli, word: str) -> str:
    job = cli.write("job.yaml", JOB)
    code, out = cli.run_json("run", "-f", str(job), "-P", f"word={word}", "--json")
    assert code == 0, out
    return str(out["uuid"])


def test_a_host_path_store_is_read_from_a_second_home(cli: Cli) -> None:
    _config(cli, "connections:\n  - {name: shared, kind: host_path, schema: {hostPath: runs}}\n"
                 "artifactsStore: shared\n")  # fmt: skip
    uuid = _run(cli, "hello")
    here = cli.run("logs", uuid).stdout
    assert "note.txt" in here and "said hello\nto stderr\n" in here
    _second_home(cli)
    for ref in (uuid, uuid[:10]):
        shown = cli.run("logs", ref)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout == here
        assert "said hello" in shown.stdout
    missing = cli.run("logs", "0" * 32)
    assert missing.returncode == 1
    assert f"'{'0' * 32}'" in missing.stderr and "artifacts store shared" in missing.stderr


def test_a_bucket_store_keeps_the_logs_when_the_local_copy_is_gone(cli: Cli, moto: MotoServer) -> None:
    moto.fs().mkdir("runs-bucket")
    _config(cli, _s3_config(moto, "runs-bucket"))
    uuid = _run(cli, "bucket")
    keys = sorted(p.rsplit("/", 1)[-1] for p in moto.fs().ls(f"runs-bucket/team/{uuid}/logs"))
    assert "main.log" in keys and any(k.startswith("init-0-") for k in keys)
    here = cli.run("logs", uuid).stdout
    assert "said bucket" in here and "to stderr" in here

    shutil.rmtree(cli.home / "artifacts" / uuid)  # this machine's copy is gone: the store has them
    assert cli.run("logs", uuid).stdout == here

    _second_home(cli)
    for ref in (uuid, uuid[:8]):
        shown = cli.run("logs", ref)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout == here
    missing = cli.run("logs", "f" * 32)
    assert missing.returncode == 1
    assert "nor any logs" in missing.stderr and "artifacts store lake (s3://runs-bucket/team)" in missing.stderr


DAG = """
version: 1.1
kind: component
name: two-steps
run:
  kind: dag
  operations:
    - name: prepare
      component:
        name: prepare
        run: {kind: job, container: {command: [sh, -c, 'echo "prepared the data"']}}
    - name: train
      dependencies: [prepare]
      component:
        name: train
        run: {kind: job, container: {command: [sh, -c, 'echo "trained"; echo "train stderr" >&2']}}
"""


@pytest.mark.parametrize("store", ["host_path", "s3"])
def test_a_dags_logs_are_listed_op_by_op_from_a_second_home(cli: Cli, store: str) -> None:
    with contextlib.ExitStack() as stack:
        if store == "s3":
            moto = stack.enter_context(_moto())
            moto.fs().mkdir("runs-bucket")
            _config(cli, _s3_config(moto, "runs-bucket"))
        else:
            _config(cli, "connections:\n  - {name: shared, kind: host_path, schema: {hostPath: runs}}\n"
                         "artifactsStore: shared\n")  # fmt: skip
        code, out = cli.run_json("run", "-f", str(cli.write("dag.yaml", DAG)), "--json")
        assert code == 0, out
        uuid = str(out["uuid"])
        here = cli.run("logs", uuid)
        assert here.returncode == 0, here.stderr
        assert "prepare | prepared the data\n" in here.stdout and "train | trained\n" in here.stdout
        assert here.stdout.index("prepare |") < here.stdout.index("train |")
        _second_home(cli)
        for ref in (uuid, uuid[:10]):
            shown = cli.run("logs", ref)
            assert shown.returncode == 0, shown.stderr
            assert shown.stdout == here.stdout


K8S_JOB = """
version: 1.1
kind: component
name: pod-talker
run:
  kind: job
  init:
    - file: {filename: note.txt, content: hi}
  container: {image: busybox:1.36, command: [sh, -c, 'echo "said from the pod"; echo "pod stderr" >&2']}
"""


@pytest.mark.parametrize("store", ["host_path", "s3"])
def test_kubernetes_logs_outlive_the_pods_and_reach_a_second_home(cli: Cli, tmp_path: Path, store: str) -> None:
    with executing(tmp_path / "k8s") as emulator, contextlib.ExitStack() as stack:
        if store == "s3":
            moto = stack.enter_context(_moto())
            moto.fs().mkdir("runs-bucket")
            _config(cli, _s3_config(moto, "runs-bucket"))
        else:
            _config(cli, "connections:\n  - {name: shared, kind: host_path, schema: {hostPath: runs}}\n"
                         "artifactsStore: shared\n")  # fmt: skip
        assert emulator.kubeconfig is not None
        cli.extra_env.update({"KUBECONFIG": str(emulator.kubeconfig), "POLYNB_K8S_PORT_FORWARD": "0"})
        job = cli.write("job.yaml", K8S_JOB)
        code, out = cli.run_json("run", "-f", str(job), "--executor", "kubernetes", "--json")
        assert code == 0, out
        uuid = str(out["uuid"])
        # The run's Job and pods are deleted once its logs are archived (Polyaxon deletes right after done).
        eventually(lambda: not emulator.objects("pods", selector=f"polynb.io/run={uuid}"), what="the pods gone")
        here = cli.run("logs", uuid)
        assert here.returncode == 0, here.stderr
        assert "said from the pod" in here.stdout and "pod stderr" in here.stdout
        shutil.rmtree(cli.home / "artifacts" / uuid)  # this machine's archive is gone too: the store has them
        assert cli.run("logs", uuid).stdout == here.stdout
        _second_home(cli)
        for ref in (uuid, uuid[:9]):
            shown = cli.run("logs", ref)
            assert shown.returncode == 0, shown.stderr
            assert shown.stdout == here.stdout


def test_a_store_that_fails_loses_nothing_and_the_warning_names_it(cli: Cli, tmp_path: Path) -> None:
    # On Kubernetes a host-path store is not where runs execute, so nothing refuses it at submission: a folder that
    # cannot be written fails the engine's upload, and the archive under $POLYNB_HOME keeps the logs.
    (cli.tmp / "a-file").write_text("")
    with executing(tmp_path / "k8s") as emulator:
        folder = cli.tmp / "a-file"
        _config(cli, f"connections:\n  - {{name: shared, kind: host_path, schema: {{hostPath: {folder}}}}}\n"
                     "artifactsStore: shared\n")  # fmt: skip
        assert emulator.kubeconfig is not None
        cli.extra_env.update({"KUBECONFIG": str(emulator.kubeconfig), "POLYNB_K8S_PORT_FORWARD": "0"})
        result = cli.run("run", "-f", str(cli.write("job.yaml", K8S_JOB)), "--executor", "kubernetes")
        assert result.returncode == 0, result.stderr
        with cli.store() as store:
            uuid = store.list_runs()[0].uuid
        assert f"run {uuid}: logs not archived to the artifacts store shared ({cli.tmp / 'a-file'})" in result.stderr
        assert f"they stay in {cli.home / 'artifacts' / uuid / 'logs'}" in result.stderr
        assert "said from the pod" in cli.run("logs", uuid).stdout
