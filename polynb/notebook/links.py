"""Links to the pages services serve (TensorBoard): proxied through jupyter-server-proxy when possible.

Pure functions. A service's ``url`` in the store is its direct address (``http://127.0.0.1:<port>/``);
in a browser served by Jupyter the same page is reachable same-origin, behind Jupyter's auth, at
``{base_url}proxy/<port>/``. The widget shows the proxied link first and the direct one beside it, because
the kernel cannot always know which one the browser can reach (VS Code has no Jupyter server).
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import Literal
from urllib.parse import urlencode, urlsplit

from polynb.executors.local.layout import SERVICE_PAGE
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
    """``{base_url}proxy/<port>/`` for a loopback URL with a port, keeping its path and query; None otherwise.
    A service served under ``{base_url}proxy/absolute/<port>/`` (``polynb.hub.jupyterlab``) is reached at that
    same path: jupyter-server-proxy passes it on whole."""
    parts = urlsplit(direct_url)
    if parts.hostname not in PROXY_HOSTS or parts.port is None:
        return None
    query = f"?{parts.query}" if parts.query else ""
    absolute = f"{normalize_base_url(base_url)}proxy/absolute/{parts.port}/"
    if parts.path.startswith(absolute):
        return parts.path + query
    path = parts.path.lstrip("/")
    return f"{normalize_base_url(base_url)}proxy/{parts.port}/{path}{query}"


def service_token(run_dir: Path) -> str | None:
    """The token a service's program wrote beside its page (``service-page.json`` in its run folder), if any."""
    try:
        data = json.loads((run_dir / SERVICE_PAGE).read_text())
    except (OSError, ValueError):
        return None
    token = data.get("token") if isinstance(data, dict) else None
    return token if isinstance(token, str) and token else None


def with_token(url: str, token: str | None) -> str:
    return f"{url}{'&' if '?' in url else '?'}{urlencode({'token': token})}" if token else url


def is_jupyterlab(record: RunRecord) -> bool:
    """A service run by the built-in ``jupyterlab`` component's program."""
    container = (record.spec or {}).get("container") or {}
    argv = [*container.get("command", ()), *container.get("args", ())]
    return record.kind == "service" and "polynb.hub.jupyterlab" in (str(a) for a in argv[:3])


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


def service_link(
    record: RunRecord, title: str, *, base_url: str, mode: ProxyMode, token: str | None = None
) -> Link | None:
    """The link to a running service, or None when it serves nothing (yet); ``token`` is added to its query."""
    if not record.url:
        return None
    url = record.url
    use_proxy = mode == "always" or (mode == "auto" and proxy_installed())
    if use_proxy:
        url = proxied_url(record.url, base_url) or record.url
    kind = "tensorboard" if is_tensorboard(record) else "service"
    return Link(title=title, url=with_token(url, token), direct_url=with_token(record.url, token),
                run_uuid=record.uuid, kind=kind)  # fmt: skip


def links_for(
    records: Iterable[RunRecord],
    run_name: str,
    *,
    base_url: str,
    mode: ProxyMode,
    token_of: Callable[[RunRecord], str | None] = lambda record: None,
) -> list[Link]:
    """Links of the running services among ``records`` (TensorBoard titled after the run); ``token_of`` gives
    the token a service takes (JupyterLab's)."""
    out = []
    for record in records:
        if record.kind != "service" or record.status.value != "running":
            continue
        if is_tensorboard(record):
            title = f"TensorBoard · {run_name}"
        elif is_jupyterlab(record):
            title = f"JupyterLab · {record.name}"
        else:
            title = f"{record.name} · {run_name}"
        link = service_link(record, title, base_url=base_url, mode=mode, token=token_of(record))
        if link is not None:
            out.append(link)
    return out
