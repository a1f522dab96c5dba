"""The built-in webhook program against a real HTTP server on 127.0.0.1: retries on 5xx, fails on 4xx."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from polynb.hub import webhook
from polynb.spec.load import load

HUB = Path(webhook.__file__).parent


class Recorder:
    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses  # answered in order; the last one repeats
        self.bodies: list[Any] = []
        self.headers: list[dict[str, str]] = []


@pytest.fixture
def server() -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder([200])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            recorder.bodies.append(json.loads(self.rfile.read(length)))
            recorder.headers.append(dict(self.headers))
            status = recorder.statuses.pop(0) if len(recorder.statuses) > 1 else recorder.statuses[0]
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"nope" if status >= 400 else b"ok")

        def log_message(self, format: str, *args: Any) -> None:  # keep the test output clean
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/hook", recorder
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_posts_the_context_and_payload(server: tuple[str, Recorder]) -> None:
    url, recorder = server
    context = {"name": "train", "uuid": "abc", "status": "succeeded", "outputs": {"loss": 0.1}}
    code = webhook.main([f"--url={url}", '--payload={"team": "ml"}', f"--context={json.dumps(context)}"])
    assert code == 0
    assert recorder.bodies == [{"run": context, "payload": {"team": "ml"}}]
    assert recorder.headers[0]["Content-Type"] == "application/json"


def test_retries_5xx_then_succeeds(server: tuple[str, Recorder]) -> None:
    url, recorder = server
    recorder.statuses[:] = [503, 500, 200]
    assert webhook.main([f"--url={url}", "--retries=3", "--backoff=0.01"]) == 0
    assert len(recorder.bodies) == 3
    assert recorder.bodies[0] == {"run": None, "payload": None}


def test_gives_up_after_the_retries(server: tuple[str, Recorder], capsys: pytest.CaptureFixture[str]) -> None:
    url, recorder = server
    recorder.statuses[:] = [502]
    assert webhook.main([f"--url={url}", "--retries=2", "--backoff=0.01"]) == 1
    assert len(recorder.bodies) == 3
    assert "failed after 3 attempt(s): 502" in capsys.readouterr().err


def test_4xx_fails_at_once_with_the_reason(server: tuple[str, Recorder], capsys: pytest.CaptureFixture[str]) -> None:
    url, recorder = server
    recorder.statuses[:] = [404]
    assert webhook.main([f"--url={url}", "--retries=5", "--backoff=0.01"]) == 1
    assert len(recorder.bodies) == 1
    err = capsys.readouterr().err
    assert "was refused: 404" in err and "nope" in err


def test_connection_errors_are_retried_and_reported(capsys: pytest.CaptureFixture[str]) -> None:
    # A port nobody listens on (bound then closed).
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    assert webhook.main([f"--url=http://127.0.0.1:{port}/", "--retries=1", "--backoff=0.01", "--timeout=2"]) == 1
    assert "failed after 2 attempt(s)" in capsys.readouterr().err


def test_refuses_other_schemes_and_bad_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert webhook.main(["--url=file:///etc/passwd"]) == 1
    assert webhook.main(["--url=http://127.0.0.1:9/", "--payload={not json"]) == 1
    err = capsys.readouterr().err
    assert "http:// or https://" in err and "--payload is not JSON" in err


def test_hub_components_load() -> None:
    hook = load(HUB / "webhook.yaml")
    assert hook.run is not None and hook.run.kind == "job"
    assert [i.name for i in hook.inputs or ()] == ["url", "payload", "retries", "timeout"]
    board = load(HUB / "tensorboard.yaml")
    uuids = board.input("uuids")
    assert uuids is not None and uuids.type == "str" and uuids.is_list
    # Stock images, no polynb inside: the programs reach pods in the runtime bundle (python3 -m ...).
    container = getattr(hook.run, "container", None)
    assert container is not None and container.image == "python:3.11-slim"
    assert container.command == ["python3", "-m", "polynb.hub.webhook"]
    image = board.input("image")
    assert image is not None and image.type == "image" and image.value == "tensorflow/tensorflow:2.15.0"
    served = getattr(board.run, "container", None)
    assert served is not None and served.image == "{{ image }}"
    assert served.command == ["python3", "-m", "polynb.hub.tensorboard"]
