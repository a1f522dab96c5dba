"""Init entries reading a connection: ``polynb check`` says at the entry's line what cannot run (an unknown name, a
kind an init cannot read, credentials only the cluster has), and the compiler turns the entry into a ``git`` clone
or an ``artifacts``/``paths`` copy carrying the connection's entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from polynb.cli.app import main
from polynb.compiler.compile import compile_op
from polynb.compiler.errors import CompileError
from polynb.compiler.types import CompiledOp, Placement
from polynb.spec.load import load_text
from polynb.spec.models import Component

CONFIG = """\
connections:
  - {name: repo, kind: git, schema: {url: "https://git.example.com/team/project.git", revision: main}}
  - {name: lake, kind: s3, schema: {bucket: "s3://lake/data"}, secret: {name: lake-keys}}
  - {name: cache, kind: s3, schema: {bucket: "s3://cache"}, env: [{name: AWS_ACCESS_KEY_ID, value: k}]}
  - {name: claim, kind: volume_claim, schema: {claimName: c, mountPath: /c}}
"""

OP = """\
kind: component
name: reader
run:
  kind: job
  init:
    - connection: INIT
  container: {image: python:3.11, command: [python, -c, "print(1)"]}
"""


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    monkeypatch.setenv("POLYNB_CONFIG", str(path))
    return path


def _check(tmp_path: Path, init: str, *extra: str) -> tuple[int, str]:
    op = tmp_path / "op.yaml"
    op.write_text(OP.replace("connection: INIT", init))
    code = main(["check", "-f", str(op), *extra])
    return code, str(op)


def test_an_unknown_connection_is_a_check_error_at_its_line(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, op = _check(tmp_path, "connection: nope")
    assert code == 1
    out = capsys.readouterr().out
    assert f"{op}:6:19: run.init[0].connection: no connection named nope in {config} " in out
    assert "(connections: cache, claim, lake, repo)" in out


@pytest.mark.parametrize(
    ("init", "message"),
    [
        ("connection: claim", "connection claim is of kind volume_claim; an init entry reads one of: git,"),
        ("{connection: lake, git: {revision: v1}}", "connection lake is a bucket (s3): write `artifacts:`"),
        ("{connection: repo, artifacts: {dirs: [x]}}", "connection repo is a git repository: write `git:`"),
    ],
)
def test_an_init_that_cannot_read_its_connection_is_a_check_error(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str], init: str, message: str
) -> None:
    code, op = _check(tmp_path, init)
    assert code == 1
    out = capsys.readouterr().out
    assert f"{op}:6:" in out and f"run.init[0].connection: {message}" in out


def test_credentials_only_the_cluster_has_refuse_the_local_executor(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.aws/credentials
    code, op = _check(tmp_path, "{connection: lake, artifacts: {dirs: [x]}}", "--executor", "local")
    assert code == 1
    out = capsys.readouterr().out
    assert f"{op}:6:" in out and "connection lake has a secret, which only Kubernetes can provide" in out
    code, _ = _check(tmp_path, "{connection: lake, artifacts: {dirs: [x]}}", "--executor", "kubernetes")
    assert code == 0
    assert "Kubernetes only" in capsys.readouterr().err
    code, _ = _check(tmp_path, "{connection: cache, artifacts: {dirs: [x]}}", "--executor", "local")
    assert code == 0, capsys.readouterr()


def compile_reader(text: str) -> CompiledOp:
    component = load_text(text, "op.yaml")
    assert isinstance(component, Component)
    placement = Placement(artifacts_path="/a", run_artifacts_path="/a/r", run_outputs_path="/a/r/outputs")
    return compile_op(uuid="u1", name="reader", component=component, inputs={}, contexts={},
                      placement=placement, globals_={})  # fmt: skip


def test_a_git_connection_compiles_to_a_clone_at_its_revision(config: Path) -> None:
    op = compile_reader(OP.replace("connection: INIT", "connection: repo"))
    (step,) = op.init
    assert step.kind == "git"
    assert step.spec["url"] == "https://git.example.com/team/project.git"
    assert step.spec["revision"] == "main"
    assert step.spec["connection"]["name"] == "repo"
    op = compile_reader(OP.replace("connection: INIT", "{connection: repo, git: {revision: v2, flags: [--depth 1]}}"))
    assert (op.init[0].spec["revision"], op.init[0].spec["flags"]) == ("v2", ["--depth 1"])
    assert CompiledOp.from_dict(op.to_dict()) == op


def test_a_bucket_connection_compiles_to_a_copy(config: Path) -> None:
    op = compile_reader(OP.replace("connection: INIT", "{connection: cache, artifacts: {dirs: [x], files: [y]}}"))
    (step,) = op.init
    assert (step.kind, step.spec["dirs"], step.spec["files"], step.path) == ("artifacts", ["x"], ["y"], None)
    whole = compile_reader(OP.replace("connection: INIT", "connection: cache")).init[0]
    assert (whole.kind, whole.path) == ("artifacts", "cache")  # all of it, in a folder named for it
    with pytest.raises(CompileError, match=r"run\.init\[0\]\.connection: no connection named nope"):
        compile_reader(OP.replace("connection: INIT", "connection: nope"))


def test_without_a_config_file_an_init_connection_is_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("POLYNB_CONFIG", raising=False)
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path / "home"))
    code, _ = _check(tmp_path, "connection: repo")
    assert code == 0
    assert "connection repo is not checked: no config file" in capsys.readouterr().err
