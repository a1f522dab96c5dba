"""``polynb connections list|check``: the config file's connections, and what this machine can tell about them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from support.s3kit import MotoServer

from polynb.cli.app import main


def write_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    monkeypatch.setenv("POLYNB_CONFIG", str(path))
    return path


def test_list_says_where_each_connection_points_and_what_it_brings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(
        tmp_path,
        monkeypatch,
        """\
artifactsStore: store
connections:
  - {name: store, kind: volume_claim, schema: {claimName: polynb-artifacts, mountPath: /artifacts}}
  - name: aws
    kind: s3
    schema: {bucket: "s3://team"}
    secret: {name: aws-creds}
    env: [{name: AWS_REGION, value: eu-west-1}]
""",
    )
    assert main(["connections", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "store  volume_claim  polynb-artifacts; at /artifacts  (artifacts store)",
        "aws    s3            s3://team; secret aws-creds as env; env AWS_REGION",
    ]


def test_check_fails_for_a_missing_host_path_and_a_git_url_that_does_not_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    write_config(
        tmp_path,
        monkeypatch,
        f"""\
connections:
  - {{name: data, kind: host_path, schema: {{hostPath: "{data}"}}}}
  - {{name: repo, kind: git, schema: {{url: "{repo}"}}}}
  - {{name: aws, kind: s3, schema: {{bucket: "s3://team"}}, secret: {{name: aws-creds}}}}
""",
    )
    assert main(["connections", "check"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"data  host_path  ok  {data} is a readable directory"
    assert out[1] == f"repo  git  ok  {repo} answers"
    assert out[2] == "aws  s3  unchecked  credentials from secret aws-creds on the cluster"

    data.rmdir()
    write_config(
        tmp_path,
        monkeypatch,
        f"""\
connections:
  - {{name: data, kind: host_path, schema: {{hostPath: "{data}"}}}}
  - {{name: repo, kind: git, schema: {{url: "{tmp_path / "nowhere"}"}}}}
""",
    )
    assert main(["connections", "check"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"data  host_path  failed  {data}: no such directory"
    assert out[1].startswith(f"repo  git  failed  {tmp_path / 'nowhere'}: ")


def test_check_of_an_unknown_name_and_a_bad_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, monkeypatch, "connections:\n  - {name: a, kind: custom}\n")
    assert main(["connections", "check", "b"]) == 1
    assert f"no connection named b in {path} (connections: a)" in capsys.readouterr().err
    write_config(tmp_path, monkeypatch, "connections:\n  - {name: a, kind: ftp}\n")
    assert main(["connections", "list"]) == 1
    assert f"{path}:2:21: connections[0].kind: Input should be" in capsys.readouterr().err


def test_check_lists_an_s3_bucket_with_the_connections_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server = MotoServer().start()
    try:
        server.fs().mkdir("team")
        env = ", ".join(f"{{name: {e['name']}, value: {e['value']!r}}}" for e in server.env())
        write_config(
            tmp_path,
            monkeypatch,
            f"""\
connections:
  - {{name: data, kind: s3, schema: {{bucket: "s3://team/incoming"}}, env: [{env}], secret: {{name: aws-creds}}}}
  - {{name: gone, kind: s3, schema: {{bucket: "s3://nobody"}}, env: [{env}]}}
""",
        )
        assert main(["connections", "check", "data"]) == 0
        assert capsys.readouterr().out.splitlines() == [
            f"data  s3  ok  s3://team at {server.url} answers (ops get secret aws-creds on the cluster)"
        ]
        assert main(["connections", "check", "gone"]) == 1
        assert capsys.readouterr().out.startswith(f"gone  s3  failed  s3://nobody at {server.url}: no such bucket")
        server.stop()
        assert main(["connections", "check", "data"]) == 1
        assert capsys.readouterr().out.startswith(f"data  s3  failed  s3://team/incoming at {server.url}: ")
    finally:
        server.stop()


def test_check_of_a_git_connection_uses_its_credentials_without_showing_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from support.gitkit import GitHttpServer, bare_repo

    repos = tmp_path / "repos"
    repos.mkdir()
    bare_repo(repos, "project", {"README": "x\n"})
    server = GitHttpServer(repos, "carol", "tok3n").start()
    try:
        for credentials, code, status in (("carol:tok3n", 0, "ok"), ("carol:wrong", 1, "failed")):
            write_config(tmp_path, monkeypatch, f"connections:\n  - {{name: repo, kind: git, schema: {{url: "
                         f"'{server.url}/project.git'}}, env: [{{name: POLYAXON_GIT_CREDENTIALS, value: "
                         f"'{credentials}'}}]}}\n")  # fmt: skip
            assert main(["connections", "check"]) == code
            out = capsys.readouterr().out
            assert out.startswith(f"repo  git  {status}  {server.url}/project.git")
            assert "tok3n" not in out and "wrong" not in out
    finally:
        server.stop()
