"""urlRef: components fetched over HTTP from a local server, revalidated against the content cache."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from polynb.compiler import urlref
from polynb.compiler.check import check
from polynb.compiler.pipeline import build_pipeline
from polynb.spec.load import load_text

COMPONENT = """\
kind: component
name: remote-train
inputs: [{name: lr, type: float, value: 0.1, isOptional: true}]
run: {kind: job, container: {image: "python:3.11", command: [python, train.py]}}
"""


class _Server:
    def __init__(self, root: Path) -> None:
        self.requests: list[tuple[str, int]] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: object, **kwargs: object) -> None:
                super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

            def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
                server.requests.append((self.path, int(code)))

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{path}"


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Server]:
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path / "home"))
    urlref.forget()
    root = tmp_path / "www"
    root.mkdir()
    (root / "train.yaml").write_text(COMPONENT)
    (root / "broken.yaml").write_text("kind: component\nrun: {kind: job, containr: {}}\n")
    srv = _Server(root)
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()
    urlref.forget()


def operation(url: str) -> str:
    return f"kind: operation\nname: train\nurlRef: {url}\nparams: {{lr: 0.5}}\n"


def test_a_url_ref_is_fetched_and_runs_its_component(server: _Server) -> None:
    pipeline = build_pipeline(load_text(operation(server.url("train.yaml"))))
    op = pipeline.ops["train"]
    assert op.component.name == "remote-train"
    assert pipeline.inputs == {"lr": 0.5}
    assert server.requests == [("/train.yaml", 200)]


def test_the_cached_copy_is_revalidated_not_downloaded_again(server: _Server) -> None:
    url = server.url("train.yaml")
    first = urlref.fetch(url)
    urlref.forget()  # a new process
    second = urlref.fetch(url)
    assert first == second and second.read_text() == COMPONENT
    assert server.requests == [("/train.yaml", 200), ("/train.yaml", 304)]
    assert str(second).startswith(str(urlref.cache_dir()))


def test_offline_is_an_error_naming_the_url_even_with_a_cached_copy(server: _Server) -> None:
    url = server.url("train.yaml")
    urlref.fetch(url)
    urlref.forget()
    server.httpd.shutdown()
    server.httpd.server_close()
    result = check(operation(url))
    assert not result.valid
    [error] = result.errors
    assert error.path == "urlRef" and error.line == 3
    assert f"urlRef `{url}` cannot be fetched" in error.message and "offline" in error.message


def test_an_error_status_and_a_bad_scheme_are_errors(server: _Server) -> None:
    result = check(operation(server.url("missing.yaml")))
    assert "the server answered 404" in result.errors[0].message
    result = check(operation("file:///etc/passwd"))
    assert "expected an http:// or https:// URL" in result.errors[0].message


def test_errors_inside_the_fetched_component_are_positioned_in_it(server: _Server) -> None:
    result = check(operation(server.url("broken.yaml")))
    assert not result.valid
    error = result.errors[0]
    assert error.path == "run.containr" and error.line == 2 and "did you mean 'container'" in error.message
