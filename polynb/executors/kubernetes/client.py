"""A small typed layer over the official client's ``ApiClient``: raw JSON in and out, errors as values.

Why not the generated ``CoreV1Api``/``BatchV1Api`` methods: they validate every argument through pydantic
and build model objects the executor would turn straight back into dicts, and their types say "model" where
``_preload_content=False`` returns a stream. This layer still goes through the official client for
everything that matters — configuration, authentication (tokens, client certificates, exec plugins and
their refresh), TLS and the connection pool — and adds only request building and error translation.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

import urllib3
from kubernetes import client as k8s

RETRYABLE: Final = frozenset({429, 500, 502, 503, 504})

RESOURCES: Final = {
    # plural -> (api prefix, namespaced)
    "namespaces": ("/api/v1", False),
    "pods": ("/api/v1", True),
    "services": ("/api/v1", True),
    "configmaps": ("/api/v1", True),
    "secrets": ("/api/v1", True),
    "events": ("/api/v1", True),
    "jobs": ("/apis/batch/v1", True),
}


class K8sError(Exception):
    """A failed API call: ``code`` is the HTTP status (0: no answer), ``reason`` the Status reason."""

    def __init__(self, code: int, reason: str, message: str, *, causes: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.causes = causes or []

    @property
    def retryable(self) -> bool:
        return self.code == 0 or self.code in RETRYABLE

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message}" if self.code else self.message


def _error(resp: Any) -> K8sError:
    data = getattr(resp, "data", b"") or b""
    try:
        body = json.loads(data)
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("kind") == "Status":
        causes = (body.get("details") or {}).get("causes") or []
        return K8sError(int(resp.status), str(body.get("reason") or ""), str(body.get("message") or ""), causes=causes)
    text = data.decode("utf-8", "replace").strip() if isinstance(data, bytes) else str(data)
    return K8sError(int(resp.status), str(getattr(resp, "reason", "") or ""), text or f"HTTP {resp.status}")


def path(plural: str, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
    prefix, namespaced = RESOURCES[plural]
    out = prefix
    if namespaced and namespace is not None:
        out += f"/namespaces/{quote(namespace, safe='')}"
    out += f"/{plural}"
    if name is not None:
        out += f"/{quote(name, safe='')}"
    if sub is not None:
        out += f"/{sub}"
    return out


@dataclass
class Stream:
    """An open streaming response (watch or followed log); ``close()`` may be called from any thread."""

    response: Any

    def lines(self) -> Iterator[bytes]:
        """Complete lines as they arrive (without the newline); ends when the server ends the response."""
        pending = b""
        for chunk in self.response.stream(8192, decode_content=True):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            yield from lines
        if pending:
            yield pending

    def close(self) -> None:
        resp = self.response
        try:
            shutdown = getattr(resp, "shutdown", None)
            if shutdown is not None:
                shutdown()  # unblocks a reader stuck in recv() (urllib3 >= 2.3)
            resp.release_conn()
            resp.close()
        except Exception:  # noqa: S110 - closing a stream that is already broken is fine
            pass


class Api:
    """Requests against one cluster; counts them by verb (the benchmark and tests read ``counts``)."""

    def __init__(self, api_client: Any, *, retries: int = 4, backoff: float = 0.2) -> None:
        self.api_client = api_client
        self.retries = retries
        self.backoff = backoff
        self.counts: dict[str, int] = {}

    @classmethod
    def from_configuration(cls, configuration: Any, **kwargs: Any) -> Api:
        return cls(k8s.ApiClient(configuration), **kwargs)

    def close(self) -> None:
        self.api_client.close()

    def _send(
        self,
        method: str,
        url_path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
        timeout: float | tuple[float, float] | None = None,
    ) -> Any:
        headers = {"Accept": "application/json", "Content-Type": content_type or "application/json"}
        params = [(k, _query_value(v)) for k, v in (query or {}).items() if v is not None]
        verb = _verb(method, query)
        self.counts[verb] = self.counts.get(verb, 0) + 1
        request = self.api_client.param_serialize(
            method=method,
            resource_path=url_path,
            query_params=params or None,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            return self.api_client.call_api(*request, _request_timeout=timeout)
        except urllib3.exceptions.HTTPError as exc:
            raise K8sError(0, "ConnectionError", f"cannot reach the Kubernetes API: {exc}") from exc

    def request(
        self,
        method: str,
        url_path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
        timeout: float | tuple[float, float] | None = 30.0,
        retry: bool = True,
    ) -> dict[str, Any]:
        """One call, its JSON answer; 429/5xx and connection errors are retried with backoff when ``retry``
        (every caller's writes are idempotent: deterministic names, deletes by name or label)."""
        attempt = 0
        while True:
            try:
                resp = self._send(method, url_path, query=query, body=body, content_type=content_type, timeout=timeout)
                resp.read()
                if not 200 <= resp.status <= 299:
                    raise _error(resp)
                data = json.loads(resp.data or b"{}")
                return data if isinstance(data, dict) else {"items": data}
            except K8sError as exc:
                attempt += 1
                if not (retry and exc.retryable and attempt <= self.retries):
                    raise
                time.sleep(min(self.backoff * 2 ** (attempt - 1), 5.0))

    def stream(
        self,
        url_path: str,
        *,
        query: Mapping[str, Any] | None = None,
        timeout: float | tuple[float, float] | None = None,
    ) -> Stream:
        """A GET whose body is read as it comes (watches, followed logs). Errors raise :class:`K8sError`."""
        resp = self._send("GET", url_path, query=query, timeout=timeout)
        if not 200 <= resp.status <= 299:
            resp.read()
            raise _error(resp)
        return Stream(resp.response)

    def text(self, url_path: str, *, query: Mapping[str, Any] | None = None, timeout: float = 30.0) -> str:
        """A GET with a plain-text answer (logs without follow)."""
        resp = self._send("GET", url_path, query=query, timeout=timeout)
        resp.read()
        if not 200 <= resp.status <= 299:
            raise _error(resp)
        data: bytes = resp.data or b""
        return data.decode("utf-8", "replace")


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _verb(method: str, query: Mapping[str, Any] | None) -> str:
    if method == "GET":
        return "watch" if query and query.get("watch") else "get"
    return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, method.lower())
