"""Polyaxon's public hub names polynb serves: TensorBoard (`uuid`, `uuids`, `:single-run`, `:multi-run`, `:path`)
and the notifiers (`slack`, `discord`, `teams`, `mattermost`, `pagerduty`, `hipchat`), compiled as a hook of a
finished run and, for the notifiers, run against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from polynb.compiler.compile import compile_hook
from polynb.compiler.context import run_globals
from polynb.compiler.errors import CompileError
from polynb.compiler.params import RunView
from polynb.compiler.registry import ComponentRegistry, ResolutionError
from polynb.compiler.types import CompiledOp, Placement
from polynb.hub import notify
from polynb.spec.models import Hook, Operation

UUID = "11111111111111111111111111111111"
TRAIN = "0de53b5bf8b04a219d12a39c6b92bcce"
OTHER = "fcc462d764104eb698d3cca509f34154"
MAIN = RunView(uuid=TRAIN, name="train", status="failed", inputs={"lr": 0.1}, outputs={"loss": 2.5})
NOTIFIERS = ("slack", "discord", "teams", "mattermost", "pagerduty", "hipchat")


def placement(*ports: int) -> Placement:
    return Placement(
        artifacts_path="/home/artifacts",
        run_artifacts_path=f"/home/artifacts/{UUID}",
        run_outputs_path=f"/home/artifacts/{UUID}/outputs",
        ports=ports,
    )


def hooked(hook: dict[str, Any], *ports: int) -> CompiledOp:
    """``hook`` compiled as the hook run of the failed run ``train``, its component from the built-in hub."""
    parsed = Hook.model_validate(hook)
    component = ComponentRegistry().resolve(Operation(hub_ref=parsed.hub_ref))
    return compile_hook(hook=parsed, component=component, main=MAIN, main_kind="job", uuid=UUID,
                        placement=placement(*ports), globals_=run_globals(uuid=UUID, name="h"))  # fmt: skip


def compiled(hub_ref: str, params: dict[str, Any]) -> CompiledOp:
    """``hubRef`` as an op with literal ``params`` (no main run)."""
    hook = {"hubRef": hub_ref, "disableDefaults": True, "params": {k: {"value": v} for k, v in params.items()}}
    return hooked(hook, 6006)


def uuids_of(op: CompiledOp) -> list[str]:
    (init,) = [step for step in op.init if step.kind == "tensorboard"]
    return list(init.spec["uuids"])


# ------------------------------------------------------------------------------------------ tensorboard


def test_tensorboard_as_a_hook_shows_its_main_run_through_uuid() -> None:
    # Polyaxon's docs: `hooks: [{hubRef: tensorboard}]`; the hook's default `uuid` is the main run's.
    assert uuids_of(hooked({"hubRef": "tensorboard"}, 6006)) == [TRAIN]


def test_tensorboard_takes_uuid_uuids_or_both() -> None:
    assert uuids_of(compiled("tensorboard", {"uuid": TRAIN})) == [TRAIN]
    assert uuids_of(compiled("tensorboard", {"uuids": [TRAIN, OTHER]})) == [TRAIN, OTHER]
    assert uuids_of(compiled("tensorboard", {"uuids": f"{TRAIN}, {OTHER}"})) == [TRAIN, OTHER]
    assert uuids_of(compiled("tensorboard", {"uuid": OTHER, "uuids": [TRAIN]})) == [OTHER, TRAIN]


def test_tensorboard_tags_single_run_and_multi_run() -> None:
    assert uuids_of(compiled("tensorboard:single-run", {"uuid": TRAIN})) == [TRAIN]
    assert uuids_of(compiled("tensorboard:multi-run", {"uuids": f"{TRAIN},{OTHER}"})) == [TRAIN, OTHER]
    with pytest.raises(CompileError, match="not a run uuid"):
        compiled("tensorboard:single-run", {"uuid": "../etc"})


def test_tensorboard_path_serves_a_folder_of_the_store() -> None:
    op = compiled("tensorboard:path", {"path": f"{TRAIN}/outputs/tensorboard"})
    (init,) = op.init
    assert init.kind == "artifacts" and init.spec["dirs"] == [f"{TRAIN}/outputs/tensorboard"]
    assert f"--logdir=/home/artifacts/{UUID}/{TRAIN}/outputs/tensorboard" in op.container.args
    assert "--port=6006" in op.container.args


# ------------------------------------------------------------------------------------------ notifiers


class Recorder:
    def __init__(self) -> None:
        self.bodies: list[Any] = []


@pytest.fixture
def server() -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            recorder.bodies.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/hook", recorder
    finally:
        httpd.shutdown()
        httpd.server_close()


def program_args(op: CompiledOp) -> list[str]:
    assert list(op.container.command) == ["python", "-m", "polynb.hub.notify"]
    return list(op.container.args)


@pytest.mark.parametrize("kind", NOTIFIERS)
def test_every_notifier_is_a_hub_name_resolving_to_the_notify_program(kind: str) -> None:
    op = hooked({"hubRef": kind, "params": {"url": {"value": "http://127.0.0.1:9/x"}}})
    assert f"--kind={kind}" in program_args(op)
    context = json.loads(next(a for a in op.container.args if a.startswith("--context="))[len("--context=") :])
    assert context["name"] == "train" and context["status"] == "failed" and context["outputs"] == {"loss": 2.5}


def test_slack_hook_with_a_connection_posts_slacks_attachment(server: tuple[str, Recorder]) -> None:
    url, recorder = server
    op = hooked({"hubRef": "slack", "connection": "my-slack", "trigger": "failed",
                 "params": {"channel": {"value": "#ml"}}})  # fmt: skip
    assert notify.main(program_args(op), env={"POLYNB_CONNECTION_MY_SLACK": url}) == 0
    (body,) = recorder.bodies
    (attachment,) = body["attachments"]
    assert body["channel"] == "#ml"
    assert attachment["title"] == f"train ({TRAIN}) Status: failed"
    assert "Status: `failed`" in attachment["text"] and 'Outputs: `{"loss": 2.5}`' in attachment["text"]
    assert attachment["color"] == "#d22e2e"


def test_a_connection_without_its_variable_says_which_to_set(capsys: pytest.CaptureFixture[str]) -> None:
    op = hooked({"hubRef": "discord", "connection": "team-chat"})
    assert notify.main(program_args(op), env={}) == 1
    assert "connection `team-chat`: set POLYNB_CONNECTION_TEAM_CHAT to its webhook URL" in capsys.readouterr().err
    assert notify.main(program_args(hooked({"hubRef": "teams"})), env={}) == 1
    assert "give the `url` param or the hook a `connection`" in capsys.readouterr().err


@pytest.mark.parametrize("kind", NOTIFIERS)
def test_each_notifier_posts_the_shape_its_service_expects(kind: str, server: tuple[str, Recorder]) -> None:
    url, recorder = server
    op = hooked({"hubRef": kind, "params": {"url": {"value": url}}})
    assert notify.main(program_args(op), env={}) == 0
    (body,) = recorder.bodies
    expected_keys = {
        "slack": {"attachments"},
        "mattermost": {"attachments"},
        "discord": {"username", "content", "tts"},
        "teams": {"@type", "@context", "summary", "themeColor", "title", "sections"},
        "pagerduty": {"event_type", "description", "details", "incident_key", "client"},
        "hipchat": {"message", "message_format", "color", "from", "notify"},
    }[kind]
    assert set(body) == expected_keys
    assert "train" in json.dumps(body)


def test_discord_content_stays_within_its_2000_characters() -> None:
    body = notify.body("discord", {"name": "x", "status": "failed", "outputs": {"log": "y" * 5000}})
    assert len(body["content"]) <= 2000 and body["content"].endswith("(truncated)")


@pytest.mark.parametrize(("ref", "reason"), [("kaniko", "builds no images"), ("kaniko:latest", "builds no images"),
                                             ("notebook", "runs inside JupyterLab"),
                                             ("vscode", "serves no VS Code")])  # fmt: skip
def test_public_names_polynb_cannot_serve_are_refused_by_name(ref: str, reason: str) -> None:
    with pytest.raises(ResolutionError, match=f"public hub component `{ref.split(':')[0]}` is not served.*{reason}"):
        ComponentRegistry().resolve(Operation(hub_ref=ref))


def test_a_hub_folder_of_ones_own_still_serves_those_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "kaniko.yaml").write_text("kind: component\nname: kaniko\nrun: {kind: job, container: {image: k}}\n")
    monkeypatch.setenv("POLYNB_HUB_PATH", str(tmp_path))
    assert ComponentRegistry().resolve(Operation(hub_ref="kaniko")).name == "kaniko"
