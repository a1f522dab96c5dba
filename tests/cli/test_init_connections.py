"""Init entries reading connections on the local executor, end to end: a git repository served over HTTP that wants
credentials (git's own http-backend), a bucket on a real S3-compatible server, and ``artifacts`` sources fetched from
a bucket artifacts store when this machine does not have them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.clikit import Cli
from support.gitkit import GitHttpServer, bare_repo
from support.s3kit import MotoServer

SECRET = "s3cret-t0ken"

CLONE = """
version: 1.1
kind: component
name: cloner
run:
  kind: job
  init:
    - INIT
  container: {command: [sh, -c, 'cd "$POLYAXON_RUN_ARTIFACTS_PATH"; cat project/README; git -C project rev-parse HEAD']}
"""


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    kit = Cli(tmp_path)
    yield kit
    kit.cleanup()


@pytest.fixture
def moto() -> Iterator[MotoServer]:
    server = MotoServer().start()
    yield server
    server.stop()


@pytest.fixture
def git_server(tmp_path: Path) -> Iterator[tuple[GitHttpServer, str]]:
    repos = tmp_path / "repos"
    repos.mkdir()
    _, commit = bare_repo(repos, "project", {"README": "the project\n"})
    server = GitHttpServer(repos, "alice", SECRET).start()
    yield server, commit
    server.stop()


def _config(cli: Cli, text: str) -> None:
    path = cli.tmp / "config.yaml"
    path.write_text(text)
    cli.extra_env["POLYNB_CONFIG"] = str(path)


def _git_config(server: GitHttpServer, credentials: str) -> str:
    return ("connections:\n  - name: repo\n    kind: git\n"
            f"    schema: {{url: '{server.url}/project.git', revision: main}}\n"
            f"    env: [{{name: POLYAXON_GIT_CREDENTIALS, value: '{credentials}'}}]\n")  # fmt: skip


def _everything(cli: Cli, uuid: str) -> str:
    """What a user could see of a run: its logs, its statuses' messages, the command's output."""
    shown = cli.run("logs", uuid).stdout
    with cli.store() as store:
        shown += "\n".join(s.message or "" for s in store.status_history(uuid))
    return shown


@pytest.mark.parametrize("init", ["connection: repo", "{connection: repo, git: {flags: [--quiet]}}"])
def test_a_git_connection_is_cloned_with_its_credentials_never_shown(
    cli: Cli, git_server: tuple[GitHttpServer, str], init: str
) -> None:
    server, commit = git_server
    _config(cli, _git_config(server, f"alice:{SECRET}"))
    job = cli.write("job.yaml", CLONE.replace("INIT", init))
    result = cli.run("run", "-f", str(job), "--json")
    assert result.returncode == 0, result.stderr
    uuid = result.stdout.split('"uuid": "', 1)[1][:32]
    shown = _everything(cli, uuid)
    assert "the project" in shown and commit in shown
    assert SECRET not in shown + result.stdout + result.stderr
    assert any("git-upload-pack" in r for r in server.requests)


def test_wrong_git_credentials_fail_the_init_and_are_not_shown(cli: Cli, git_server: tuple[GitHttpServer, str]) -> None:
    server, _ = git_server
    _config(cli, _git_config(server, "alice:wrong-one"))
    job = cli.write("job.yaml", CLONE.replace("INIT", "connection: repo"))
    result = cli.run("run", "-f", str(job), "--json")
    assert result.returncode == 1
    uuid = result.stdout.split('"uuid": "', 1)[1][:32]
    shown = _everything(cli, uuid)
    assert "init[0] git: git clone failed" in shown
    assert "wrong-one" not in shown + result.stdout + result.stderr


FETCH = """
version: 1.1
kind: component
name: fetcher
run:
  kind: job
  init:
    - {connection: lake, artifacts: {dirs: [data], files: [notes/readme.txt]}}
    - connection: lake
  container:
    command: [sh, -c, 'cd "$POLYAXON_RUN_ARTIFACTS_PATH"; cat data/a.csv data/sub/b.csv notes/readme.txt; ls lake']
"""


def test_a_bucket_connection_is_downloaded(cli: Cli, moto: MotoServer) -> None:
    fs = moto.fs()
    fs.mkdir("lake")
    for key, text in {"team/data/a.csv": "a,1\n", "team/data/sub/b.csv": "b,2\n", "team/notes/readme.txt": "hi\n",
                      "team/notes/other.txt": "no\n"}.items():  # fmt: skip
        fs.pipe_file(f"lake/{key}", text.encode())
    env = ", ".join(f"{{name: {e['name']}, value: '{e['value']}'}}" for e in moto.env())
    _config(cli, f"connections:\n  - {{name: lake, kind: s3, schema: {{bucket: 's3://lake/team'}}, env: [{env}]}}\n")
    result = cli.run("run", "-f", str(cli.write("job.yaml", FETCH)), "--json")
    assert result.returncode == 0, result.stderr
    uuid = result.stdout.split('"uuid": "', 1)[1][:32]
    shown = cli.run("logs", uuid).stdout
    assert "a,1\nb,2\nhi\n" in shown
    assert shown.endswith("data\nnotes\n")  # the whole bucket prefix, in a folder named for the connection
    assert not (cli.home / "artifacts" / uuid / "notes" / "other.txt").exists()


READ_OUTPUTS = """
version: 1.1
kind: component
name: reader
run:
  kind: job
  init:
    - {artifacts: {files: [UUID/outputs/model.txt]}}
  container: {command: [sh, -c, 'cd "$POLYAXON_RUN_ARTIFACTS_PATH"; cat UUID/outputs/model.txt']}
"""


def test_artifacts_of_a_run_elsewhere_come_from_the_bucket_store(cli: Cli, moto: MotoServer) -> None:
    producer = "ab" * 16  # a run of another machine: only the store has its outputs
    fs = moto.fs()
    fs.mkdir("runs")
    fs.pipe_file(f"runs/store/{producer}/outputs/model.txt", b"weights v1\n")
    env = ", ".join(f"{{name: {e['name']}, value: '{e['value']}'}}" for e in moto.env())
    _config(cli, f"connections:\n  - {{name: lake, kind: s3, schema: {{bucket: 's3://runs/store'}}, env: [{env}]}}\n"
                 "artifactsStore: lake\n")  # fmt: skip
    result = cli.run("run", "-f", str(cli.write("job.yaml", READ_OUTPUTS.replace("UUID", producer))), "--json")
    assert result.returncode == 0, result.stderr
    uuid = result.stdout.split('"uuid": "', 1)[1][:32]
    assert "weights v1" in cli.run("logs", uuid).stdout


def test_a_bucket_with_no_credentials_here_refuses_the_run_naming_it(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(variable, raising=False)
    cli.extra_env["HOME"] = str(cli.tmp)
    _config(cli, "connections:\n  - {name: lake, kind: s3, schema: {bucket: 's3://lake'}, secret: {name: keys}}\n")
    result = cli.run("run", "-f", str(cli.write("job.yaml", FETCH)))
    assert result.returncode == 1
    assert "connection lake has a secret, which only Kubernetes can provide" in result.stderr
    assert cli.runs() == []
