"""Pods need nothing but public images: the engine on the kubernetes executor against the *executing* kubelet,
whose containers really run, from catalogue images in which nothing can import polynb.

What the pods run reaches them as code (the runtime bundle, a step's ConfigMap): a ``%%polyaxon_python`` step in
``python:3.11-slim`` returns its outputs, and fails loudly when they do not fit in the termination message; the
built-in webhook hook posts from ``python:3.11-slim`` to a server in this test; the seed pipeline's experiment
trains on ``tensorflow/tensorflow:2.15.0`` (NumPy) and writes TensorBoard event files on the shared artifacts
claim, and its TensorBoard starts on the experiment's ``running`` event in the same stock image; the example
pipelines run unchanged.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import shutil
import socket
import textwrap
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from k8s_emulator import Emulator, testkit
from k8s_emulator.volumes import claim_folder
from kubernetes import client, config

from polynb.cli.run import load_pipeline
from polynb.compiler.pipeline import Pipeline, build_pipeline
from polynb.compiler.registry import ComponentRegistry
from polynb.executors.kubernetes.executor import KubernetesExecutor
from polynb.executors.kubernetes.settings import KubernetesSettings
from polynb.lifecycle import Status
from polynb.notebook.pystep import IODecl, save_script, step_component
from polynb.scheduler.engine import Engine
from polynb.scheduler.events import EngineEvent
from polynb.spec.load import load_text
from polynb.store import RunRecord, Store

GUARD = 180.0
"""Only a guard against a hang (real processes start here, on a busy machine); waits return on the event."""
SEED = Path(__file__).resolve().parents[3] / "notebooks" / "pipelines" / "experiment-tensorboard.yaml"
CLAIM = "polynb-artifacts"


@dataclass
class Cluster:
    emulator: Emulator
    store: Store
    engine: Engine
    executor: KubernetesExecutor
    registry: ComponentRegistry
    home: Path
    events: list[EngineEvent]
    cond: threading.Condition

    def submit(self, pipeline: Pipeline) -> str:
        return self.engine.submit(pipeline)

    def wait(self, uuid: str) -> str:
        return self.engine.wait(uuid, timeout=GUARD)

    def ops(self, dag_uuid: str) -> dict[str, RunRecord]:
        return {r.name: r for r in self.store.children(dag_uuid, include_hooks=True)}

    def wait_event(self, predicate: Callable[[EngineEvent], bool]) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: any(predicate(e) for e in self.events), timeout=GUARD)

    def logs(self, run_uuid: str) -> str:
        return "\n".join(self.executor.logs(run_uuid))


def make_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **settings: Any) -> Iterator[Cluster]:
    home = tmp_path / "home"
    monkeypatch.setenv("POLYNB_HOME", str(home))
    with testkit.executing(tmp_path) as emu:
        assert emu.kubeconfig is not None
        store = Store(home / "polynb.db")
        registry = ComponentRegistry()
        defaults: dict[str, Any] = {"kernel_id": "pods-e2e", "backoff": 0.05, "port_forward": False}
        executor = KubernetesExecutor(
            KubernetesSettings(kubeconfig=str(emu.kubeconfig), shutdown_wait=20.0, **{**defaults, **settings})
        )
        engine = Engine(
            store=store, executors={"kubernetes": executor}, default_executor="kubernetes", registry=registry
        )
        events: list[EngineEvent] = []
        cond = threading.Condition()

        def listen(event: EngineEvent) -> None:
            with cond:
                events.append(event)
                cond.notify_all()

        engine.subscribe(listen)
        engine.start()
        try:
            yield Cluster(emu, store, engine, executor, registry, home, events, cond)
        finally:
            engine.shutdown(stop_running=True)
            store.close()


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    yield from make_cluster(tmp_path, monkeypatch)


def step_pipeline(
    cluster: Cluster, code: str, *, inputs: list[IODecl], outputs: list[IODecl], **params: Any
) -> Pipeline:
    """What ``%%polyaxon_python NAME --input … --output …`` makes of a cell, as a one-op pipeline."""
    script = save_script("step", textwrap.dedent(code), folder=cluster.home / "steps")
    component = step_component("step", script, inputs, outputs)
    return build_pipeline(component, params=params, registry=cluster.registry, base_dir=cluster.home)


# -- %%polyaxon_python steps ----------------------------------------------------------------------------


def test_a_python_step_runs_in_python_slim_and_returns_its_outputs(cluster: Cluster) -> None:
    # Braces and Jinja-looking text in the cell stay code: the cell travels as a file, never through a template.
    code = """
        import sys
        total = sum(values) * factor
        label = f"{{total}} is {total} on {sys.version_info[0]}"  # {{ not a template }}
        print("step ran", total)
    """
    pipeline = step_pipeline(
        cluster,
        code,
        inputs=[IODecl("values", "list"), IODecl("factor", "int")],
        outputs=[IODecl("total", "int"), IODecl("label", "str")],
        values=[1, 2, 3],
        factor=7,
    )
    uuid = cluster.submit(pipeline)
    assert cluster.wait(uuid) == "succeeded"
    run = cluster.store.get_run(uuid)
    assert run.outputs == {"total": 42, "label": "{total} is 42 on 3"}
    assert "step ran 42" in cluster.logs(uuid)
    assert (run.spec or {})["container"]["image"] == "python:3.11-slim"
    # The code came in its ConfigMap (the Job and its pod are deleted once the run is done).
    shipped = [c for c in cluster.emulator.objects("configmaps") if c["metadata"]["name"].startswith("polynb-step-")]
    assert [list(c["data"].values()) for c in shipped] == [[textwrap.dedent(code)]]


def test_outputs_too_large_for_the_termination_message_fail_the_step_loudly(cluster: Cluster) -> None:
    pipeline = step_pipeline(cluster, "blob = 'x' * 5000\n", inputs=[], outputs=[IODecl("blob", "str")])
    uuid = cluster.submit(pipeline)
    assert cluster.wait(uuid) == "failed"
    run = cluster.store.get_run(uuid)
    assert run.reason == "OutputsTooLarge"
    assert "5011 bytes" in (run.message or "") and "at most 4096 bytes" in (run.message or "")
    assert run.outputs == {}  # nothing half-delivered


# -- the built-in webhook, as a hook ---------------------------------------------------------------------


class Receiver(http.server.ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ReceiverHandler)
        self.messages: list[dict[str, Any]] = []
        self.got = threading.Condition()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/report"


class ReceiverHandler(http.server.BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.got:
            self.server.messages.append({"path": self.path, "agent": self.headers["User-Agent"], **json.loads(body)})
            self.server.got.notify_all()
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_the_webhook_hook_posts_from_a_stock_image(cluster: Cluster, receiver: Receiver) -> None:
    spec = load_text(
        textwrap.dedent(
            f"""\
            version: 1.1
            kind: component
            name: scored
            hooks:
              - hubRef: webhook
                trigger: done
                params: {{url: {{value: "{receiver.url}"}}, payload: {{value: {{team: vision}}}}}}
            run:
              kind: job
              container:
                image: python:3.11
                command: [python3, -c, "from polynb.tracking import log_outputs; log_outputs(score=0.9)"]
            """
        )
    )
    uuid = cluster.submit(build_pipeline(spec, registry=cluster.registry, base_dir=cluster.home))
    assert cluster.wait(uuid) == "succeeded"
    with receiver.got:
        assert receiver.got.wait_for(lambda: receiver.messages, timeout=GUARD)
    [message] = receiver.messages
    assert message["path"] == "/report" and message["agent"] == "polynb-webhook/1"
    assert message["payload"] == {"team": "vision"}
    assert message["run"]["uuid"] == uuid and message["run"]["status"] == "succeeded"
    assert message["run"]["outputs"] == {"score": 0.9}  # polynb.tracking ran in python:3.11 too
    [hook] = cluster.store.hooks_of(uuid)
    assert hook.status == Status.SUCCEEDED
    assert hook.spec is not None and hook.spec["container"]["image"] == "python:3.11-slim"


# -- the seed pipeline ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def seed_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    yield from make_seed_cluster(tmp_path, monkeypatch)


def make_seed_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **settings: Any) -> Iterator[Cluster]:
    """The executing cluster with a ReadWriteMany artifacts claim, as a user sets it up for TensorBoard."""
    settings = {"artifacts_claim": CLAIM, "service_port_base": free_port(), **settings}
    for made in make_cluster(tmp_path, monkeypatch, **settings):
        assert made.emulator.kubeconfig is not None
        api = config.new_client_from_config(str(made.emulator.kubeconfig))
        claim: Any = {  # the client takes dicts as well as its models
            "metadata": {"name": CLAIM},
            "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}},
        }
        client.CoreV1Api(api).create_namespaced_persistent_volume_claim("default", claim)
        api.close()
        yield made


def test_the_seed_experiment_trains_on_a_stock_image_and_writes_event_files(seed_cluster: Cluster) -> None:
    cluster = seed_cluster
    uuid = cluster.submit(load_pipeline(SEED, {"max_seconds": "2", "epochs": "40"}))
    assert cluster.wait(uuid) == "succeeded"
    ops = cluster.ops(uuid)
    experiment = ops["experiment"]
    assert experiment.status == Status.SUCCEEDED
    assert experiment.spec is not None and experiment.spec["container"]["image"] == "tensorflow/tensorflow:2.15.0"
    assert set(experiment.outputs) == {"loss", "accuracy", "epochs"}
    # The event files are in the run's outputs on the shared claim, where TensorBoard's init links them.
    assert cluster.emulator.kubelet is not None
    claim = claim_folder(cluster.emulator.kubelet.root, "default", CLAIM)
    [events] = list((claim / experiment.uuid / "outputs" / "tensorboard").glob("events.out.tfevents.*"))
    data = events.read_bytes()
    assert b"brain.Event:2" in data and b"loss" in data and b"accuracy" in data and b"learning_rate" in data
    # TensorBoard was started by the experiment's running event, in the image that has TensorBoard.
    board = ops["tensorboard"]
    assert board.spec is not None and board.spec["container"]["image"] == "tensorflow/tensorflow:2.15.0"
    cluster.wait_event(lambda e: e.run_uuid == board.uuid and e.kind == "run_status_running")
    cluster.engine.stop(board.uuid)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as reply:
        return json.load(reply)


def test_tensorboard_serves_the_experiments_scalars_through_the_tunnel_while_it_trains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The seed scenario as a user lives it: the experiment trains (a long budget: it is still training when
    # the page is read), TensorBoard starts on its `running` event, and its URL — the executor's port-forward
    # to the TensorBoard pod — serves the experiment's scalars over HTTP.
    with contextlib.contextmanager(make_seed_cluster)(tmp_path, monkeypatch, port_forward=True) as cluster:
        uuid = cluster.submit(load_pipeline(SEED, {"max_seconds": "600", "epochs": "100000000"}))

        def board_url() -> str | None:
            board = cluster.ops(uuid).get("tensorboard")
            return board.url if board is not None and board.url else None

        url = testkit.eventually(board_url, what="the TensorBoard run's URL").rstrip("/")
        assert url.startswith("http://127.0.0.1:")  # the local end of the tunnel, not the pod's address

        def loss_tags() -> dict[str, Any] | None:
            try:
                tags = get_json(f"{url}/data/plugin/scalars/tags")
            except OSError:
                return None  # TensorBoard is still starting in its pod
            return {run: t for run, t in tags.items() if "loss" in t} or None

        [(run, tags)] = testkit.eventually(loss_tags, what="the experiment's scalars in TensorBoard").items()
        assert {"loss", "accuracy", "learning_rate"} <= set(tags)
        points = get_json(f"{url}/data/plugin/scalars/scalars?run={urllib.parse.quote(run)}&tag=loss")
        assert points and all(len(p) == 3 and p[1] >= 1 for p in points)  # [wall time, step, value]
        assert cluster.ops(uuid)["experiment"].status == Status.RUNNING  # read while it trains
        cluster.engine.stop(uuid)
        assert cluster.engine.wait(uuid, timeout=GUARD, include_services=True) == "stopped"
        # TensorBoard exits 0 on SIGTERM: still a stopped run, not a succeeded one.
        assert {r.name: r.status for r in cluster.store.children(uuid)} == {
            "experiment": Status.STOPPED,
            "tensorboard": Status.STOPPED,
        }


@pytest.mark.parametrize(
    ("image", "settings"),
    [
        ("busybox:1.36", {}),  # no python3: the runtime cannot start the container (StartError, exit 128)
        ("registry.invalid/no-such-image:1", {"image_pull_grace": 0.0}),  # never pulled
    ],
)
def test_tensorboard_is_skipped_when_the_experiment_fails_before_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, image: str, settings: dict[str, Any]
) -> None:
    with contextlib.contextmanager(make_seed_cluster)(tmp_path, monkeypatch, **settings) as cluster:
        uuid = cluster.submit(load_pipeline(SEED, {"image": image, "max_seconds": "2", "epochs": "40"}))
        assert cluster.wait(uuid) == "failed"
        ops = cluster.ops(uuid)
        assert ops["experiment"].status == Status.FAILED
        assert ops["tensorboard"].status == Status.SKIPPED  # its event can no longer happen
        assert ops["tensorboard"].started_at is None
        assert not [
            e for e in cluster.events if e.run_uuid == ops["experiment"].uuid and e.kind == "run_status_running"
        ]


EXAMPLES = SEED.parent


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_the_example_pipelines_run_unchanged_on_stock_images(
    seed_cluster: Cluster, receiver: Receiver, example: str
) -> None:
    cluster = seed_cluster
    params = {"report_url": receiver.url} if example != "params-and-outputs.yaml" else {}
    if example == SEED.name:
        params.update(max_seconds="2", epochs="40")
    uuid = cluster.submit(load_pipeline(EXAMPLES / example, params))
    expected_dag = "succeeded"
    if example == SEED.name:
        # TensorBoard is a service: it would serve until its timeout, so it is stopped once it runs (serving is
        # the test above). A DAG with a stopped op is `stopped`, as on the local executor.
        def board_running(e: EngineEvent) -> bool:
            return e.dag_uuid == uuid and e.name == "tensorboard" and e.kind == "run_status_running"

        cluster.wait_event(board_running)
        board = next(e.run_uuid for e in list(cluster.events) if board_running(e))
        cluster.engine.stop(board)
        expected_dag = "stopped"
    assert cluster.engine.wait(uuid, timeout=GUARD, include_services=True) == expected_dag
    statuses = {r.name: r.status.value for r in cluster.store.children(uuid)}
    # What the same files give on the local executor with these params: `alert` only runs on a failure.
    expected = {name: "succeeded" for name in statuses}
    if example == "hooks-and-conditions.yaml":
        expected["alert"] = "upstream_failed"
    if example == SEED.name:
        expected["tensorboard"] = "stopped"
    assert statuses == expected
    if "report_url" in params:  # the hooks posted, from python:3.11-slim
        with receiver.got:
            assert receiver.got.wait_for(lambda: receiver.messages, timeout=GUARD)
        assert {m["run"]["status"] for m in receiver.messages} == {"succeeded"}


# -- connections ------------------------------------------------------------------------------------------

CONNECTED = """
kind: component
name: connected
run:
  kind: job
  connections: [creds, team]
  container:
    image: python:3.11-slim
    command:
      - python
      - -c
      - "import os; print(open('/etc/creds/token').read(), os.environ['REGION'], os.environ['ENDPOINT'])"
"""


def test_a_pod_reads_a_secrets_file_and_env_from_its_connections(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_file = tmp_path / "config.yaml"
    config_file.write_text(
        "connections:\n"
        "  - {name: creds, kind: custom, secret: {name: creds, mountPath: /etc/creds, items: [token]},"
        " env: [{name: REGION, value: eu-west-1}]}\n"
        "  - {name: team, kind: custom, configMap: {name: team}}\n"
    )
    monkeypatch.setenv("POLYNB_CONFIG", str(config_file))
    assert cluster.emulator.kubeconfig is not None
    api = client.CoreV1Api(config.new_client_from_config(str(cluster.emulator.kubeconfig)))
    secret: Any = {"metadata": {"name": "creds"}, "stringData": {"token": "s3cr3t", "other": "x"}}
    api.create_namespaced_secret("default", secret)  # the client takes dicts as well as its models
    config_map: Any = {"metadata": {"name": "team"}, "data": {"ENDPOINT": "http://e"}}
    api.create_namespaced_config_map("default", config_map)
    component = load_text(CONNECTED, "connected.yaml")
    uuid = cluster.submit(build_pipeline(component, registry=cluster.registry, base_dir=cluster.home))
    assert cluster.wait(uuid) == "succeeded", cluster.logs(uuid)
    assert "s3cr3t eu-west-1 http://e" in cluster.logs(uuid)


# -- events from inside pods (polynb.tracking), through the main container's log ----------------------------

TRAIN = """
import os, pathlib, sys, time
from polynb import tracking
out = tracking.outputs_path()
out.mkdir(parents=True, exist_ok=True)
ckpt = out / "epoch-1.ckpt"
ckpt.write_text("weights of epoch 1")
print("partial output without a newline", end="")
tracking.log_artifact(ckpt, kind="checkpoint")
tracking.log_metrics(step=1, loss=0.5)
deadline = time.monotonic() + 150  # a guard only: evaluate writes the file as soon as it runs
while not (out / "evaluated").exists():
    if time.monotonic() > deadline:
        sys.exit("evaluate did not run while train ran")
    time.sleep(0.05)
tracking.emit("trained", epochs=1)
print("train done")
"""

EVALUATE = """
import pathlib, sys
from polynb import tracking
checkpoint = pathlib.Path(sys.argv[1])
score = checkpoint.read_text()
(checkpoint.parent / "evaluated").write_text(score)
tracking.log_outputs(score=score)
"""

EARLY_EVAL = """
kind: component
name: early-eval
run:
  kind: dag
  operations:
    - name: train
      component:
        name: train
        run:
          kind: job
          container: {image: python:3.11-slim, command: [python, -c, TRAIN_CODE]}
    - name: evaluate
      events: [{ref: ops.train, kinds: [run_new_artifacts]}]
      params: {checkpoint: {ref: ops.train, value: artifacts.latest}}
      component:
        name: evaluate
        inputs: [{name: checkpoint, type: str}]
        run:
          kind: job
          container: {image: python:3.11-slim, command: [python, -c, EVALUATE_CODE], args: ["{{ checkpoint }}"]}
    - name: announce
      events: [{ref: ops.train, kinds: [project_custom_event]}]
      component:
        name: announce
        run:
          kind: job
          container: {image: python:3.11-slim, command: [python, -c, "print('announced')"]}
"""


def early_eval(cluster: Cluster, train: str = TRAIN) -> Pipeline:
    text = EARLY_EVAL.replace("TRAIN_CODE", json.dumps(textwrap.dedent(train)))
    text = text.replace("EVALUATE_CODE", json.dumps(EVALUATE))
    return build_pipeline(load_text(text), registry=cluster.registry, base_dir=cluster.home)


def op_events(cluster: Cluster, uuid: str) -> list[tuple[str, dict[str, Any]]]:
    return [(e.kind, e.payload) for e in cluster.store.events(run_uuid=uuid) if not e.kind.startswith("run_status_")]


def test_an_op_starts_on_an_artifact_a_running_pod_logs_and_reads_its_path(seed_cluster: Cluster) -> None:
    cluster = seed_cluster
    dag = cluster.submit(early_eval(cluster))
    assert cluster.wait(dag) == "succeeded"
    ops = cluster.ops(dag)
    train, evaluate = ops["train"], ops["evaluate"]
    # evaluate ran while train ran (train waited for its file), from the path train logged in its pod: the
    # artifacts claim is mounted at the same place in every pod.
    assert evaluate.outputs == {"score": "weights of epoch 1"}
    assert ops["announce"].status == Status.SUCCEEDED  # a custom event from inside the pod started it
    ckpt = f"/plx-context/artifacts/{train.uuid}/outputs/epoch-1.ckpt"
    assert op_events(cluster, train.uuid) == [
        ("run_new_artifacts", {"path": ckpt, "kind": "checkpoint", "name": "epoch-1.ckpt"}),
        ("model_version_new_metric", {"metrics": {"loss": 0.5}, "step": 1}),
        ("project_custom_event", {"name": "trained", "epochs": 1}),
    ]
    # The markers are the executor's, not the user's: the log reads as the program wrote it.
    logs = cluster.logs(train.uuid)
    assert "polynb-event" not in logs
    assert "partial output without a newline" in logs and "train done" in logs


def test_a_dropped_log_stream_is_reopened_without_repeating_or_losing_an_event(seed_cluster: Cluster) -> None:
    cluster = seed_cluster
    assert cluster.emulator.kubelet is not None
    gate = claim_folder(cluster.emulator.kubelet.root, "default", CLAIM) / "go"
    train = """
        import os, pathlib, sys, time
        from polynb import tracking
        tracking.emit("first")
        deadline = time.monotonic() + 150  # a guard only: the test opens the gate once the stream dropped
        while not pathlib.Path("/plx-context/artifacts/go").exists():
            if time.monotonic() > deadline:
                sys.exit("no gate")
            time.sleep(0.05)
        tracking.emit("second")
        ckpt = tracking.outputs_path() / "model.ckpt"
        ckpt.write_text("weights after the drop")
        tracking.log_artifact(ckpt)
        deadline = time.monotonic() + 150
        while not (ckpt.parent / "evaluated").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    """
    dag = cluster.submit(early_eval(cluster, train))

    def first_recorded(e: EngineEvent) -> bool:
        return e.dag_uuid == dag and e.kind == "project_custom_event"

    cluster.wait_event(first_recorded)
    cluster.emulator.drop_logs()  # the stream that brought "first" breaks, as a network failure would
    gate.write_text("")
    assert cluster.wait(dag) == "succeeded"
    train_run = cluster.ops(dag)["train"]
    assert [(k, p.get("name")) for k, p in op_events(cluster, train_run.uuid)] == [
        ("project_custom_event", "first"),
        ("project_custom_event", "second"),
        ("run_new_artifacts", "model.ckpt"),
    ]
    assert cluster.ops(dag)["evaluate"].outputs == {"score": "weights after the drop"}


SIDE_EVENTS = """
kind: component
name: side-events
run:
  kind: dag
  operations:
    - name: train
      component:
        name: train
        run:
          kind: job
          init: [{container: {name: prepare, image: python:3.11-slim, command: [python, -c, INIT_CODE]}}]
          sidecars: [{name: watcher, image: python:3.11-slim, command: [python, -c, SIDECAR_CODE]}]
          container: {image: python:3.11-slim, command: [python, -c, MAIN_CODE]}
    - name: on-init
      events: [{ref: ops.train, kinds: [alert_info]}]
      component: {name: on-init, run: {kind: job, container: {image: python:3.11-slim, command: [python, -c, pass]}}}
    - name: on-sidecar
      events: [{ref: ops.train, kinds: [alert_warning]}]
      params: {train: {ref: ops.train, value: globals.uuid}}
      component:
        name: on-sidecar
        inputs: [{name: train, type: str}]
        run:
          kind: job
          container:
            image: python:3.11-slim
            command: [python, -c, "import sys; open(sys.argv[1], 'w').write('seen')"]
            args: ["/plx-context/artifacts/{{ train }}/outputs/sidecar-seen"]
"""
SIDE_INIT = "from polynb import tracking; tracking.alert('info', 'prepared')"
SIDE_SIDECAR = (
    "import time; from polynb import tracking; tracking.alert('warning', 'from the sidecar'); time.sleep(600)"
)
SIDE_MAIN = """
import pathlib, sys, time
from polynb import tracking
seen = tracking.outputs_path() / "sidecar-seen"
deadline = time.monotonic() + 150  # a guard only: on-sidecar writes the file as soon as it runs
while not seen.exists():
    if time.monotonic() > deadline:
        sys.exit("the sidecar's event did not start on-sidecar while train ran")
    time.sleep(0.05)
"""


def test_events_from_init_containers_and_native_sidecars_are_followed_too(seed_cluster: Cluster) -> None:
    cluster = seed_cluster
    text = SIDE_EVENTS.replace("INIT_CODE", json.dumps(SIDE_INIT)).replace("SIDECAR_CODE", json.dumps(SIDE_SIDECAR))
    text = text.replace("MAIN_CODE", json.dumps(textwrap.dedent(SIDE_MAIN)))
    dag = cluster.submit(build_pipeline(load_text(text), registry=cluster.registry, base_dir=cluster.home))
    assert cluster.wait(dag) == "succeeded", cluster.logs(dag)
    ops = cluster.ops(dag)
    # on-sidecar ran while train's main container waited for it: the sidecar's log was followed live.
    assert ops["on-init"].status == Status.SUCCEEDED and ops["on-sidecar"].status == Status.SUCCEEDED
    events = sorted((k, p.get("message")) for k, p in op_events(cluster, ops["train"].uuid))
    assert events == [("alert_info", "prepared"), ("alert_warning", "from the sidecar")]


DRAINED = """
version: 1.1
kind: component
name: fit
termination: {maxRetries: 1}
run:
  kind: job
  container:
    image: python:3.11-slim
    command:
      - python3
      - -c
      - |
        import os, time
        outputs = os.environ['POLYAXON_RUN_OUTPUTS_PATH']
        os.makedirs(outputs, exist_ok=True)
        mark = os.path.join(outputs, 'tried')
        again = os.path.exists(mark)
        open(mark, 'w').close()
        print('attempt', 2 if again else 1, flush=True)
        time.sleep(0 if again else 300)
"""


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not on PATH")
def test_a_run_evicted_by_a_node_drain_is_retried_on_another_node(seed_cluster: Cluster) -> None:
    # A node upgrade drains the node under a training: the eviction fails the attempt (it did not end by itself,
    # nor was it stopped), so the op's maxRetries start it again, on a node that takes pods, where it ends.
    cluster = seed_cluster
    uuid = cluster.submit(build_pipeline(load_text(DRAINED), params={}, registry=cluster.registry,
                                         base_dir=cluster.home))  # fmt: skip
    cluster.wait_event(lambda e: e.run_uuid == uuid and e.kind == "run_status_running")
    testkit.eventually(lambda: "attempt 1" in cluster.logs(uuid), what="the first attempt's line")
    (first,) = cluster.emulator.objects("pods", selector=f"polynb.io/run={uuid}")
    node = first["spec"]["nodeName"]
    assert cluster.emulator.kubeconfig is not None
    testkit.kubectl(cluster.emulator.kubeconfig, "drain", node, "--delete-emptydir-data", "--timeout=60s")
    assert cluster.wait(uuid) == "succeeded"
    retried = [c.reason for c in cluster.store.status_history(uuid) if c.status == Status.RETRYING]
    assert retried == ["EvictionByEvictionAPI"]
    assert cluster.logs(uuid).splitlines() == ["attempt 1", "attempt 2"]
    nodes = {p["metadata"]["labels"]["polynb.io/attempt"]: p["spec"]["nodeName"]
             for p in cluster.emulator.objects("pods", selector=f"polynb.io/run={uuid}")}  # fmt: skip
    assert node not in nodes.values()


# -- the run's folders ----------------------------------------------------------------------------------

WRITER = """
import os, sys
outputs = os.environ["POLYAXON_RUN_OUTPUTS_PATH"]
# No makedirs: the folders are there when the op starts, as on the local executor.
with open(os.path.join(outputs, "model.pt"), "wb") as f:
    f.write(b"weights")
with open(os.path.join(outputs, "tensorboard", "events.out.tfevents.1"), "wb") as f:
    f.write(b"scalars")
print("wrote", sorted(os.listdir(outputs)), "as uid", os.getuid())
"""
FIRST_ENTRIES = {
    "none": "",
    # polynb's tools image makes the folders, then writes its file
    "file": "init: [{file: {filename: cfg.txt, content: hi}}]",
    # the user's own image writes into them before the main container starts
    "container": 'init: [{container: {name: prepare, image: busybox:1.36, command: [sh, -c, "echo ready >'
    ' $POLYAXON_RUN_OUTPUTS_PATH/tensorboard/prepared"]}}]',
}


def one_job(cluster: Cluster, code: str, *, run: str = "", component: str = "") -> Pipeline:
    text = f"""\
kind: component
name: writer
{component}
run:
  kind: job
  {run}
  container: {{image: python:3.11-slim, command: [python3, -c, {json.dumps(textwrap.dedent(code))}]}}
"""
    return build_pipeline(load_text(text), registry=cluster.registry, base_dir=cluster.home)


@pytest.mark.parametrize(("volume", "first"), [
    ("emptyDir", "none"), ("emptyDir", "file"), ("claim", "none"), ("claim", "container"),
])  # fmt: skip
def test_a_job_writes_into_its_outputs_folders_without_making_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, volume: str, first: str
) -> None:
    maker = make_seed_cluster if volume == "claim" else make_cluster
    with contextlib.contextmanager(maker)(tmp_path, monkeypatch) as cluster:
        uuid = cluster.submit(one_job(cluster, WRITER, run=FIRST_ENTRIES[first]))
        assert cluster.wait(uuid) == "succeeded", cluster.logs(uuid)
        assert "wrote ['model.pt', 'tensorboard']" in cluster.logs(uuid)
        assert cluster.emulator.kubelet is not None
        if volume == "claim":
            outputs = claim_folder(cluster.emulator.kubelet.root, "default", CLAIM) / uuid / "outputs"
            assert (outputs / "model.pt").read_bytes() == b"weights"
            assert (outputs / "tensorboard" / "events.out.tfevents.1").read_bytes() == b"scalars"
            assert (outputs / "tensorboard" / "prepared").exists() == (first == "container")
        # Nothing to read in the run's log but its own (the folders' container is left out when it has nothing
        # to say).
        logs = sorted(p.name for p in (cluster.home / "artifacts" / uuid / "logs").iterdir())
        assert not any("folders" in name for name in logs), logs


def test_under_the_restricted_profile_the_folders_are_the_pods_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The pod's runAsUser makes the folders (then writes there); polynb's tools init entries run as 65534.
    with contextlib.contextmanager(make_cluster)(tmp_path, monkeypatch, security_profile="restricted") as cluster:
        run = "environment: {securityContext: {runAsUser: 1000, runAsGroup: 1000}}"
        uuid = cluster.submit(one_job(cluster, WRITER, run=run))
        assert cluster.wait(uuid) == "succeeded", cluster.logs(uuid)
        assert "as uid 1000" in cluster.logs(uuid)


def test_a_retry_finds_the_folders_of_the_attempt_before_on_the_claim(seed_cluster: Cluster) -> None:
    cluster = seed_cluster
    code = """
        import os, sys
        outputs = os.environ["POLYAXON_RUN_OUTPUTS_PATH"]
        first = not os.path.exists(os.path.join(outputs, "attempts"))
        with open(os.path.join(outputs, "attempts"), "a") as f:
            f.write("x")
        with open(os.path.join(outputs, "tensorboard", "events"), "a") as f:
            f.write("x")
        sys.exit("the first attempt fails" if first else 0)
    """
    uuid = cluster.submit(one_job(cluster, code, component="termination: {maxRetries: 1}"))
    assert cluster.wait(uuid) == "succeeded", cluster.logs(uuid)
    assert cluster.emulator.kubelet is not None
    outputs = claim_folder(cluster.emulator.kubelet.root, "default", CLAIM) / uuid / "outputs"
    assert (outputs / "attempts").read_text() == "xx" and (outputs / "tensorboard" / "events").read_text() == "xx"
    assert "run_status_retrying" in {e.kind for e in cluster.store.events(run_uuid=uuid)}


def test_a_service_finds_its_outputs_folders(seed_cluster: Cluster) -> None:
    cluster = seed_cluster
    code = """
        import os, time
        path = os.path.join(os.environ["POLYAXON_RUN_OUTPUTS_PATH"], "tensorboard", "serving")
        with open(path, "w") as f:
            f.write("up")
        time.sleep(600)
    """
    spec = load_text(f"""\
kind: component
name: board
run:
  kind: service
  ports: [6006]
  container: {{image: python:3.11-slim, command: [python3, -c, {json.dumps(textwrap.dedent(code))}]}}
""")
    uuid = cluster.submit(build_pipeline(spec, registry=cluster.registry, base_dir=cluster.home))
    assert cluster.emulator.kubelet is not None
    outputs = claim_folder(cluster.emulator.kubelet.root, "default", CLAIM) / uuid / "outputs"
    serving = outputs / "tensorboard" / "serving"
    testkit.eventually(lambda: serving.exists() or cluster.store.get_run(uuid).is_final, what="the service's file")
    assert serving.read_text() == "up", cluster.logs(uuid)
    cluster.engine.stop(uuid)
    assert cluster.wait(uuid) == "stopped"


def test_a_claim_the_pods_user_cannot_write_warns_and_a_run_writing_no_outputs_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A claim whose root only root may write (many provisioners make it so), pods under `restricted`: the
    # folders cannot be made. Best effort: a warning in the run's log, and a run that writes no outputs runs.
    with contextlib.contextmanager(make_seed_cluster)(tmp_path, monkeypatch, security_profile="restricted") as cluster:
        assert cluster.emulator.kubelet is not None
        root = claim_folder(cluster.emulator.kubelet.root, "default", CLAIM)
        root.mkdir(parents=True)
        root.chmod(0o755)  # owned by root, as the emulator runs
        run = "environment: {securityContext: {runAsUser: 1000}}"
        uuid = cluster.submit(one_job(cluster, "print('evaluated, nothing to keep')", run=run))
        assert cluster.wait(uuid) == "succeeded", cluster.logs(uuid)
        logs = cluster.logs(uuid)
        assert f"polynb: warning: cannot create the run's folder /plx-context/artifacts/{uuid} (" in logs
        assert "uid 1000" in logs and "evaluated, nothing to keep" in logs
        assert not (root / uuid).exists()
        archived = sorted(p.name for p in (cluster.home / "artifacts" / uuid / "logs").iterdir())
        assert archived == ["00-polynb-folders.log", "01-main.log"]
