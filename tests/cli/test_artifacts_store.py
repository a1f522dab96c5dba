"""A ``host_path`` connection named as ``artifactsStore`` in the configuration file is where local runs put their
outputs and logs; every run is found under the root it was created with, whatever the configuration says later."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.clikit import Cli

from polynb.store import ARTIFACTS_ROOT_KEY

WRITER = """
version: 1.1
kind: component
name: writer
inputs: [{name: word, type: str}]
run:
  kind: job
  container:
    command: [sh, -c, 'echo "said {{ word }}"; echo {{ word }} > "$POLYAXON_RUN_OUTPUTS_PATH/word.txt"']
"""

CONFIG = """\
connections:
  - {name: shared, kind: host_path, schema: {hostPath: HOST_PATH, mountPath: /data/runs}}
artifactsStore: shared
"""


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    kit = Cli(tmp_path)
    yield kit
    kit.cleanup()


def _config(cli: Cli, host_path: str) -> Path:
    path = cli.tmp / "team" / "config.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(CONFIG.replace("HOST_PATH", host_path))
    cli.extra_env["POLYNB_CONFIG"] = str(path)
    return path


def test_local_runs_go_to_the_host_path_store_and_stay_found_there(cli: Cli) -> None:
    _config(cli, "runs")  # relative: beside the configuration file
    shared = cli.tmp / "team" / "runs"
    job = cli.write("job.yaml", WRITER)
    code, first = cli.run_json("run", "-f", str(job), "-P", "word=first", "--json")
    assert code == 0, first
    folder = shared / first["uuid"]
    assert (folder / "outputs" / "word.txt").read_text() == "first\n"
    assert any((folder / "logs").iterdir())
    assert not (cli.home / "artifacts" / first["uuid"]).exists()
    with cli.store() as store:
        assert store.get_run(first["uuid"]).meta[ARTIFACTS_ROOT_KEY] == str(shared)
    assert cli.run("logs", first["uuid"]).stdout == "said first\n"

    # Without the configuration, new runs go to $POLYNB_HOME/artifacts; the first one is still found.
    (cli.tmp / "team" / "config.yaml").unlink()
    del cli.extra_env["POLYNB_CONFIG"]
    code, second = cli.run_json("run", "-f", str(job), "-P", "word=second", "--json")
    assert code == 0, second
    assert (cli.home / "artifacts" / second["uuid"] / "outputs" / "word.txt").read_text() == "second\n"
    assert not (shared / second["uuid"]).exists()
    assert cli.run("logs", second["uuid"]).stdout == "said second\n"
    assert cli.run("logs", first["uuid"]).stdout == "said first\n"
    listed = cli.run("ls").stdout
    assert first["uuid"][:12] in listed and second["uuid"][:12] in listed


def test_an_unusable_host_path_store_refuses_the_run_before_anything_starts(cli: Cli) -> None:
    (cli.tmp / "a-file").write_text("")
    config = _config(cli, str(cli.tmp / "a-file" / "runs"))
    job = cli.write("job.yaml", WRITER)
    result = cli.run("run", "-f", str(job), "-P", "word=x")
    assert result.returncode == 1
    assert f"{config}:2:56: connections[0].schema.hostPath: connection shared (the artifactsStore): " in result.stderr
    assert "cannot be created" in result.stderr
    assert cli.runs() == []
