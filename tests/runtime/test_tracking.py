"""In-job helpers: outputs merged atomically into outputs.json, run paths from the environment."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from polynb import tracking
from polynb.runtime import tracking as runtime_tracking

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "run" / "outputs"
    monkeypatch.setenv("POLYAXON_RUN_OUTPUTS_PATH", str(path))
    monkeypatch.setenv("POLYAXON_RUN_ARTIFACTS_PATH", str(path.parent))
    monkeypatch.setenv("POLYAXON_RUN_UUID", "a" * 32)
    return path


def test_log_outputs_merges_into_outputs_json(outputs: Path) -> None:
    assert tracking.log_outputs(loss=0.5, epochs=3) == {"loss": 0.5, "epochs": 3}
    assert tracking.log_outputs(loss=0.25) == {"loss": 0.25, "epochs": 3}
    assert json.loads((outputs / "outputs.json").read_text()) == {"loss": 0.25, "epochs": 3}
    assert sorted(p.name for p in outputs.iterdir()) == [".outputs.json.lock", "outputs.json"]  # no temp files


def test_values_with_item_or_tolist_are_converted(outputs: Path) -> None:
    class Scalar:
        def item(self) -> float:
            return 1.5

    class Array:
        def tolist(self) -> list[int]:
            return [1, 2]

    assert tracking.log_outputs(a=Scalar(), b=Array(), p=Path("/x")) == {"a": 1.5, "b": [1, 2], "p": "/x"}


def test_unserialisable_values_are_refused_and_nothing_is_written(outputs: Path) -> None:
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        tracking.log_outputs(bad=object())
    with pytest.raises(ValueError, match="Out of range"):
        tracking.log_outputs(nan=float("nan"))
    assert not (outputs / "outputs.json").exists()


def test_a_corrupt_outputs_file_is_not_overwritten(outputs: Path) -> None:
    outputs.mkdir(parents=True)
    (outputs / "outputs.json").write_text("{oops")
    with pytest.raises(ValueError, match="not valid JSON"):
        tracking.log_outputs(a=1)
    assert (outputs / "outputs.json").read_text() == "{oops"


WRITER = """
import sys
from polynb.tracking import log_outputs
index = sys.argv[1]
for step in range(20):
    log_outputs(**{f"w{index}": step, f"w{index}_{step}": True})
"""


def test_concurrent_writers_lose_nothing(outputs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    workers = [subprocess.Popen([sys.executable, "-c", WRITER, str(i)]) for i in range(4)]
    assert [w.wait(60) for w in workers] == [0, 0, 0, 0]
    data = json.loads((outputs / "outputs.json").read_text())
    assert len(data) == 4 * 21
    assert all(data[f"w{i}"] == 19 for i in range(4))


def test_paths_come_from_the_environment(outputs: Path) -> None:
    assert tracking.outputs_path() == outputs
    assert tracking.artifacts_path() == outputs.parent
    assert tracking.run_uuid() == "a" * 32
    assert tracking.tensorboard_path() == outputs / "tensorboard"
    assert (outputs / "tensorboard").is_dir()


def test_outside_a_run_the_helpers_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("POLYAXON_RUN_OUTPUTS_PATH", "POLYAXON_RUN_UUID"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(tracking.NotInRunError, match="not running inside"):
        tracking.log_outputs(a=1)
    with pytest.raises(tracking.NotInRunError):
        tracking.run_uuid()


def test_outputs_also_go_to_the_termination_log_when_a_pod_asks(
    outputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    termination_log = tmp_path / "termination-log"
    monkeypatch.setenv(tracking.TERMINATION_LOG_ENV, str(termination_log))
    tracking.log_outputs(loss=0.5)
    tracking.log_outputs(acc=0.9)
    assert json.loads(termination_log.read_text()) == {"acc": 0.9, "loss": 0.5}


def test_outputs_too_large_for_the_termination_message_fail_loudly(
    outputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    termination_log = tmp_path / "termination-log"
    monkeypatch.setenv(tracking.TERMINATION_LOG_ENV, str(termination_log))
    monkeypatch.setenv("POLYNB_TERMINATION_LOG_LIMIT", "100")
    tracking.log_outputs(small=1)
    with pytest.raises(tracking.OutputsTooLargeError) as raised:
        tracking.log_outputs(big="x" * 200)
    error = raised.value
    assert (error.limit, error.size) == (100, len(json.dumps({"big": "x" * 200, "small": 1}, separators=(",", ":"))))
    assert f"{error.size} bytes" in str(error) and "at most 100 bytes" in str(error) and "artifactsStore" in str(error)
    # The pod's termination message says so (cut to the limit: the kubelet would cut it anyway), never half a JSON.
    message = termination_log.read_text()
    assert message.startswith("OutputsTooLarge: the outputs are") and len(message.encode()) <= 100


def test_outputs_too_large_point_at_outputs_json_when_the_pod_syncs_to_a_store(
    outputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    termination_log = tmp_path / "termination-log"
    monkeypatch.setenv(tracking.TERMINATION_LOG_ENV, str(termination_log))
    monkeypatch.setenv("POLYNB_TERMINATION_LOG_LIMIT", "200")
    monkeypatch.setenv(runtime_tracking.OUTPUTS_VIA_STORE_ENV, "1")
    tracking.log_outputs(small=1)
    assert json.loads(termination_log.read_text()) == {"small": 1}  # small ones stay in the message
    merged = tracking.log_outputs(big="x" * 500)
    data = (outputs / "outputs.json").read_bytes()
    assert json.loads(data) == merged == {"big": "x" * 500, "small": 1}
    pointer = json.loads(termination_log.read_text())
    digest = hashlib.sha256(data).hexdigest()
    assert pointer == {"$polynb.outputs": {"file": "outputs/outputs.json", "bytes": len(data), "sha256": digest}}


EVENT_WRITER = """
import sys
from polynb.runtime import tracking
for n in range(50):
    tracking.log_metrics(step=n, worker=int(sys.argv[1]), padding="x" * 2000)
"""


def test_events_are_whole_json_lines_even_from_concurrent_writers(
    outputs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    workers = [subprocess.Popen([sys.executable, "-c", EVENT_WRITER, str(i)]) for i in range(4)]
    assert [w.wait(60) for w in workers] == [0, 0, 0, 0]
    lines = (outputs / tracking.EVENTS_FILE).read_text().splitlines()
    events = [json.loads(line) for line in lines]  # no line torn or interleaved
    assert len(events) == 200
    assert {e["kind"] for e in events} == {"model_version_new_metric"}
    assert sorted(e["payload"]["step"] for e in events if e["payload"]["metrics"]["worker"] == 3) == list(range(50))
    assert sorted(e["seq"] for e in events) == list(range(1, 201))  # each event its own number, none reused


def test_in_a_pod_whose_events_are_awaited_each_event_is_also_one_marker_line_on_stdout(
    outputs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = "from polynb.runtime import tracking\nprint('loss', end='')\ntracking.emit('ready', n=1)\nprint('done')\n"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), runtime_tracking.EVENTS_STDOUT_ENV: "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    first, second = out.splitlines()
    assert first.startswith("loss" + runtime_tracking.EVENT_MARKER) and second == "done"  # print's buffer went first
    event = runtime_tracking.parse_marker(first)
    assert event is not None and (event["kind"], event["payload"], event["seq"]) == (
        "project_custom_event",
        {"name": "ready", "n": 1},
        1,
    )
    assert [json.loads(line) for line in (outputs / tracking.EVENTS_FILE).read_text().splitlines()] == [event]
    del env[runtime_tracking.EVENTS_STDOUT_ENV]  # not awaited: stdout is the program's alone
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out == "loss" + "done\n"


def test_each_helper_emits_its_kind_with_its_payload(outputs: Path, tmp_path: Path) -> None:
    model = tmp_path / "model.pt"
    tracking.log_artifact(model, kind="model", name="best")
    tracking.log_model_version("classifier", version="v2", path=model, accuracy=0.9)
    tracking.alert("warning", "loss is flat", epochs=3)
    tracking.emit("ready", org=True, stage="eval")
    tracking.emit("ready")
    events = [json.loads(line) for line in (outputs / tracking.EVENTS_FILE).read_text().splitlines()]
    assert [(e["kind"], e["payload"]) for e in events] == [
        ("run_new_artifacts", {"path": str(model), "kind": "model", "name": "best"}),
        (
            "model_version_new_metric",
            {"model": "classifier", "version": "v2", "metrics": {"accuracy": 0.9}, "path": str(model)},
        ),
        ("alert_warning", {"message": "loss is flat", "epochs": 3}),
        ("org_custom_event", {"name": "ready", "stage": "eval"}),
        ("project_custom_event", {"name": "ready"}),
    ]
    with pytest.raises(ValueError, match="use one of info, warning, critical"):
        tracking.alert("fatal", "no such level")
    with pytest.raises(ValueError, match="at least one metric"):
        tracking.log_metrics(step=1)


def test_the_runtime_imports_nothing_beyond_the_standard_library(tmp_path: Path) -> None:
    # Shipped into pods as a stdlib-only bundle: the tracking helpers must load without pydantic & co.
    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('pydantic', 'yaml', 'rich', 'IPython', 'ipywidgets'):\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from polynb.runtime import tracking\n"
        "names = ('log_artifact', 'log_metrics', 'log_model_version', 'alert', 'emit')\n"
        "print(sorted(n for n in names if hasattr(tracking, n)))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.strip() == "['alert', 'emit', 'log_artifact', 'log_metrics', 'log_model_version']"
