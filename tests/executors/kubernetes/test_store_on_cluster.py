"""The artifacts store on the executing test cluster: the seed pipeline (an experiment writing TensorBoard event
files, and a TensorBoard started on its ``running`` event) with ``artifactsStore`` in the config file naming

* an ``s3`` bucket on a real S3 server (moto, on 127.0.0.1: the emulated pods share the host's network): the
  experiment's sync sidecar (in the image ``docker/Dockerfile`` builds) puts its event files in the bucket while
  it trains, TensorBoard's pull sidecar brings them into its pod, and TensorBoard serves them over HTTP through
  the executor's port-forward; the TensorBoard run's own folder in the bucket holds no copy of them;
* a ``volume_claim``: every pod mounts it as its artifacts folder, and TensorBoard serves the same.

And with the bucket: a run's last sync is in the bucket when its status is final (no periodic sync meanwhile),
also for an op that ends before the sidecar's Python has started; a store that goes away under a running op is an
``alert_warning`` on the run and its pod is kept with the files.

The settings come from the config file as a user writes it (:func:`polynb.executors.kubernetes.sources.resolve`);
every manifest is validated by the emulator as the API server would.
"""

from __future__ import annotations

import contextlib
import json
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from k8s_emulator import Emulator, testkit
from k8s_emulator.images import POLYNB_IMAGE
from kubernetes import client, config
from support.s3kit import KEYS, MotoServer

from polynb.cli.run import load_pipeline
from polynb.compiler.pipeline import build_pipeline
from polynb.executors.kubernetes.executor import KubernetesExecutor
from polynb.executors.kubernetes.sources import resolve
from polynb.lifecycle import Status
from polynb.scheduler.engine import Engine
from polynb.scheduler.events import EngineEvent
from polynb.spec.load import load_text
from polynb.store import RunRecord, Store

GUARD = 180.0
"""Only a guard against a hang; waits return as soon as what they wait for holds."""
SEED = Path(__file__).resolve().parents[3] / "notebooks" / "pipelines" / "experiment-tensorboard.yaml"
BUCKET = "team-runs"


@dataclass
class Cluster:
    emulator: Emulator
    store: Store
    engine: Engine
    executor: KubernetesExecutor

    def ops(self, dag_uuid: str) -> dict[str, RunRecord]:
        return {r.name: r for r in self.store.children(dag_uuid)}


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    server = MotoServer().start()
    server.fs().mkdir(BUCKET)
    yield server
    server.stop()


def store_config(kind: str, moto: MotoServer, interval: float) -> str:
    if kind == "s3":
        return (
            "artifactsStore: runs\n"
            "connections:\n"
            "  - name: runs\n"
            "    kind: s3\n"
            f"    schema: {{bucket: 's3://{BUCKET}/polynb'}}\n"
            "    secret: {name: aws-creds}\n"  # the keys, as the cluster keeps them
            f"    env: [{{name: AWS_ENDPOINT_URL, value: '{moto.url}'}}, {{name: AWS_REGION, value: us-east-1}}]\n"
            f"artifactsSyncInterval: {interval}\n"
        )
    if kind == "none":
        return "{}\n"
    return "artifactsStore: shared\nconnections:\n  - {name: shared, kind: volume_claim, schema: {claimName: shared}}\n"


@pytest.fixture(params=["s3", "volume_claim"])
def cluster(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moto: MotoServer
) -> Iterator[Cluster]:
    with open_cluster(tmp_path, monkeypatch, moto, str(request.param), interval=1) as made:
        yield made


@contextlib.contextmanager
def open_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moto: MotoServer, kind: str, *, interval: float
) -> Iterator[Cluster]:
    """The executing cluster configured from a config file whose ``artifactsStore`` is a ``kind`` store."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text(store_config(kind, moto, interval))
    monkeypatch.setenv("POLYNB_HOME", str(home))
    with testkit.executing(tmp_path) as emu:
        assert emu.kubeconfig is not None
        api = config.new_client_from_config(str(emu.kubeconfig))
        core = client.CoreV1Api(api)
        body: Any  # the client takes dicts as well as its models
        if kind == "s3":
            body = {"metadata": {"name": "aws-creds"}, "stringData": {k: KEYS[k] for k in KEYS if k.startswith("AWS_")}}
            core.create_namespaced_secret("default", body)
        elif kind == "volume_claim":
            spec = {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}}
            body = {"metadata": {"name": "shared"}, "spec": spec}
            core.create_namespaced_persistent_volume_claim("default", body)
        api.close()
        settings = resolve(
            environ={"POLYNB_HOME": str(home)},
            overrides={"kubeconfig": str(emu.kubeconfig), "kernel_id": f"store-{kind}".replace("_", "-"),
                       "backoff": 0.05, "port_forward": True, "shutdown_wait": 20.0,
                       "service_port_base": testkit.free_port()},
        ).settings  # fmt: skip
        if kind == "s3":
            assert settings.artifacts_store is not None and settings.artifacts_claim is None
        elif kind == "volume_claim":
            assert settings.artifacts_claim == "shared" and settings.artifacts_store is None
        executor = KubernetesExecutor(settings)
        store = Store(home / "polynb.db")
        engine = Engine(store=store, executors={"kubernetes": executor}, default_executor="kubernetes")
        engine.start()
        try:
            yield Cluster(emu, store, engine, executor)
        finally:
            engine.shutdown(stop_running=True)
            store.close()


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as reply:
        return json.load(reply)


def test_the_seed_pipeline_trains_into_the_store_and_tensorboard_shows_it_while_it_trains(
    cluster: Cluster, moto: MotoServer
) -> None:
    bucket = cluster.executor.settings.artifacts_store is not None
    uuid = cluster.engine.submit(load_pipeline(SEED, {"max_seconds": "600", "epochs": "100000000"}))
    experiment = testkit.eventually(lambda: cluster.ops(uuid).get("experiment"), what="the experiment's run")
    fs = moto.fs()
    prefix = f"{BUCKET}/polynb/{experiment.uuid}/outputs/tensorboard"
    if bucket:
        # The sidecar puts the event files in the bucket while the experiment trains.
        def events_in_bucket() -> list[str]:
            fs.invalidate_cache()
            return [p for p in fs.find(f"{BUCKET}/polynb/{experiment.uuid}") if "events.out.tfevents." in p]

        [events] = testkit.eventually(events_in_bucket, what="the event files in the bucket")
        assert events.startswith(prefix + "/")
        assert cluster.ops(uuid)["experiment"].status == Status.RUNNING
        pod = cluster.emulator.require_pod_of(experiment.uuid)
        sync = next(c for c in pod["spec"]["initContainers"] if c["name"] == "store-sync")
        assert sync["image"] == POLYNB_IMAGE and sync["restartPolicy"] == "Always"

    def board_url() -> str | None:
        board = cluster.ops(uuid).get("tensorboard")
        return board.url if board is not None and board.url else None

    url = testkit.eventually(board_url, what="the TensorBoard run's URL").rstrip("/")
    assert url.startswith("http://127.0.0.1:")  # the executor's port-forward to the TensorBoard pod

    def loss_tags() -> dict[str, Any] | None:
        try:
            tags = get_json(f"{url}/data/plugin/scalars/tags")
        except OSError:
            return None  # TensorBoard is still starting, or its pull has not brought the files yet
        return {run: t for run, t in tags.items() if "loss" in t} or None

    [(run, tags)] = testkit.eventually(loss_tags, what="the experiment's scalars in TensorBoard").items()
    assert {"loss", "accuracy", "learning_rate"} <= set(tags)
    points = get_json(f"{url}/data/plugin/scalars/scalars?run={urllib.parse.quote(run)}&tag=loss")
    assert points and all(len(p) == 3 and p[1] >= 1 for p in points)
    assert cluster.ops(uuid)["experiment"].status == Status.RUNNING  # shown while it trains

    cluster.engine.stop(uuid)
    assert cluster.engine.wait(uuid, timeout=GUARD, include_services=True) == "stopped"
    assert {r.name: r.status for r in cluster.store.children(uuid)} == {
        "experiment": Status.STOPPED,
        "tensorboard": Status.STOPPED,
    }
    if bucket:
        # The last sync ran before the run was final; the TensorBoard run's own folder holds no copy of the
        # experiment's files (its links to other runs are not followed).
        fs.invalidate_cache()
        [events] = [p for p in fs.find(prefix) if "events.out.tfevents." in p]
        assert fs.size(events) > 0
        board = cluster.ops(uuid)["tensorboard"]
        assert not [p for p in fs.find(f"{BUCKET}/polynb/{board.uuid}") if "events.out.tfevents." in p]


def test_a_finished_experiments_last_sync_is_in_the_bucket_when_its_status_is_final(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moto: MotoServer
) -> None:
    # No periodic sync during the short training (an hour apart): what the bucket holds when the experiment's
    # `succeeded` is recorded comes from the sidecar's last sync, after the main container ended.
    with open_cluster(tmp_path, monkeypatch, moto, "s3", interval=3600) as cluster:
        seen: dict[str, list[str]] = {}
        fs = moto.fs()

        def at_success(event: EngineEvent) -> None:
            if event.name == "experiment" and event.kind == "run_status_succeeded":
                fs.invalidate_cache()
                seen["files"] = [p.rsplit("/", 1)[-1] for p in fs.find(f"{BUCKET}/polynb/{event.run_uuid}")]

        cluster.engine.subscribe(at_success)
        uuid = cluster.engine.submit(load_pipeline(SEED, {"max_seconds": "2", "epochs": "40"}))
        assert cluster.engine.wait(uuid, timeout=GUARD) == "succeeded"  # its non-service ops are final
        assert cluster.ops(uuid)["experiment"].status == Status.SUCCEEDED
        assert any(name.startswith("events.out.tfevents.") for name in seen["files"])
        assert set(cluster.ops(uuid)["experiment"].outputs) == {"loss", "accuracy", "epochs"}
        cluster.engine.stop(cluster.ops(uuid)["tensorboard"].uuid)  # the service would serve until its timeout
        assert cluster.engine.wait(uuid, timeout=GUARD, include_services=True) == "succeeded"


UNTIL_THE_STORE_IS_GONE = """
kind: component
name: writer
run:
  kind: job
  container:
    image: python:3.11-slim
    command: [python3, -c]
    args:
      - |
        import os, pathlib, socket, sys, time
        port = int(sys.argv[1])
        while True:  # the test stops the store's server; the op then writes its result and ends
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                break
            time.sleep(0.1)
        out = pathlib.Path(os.environ["POLYAXON_RUN_OUTPUTS_PATH"])
        out.mkdir(parents=True, exist_ok=True)
        (out / "model.txt").write_text("weights")
      - "{{ port }}"
inputs: [{name: port, type: int}]
"""


def test_a_store_that_fails_at_the_last_sync_alerts_and_keeps_the_pod_with_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = MotoServer().start()
    server.fs().mkdir(BUCKET)
    try:
        with open_cluster(tmp_path, monkeypatch, server, "s3", interval=3600) as cluster:
            component = load_text(UNTIL_THE_STORE_IS_GONE, "writer.yaml")
            pipeline = build_pipeline(component, params={"port": server.port}, base_dir=tmp_path)
            uuid = cluster.engine.submit(pipeline)
            testkit.eventually(lambda: cluster.store.get_run(uuid).status == Status.RUNNING, what="the op running")
            server.stop()  # the store goes away while the op runs
            assert cluster.engine.wait(uuid, timeout=GUARD) == "succeeded"  # the op itself did its work
            [alert] = [e for e in cluster.store.events(run_uuid=uuid) if e.kind == "alert_warning"]
            payload = alert.payload
            assert (payload["reason"], payload["connection"]) == ("ArtifactsStoreUnreachable", "runs")
            assert payload["path"] == f"/plx-context/artifacts/{uuid}"
            message = str(payload["message"])
            assert "the artifacts store 'runs' (s3://team-runs/polynb) did not get the run's last files" in message
            assert "container store-sync exited with code 1" in message and "Could not connect" in message
            assert f"they are kept in pod {payload['pod']}" in message
            # The pod is kept: its artifacts folder (an emptyDir) holds the only copy of model.txt.
            [job] = cluster.emulator.objects("jobs")
            assert job["metadata"]["labels"]["polynb.io/run"] == uuid
    finally:
        server.stop()


QUICK = """
kind: component
name: quick
run:
  kind: job
  container:
    image: busybox:1.36
    command: [sh, -c, 'mkdir -p "$POLYAXON_RUN_OUTPUTS_PATH" && echo weights > "$POLYAXON_RUN_OUTPUTS_PATH/model.txt"']
"""


def test_an_op_shorter_than_the_sidecars_start_still_has_its_files_in_the_bucket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moto: MotoServer
) -> None:
    # The op may end (and the kubelet send SIGTERM to the sidecar) while the sync is still starting Python: the
    # sidecar then makes its last sync all the same, and the run is final after it.
    with open_cluster(tmp_path, monkeypatch, moto, "s3", interval=3600) as cluster:
        for _ in range(3):
            uuid = cluster.engine.submit(build_pipeline(load_text(QUICK, "quick.yaml"), base_dir=tmp_path))
            assert cluster.engine.wait(uuid, timeout=GUARD) == "succeeded"
            fs = moto.fs()
            assert fs.cat(f"{BUCKET}/polynb/{uuid}/outputs/model.txt") == b"weights\n"
            assert not [e for e in cluster.store.events(run_uuid=uuid) if e.kind == "alert_warning"]


BIG_OUTPUTS = """
kind: component
name: big-outputs
run:
  kind: dag
  operations:
    - name: produce
      component:
        outputs: [{name: blob, type: str}, {name: loss, type: float}]
        run:
          kind: job
          container:
            image: python:3.11-slim
            command: [python3, -c, "from polynb.tracking import log_outputs; log_outputs(blob='x' * 102400, loss=0.5)"]
    - name: consume
      params: {blob: {ref: ops.produce, value: outputs.blob}}
      component:
        inputs: [{name: blob, type: str}]
        outputs: [{name: size, type: int}]
        run:
          kind: job
          container:
            image: python:3.11-slim
            command:
              - python3
              - -c
              - "import sys; from polynb.tracking import log_outputs; log_outputs(size=len(sys.argv[1]))"
              - "{{ blob }}"
"""


def test_outputs_too_large_for_the_termination_message_reach_the_next_op_through_the_bucket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moto: MotoServer
) -> None:
    # The engine's machine has its own credentials for the bucket (the cluster's are in the Secret).
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, KEYS[key])
    with open_cluster(tmp_path, monkeypatch, moto, "s3", interval=3600) as cluster:
        uuid = cluster.engine.submit(build_pipeline(load_text(BIG_OUTPUTS, "big.yaml"), base_dir=tmp_path))
        assert cluster.engine.wait(uuid, timeout=GUARD) == "succeeded"
        ops = cluster.ops(uuid)
        assert ops["produce"].outputs == {"blob": "x" * 102400, "loss": 0.5}
        assert ops["consume"].outputs == {"size": 102400}
        # The termination message carried a pointer only; the outputs came from the store's outputs.json.
        stored = json.loads(moto.fs().cat(f"{BUCKET}/polynb/{ops['produce'].uuid}/outputs/outputs.json"))
        assert stored == ops["produce"].outputs


@pytest.mark.parametrize("kind", ["none", "volume_claim"])
def test_outputs_too_large_without_a_bucket_store_fail_the_op_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moto: MotoServer, kind: str
) -> None:
    # A volume claim is the cluster's, which the engine cannot read: no pointer, the same error as without a store.
    with open_cluster(tmp_path, monkeypatch, moto, kind, interval=3600) as cluster:
        uuid = cluster.engine.submit(build_pipeline(load_text(BIG_OUTPUTS, "big.yaml"), base_dir=tmp_path))
        assert cluster.engine.wait(uuid, timeout=GUARD) == "failed"
        ops = cluster.ops(uuid)
        produce = ops["produce"]
        assert (produce.status, produce.reason) == (Status.FAILED, "OutputsTooLarge")
        assert "at most 4096 bytes" in (produce.message or "") and produce.outputs == {}
        assert ops["consume"].status == Status.UPSTREAM_FAILED
