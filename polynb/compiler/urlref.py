"""``urlRef``: a component fetched over HTTP(S), kept in a content cache under ``$POLYNB_HOME/cache/urlref``.

Polyaxon fetches the URL each time it resolves the operation. polynb does too, conditionally: the cached copy
is revalidated with the server (``If-None-Match`` / ``If-Modified-Since``, RFC 9110 §13.1) and reused on
``304 Not Modified``, so an unchanged component is not downloaded again. Within one process a URL is fetched
once (a 100-op DAG naming one URL costs one request).

When the server cannot be reached (offline, DNS failure, refused connection, timeout) or answers with an
error status, resolution fails with a message naming the URL and the reason. A cached copy is not used
silently in that case: the component might have changed, and a run must not depend on whether the network
happened to be up. Download the file and use ``pathRef`` to work offline.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from polynb.store.paths import polynb_home

TIMEOUT_ENV = "POLYNB_URLREF_TIMEOUT"
DEFAULT_TIMEOUT = 10.0
MAX_BYTES = 5 * 1024 * 1024
"""A Polyaxonfile is a few kilobytes; anything this large is not one."""

_FETCHED: dict[str, Path] = {}


class UrlRefError(ValueError):
    """The URL cannot be fetched; the message names it and says why."""


def cache_dir() -> Path:
    return polynb_home() / "cache" / "urlref"


def _entry(url: str) -> Path:
    return cache_dir() / hashlib.sha256(url.encode()).hexdigest()[:32]


def fetch(url: str, *, timeout: float | None = None) -> Path:
    """The path of a local copy of ``url``'s content (``.../body.yaml``), fetched or revalidated now.

    Raise :class:`UrlRefError` for a URL that is not HTTP(S), an unreachable server, an error status or a body
    that is too large.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UrlRefError(f"urlRef `{url}`: expected an http:// or https:// URL")
    if url in _FETCHED and _FETCHED[url].is_file():
        return _FETCHED[url]
    entry = _entry(url)
    body, meta_file = entry / "body.yaml", entry / "meta.json"
    meta = _read_meta(meta_file) if body.is_file() else {}
    request = urllib.request.Request(url, headers={"Accept": "application/yaml, text/yaml, */*"})  # noqa: S310
    if meta.get("etag"):
        request.add_header("If-None-Match", str(meta["etag"]))
    if meta.get("last_modified"):
        request.add_header("If-Modified-Since", str(meta["last_modified"]))
    limit = timeout if timeout is not None else float(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT)
    try:
        with urllib.request.urlopen(request, timeout=limit) as response:  # noqa: S310 - the scheme is checked above
            data = response.read(MAX_BYTES + 1)
            headers = response.headers
    except urllib.error.HTTPError as exc:
        if exc.code == 304 and body.is_file():
            _FETCHED[url] = body
            return body
        raise UrlRefError(f"urlRef `{url}`: the server answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UrlRefError(
            f"urlRef `{url}` cannot be fetched ({reason}): polynb is offline or the server is unreachable; "
            "download the file and use pathRef to work offline"
        ) from None
    if len(data) > MAX_BYTES:
        raise UrlRefError(f"urlRef `{url}`: the response is larger than {MAX_BYTES // (1024 * 1024)} MiB")
    entry.mkdir(parents=True, exist_ok=True)
    _write_atomic(body, data)
    new_meta = {"url": url, "etag": headers.get("ETag"), "last_modified": headers.get("Last-Modified")}
    _write_atomic(meta_file, json.dumps(new_meta).encode())
    _FETCHED[url] = body
    return body


def forget() -> None:
    """Forget what this process fetched (the next resolution revalidates with the server)."""
    _FETCHED.clear()


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
