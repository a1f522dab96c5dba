"""The hub TensorBoard behind a real Jupyter server's jupyter-server-proxy, at the link the Lab opens: every asset
its page and script name resolves under that link and loads (none is asked of the Jupyter server's root)."""

from __future__ import annotations

import io
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

import polynb
from polynb.hub.tensorboard import relative_asset_refs
from polynb.lifecycle import FINAL
from polynb.notebook.links import service_link
from polynb.notebook.session import KernelSession

pytestmark = pytest.mark.slow
GUARD = 120.0
"""Deadlock guard for waits (never a timing assertion)."""


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def jupyter(tmp_path: Path) -> Iterator[str]:
    """A real Jupyter server (with jupyter-server-proxy, as installed) on loopback, no token; its root URL."""
    port = free_port()
    log = (tmp_path / "jupyter.log").open("wb")
    argv = [sys.executable, "-m", "jupyter_server", f"--ServerApp.port={port}", "--ServerApp.ip=127.0.0.1",
            "--IdentityProvider.token=", "--ServerApp.open_browser=False", "--ServerApp.allow_root=True",
            f"--ServerApp.root_dir={tmp_path}"]  # fmt: skip
    server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    root = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + GUARD
        while get_status(root + "/api/status") != 200:
            assert server.poll() is None, (tmp_path / "jupyter.log").read_text()
            assert time.monotonic() < deadline, "deadlock guard: the Jupyter server never answered"
            time.sleep(0.2)
        yield root
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def get_status(url: str) -> int | None:
    try:
        return get(url)[0]
    except OSError:
        return None


def asset_folders() -> list[str]:
    """The folders of TensorBoard's own asset zip (``font-roboto``, ``tf-imports``)."""
    from tensorboard import assets

    with zipfile.ZipFile(assets.get_default_assets_zip_provider()()) as z:
        return sorted({n.split("/", 1)[0] for n in z.namelist() if "/" in n})


def test_the_hub_tensorboard_loads_every_asset_through_the_proxied_link(session: KernelSession, jupyter: str) -> None:
    handle = polynb.run(
        "version: 1.1\nkind: operation\nname: board\nhubRef: tensorboard\ntermination: {timeout: 300}\n"
        f"params: {{uuids: {{value: ['{'0' * 32}']}}}}\n"
    )
    try:
        deadline = time.monotonic() + GUARD
        while (record := session.store.get_run(handle.uuid)).status.value != "running":
            assert record.status not in FINAL, record
            assert time.monotonic() < deadline, "deadlock guard: TensorBoard never ran"
            time.sleep(0.2)
        link = service_link(record, "TensorBoard", base_url="/", mode="always")  # what the Lab tab opens
        assert link is not None and re.fullmatch(r"/proxy/\d+/", link.url), link
        assert link.kind == "tensorboard"  # by its program: this op is not named "tensorboard"
        page = jupyter + link.url
        status, html = get(page)
        assert status == 200 and b"<tb-webapp" in html

        text = html.decode()
        refs = re.findall(r"url\(\s*['\"]?([^)'\"]+)", text) + re.findall(r"(?:src|href)=\"([^\"]+)\"", text)
        refs = [r for r in refs if not r.startswith(("data:", "#", "http://", "https://"))]
        assert any("font-roboto/" in r for r in refs)
        for ref in refs:
            url = urljoin(page, ref)
            assert urlsplit(url).path.startswith(link.url), f"{ref} escapes the proxied link {link.url}"
            assert get(url)[0] == 200, url
        # The script names the asset folders too (the debugger's editor): never from the server's root.
        folders = "|".join(map(re.escape, asset_folders()))
        for script in [r for r in refs if r.split("?")[0].endswith(".js")]:
            source = get(urljoin(page, script))[1].decode()
            assert not re.findall(rf"""["'(]/(?:{folders})/""", source), script
    finally:
        handle.stop()
    assert session.store.get_run(handle.uuid).status.value == "stopped"


def test_only_references_in_files_beside_the_page_are_made_relative() -> None:
    css = b"a{src:url(/font-roboto/x.woff2)} b{src:url(/elsewhere/y.woff2)} '/font-roboto/z' \"/font-roboto/\""
    assert relative_asset_refs("index.html", css, ["font-roboto"]) == (
        b"a{src:url(font-roboto/x.woff2)} b{src:url(/elsewhere/y.woff2)} 'font-roboto/z' \"font-roboto/\""
    )
    assert relative_asset_refs("font-roboto/roboto.html", css, ["font-roboto"]) == css  # it sits in the folder


def test_a_rewritten_asset_zip_keeps_every_file() -> None:
    from polynb.hub.tensorboard import relative_assets

    original = io.BytesIO()
    with zipfile.ZipFile(original, "w") as z:
        z.writestr("index.html", b"<style>@font-face{src:url(/font-roboto/a.woff2)}</style>")
        z.writestr("font-roboto/a.woff2", b"\x00font")
    provider = relative_assets(lambda: io.BytesIO(original.getvalue()))
    with zipfile.ZipFile(provider()) as z:
        assert z.read("index.html") == b"<style>@font-face{src:url(font-roboto/a.woff2)}</style>"
        assert z.read("font-roboto/a.woff2") == b"\x00font"
