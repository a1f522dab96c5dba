"""What ``make demo`` checks for real: TensorBoard answers over HTTP (and when), the training scalars reach
it, and the hook's webhook report arrives. Standard library only (urllib, http.server)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HTTP_TIMEOUT = 5.0
PROBE_INTERVAL = 0.5


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT) as response:  # noqa: S310 -- a local http URL
        return json.loads(response.read())


@dataclass
class TensorBoardProbe:
    """Probes a TensorBoard at ``url`` on a thread: the first successful GET of ``/``, then the scalar tags
    (``/data/plugin/scalars/tags``) until ``tag`` shows up. ``status_of_watched`` reports what the watched
    run (the experiment) was doing at each success, read right *after* it: still running then means it was
    running during the request."""

    url: str
    status_of_watched: Callable[[], str]
    tag: str = "loss"
    deadline: float = 120.0
    served_at: float | None = None
    watched_status_when_served: str | None = None
    tags: dict[str, list[str]] = field(default_factory=dict)
    watched_status_when_scalars: str | None = None
    points: int = 0
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        threading.Thread(target=self._run, name="tensorboard-probe", daemon=True).start()

    def _run(self) -> None:
        try:
            self._probe()
        except Exception as exc:  # reported, never raised on a daemon thread
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.done.set()

    def _probe(self) -> None:
        end = time.monotonic() + self.deadline
        base = self.url.rstrip("/")
        while self.served_at is None:
            try:
                with urllib.request.urlopen(base + "/", timeout=HTTP_TIMEOUT) as response:  # noqa: S310
                    if response.status == 200 and response.read(1):
                        self.served_at = time.time()
                        self.watched_status_when_served = self.status_of_watched()
            except (urllib.error.URLError, OSError) as exc:
                if time.monotonic() > end:
                    self.error = f"TensorBoard at {self.url} never answered: {exc}"
                    return
                time.sleep(PROBE_INTERVAL)
        while True:
            tags: dict[str, Any] = get_json(base + "/data/plugin/scalars/tags")
            runs = {run: sorted(info) for run, info in tags.items() if self.tag in info}
            if runs:
                self.tags = {run: sorted(info) for run, info in tags.items()}
                self.watched_status_when_scalars = self.status_of_watched()
                run = next(iter(runs))
                query = urllib.parse.urlencode({"run": run, "tag": self.tag})
                self.points = len(get_json(f"{base}/data/plugin/scalars/scalars?{query}"))
                return
            if time.monotonic() > end:
                self.error = f"no `{self.tag}` scalars in TensorBoard after {self.deadline:g} s (runs: {list(tags)})"
                return
            time.sleep(PROBE_INTERVAL)

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "served": self.served_at is not None,
            "experiment_status_when_served": self.watched_status_when_served,
            "scalar_tags": self.tags,
            "experiment_status_when_scalars": self.watched_status_when_scalars,
            "points": self.points,
            "error": self.error,
        }


class ReportReceiver:
    """A local HTTP endpoint for the hook's webhook: keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.reports: list[dict[str, Any]] = []
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    body = {"unparsable": True}
                receiver.reports.append(body if isinstance(body, dict) else {"body": body})
                receiver.arrived.set()
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the demo prints the report itself

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/report"
        threading.Thread(target=self.server.serve_forever, name="report-receiver", daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
