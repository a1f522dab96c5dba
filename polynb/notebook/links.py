"""Links to the pages services serve (TensorBoard): proxied through jupyter-server-proxy when possible.

Pure functions. A service's ``url`` in the store is its direct address (``http://127.0.0.1:<port>/``);
in a browser served by Jupyter the same page is reachable same-origin, behind Jupyter's auth, at
``{base_url}proxy/<port>/``. The widget shows the proxied link first and the direct one beside it, because
the kernel cannot always know which one the browser can reach (VS Code has no Jupyter server).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import Literal
from urllib.parse import urlsplit

from polynb.notebook.model import Link
from polynb.store import RunRecord

ProxyMode = Literal["auto", "always", "never"]
PROXY_HOSTS = frozenset({"127.0.0.1", "localhost"})
"""What jupyter-server-proxy serves by default (``ServerProxy.host_allowlist``)."""


def proxy_installed() -> bool:
    return importlib.util.find_spec("jupyter_server_proxy") is not None


def default_base_url() -> str:
    """The Jupyter server's base URL as far as a kernel can tell (JupyterHub sets the prefix); ``/`` else."""
    return normalize_base_url(os.environ.get("JUPYTERHUB_SERVICE_PREFIX") or "/")


def normalize_base_url(base_url: str) -> str:
    return "/" + base_url.strip("/") + "/" if base_url.strip("/") else "/"


def proxied_url(direct_url: str, base_url: str) -> str | None:
    """``{base_url}proxy/<port>/`` for a loopback URL with a port, keeping its path; None otherwise."""
    parts = urlsplit(direct_url)
    if parts.hostname not in PROXY_HOSTS or parts.port is None:
        return None
    path = parts.path.lstrip("/")
    return f"{normalize_base_url(base_url)}proxy/{parts.port}/{path}"


def is_tensorboard(record: RunRecord) -> bool:
    """A service whose main command is ``tensorboard`` or the hub component's program (or named so)."""
    if record.kind != "service":
        return False
    container = (record.spec or {}).get("container") or {}
    argv = [*container.get("command", ()), *container.get("args", ())]
    if argv and PurePosixPath(str(argv[0])).name == "tensorboard":
        return True
    programs = ("tensorboard", "tensorboard.main", "polynb.hub.tensorboard")
    return any(str(a) in programs for a in argv[:3]) or "tensorboard" in record.name


def service_link(record: RunRecord, title: str, *, base_url: str, mode: ProxyMode) -> Link | None:
    """The link to a running service, or None when it serves nothing (yet)."""
    if not record.url:
        return None
    url = record.url
    use_proxy = mode == "always" or (mode == "auto" and proxy_installed())
    if use_proxy:
        url = proxied_url(record.url, base_url) or record.url
    kind = "tensorboard" if is_tensorboard(record) else "service"
    return Link(title=title, url=url, direct_url=record.url, run_uuid=record.uuid, kind=kind)


def links_for(records: Iterable[RunRecord], run_name: str, *, base_url: str, mode: ProxyMode) -> list[Link]:
    """Links of the running services among ``records`` (TensorBoard titled after the run)."""
    out = []
    for record in records:
        if record.kind != "service" or record.status.value != "running":
            continue
        title = f"TensorBoard · {run_name}" if is_tensorboard(record) else f"{record.name} · {run_name}"
        link = service_link(record, title, base_url=base_url, mode=mode)
        if link is not None:
            out.append(link)
    return out
