"""A bucket (``s3`` connection, a real moto server) as the ``artifactsStore`` of local runs: each run executes in its
local folder and its outputs, logs and event files are synced to ``<bucket>/<uuid>/`` while it runs and once more
when it is final; a store that cannot be used refuses the run at submission; one that fails mid-run leaves the
run's status and its local copy alone, with a warning."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.clikit import Cli
from support.s3kit import MotoServer

from polynb.lifecycle import Status
from polynb.store import Store
from polynb.store.remote import ARTIFACTS_STORE_KEY

TRAINER = """
version: 1.1
kind: component
name: trainer
run:
  kind: job
  container:
    command:
      - sh
      - -c
      - >-
        echo "training";
        mkdir -p "$POLYAXON_RUN_OUTPUTS_PATH/tensorboard";
        echo events > "$POLYAXON_RUN_OUTPUTS_PATH/tensorboard/events.out.tfevents.1";
        echo '{"accuracy": 0.9}' > "$POLYAXON_RUN_OUTPUTS_PATH/outputs.json"
"""

CONFIG = """\
connections:
  - name: runs-bucket
    kind: s3
    schema: {bucket: "BUCKET"}
    env: ENV
artifactsStore: runs-bucket
artifactsSyncInterval: 0.2
"""
AT_BUCKET = "connections[0].schema.bucket"


@pytest.fixture(scope="module")
def server() -> Iterator[MotoServer]:
    moto = MotoServer().start()
    moto.fs().mkdir("team-runs")
    yield moto
    moto.stop()


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    kit = Cli(tmp_path)
    kit.extra_env.update({"HOME": str(tmp_path), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                          "AWS_CONFIG_FILE": str(tmp_path / "none")})  # fmt: skip
    yield kit
    kit.cleanup()


def _config(cli: Cli, bucket: str, env: list[dict[str, str]]) -> Path:
    path = cli.tmp / "config.yaml"
    flow = "[" + ", ".join(f"{{name: {e['name']}, value: {e['value']!r}}}" for e in env) + "]"
    path.write_text(CONFIG.replace("BUCKET", bucket).replace("ENV", flow))
    cli.extra_env["POLYNB_CONFIG"] = str(path)
    return path


def _objects(server: MotoServer, root: str) -> dict[str, bytes]:
    return server.objects(root)


def test_a_local_run_is_synced_to_the_bucket_store_and_records_it(cli: Cli, server: MotoServer) -> None:
    _config(cli, "s3://team-runs/polynb", server.env())
    job = cli.write("job.yaml", TRAINER)
    code, run = cli.run_json("run", "-f", str(job), "--json")
    assert code == 0, run
    uuid = run["uuid"]
    local = cli.home / "artifacts" / uuid
    assert (local / "outputs" / "outputs.json").exists(), "the run executes in its local folder, as before"
    stored = _objects(server, f"team-runs/polynb/{uuid}")
    assert stored["outputs/tensorboard/events.out.tfevents.1"] == b"events\n"
    assert stored["outputs/outputs.json"] == b'{"accuracy": 0.9}\n'
    assert stored["logs/main.log"] == b"training\n"
    assert not [k for k in stored if k.startswith(".executor/") or k == "status.jsonl"]
    assert (local / ".executor" / "store-synced").read_text() == "done\n"
    with cli.store() as store:
        assert store.get_run(uuid).meta[ARTIFACTS_STORE_KEY] == {
            "name": "runs-bucket", "kind": "s3", "url": "s3://team-runs/polynb", "every": 0.2,
        }  # fmt: skip
    assert cli.run("logs", uuid).stdout == "training\n"


def test_a_missing_bucket_refuses_the_run_at_its_line_and_nothing_runs(cli: Cli, server: MotoServer) -> None:
    config = _config(cli, "s3://no-such-bucket/polynb", server.env())
    job = cli.write("job.yaml", TRAINER)
    result = cli.run("run", "-f", str(job))
    assert result.returncode == 1
    assert f"{config}:4:22: {AT_BUCKET}: connection runs-bucket (the artifactsStore): " in result.stderr
    assert "no such bucket" in result.stderr
    assert cli.runs() == []


@pytest.mark.skipif(
    any(os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")),
    reason="this machine's environment has AWS credentials",
)
def test_missing_credentials_refuse_the_run_naming_the_connection(cli: Cli, server: MotoServer) -> None:
    config = _config(cli, "s3://team-runs/polynb", [{"name": "AWS_REGION", "value": "us-east-1"}])
    job = cli.write("job.yaml", TRAINER)
    result = cli.run("run", "-f", str(job))
    assert result.returncode == 1
    assert f"{config}:4:22: {AT_BUCKET}: connection runs-bucket (the artifactsStore): " in result.stderr
    assert "no credentials for s3://team-runs/polynb on this machine" in result.stderr
    assert cli.runs() == []


def test_an_unreachable_endpoint_refuses_the_run(cli: Cli, server: MotoServer) -> None:
    gone = MotoServer()  # a port nothing listens on
    _config(cli, "s3://team-runs/polynb", gone.env())
    job = cli.write("job.yaml", TRAINER)
    result = cli.run("run", "-f", str(job))
    assert result.returncode == 1
    assert "connection runs-bucket (the artifactsStore): s3://team-runs" in result.stderr
    assert gone.url in result.stderr
    assert cli.runs() == []


SEED = Path(__file__).resolve().parents[2] / "notebooks" / "pipelines" / "experiment-tensorboard.yaml"


@pytest.mark.slow
def test_the_seed_pipelines_event_files_reach_the_bucket_while_the_experiment_trains(
    cli: Cli, server: MotoServer
) -> None:
    _config(cli, "s3://team-runs/seed", server.env())
    proc = cli.start("run", "-f", str(SEED), "-P", "max_seconds=8", "--stop-services", "--json", "--no-live")
    seen: dict[str, object] = {}

    def events_in_bucket_while_running(store: Store) -> bool:
        experiment = cli.op(store, "experiment-tensorboard", "experiment")
        if experiment is None or experiment.status != Status.RUNNING:
            return False
        found = [k for k in _objects(server, f"team-runs/seed/{experiment.uuid}") if "tfevents" in k]
        if found and store.get_run(experiment.uuid).status == Status.RUNNING:
            seen.update(uuid=experiment.uuid, keys=found)
        return bool(seen)

    cli.wait_for(events_in_bucket_while_running, "the experiment's event files in the bucket while it trains")
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    uuid = str(seen["uuid"])
    local = cli.home / "artifacts" / uuid
    stored = _objects(server, f"team-runs/seed/{uuid}")
    for path in (local / "outputs" / "tensorboard").rglob("*tfevents*"):
        key = str(path.relative_to(local))
        assert stored[key] == path.read_bytes(), f"{key}: the final sync sent its last state"
    assert stored["logs/main.log"] == (local / "logs" / "main.log").read_bytes()
