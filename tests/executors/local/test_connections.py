"""``run.connections`` on the local executor: a connection's env and its host path's directory reach the
process (the op's own env wins); a secret, a config map or a claim, which only Kubernetes holds, refuses the run
before anything of it starts, naming the connection."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from support.execkit import PY, container, make_op
from support.recorder import UpdateRecorder

from polynb.executors.local.executor import LocalExecutor


def test_env_and_host_path_files_from_connections(executor: LocalExecutor, tmp_path: Path) -> None:
    data = tmp_path / "incoming"
    data.mkdir()
    (data / "labels.txt").write_text("cat,dog\n")
    connections = (
        {"name": "incoming", "kind": "host_path", "schema": {"hostPath": str(data)}},
        {"name": "aws", "kind": "s3", "schema": {"bucket": "s3://team"},
         "env": [{"name": "AWS_REGION", "value": "eu-west-1"}, {"name": "MODE", "value": "connection"}]},
    )  # fmt: skip
    script = (
        "import json, os, pathlib; d = pathlib.Path(os.environ['POLYNB_CONNECTION_INCOMING_PATH']);"
        "print(json.dumps([os.environ['AWS_REGION'], os.environ['MODE'], (d / 'labels.txt').read_text()]))"
    )
    op = make_op(executor, container(PY, "-c", script, env={"MODE": "own"}))
    op = dataclasses.replace(op, connections=connections)
    recorder = UpdateRecorder()
    executor.submit(op, recorder)
    assert recorder.final().status == "succeeded"
    log = (Path(op.placement.run_artifacts_path) / "logs" / "main.log").read_text()
    assert json.loads(log) == ["eu-west-1", "own", "cat,dog\n"]


def test_a_connections_env_is_declared_for_the_main_container_its_host_path_is_not(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    # As in a pod: a connection's env entries come after the container's own and polynb's run variables (they
    # may refer to those), and are references in command/args; a host path's variable exists on this machine only.
    connections = (
        {"name": "incoming", "kind": "host_path", "schema": {"hostPath": str(tmp_path)}},
        {"name": "aws", "kind": "s3", "schema": {"bucket": "s3://team"},
         "env": [{"name": "BUCKET", "value": "s3://team/$(USER_DIR)/$$x"}, {"name": "MODE", "value": "conn"}]},
    )  # fmt: skip
    script = "import json, os, sys; print(json.dumps([sys.argv[1:], os.environ['BUCKET']]))"
    main = container(PY, "-c", script, "$(BUCKET)", "$(MODE)", "$(POLYNB_CONNECTION_INCOMING_PATH)",
                     env={"USER_DIR": "me", "MODE": "own"})  # fmt: skip
    op = dataclasses.replace(make_op(executor, main), connections=connections)
    recorder = UpdateRecorder()
    executor.submit(op, recorder)
    assert recorder.final().status == "succeeded"
    log = (Path(op.placement.run_artifacts_path) / "logs" / "main.log").read_text()
    assert json.loads(log) == [["s3://team/me/$x", "own", "$(POLYNB_CONNECTION_INCOMING_PATH)"], "s3://team/me/$x"]


@pytest.mark.parametrize(
    ("connection", "reason"),
    [
        ({"name": "aws", "kind": "s3", "schema": {"bucket": "b"}, "secret": {"name": "creds"}},
         "connection aws has a secret, which only Kubernetes can provide"),
        ({"name": "data", "kind": "volume_claim", "schema": {"claimName": "c"}},
         "connection data is a volume claim, which only Kubernetes can mount"),
    ],
)  # fmt: skip
def test_what_only_kubernetes_holds_is_refused_before_the_run_starts(
    executor: LocalExecutor, connection: dict[str, object], reason: str
) -> None:
    op = dataclasses.replace(make_op(executor, container(PY, "-c", "pass")), connections=(connection,))
    with pytest.raises(RuntimeError, match=reason):
        executor.submit(op, UpdateRecorder())
    assert not Path(op.placement.run_artifacts_path, "logs").exists()


def test_env_from_and_value_from_are_refused_with_the_container_named(executor: LocalExecutor) -> None:
    main = dataclasses.replace(container(PY, "-c", "pass"), k8s={"envFrom": [{"secretRef": {"name": "s"}}]})
    with pytest.raises(RuntimeError, match="container: `envFrom` needs Kubernetes"):
        executor.submit(make_op(executor, main), UpdateRecorder())
    side = dataclasses.replace(container(PY, "-c", "pass"), k8s={"env": [{"name": "K", "valueFrom": {}}]})
    with pytest.raises(RuntimeError, match=r"sidecars\[0\]: env K: valueFrom needs Kubernetes"):
        executor.submit(make_op(executor, container(PY, "-c", "pass"), sidecars=[side]), UpdateRecorder())
