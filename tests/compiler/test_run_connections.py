"""``run.connections``: names checked against the config file's ``connections:`` (``polynb check`` at their line),
and the named entries carried by the compiled op for the executor."""

from __future__ import annotations

from pathlib import Path

import pytest

from polynb.cli.app import main
from polynb.compiler.compile import compile_op
from polynb.compiler.errors import CompileError
from polynb.compiler.types import CompiledOp, Placement
from polynb.spec.load import load_text
from polynb.spec.models import Component

OP = """\
kind: component
name: reader
run:
  kind: job
  connections: [aws, nope]
  container: {image: python:3.11, command: [python, -c, "print(1)"]}
"""

CONFIG = """\
connections:
  - name: aws
    kind: s3
    schema: {bucket: "s3://team"}
    secret: {name: aws-creds, mountPath: /etc/aws}
    env: [{name: AWS_REGION, value: eu-west-1}]
"""


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    monkeypatch.setenv("POLYNB_CONFIG", str(path))
    return path


def test_an_unknown_connection_is_a_check_error_at_its_line(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    op = tmp_path / "op.yaml"
    op.write_text(OP)
    assert main(["check", "-f", str(op)]) == 1
    out = capsys.readouterr().out
    assert f"{op}:5:22: run.connections[1]: no connection named nope in {config} (connections: aws)" in out
    op.write_text(OP.replace(", nope", ""))
    assert main(["check", "-f", str(op)]) == 0


def test_without_a_config_file_connections_are_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("POLYNB_CONFIG", raising=False)
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path / "home"))
    op = tmp_path / "op.yaml"
    op.write_text(OP)
    assert main(["check", "-f", str(op)]) == 0
    assert "connections are not checked: no config file" in capsys.readouterr().err


def compile_reader(text: str) -> CompiledOp:
    component = load_text(text, "op.yaml")
    assert isinstance(component, Component)
    placement = Placement(artifacts_path="/a", run_artifacts_path="/a/r", run_outputs_path="/a/r/outputs")
    return compile_op(uuid="u1", name="reader", component=component, inputs={}, contexts={},
                      placement=placement, globals_={})  # fmt: skip


def test_the_compiled_op_carries_the_named_entries_and_survives_the_store(config: Path) -> None:
    op = compile_reader(OP.replace(", nope", ""))
    assert op.connections == (
        {"name": "aws", "kind": "s3", "schema": {"bucket": "s3://team"},
         "secret": {"name": "aws-creds", "mountPath": "/etc/aws"},
         "env": [{"name": "AWS_REGION", "value": "eu-west-1"}]},
    )  # fmt: skip
    assert CompiledOp.from_dict(op.to_dict()) == op
    with pytest.raises(CompileError, match=r"run\.connections: no connection named nope"):
        compile_reader(OP)


ENV_FROM = """\
kind: component
name: reader
run:
  kind: job
  container:
    image: python:3.11
    command: [env]
    envFrom: [{secretRef: {name: creds}}]
"""


def test_env_from_is_an_error_for_the_local_executor_and_accepted_for_kubernetes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("POLYNB_EXECUTOR", raising=False)
    op = tmp_path / "op.yaml"
    op.write_text(ENV_FROM)
    assert main(["check", "-f", str(op)]) == 1
    assert f"{op}:8:14: run.container.envFrom: Kubernetes only: `envFrom`" in capsys.readouterr().out
    assert main(["check", "-f", str(op), "--executor", "kubernetes"]) == 0
    monkeypatch.setenv("POLYNB_EXECUTOR", "kubernetes")
    assert main(["check", "-f", str(op)]) == 0
