"""The HTTP side of the emulator: discovery, REST, chunked watch streams, logs, auth and fault injection.

HTTP/1.1 with keep-alive on ``127.0.0.1`` only; JSON bodies only (protobuf/CBOR get a clean 415, as a
server that does not serve them would). Request bodies are always drained, so a rejected request never
corrupts the next one on the same connection (kubectl reuses connections).
"""

from __future__ import annotations

import bisect
import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlparse

from . import discovery
from .errors import ApiError, forbidden
from .selectors import fields_match, labels_match, parse_fields, parse_labels
from .store import JOB_ORPHAN_WARNING, RESOURCES, Change

if TYPE_CHECKING:
    from . import Emulator


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    verb: str
    resource: str
    status: int = 0
    at: float = field(default_factory=time.monotonic)


@dataclass
class Faults:
    """What tests inject; every field is read under ``lock``."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    failures: list[list[Any]] = field(default_factory=list)
    """[remaining, code, verb or None, resource or None]: the next matching requests fail with ``code``."""
    denied: set[tuple[str, str]] = field(default_factory=set)
    """(verb, resource) pairs that RBAC forbids (403)."""
    invalid_creates: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    """resource -> 422 causes for every create of it (admission-like rejections)."""
    token: str | None = None
    watch_epoch: int = 0
    log_epoch: int = 0
    bookmark_epoch: int = 0


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.stopping = False
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), Handler)

    def close_all(self) -> None:
        with self.conn_lock:
            conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "polynb-k8s-emulator/1"
    server: Server

    def setup(self) -> None:
        super().setup()
        with self.server.conn_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.conn_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing -------------------------------------------------------------------------------------

    @property
    def emu(self) -> Emulator:
        return self.server.emulator

    def send_json(self, code: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Audit-Id", "emulator")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)
        if self._request is not None:
            self._request.status = code

    def send_text(self, code: int, text: str) -> None:
        data = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        if self._request is not None:
            self._request.status = code

    def start_chunked(self, content_type: str = "application/json") -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        if self._request is not None:
            self._request.status = 200

    def chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_chunked(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def drop(self) -> None:
        """Break the connection the way a network failure does: no terminating chunk."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def body(self) -> Any:
        content_type = self.headers.get("Content-Type", "")
        if "protobuf" in content_type or "cbor" in content_type:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - "
                f"accepted media types include: application/json, application/yaml (got {content_type})",
            )
        if not self._raw:
            return {}
        try:
            return json.loads(self._raw)
        except ValueError as exc:
            raise ApiError(400, "BadRequest", f"error decoding request body: {exc}") from None

    def do_GET(self) -> None:
        self.dispatch("GET")

    def do_POST(self) -> None:
        self.dispatch("POST")

    def do_PUT(self) -> None:
        self.dispatch("PUT")

    def do_PATCH(self) -> None:
        self.dispatch("PATCH")

    def do_DELETE(self) -> None:
        self.dispatch("DELETE")

    def dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._raw = self.rfile.read(length) if length else b""  # always drain: keep-alive framing
        self._request: Request | None = None
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        parts = [p for p in url.path.split("/") if p]
        try:
            self._check_auth()
            self.route(method, parts, query)
        except ApiError as exc:
            self.send_json(exc.code, exc.status())
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _check_auth(self) -> None:
        token = self.emu.faults.token
        if token is None:
            return
        scheme, _, value = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or value.strip() != token:  # RFC 7235: the scheme is case-insensitive
            raise ApiError(401, "Unauthorized", "Unauthorized")

    def _inject(self, verb: str, resource: str, namespace: str | None, name: str) -> None:
        faults = self.emu.faults
        with faults.lock:
            if (verb, resource) in faults.denied:
                group = RESOURCES[resource].group if resource in RESOURCES else ""
                raise forbidden(self.emu.user, verb, resource, group, namespace, name)
            for failure in faults.failures:
                remaining, code, f_verb, f_res = failure
                if remaining > 0 and f_verb in (None, verb) and f_res in (None, resource):
                    failure[0] -= 1
                    reason = {
                        429: "TooManyRequests",
                        500: "InternalError",
                        503: "ServiceUnavailable",
                        504: "Timeout",
                    }.get(code, "InternalError")
                    raise ApiError(code, reason, f"injected failure ({code}) for {verb} {resource}")
            faults.failures[:] = [f for f in faults.failures if f[0] > 0]

    # -- routing --------------------------------------------------------------------------------------

    def route(self, method: str, parts: list[str], query: dict[str, str]) -> None:
        static = discovery.answer(parts, self.server.server_address[1])
        if static is not None:
            if method != "GET":
                raise ApiError(
                    405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
                )
            self.send_json(200, static)
            return
        if parts in (["healthz"], ["readyz"], ["livez"]):
            self.send_text(200, "ok")
            return
        if parts[:3] == ["api", "v1", "namespaces"] and parts[4:5] == ["services"] and parts[6:7] == ["proxy"]:
            # The API server's service proxy (network.serve_service_proxy); RBAC: services/proxy.
            verb = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[method]
            self._request = Request(method, "/" + "/".join(parts), query, verb, "services/proxy")
            self.emu.log_request(self._request)
            self._inject(verb, "services/proxy", parts[3], parts[5])
            self.emu.service_proxy(self, method, parts[3], parts[5])
            return
        if parts[:2] == ["api", "v1"]:
            group, rest = "", parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, rest = parts[1], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        ns: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] in RESOURCES:
            ns, rest = rest[1], rest[2:]
        plural = rest[0] if rest else ""
        res = RESOURCES.get(plural)
        if res is None or res.group != group:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if len(rest) > 3 or (sub is not None and sub not in res.subresources):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if res.namespaced and name is not None and ns is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if name is None:
            verb = {
                "GET": "watch" if query.get("watch") in ("true", "1") else "list",
                "POST": "create",
                "DELETE": "deletecollection",
            }.get(method, method.lower())
        else:
            verb = {"GET": "get", "DELETE": "delete"}.get(method) or VERBS.get(method, method.lower())
        resource = f"{plural}/{sub}" if sub else plural
        self._request = Request(method, "/" + "/".join(parts), query, verb, resource)
        self.emu.log_request(self._request)
        self._inject(verb, resource, ns, name or "")
        store = self.emu.store
        dry = query.get("dryRun") == "All"
        if name is None:
            if method == "GET":
                labels = parse_labels(query.get("labelSelector", ""))
                fields = parse_fields(plural, query.get("fieldSelector", ""))
                if verb == "watch":
                    self.watch(plural, ns, labels, fields, query)
                    return
                items, rv = store.list(plural, ns, labels, fields)
                self.send_json(
                    200,
                    {
                        "kind": f"{res.kind}List",
                        "apiVersion": res.api_version,
                        "metadata": {"resourceVersion": rv},
                        "items": items,
                    },
                )
                return
            if method == "POST":
                body = self.body()
                if not isinstance(body, dict):
                    raise ApiError(400, "BadRequest", "the request body must be an object")
                self._strict(body, query)
                causes = self.emu.faults.invalid_creates.get(plural)
                if causes:
                    from .errors import invalid

                    raise invalid(res.kind, (body.get("metadata") or {}).get("name", ""), causes)
                self.send_json(201, store.create(plural, ns, body, dry_run=dry))
                return
            if method == "DELETE":
                opts = self._delete_options(query)
                labels = parse_labels(query.get("labelSelector", ""))
                fields = parse_fields(plural, query.get("fieldSelector", ""))
                items, _ = store.list(plural, ns, labels, fields)
                out = []
                for item in items:
                    with contextlib.suppress(ApiError):
                        obj, _gone = store.delete(
                            plural, item["metadata"].get("namespace"), item["metadata"]["name"], opts
                        )
                        out.append(obj)
                self.send_json(
                    200,
                    {
                        "kind": f"{res.kind}List",
                        "apiVersion": res.api_version,
                        "metadata": {"resourceVersion": str(store.rv)},
                        "items": out,
                    },
                    self._delete_warning(plural, opts),
                )
                return
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        if sub == "log":
            self.logs(ns or "", name, query)
            return
        if sub == "eviction":
            if method != "POST":
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the subresource")
            store.evict(ns or "", name, self.body())
            self.send_json(201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})
            return
        if sub == "portforward":
            self.emu.portforward(self, ns or "", name, query)
            return
        if method == "GET":
            self.send_json(200, store.get(plural, ns, name))
        elif method == "PUT":
            body = self.body()
            self._strict(body, query)
            self.send_json(200, store.update(plural, ns, name, body, subresource=sub))
        elif method == "PATCH":
            self.send_json(
                200, store.patch(plural, ns, name, self.headers.get("Content-Type", ""), self.body(), subresource=sub)
            )
        elif method == "DELETE":
            opts = self._delete_options(query)
            obj, gone = store.delete(plural, ns, name, opts)
            headers = self._delete_warning(plural, opts)
            if gone and plural != "pods":
                self.send_json(
                    200,
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Success",
                        "details": {"name": name, "group": res.group, "kind": plural, "uid": obj["metadata"]["uid"]},
                    },
                    headers,
                )
            else:
                self.send_json(200, obj, headers)
        else:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def _strict(self, body: dict[str, Any], query: dict[str, str]) -> None:
        known = {
            "apiVersion",
            "kind",
            "metadata",
            "spec",
            "status",
            "data",
            "binaryData",
            "involvedObject",
            "reason",
            "message",
            "type",
            "count",
            "source",
            "firstTimestamp",
            "lastTimestamp",
            "reportingComponent",
            "reportingInstance",
            "eventTime",
            "series",
            "action",
            "related",
            "immutable",
            "stringData",
        }
        unknown = sorted(set(body) - known)
        if unknown and query.get("fieldValidation") == "Strict":
            raise ApiError(
                400, "BadRequest", "strict decoding error: " + ", ".join(f'unknown field "{u}"' for u in unknown)
            )

    def _delete_options(self, query: dict[str, str]) -> dict[str, Any]:
        opts = self.body() or {}
        if not isinstance(opts, dict):
            raise ApiError(400, "BadRequest", "DeleteOptions must be an object")
        if "propagationPolicy" in query:
            opts["propagationPolicy"] = query["propagationPolicy"]
        if "gracePeriodSeconds" in query:
            opts["gracePeriodSeconds"] = int(query["gracePeriodSeconds"])
        if "orphanDependents" in query:
            opts["orphanDependents"] = query["orphanDependents"] == "true"
        if query.get("dryRun") == "All":
            opts["dryRun"] = ["All"]
        return opts

    @staticmethod
    def _delete_warning(plural: str, opts: dict[str, Any]) -> dict[str, str]:
        if plural == "jobs" and opts.get("propagationPolicy") is None and opts.get("orphanDependents") is None:
            return {"Warning": JOB_ORPHAN_WARNING}
        return {}

    # -- watch ----------------------------------------------------------------------------------------

    def watch(self, plural: str, ns: str | None, labels: list[Any], fields: list[Any], query: dict[str, str]) -> None:
        store, faults = self.emu.store, self.emu.faults
        res = RESOURCES[plural]
        rv = query.get("resourceVersion") or ""
        timeout = float(query.get("timeoutSeconds") or self.emu.watch_timeout)
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        deadline = time.monotonic() + timeout

        def matches(obj: dict[str, Any] | None) -> bool:
            return (
                obj is not None
                and (ns is None or obj["metadata"].get("namespace") == ns)
                and labels_match(obj["metadata"].get("labels"), labels)
                and fields_match(obj, fields)
            )

        def line(kind: str, obj: dict[str, Any]) -> bytes:
            return (json.dumps({"type": kind, "object": obj}) + "\n").encode()

        def expired(last: int) -> bytes:
            status = ApiError(410, "Expired", f"too old resource version: {last} ({store.compacted_rv})").status()
            return line("ERROR", status)

        pending: list[bytes] = []
        with store.lock:
            epoch, bookmark_epoch = faults.watch_epoch, faults.bookmark_epoch
            if rv not in ("", "0"):
                try:
                    last = int(rv)
                except ValueError:
                    raise ApiError(400, "BadRequest", f'invalid resource version "{rv}"') from None
                if last < store.compacted_rv:
                    self.start_chunked()
                    self.chunk(expired(last))
                    self.end_chunked()
                    return
            else:
                items, current = store.list(plural, ns, labels, fields)
                last = int(current)
                pending = [line("ADDED", o) for o in items]
        self.start_chunked()
        self.emu.watch_opened(self._request)
        try:
            for data in pending:
                self.chunk(data)
            while True:
                out: list[bytes] = []
                with store.lock:
                    while (
                        store.rv <= last
                        and not self.server.stopping
                        and epoch == faults.watch_epoch
                        and bookmark_epoch == faults.bookmark_epoch
                    ):
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break
                        store.cond.wait(min(remaining, 1.0))
                    if self.server.stopping or epoch != faults.watch_epoch:
                        self.drop()
                        return
                    if last < store.compacted_rv:
                        out.append(expired(last))
                        last = -1
                    else:
                        start = bisect.bisect_right(store.history, last, key=lambda c: c.rv)
                        for change in store.history[start:]:
                            if change.plural != plural:
                                continue
                            event = self._event(change, matches)
                            if event is not None:
                                out.append(line(*event))
                        last = store.rv
                    bookmark = bookmark_epoch != faults.bookmark_epoch
                    bookmark_epoch = faults.bookmark_epoch
                for data in out:
                    self.chunk(data)
                if last < 0:
                    self.end_chunked()
                    return
                if bookmark and bookmarks:
                    self.chunk(
                        line(
                            "BOOKMARK",
                            {
                                "kind": res.kind,
                                "apiVersion": res.api_version,
                                "metadata": {"resourceVersion": str(last)},
                            },
                        )
                    )
                if time.monotonic() >= deadline:
                    self.end_chunked()
                    return
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
        finally:
            self.emu.watch_closed(self._request)

    @staticmethod
    def _event(change: Change, matches: Any) -> tuple[str, dict[str, Any]] | None:
        """Selector transitions as the watch cache sends them: leaving the selector is a DELETED."""
        now, before = matches(change.obj), matches(change.prev)
        kind = change.type
        if kind == "MODIFIED":
            if now and not before:
                kind = "ADDED"
            elif before and not now:
                return "DELETED", change.obj
        if kind == "ADDED" and not now:
            return None
        if kind == "DELETED" and not (now or before):
            return None
        if kind == "MODIFIED" and not now:
            return None
        return kind, change.obj

    # -- logs -----------------------------------------------------------------------------------------

    def logs(self, ns: str, name: str, query: dict[str, str]) -> None:
        store, faults = self.emu.store, self.emu.faults
        pod = store.get("pods", ns, name)
        inits = [c["name"] for c in pod["spec"].get("initContainers") or ()]
        mains = [c["name"] for c in pod["spec"]["containers"]]
        container = query.get("container")
        if not container:
            if len(mains) != 1:
                message = f"a container name must be specified for pod {name}, choose one of: [{' '.join(mains)}]"
                if inits:
                    message += f" or one of the init containers: [{' '.join(inits)}]"
                raise ApiError(400, "BadRequest", message)
            container = mains[0]
        if container not in inits + mains:
            raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {name}")
        if query.get("previous") == "true":
            raise ApiError(400, "BadRequest", f'previous terminated container "{container}" in pod "{name}" not found')

        def state_of(obj: dict[str, Any] | None) -> dict[str, Any] | None:
            if obj is None:
                return None
            status = obj.get("status") or {}
            for s in [*(status.get("initContainerStatuses") or ()), *(status.get("containerStatuses") or ())]:
                if s["name"] == container:
                    return dict(s.get("state") or {})
            return {}

        def restarted(obj: dict[str, Any]) -> bool:
            status = obj.get("status") or {}
            return any(
                s["name"] == container and int(s.get("restartCount") or 0) > 0
                for s in [*(status.get("initContainerStatuses") or ()), *(status.get("containerStatuses") or ())]
            )

        state = state_of(pod) or {}
        if "running" not in state and "terminated" not in state and not restarted(pod):
            # A container restarting (CrashLoopBackOff) has a log: its last instance's, which `kubectl logs`
            # shows; only one that never ran is "waiting to start".
            reason = (state.get("waiting") or {}).get("reason", "ContainerCreating")
            raise ApiError(400, "BadRequest", f'container "{container}" in pod "{name}" is waiting to start: {reason}')
        follow = query.get("follow") in ("true", "1")
        stamps = query.get("timestamps") in ("true", "1")
        since = query.get("sinceTime")
        tail = int(query["tailLines"]) if query.get("tailLines") else None
        key = (ns, name, container)

        def render(entries: list[tuple[str, str]]) -> bytes:
            return "".join(f"{ts} {text}\n" if stamps else f"{text}\n" for ts, text in entries).encode()

        def after_since(entries: list[tuple[str, str]]) -> list[tuple[str, str]]:
            if not since:
                return entries
            from .clock import parse_iso

            floor = parse_iso(since)
            return [e for e in entries if parse_iso(e[0]) >= floor]

        with store.lock:
            entries = after_since(list(store.logs.get(key, [])))
            sent = len(store.logs.get(key, []))
            epoch = faults.log_epoch
        if tail is not None:
            entries = entries[-tail:] if tail else []
        if not follow:
            self.send_text(200, render(entries).decode())
            return
        self.start_chunked("text/plain")
        try:
            if entries:
                self.chunk(render(entries))
            while True:
                with store.lock:
                    done = False
                    while True:
                        current = store.logs.get(key, [])
                        new = current[sent:]
                        obj = store.objects.get(("pods", ns, name))
                        now_state = state_of(obj)
                        done = now_state is None or "terminated" in now_state
                        if new or done or self.server.stopping or epoch != faults.log_epoch:
                            break
                        store.cond.wait(1.0)
                    sent = len(current)
                    dropped = self.server.stopping or epoch != faults.log_epoch
                if new:
                    self.chunk(render(new))
                if dropped:
                    self.drop()
                    return
                if done:
                    self.end_chunked()
                    return
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
