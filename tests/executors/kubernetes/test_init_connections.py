"""Init entries reading connections on the executing cluster: a git repository behind HTTP basic auth cloned in the
git image with credentials from a Secret (envFrom), and a bucket on a real S3 server fetched in polynb's image;
the emulated pods share the host's network, so both servers listen on 127.0.0.1."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from k8s_emulator import Emulator, testkit
from k8s_emulator.images import POLYNB_IMAGE
from k8s_emulator.testkit import make_op
from support.gitkit import GitHttpServer, bare_repo
from support.recorder import UpdateRecorder
from support.s3kit import MotoServer

from polynb.compiler.types import InitStep
from polynb.executors.kubernetes import manifests
from polynb.executors.kubernetes.executor import K8sSubmitError, KubernetesExecutor
from polynb.executors.kubernetes.settings import BucketStore

executing_emulator = testkit.executing_emulator
kubeconfig = testkit.executing_kubeconfig
make_executor = testkit.make_executor

SECRET = "t0ken-in-a-secret"


@pytest.fixture
def executor(make_executor: testkit.MakeExecutor) -> KubernetesExecutor:
    return make_executor(store_image=POLYNB_IMAGE)


def _logs(executor: KubernetesExecutor, uuid: str) -> str:
    return "\n".join(executor.logs(uuid))


def test_a_git_connection_is_cloned_with_credentials_from_its_secret(
    executing_emulator: Emulator, executor: KubernetesExecutor, tmp_path: Path
) -> None:
    repos = tmp_path / "repos"
    repos.mkdir()
    bare_repo(repos, "project", {"README": "cloned in a pod\n"})
    server = GitHttpServer(repos, "bob", SECRET).start()
    try:
        data = {"POLYAXON_GIT_CREDENTIALS": base64.b64encode(f"bob:{SECRET}".encode()).decode()}
        executing_emulator.store.create("secrets", "default", {"metadata": {"name": "git-creds"}, "data": data})
        repo: dict[str, Any] = {"name": "repo", "kind": "git", "schema": {"url": f"{server.url}/project.git"},
                                "secret": {"name": "git-creds"}}  # fmt: skip
        step = InitStep(kind="git", spec={"url": f"{server.url}/project.git", "revision": "main", "connection": repo})
        rec = UpdateRecorder()
        op = make_op(executor, image="busybox:1.36", init=(step,),
                     command=("sh", "-c", 'cat "$POLYAXON_RUN_ARTIFACTS_PATH/project/README"'))  # fmt: skip
        [init] = [c for c in manifests.pod_spec(op, executor.config)["initContainers"] if c["name"] == "init-0-git"]
        assert init["envFrom"] == [{"secretRef": {"name": "git-creds"}}]
        assert SECRET not in repr(init)
        executor.submit(op, rec)
        final = rec.final()
        shown = _logs(executor, op.uuid)
        assert final.status == "succeeded", (final.message, shown)
        assert "cloned in a pod" in shown
        assert SECRET not in shown + (final.message or "")
        assert any("git-upload-pack" in r for r in server.requests)
    finally:
        server.stop()


@pytest.fixture
def moto() -> Iterator[MotoServer]:
    server = MotoServer().start()
    yield server
    server.stop()


def test_a_bucket_connection_is_fetched_in_polynbs_image(executor: KubernetesExecutor, moto: MotoServer) -> None:
    fs = moto.fs()
    fs.mkdir("lake")
    fs.pipe_file("lake/team/data/a.csv", b"a,1\n")
    fs.pipe_file("lake/team/data/sub/b.csv", b"b,2\n")
    lake = moto.connection("lake", "s3://lake/team")
    step = InitStep(kind="artifacts", spec={"dirs": ["data"], "connection": lake})
    rec = UpdateRecorder()
    command = ("sh", "-c", 'cd "$POLYAXON_RUN_ARTIFACTS_PATH" && cat data/a.csv data/sub/b.csv')
    op = make_op(executor, image="busybox:1.36", init=(step,), command=command)
    [init] = [c for c in manifests.pod_spec(op, executor.config)["initContainers"] if c["name"] == "init-0-artifacts"]
    assert init["image"] == POLYNB_IMAGE
    assert "testing" not in " ".join(init["command"])  # the keys are variables, never arguments
    executor.submit(op, rec)
    final = rec.final()
    shown = _logs(executor, op.uuid)
    assert final.status == "succeeded", (final.message, shown)
    assert "a,1\nb,2" in shown


def test_a_missing_credentials_secret_refuses_the_op_before_anything_is_created(
    executing_emulator: Emulator, executor: KubernetesExecutor
) -> None:
    repo = {"name": "repo", "kind": "git", "schema": {"url": "http://127.0.0.1:9/x.git"}, "secret": {"name": "nope"}}
    step = InitStep(kind="git", spec={"url": "http://127.0.0.1:9/x.git", "connection": repo})
    op = make_op(executor, image="busybox:1.36", init=(step,), command=("true",))
    with pytest.raises(K8sSubmitError, match=r"init\[0\]: connection 'repo' takes its credentials from Secret 'nope'"):
        executor.submit(op, UpdateRecorder())
    assert executing_emulator.objects("jobs") == []


def test_artifacts_of_another_run_come_from_a_bucket_artifacts_store(
    make_executor: testkit.MakeExecutor, moto: MotoServer
) -> None:
    producer = "cd" * 16  # only the bucket has its outputs: each pod's artifacts folder is its own
    fs = moto.fs()
    fs.mkdir("runs")
    fs.pipe_file(f"runs/store/{producer}/outputs/model.txt", b"weights v2\n")
    store = BucketStore.of(moto.connection("lake", "s3://runs/store"))
    executor = make_executor(store_image=POLYNB_IMAGE, artifacts_store=store, store_sync_interval=1)
    step = InitStep(kind="artifacts", spec={"files": [f"{producer}/outputs/model.txt"]})
    rec = UpdateRecorder()
    command = ("sh", "-c", f'cat "$POLYAXON_RUN_ARTIFACTS_PATH/{producer}/outputs/model.txt"')
    op = make_op(executor, image="busybox:1.36", init=(step,), command=command)
    executor.submit(op, rec)
    final = rec.final()
    shown = _logs(executor, op.uuid)
    assert final.status == "succeeded", (final.message, shown)
    assert "weights v2" in shown
