"""A bucket as the artifacts store on Kubernetes, in the manifests and at submission: every pod's native sync
sidecar (its command as arguments, credentials from the connection's secret and env), the TensorBoard pod's
pull sidecars, the grace period of the last sync, and the refusals before anything is created (a missing
credentials Secret, sidecars that could not stop after the main container)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from k8s_emulator import Emulator, testkit

from polynb.compiler.pipeline import build_pipeline
from polynb.compiler.registry import ComponentRegistry
from polynb.compiler.types import CompiledOp, ContainerSpec, InitStep
from polynb.config_file import parse_config
from polynb.executors.kubernetes import manifests, storesync
from polynb.executors.kubernetes.executor import K8sSubmitError, KubernetesExecutor
from polynb.executors.kubernetes.init import FOLDERS_CONTAINER
from polynb.executors.kubernetes.settings import BucketStore, KubernetesSettings
from polynb.executors.kubernetes.sources import resolve
from polynb.scheduler.engine import Engine
from polynb.spec.load import load_text
from polynb.store import Store

emulator = testkit.emulator
kubeconfig = testkit.kubeconfig

UUID = "0123456789abcdef0123456789abcdef"
EXPERIMENT = "fedcba9876543210fedcba9876543210"
STORE = {
    "name": "runs",
    "kind": "s3",
    "schema": {"bucket": "s3://team-runs/polynb/"},
    "secret": {"name": "aws-creds"},
    "env": [{"name": "AWS_ENDPOINT_URL", "value": "http://minio.internal:9000"}],
}
CFG = manifests.ManifestConfig(
    namespace="ml", kernel_label="k1", kernel_id="k1", artifacts_store=BucketStore.of(STORE), store_image="polynb:9"
)


def op(*, uuid: str = UUID, init: tuple[InitStep, ...] = (), kind: Any = "job") -> CompiledOp:
    return CompiledOp(
        uuid=uuid,
        name="train",
        kind=kind,
        container=ContainerSpec(name="main", image="python:3.11-slim", command=("python", "t.py")),
        placement=manifests.placement(uuid, kind, 1 if kind == "service" else 0, CFG),
        init=init,
    )


def by_name(containers: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in containers}


def test_every_pod_syncs_its_artifacts_folder_up_from_a_native_sidecar() -> None:
    spec = manifests.pod_spec(op(), CFG)
    syncer = by_name(spec["initContainers"])["store-sync"]
    assert syncer["restartPolicy"] == "Always"  # a native sidecar: the Job completes with its main container
    assert syncer["image"] == "polynb:9"
    # store_sync up SOURCE TARGET every 5 s, under sh only to relay SIGTERM: the values are arguments.
    assert syncer["command"] == [
        "sh", "-c", storesync.SYNC_SCRIPT, "store-sync", "up", f"/plx-context/artifacts/{UUID}",
        f"s3://team-runs/polynb/{UUID}", "5",
    ]  # fmt: skip
    assert 'python -m polynb.runtime.store_sync "$1" --source "$2" --target "$3" --every "$4"' in storesync.SYNC_SCRIPT
    # Credentials: the secret's keys as variables, the connection's env; no shell line anywhere.
    assert syncer["envFrom"] == [{"secretRef": {"name": "aws-creds"}}]
    env = {e["name"]: e["value"] for e in syncer["env"]}
    assert env["AWS_ENDPOINT_URL"] == "http://minio.internal:9000"
    assert json.loads(env["POLYNB_STORE_CONNECTION"]) == {
        "name": "runs",
        "kind": "s3",
        "schema": {"bucket": "s3://team-runs/polynb/"},
    }
    assert {"name": "polynb-artifacts", "mountPath": "/plx-context/artifacts"} in syncer["volumeMounts"]
    # Its last sync runs once the main container has ended: the pod's grace period is the store's.
    assert spec["terminationGracePeriodSeconds"] == CFG.store_grace
    assert "envFrom" not in spec["containers"][0]  # the op's own container gets none of it


def test_a_tensorboard_pod_pulls_the_event_files_of_the_runs_it_shows() -> None:
    init = (InitStep(kind="tensorboard", spec={"uuids": f"{EXPERIMENT},", "useNames": True}),)
    spec = manifests.pod_spec(op(init=init, kind="service"), CFG)
    names = [c["name"] for c in spec["initContainers"]]
    assert names == ["init-0-tensorboard", "store-sync", "store-pull-0"]  # linked first, then filled
    pull = by_name(spec["initContainers"])["store-pull-0"]
    folder = f"{EXPERIMENT}/outputs/tensorboard"
    assert pull["command"][4:] == ["down", f"s3://team-runs/polynb/{folder}", f"/plx-context/artifacts/{folder}", "5"]
    assert pull["restartPolicy"] == "Always" and pull["envFrom"] == [{"secretRef": {"name": "aws-creds"}}]
    # The kubelet's 12 KiB of termination messages are shared by 4 containers now.
    main = spec["containers"][0]
    assert {e["name"]: e["value"] for e in main["env"]}["POLYNB_TERMINATION_LOG_LIMIT"] == str(12 * 1024 // 4)


def test_without_a_bucket_store_pods_are_unchanged() -> None:
    plain = manifests.ManifestConfig(namespace="ml", kernel_label="k1", kernel_id="k1")
    spec = manifests.pod_spec(op(), plain)
    assert [c["name"] for c in spec["initContainers"]] == [FOLDERS_CONTAINER]  # the run's folders, as every pod
    assert "terminationGracePeriodSeconds" not in spec


def test_secret_files_and_the_restricted_profile_reach_the_sidecar() -> None:
    files = {**STORE, "kind": "gcs", "schema": {"bucket": "gs://runs"}, "secret": {"name": "gcp", "mountPath": "/gcp"}}
    cfg = manifests.ManifestConfig(
        namespace="ml", kernel_label="k1", kernel_id="k1", artifacts_store=BucketStore.of(files),
        security_profile="restricted",
    )  # fmt: skip
    spec = manifests.pod_spec(op(), cfg)
    syncer = by_name(spec["initContainers"])["store-sync"]
    mount = next(m for m in syncer["volumeMounts"] if m["mountPath"] == "/gcp")
    assert next(v for v in spec["volumes"] if v["name"] == mount["name"])["secret"] == {"secretName": "gcp"}
    assert syncer["securityContext"]["runAsNonRoot"] is True
    assert "envFrom" not in syncer


def test_plain_sidecars_cannot_carry_the_store() -> None:
    cfg = manifests.ManifestConfig(
        namespace="ml", kernel_label="k1", kernel_id="k1", artifacts_store=BucketStore.of(STORE), native_sidecars=False
    )
    with pytest.raises(ValueError, match="needs native sidecars"):
        manifests.pod_spec(op(), cfg)


def test_an_artifacts_store_naming_a_bucket_is_the_store_of_every_pod() -> None:
    text = (
        "artifactsStore: runs\n"
        "connections:\n  - {name: runs, kind: s3, schema: {bucket: 's3://team-runs'}, secret: {name: aws-creds}}\n"
    )
    text += "artifactsSyncInterval: 2.5\n"  # one interval for both executors
    resolved = resolve(environ={"POLYNB_K8S_STORE_IMAGE": "reg/polynb:2"}, config=parse_config(text, "config.yaml"))
    store = resolved.settings.artifacts_store
    assert store is not None and (store.name, store.url) == ("runs", "s3://team-runs")
    assert resolved.origin("artifacts_store") == "config.yaml:1:17"
    assert resolved.settings.artifacts_claim is None and resolved.settings.store_image == "reg/polynb:2"
    assert resolved.settings.store_sync_interval == 2.5


def test_the_default_store_image_is_polynbs_own_tagged_with_its_version() -> None:
    import polynb

    assert storesync.default_store_image() == f"polynb:{polynb.__version__}"


# -- at submission ------------------------------------------------------------------------------------------

SEEDLIKE = """
kind: component
name: seed
run:
  kind: dag
  operations:
    - name: experiment
      component: {name: experiment, run: {kind: job, container: {image: emu/hold, command: [train]}}}
    - name: tensorboard
      events: [{ref: ops.experiment, kinds: [run_status_running]}]
      params: {uuids: {ref: ops.experiment, value: globals.uuid}}
      component:
        name: tensorboard
        inputs: [{name: uuids, type: str}]
        run:
          kind: service
          ports: [6006]
          init: [{tensorboard: {uuids: "{{ uuids }}"}}]
          container: {image: emu/hold, command: [tensorboard]}
"""


def store_executor(kubeconfig: Path, **settings: Any) -> KubernetesExecutor:
    return KubernetesExecutor(
        KubernetesSettings(kubeconfig=str(kubeconfig), kernel_id="store-k", artifacts_store=BucketStore.of(STORE),
                           backoff=0.01, **settings),
        origins={"artifacts_store": "config.yaml:1:17"},
    )  # fmt: skip


def test_a_bucket_store_whose_secret_is_missing_refuses_the_pipeline_before_anything_exists(
    emulator: Emulator, kubeconfig: Path, tmp_path: Path
) -> None:
    executor = store_executor(kubeconfig)
    store = Store(tmp_path / "polynb.db")
    registry = ComponentRegistry()
    engine = Engine(store=store, executors={"kubernetes": executor}, default_executor="kubernetes", registry=registry)
    pipeline = build_pipeline(load_text(textwrap.dedent(SEEDLIKE)), params={}, registry=registry, base_dir=tmp_path)
    try:
        emulator.settle()
        emulator.reset_counts()
        with pytest.raises(K8sSubmitError) as exc:
            engine.submit(pipeline)
        message = str(exc.value)
        assert message.startswith("config.yaml:1:17: connection 'runs' (the artifacts store, s3://team-runs/polynb)")
        assert "Secret 'aws-creds'" in message and "namespace 'default'" in message
        assert store.list_runs() == []  # nothing half-submitted
        assert emulator.counts()["create"] == 0
        # Once the secret exists, the same pipeline passes the check: TensorBoard reads through the bucket.
        emulator.store.create("secrets", "default", {"metadata": {"name": "aws-creds"}, "data": {}})
        executor.check_submission("seed", artifact_reads=["op 'tensorboard': init tensorboard"])
        executor.check_submission("seed", artifact_reads=["op 'eval': init artifacts"])  # fetched from the bucket
        with pytest.raises(K8sSubmitError, match=r"only init entries \(tensorboard, artifacts, paths\) get other"):
            executor.check_submission("seed", artifact_reads=["op 'eval': param p (ops.train: artifacts.outputs)"])
    finally:
        engine.shutdown()
        executor.shutdown()
        store.close()


def test_a_bucket_store_without_native_sidecars_is_refused_at_submission(kubeconfig: Path) -> None:
    executor = store_executor(kubeconfig, native_sidecars=False)
    try:
        with pytest.raises(K8sSubmitError, match=r"config.yaml:1:17: the artifacts store 'runs' is a bucket.*native"):
            executor.check_submission("seed")
    finally:
        executor.shutdown()
