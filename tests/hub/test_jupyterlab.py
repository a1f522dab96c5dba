"""The hub's ``jupyterlab`` as a service on the local executor: a real ``jupyter lab`` on the port polynb places,
with a token of its own (never on its command line), under ``proxy/absolute/<port>/`` where the notebook's Jupyter
server proxies it; the run's URL is its page and the widget's link carries the token."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.execkit import wait_until
from support.schedkit import DEADLOCK_GUARD, build

from polynb.compiler.registry import ComponentRegistry
from polynb.executors.local.executor import LocalExecutor
from polynb.executors.local.layout import SERVICE_PAGE
from polynb.hub import jupyterlab
from polynb.lifecycle import Status
from polynb.notebook.links import links_for, service_token
from polynb.scheduler.engine import Engine
from polynb.store import Store

pytestmark = pytest.mark.slow  # a real JupyterLab starts in seconds

LAB = """
version: 1.1
kind: operation
name: lab
hubRef: jupyterlab
"""


def test_the_page_is_under_proxy_absolute_and_no_token_is_on_the_command_line() -> None:
    assert jupyterlab.SERVICE_PAGE == SERVICE_PAGE  # the program's constant and the executor's name one file
    assert jupyterlab.base_path(8888, "/") == "/proxy/absolute/8888/"
    assert jupyterlab.base_path(8888, "user/ada") == "/user/ada/proxy/absolute/8888/"
    argv = jupyterlab.lab_argv(host="127.0.0.1", port=8888, base="/proxy/absolute/8888/", root_dir="/w")
    assert argv[:2] == ["jupyter", "lab"]
    assert "--ServerApp.base_url=/proxy/absolute/8888/" in argv
    assert not any("token" in a.lower() for a in argv)


def test_the_page_file_is_private(tmp_path: Path) -> None:
    jupyterlab.write_page(str(tmp_path), "/proxy/absolute/1/lab", "secret")
    assert stat.S_IMODE((tmp_path / SERVICE_PAGE).stat().st_mode) == 0o600
    assert service_token(tmp_path) == "secret"
    assert service_token(tmp_path / "missing") is None


@pytest.fixture
def outer_jupyter(tmp_path: Path) -> Iterator[str]:
    """The notebook's Jupyter server: a real one on loopback with jupyter-server-proxy (as installed), no token
    (a browser's session cookie stands for it); its root URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    log = (tmp_path / "outer.log").open("wb")
    argv = [sys.executable, "-m", "jupyter_server", f"--ServerApp.port={port}", "--ServerApp.ip=127.0.0.1",
            "--IdentityProvider.token=", "--ServerApp.open_browser=False", "--ServerApp.allow_root=True",
            f"--ServerApp.root_dir={tmp_path}"]  # fmt: skip
    server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    root = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + DEADLOCK_GUARD
        while _status(root + "/api/status") != 200:
            assert server.poll() is None, (tmp_path / "outer.log").read_text()
            assert time.monotonic() < deadline, "deadlock guard: the Jupyter server never answered"
            time.sleep(0.2)
        yield root
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Engine, Store]]:
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX", raising=False)
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "jupyter-config"))  # no user config reaches it
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "jupyter-runtime"))
    store = Store(tmp_path / "home" / "polynb.db")
    made = Engine(store=store, executors={"local": LocalExecutor(base_dir=tmp_path)}, registry=ComponentRegistry())
    made.start()
    try:
        yield made, store
    finally:
        made.shutdown(stop_running=True)
        store.close()


def _status(url: str) -> int:
    """The HTTP status of a GET of ``url``, redirects not followed."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0  # nothing answers yet


def test_jupyterlab_runs_as_a_service_with_its_token(engine: tuple[Engine, Store], outer_jupyter: str) -> None:
    eng, store = engine
    uuid = eng.submit(build(LAB))
    wait_until(lambda: store.get_run(uuid).status in (Status.RUNNING, Status.FAILED), "JupyterLab serving")
    record = store.get_run(uuid)
    assert record.status == Status.RUNNING, (record.reason, record.message)
    port = record.spec["placement"]["ports"][0]
    # The run's URL is its page, without the token (the store is not a place for secrets).
    assert record.url == f"http://127.0.0.1:{port}/proxy/absolute/{port}/lab"
    run_dir = store.artifacts_root_of(uuid) / uuid
    token = service_token(run_dir)
    assert token is not None and len(token) >= 32
    assert stat.S_IMODE((run_dir / SERVICE_PAGE).stat().st_mode) == 0o600
    # A real JupyterLab: its page with the token, a login redirect without it.
    assert _status(f"{record.url}?token={token}") == 200
    assert _status(f"http://127.0.0.1:{port}/proxy/absolute/{port}/api/status") in (401, 403)
    assert _status(f"http://127.0.0.1:{port}/proxy/absolute/{port}/api/status?token={token}") == 200
    # The token is in no process's command line.
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        assert token.encode() not in cmdline
    # The widget's link: proxied at the same path by the notebook's server, and direct; both with the token.
    (link,) = links_for([record], "lab", base_url="/", mode="always", token_of=lambda r: token)
    assert link.title == "JupyterLab · lab"
    assert link.url == f"/proxy/absolute/{port}/lab?token={token}"
    assert link.direct_url == f"http://127.0.0.1:{port}/proxy/absolute/{port}/lab?token={token}"
    # Through the notebook's Jupyter server, at the link's path: its own page and API, not the outer server's.
    assert _status(outer_jupyter + link.url) == 200
    assert _status(f"{outer_jupyter}/proxy/absolute/{port}/api/status?token={token}") == 200
    assert _status(f"{outer_jupyter}/proxy/absolute/{port}/api/status") in (401, 403)
    eng.stop(uuid)
    assert eng.wait(uuid, timeout=DEADLOCK_GUARD) == "stopped"
