"""``polynb run --executor kubernetes`` (and ``POLYNB_EXECUTOR``) against the Kubernetes API emulator:
the same commands, with pods scripted by image, from separate processes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from k8s_emulator import Emulator, testkit
from support.clikit import Cli

from polynb.lifecycle import Status

emulator = testkit.emulator
kubeconfig = testkit.kubeconfig

SCRIPTS: dict[str, dict[str, Any]] = {
    "emu/ok": {"logs": ["training", "done"]},
    "emu/hold": {"hold": True, "logs": ["serving"]},
}

DAG = """
version: 1.1
kind: component
name: on-k8s
run:
  kind: dag
  operations:
    - name: train
      component: {run: {kind: job, container: {image: emu/ok, command: [python, train.py]}}}
    - name: evaluate
      dependencies: [train]
      component: {run: {kind: job, container: {image: emu/ok, command: [python, evaluate.py]}}}
"""

HOLDING = """
version: 1.1
kind: component
name: holding
run:
  kind: dag
  operations:
    - name: forever
      component: {run: {kind: job, container: {image: emu/hold, command: [python, serve.py]}}}
"""


@pytest.fixture
def cli(emulator: Emulator, kubeconfig: Path, tmp_path: Path) -> Iterator[Cli]:
    emulator.scripts.update(SCRIPTS)
    kit = Cli(tmp_path)
    kit.extra_env = {"KUBECONFIG": str(kubeconfig), "POLYNB_K8S_PORT_FORWARD": "0"}
    yield kit
    kit.cleanup()


def test_a_dag_runs_on_kubernetes_and_its_logs_read_from_another_process(cli: Cli) -> None:
    code, doc = cli.run_json("run", "-f", str(cli.write("dag.yaml", DAG)), "--executor", "kubernetes", "--json")
    assert code == 0
    assert doc["status"] == "succeeded"
    assert {op["name"]: op["status"] for op in doc["ops"]} == {"train": "succeeded", "evaluate": "succeeded"}
    with cli.store() as store:
        assert {r.executor for r in store.children(doc["uuid"])} == {"kubernetes"}
    logs = cli.run("logs", "train")
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.splitlines() == ["training", "done"]


def test_polynb_executor_chooses_kubernetes_and_stop_reaches_the_engine(cli: Cli) -> None:
    cli.extra_env["POLYNB_EXECUTOR"] = "kubernetes"
    started = cli.run("run", "-f", str(cli.write("dag.yaml", HOLDING)), "--no-wait")
    assert started.returncode == 0, started.stderr
    uuid = started.stdout.strip()
    cli.wait_for(lambda s: (op := cli.op(s, "holding", "forever")) is not None and op.status == Status.RUNNING,
                 "the op running on kubernetes")  # fmt: skip
    stopped = cli.run("stop", uuid)
    assert stopped.returncode == 0, stopped.stderr
    with cli.store() as store:
        assert store.get_run(uuid).status == Status.STOPPED
        assert {r.status for r in store.children(uuid)} == {Status.STOPPED}
        assert {r.executor for r in store.children(uuid)} == {"kubernetes"}


def test_stopping_a_kubernetes_run_whose_engine_was_killed_records_it_stopped(cli: Cli, emulator: Emulator) -> None:
    # No engine runs it any more: `polynb stop` re-attaches to the Job and deletes it, so the engine that then
    # records the end finds no trace of it: it was stopped, not lost.
    cli.start("run", "-f", str(cli.write("dag.yaml", HOLDING)), "--executor", "kubernetes")
    cli.wait_for(lambda s: (op := cli.op(s, "holding", "forever")) is not None and op.status == Status.RUNNING,
                 "the op running on kubernetes")  # fmt: skip
    proc = cli.started[-1]
    proc.kill()  # SIGKILL: the Job and its pod live on
    proc.communicate(timeout=120)
    stopped = cli.run("stop", "holding")
    assert stopped.returncode == 0, stopped.stderr
    with cli.store() as store:
        op = cli.op(store, "holding", "forever")
        assert op is not None and op.status == Status.STOPPED, (op and op.status, op and op.message)
        assert store.get_run(op.dag_uuid or "").status == Status.STOPPED
    assert emulator.objects("jobs") == []


def test_kubernetes_without_a_cluster_configuration_submits_nothing(cli: Cli) -> None:
    cli.extra_env["KUBECONFIG"] = str(cli.tmp / "missing-kubeconfig")
    result = cli.run("run", "-f", str(cli.write("dag.yaml", DAG)), "--executor", "kubernetes")
    assert result.returncode == 1
    assert "kubeconfig" in result.stderr
    assert cli.runs() == []


EXAMPLES = Path(__file__).resolve().parents[2] / "notebooks" / "pipelines"
# The example pipelines' containers, scripted by image: every step (python:3.11, or the seed experiment's
# tensorflow/tensorflow:2.15.0) reports, in its termination message, the outputs any of the examples declares
# (this kubelet cannot run the real scripts); TensorBoard is told to run in an image of its own, which holds.
EXAMPLE_OUTPUTS = {"n_rows": 2000, "dataset": "synthetic", "loss": 0.12, "accuracy": 0.93, "passed": True}
STEP_SCRIPT: dict[str, Any] = {"logs": ["step done"], "message": json.dumps(EXAMPLE_OUTPUTS)}
EXAMPLE_SCRIPTS: dict[str, dict[str, Any]] = {
    "python:3.11": STEP_SCRIPT,
    "tensorflow/tensorflow:2.15.0": STEP_SCRIPT,
    "tensorboard.test/tensorboard:1": {"hold": True, "logs": ["TensorBoard serving"]},
}
EXAMPLE_PARAMS = {"experiment-tensorboard.yaml": ["-P", "tensorboard_image=tensorboard.test/tensorboard:1"]}


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_the_example_pipelines_run_unchanged_on_kubernetes(cli: Cli, emulator: Emulator, example: str) -> None:
    emulator.scripts.update(EXAMPLE_SCRIPTS)
    # TensorBoard reads the experiment's outputs: refused on per-pod emptyDirs, so the runs share a claim.
    claim = ["--k8s-artifacts-claim", "polynb-artifacts"] if example == "experiment-tensorboard.yaml" else []
    code, doc = cli.run_json(
        "run", "-f", str(EXAMPLES / example), *EXAMPLE_PARAMS.get(example, []), "--executor", "kubernetes",
        "--stop-services", "--json", *claim,
    )  # fmt: skip
    assert code == 0, doc
    assert doc["status"] == "succeeded"
    statuses = {op["name"]: op["status"] for op in doc["ops"]}
    # What the same files give on the local executor with default params: `alert` only runs on a failure.
    expected = {op: "succeeded" for op in statuses}
    if example == "hooks-and-conditions.yaml":
        expected["alert"] = "upstream_failed"
    if example == "experiment-tensorboard.yaml":
        expected["tensorboard"] = "stopped"  # a service, stopped by --stop-services once the rest is done
    assert statuses == expected
    with cli.store() as store:
        assert {r.executor for r in store.children(doc["uuid"])} == {"kubernetes"}


TENSORBOARD_DAG = """
version: 1.1
kind: component
name: watch
run:
  kind: dag
  operations:
    - name: experiment
      component: {name: experiment, run: {kind: job, container: {image: emu/ok, command: [train]}}}
    - name: tensorboard
      dependencies: [experiment]
      params: {uuids: {ref: ops.experiment, value: globals.uuid}}
      component:
        name: tensorboard
        inputs: [{name: uuids, type: str}]
        run:
          kind: job
          init: [{tensorboard: {uuids: "{{ uuids }}"}}]
          container: {image: emu/ok, command: [tensorboard]}
"""


def claims(emulator: Emulator) -> list[str]:
    return [
        j["spec"]["template"]["spec"]["volumes"][0].get("persistentVolumeClaim", {}).get("claimName", "emptyDir")
        for j in emulator.objects("jobs")
    ]


def test_reading_another_runs_artifacts_needs_the_claim_flag(cli: Cli, emulator: Emulator) -> None:
    path = str(cli.write("tb.yaml", TENSORBOARD_DAG))
    refused = cli.run("run", "-f", path, "--executor", "kubernetes")
    assert refused.returncode == 1
    assert "op 'tensorboard': init tensorboard" in refused.stderr and "--k8s-artifacts-claim NAME" in refused.stderr
    assert cli.runs() == [] and emulator.objects("jobs") == []  # nothing half-submitted
    code, doc = cli.run_json(
        "run", "-f", path, "--executor", "kubernetes", "--k8s-artifacts-claim", "shared", "--k8s-keep", "--json"
    )
    assert code == 0 and doc["status"] == "succeeded", doc
    assert claims(emulator) == ["shared", "shared"]  # kept (--k8s-keep), both on the claim


def test_flags_win_over_variables_and_the_config_file(cli: Cli, emulator: Emulator) -> None:
    (cli.home).mkdir(parents=True, exist_ok=True)
    (cli.home / "config.yaml").write_text("kubernetes:\n  artifacts_claim: from-file\n  keep_finished: true\n")
    path = str(cli.write("tb.yaml", TENSORBOARD_DAG))
    cli.extra_env["POLYNB_K8S_ARTIFACTS_CLAIM"] = "from-env"
    code, doc = cli.run_json("run", "-f", path, "--executor", "kubernetes", "--k8s-artifacts-claim", "from-flag",
                             "--json")  # fmt: skip
    assert code == 0, doc
    assert set(claims(emulator)) == {"from-flag"}
    del cli.extra_env["POLYNB_K8S_ARTIFACTS_CLAIM"]
    code, doc = cli.run_json("run", "-f", path, "--executor", "kubernetes", "--json")
    assert code == 0, doc
    assert sorted(set(claims(emulator))) == ["from-file", "from-flag"]


def test_a_bad_config_file_is_reported_with_its_position(cli: Cli) -> None:
    (cli.home).mkdir(parents=True, exist_ok=True)
    config = cli.home / "config.yaml"
    config.write_text("kubernetes:\n  namespace: ml\n  security_profile: strict\n")
    result = cli.run("run", "-f", str(cli.write("dag.yaml", DAG)), "--executor", "kubernetes")
    assert result.returncode == 1
    assert f"{config}:3:21: kubernetes.security_profile: Input should be 'default' or 'restricted'" in result.stderr
    assert cli.runs() == []


def test_the_k8s_flags_go_to_a_background_run_too(tmp_path: Path) -> None:
    import argparse

    from polynb.cli.detach import run_argv
    from polynb.cli.run import kubernetes_overrides

    args = argparse.Namespace(
        k8s_namespace=None, k8s_artifacts_claim="shared", k8s_security_profile="restricted", k8s_keep=True
    )
    values, extra = kubernetes_overrides(args)
    assert values == {"artifacts_claim": "shared", "security_profile": "restricted", "keep_finished": True}
    argv = run_argv(tmp_path / "p.yaml", [], executor="kubernetes", json_out=False, stop_services=False, extra=extra)
    assert argv[-5:] == ["--k8s-artifacts-claim", "shared", "--k8s-security-profile", "restricted", "--k8s-keep"]


def test_a_bucket_store_whose_credentials_secret_is_missing_refuses_the_run(cli: Cli, emulator: Emulator) -> None:
    cli.home.mkdir(parents=True, exist_ok=True)
    (cli.home / "config.yaml").write_text(
        "artifactsStore: runs\n"
        "connections:\n"
        "  - {name: runs, kind: s3, schema: {bucket: 's3://team-runs/polynb'}, secret: {name: aws-creds}}\n"
    )
    path = str(cli.write("tb.yaml", TENSORBOARD_DAG))
    refused = cli.run("run", "-f", path, "--executor", "kubernetes")
    assert refused.returncode == 1
    message = " ".join(refused.stderr.split())
    assert "config.yaml:1:17: connection 'runs' (the artifacts store, s3://team-runs/polynb)" in message
    assert "Secret 'aws-creds', which does not exist in namespace 'default'" in message
    assert cli.runs() == [] and emulator.objects("jobs") == [] and emulator.objects("pods") == []


def test_a_missing_namespace_is_one_clear_line_not_a_traceback(cli: Cli) -> None:
    result = cli.run("run", "-f", str(cli.write("dag.yaml", DAG)), "--executor", "kubernetes", "--k8s-namespace", "ml")
    assert result.returncode == 1
    assert "namespace 'ml' does not exist" in result.stderr
    assert "kubectl create namespace ml" in result.stderr
    assert "Traceback" not in result.stderr
