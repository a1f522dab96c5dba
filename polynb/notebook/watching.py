"""``%polyaxon watch -f FILE``: a reactive pipeline watched by this kernel's engine (``scheduler.watch``).

The watch runs in the background, like a run: the cell returns a :class:`WatchHandle` at once. Its text repr
lists the events and the runs they started, read from the store when it is displayed (nothing is printed
from the watch's threads: late output never lands in another cell). In a front end with widgets the cell
shows a **live list** instead (:meth:`WatchHandle.widget`): each event the watch records, the run it started
and that run's status, rewritten by the session's UI thread when the watch records or submits an event or
one of its runs changes status (a rewrite at a time, coalesced). ``handle.stop()`` ends it; the kernel's
shutdown ends every watch of the session.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from html import escape
from typing import TYPE_CHECKING, Any

from polynb.store import RunNotFoundError

if TYPE_CHECKING:
    from polynb.scheduler.events import EngineEvent
    from polynb.scheduler.watch import Watch
    from polynb.store.watches import WatchEvent

_STATUS_INK = {"succeeded": "#2e7d32", "failed": "#c62828", "upstream_failed": "#c62828", "stopped": "#6a1b9a",
               "skipped": "#757575", "running": "#1565c0"}  # fmt: skip
_PAYLOAD_KEYS = ("sha", "message", "relative_path", "key", "tag", "path")
"""What says best which commit, file, object or tag an event is, in this order (two at most are shown)."""


class WatchHandle:
    def __init__(
        self, watch: Watch, sources: str, *, ui_call: Callable[[Callable[[], None]], None] | None = None
    ) -> None:
        """``ui_call`` runs a function on the session's UI thread (the owner of every widget write); without it
        (no session) the handle has no live widget."""
        self._watch = watch
        self.name = watch.options.name
        self._sources = sources
        self.stopped = False
        self._ui_call = ui_call
        self._widget: Any = None
        self._lock = threading.Lock()
        self._pending = False
        self.on_stop: Callable[[], None] | None = None
        """Called once the watch stopped (the session unsubscribes the handle from its engine)."""
        self._runs: set[str] = {uuid for uuid in self.runs}
        """The watch's runs, for :meth:`on_engine_event` (engine thread) to tell which events concern it."""

    @property
    def events(self) -> list[WatchEvent]:
        """What the watch recorded, oldest first (its baseline included)."""
        return self._watch.log.events(self.name)

    @property
    def runs(self) -> list[str]:
        """The uuids of the runs it started, in order."""
        return [e.run_uuid for e in self.events if e.run_uuid]

    def wait(self, timeout: float | None = None) -> bool:
        """Until ``max_runs`` runs are submitted and final (False after ``timeout`` seconds)."""
        return self._watch.wait_done(timeout)

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self._watch.stop()
            if self.on_stop is not None:
                self.on_stop()
            self.changed()

    # -- the live list ----------------------------------------------------------------------------------

    def widget(self) -> Any:
        """The live list (an ``ipywidgets.HTML``, made on first call), or None without a UI thread."""
        if self._ui_call is None:
            return None
        with self._lock:
            if self._widget is None:
                import ipywidgets as widgets  # type: ignore[import-untyped]

                self._widget = widgets.HTML(value=self.html())
            return self._widget

    def on_watch_change(self, event: WatchEvent) -> None:
        """The watch recorded or submitted ``event`` (its sources' or dispatcher's thread; the event is as it
        was recorded, so its run is read back from the log)."""
        runs = set(self.runs)
        with self._lock:
            self._runs |= runs
        self.changed()

    def on_engine_event(self, event: EngineEvent) -> None:
        """Engine listener (engine thread): a status of one of the watch's runs (or of an op of one) moved."""
        with self._lock:
            mine = event.run_uuid in self._runs or (event.dag_uuid is not None and event.dag_uuid in self._runs)
        if mine:
            self.changed()

    def changed(self) -> None:
        """Ask the UI thread to rewrite the live list; one rewrite pending at a time (any thread)."""
        with self._lock:
            if self._widget is None or self._pending or self._ui_call is None:
                return
            self._pending = True
        self._ui_call(self._redraw)

    def _redraw(self) -> None:
        with self._lock:
            self._pending = False
            widget = self._widget
        if widget is not None:
            value = self.html()
            if widget.value != value:
                widget.value = value

    def _state(self) -> str:
        return "stopped" if self.stopped else ("done" if self._watch.done else "watching")

    def html(self) -> str:
        """The live list: a header, then one row per event (the baseline left out), newest first."""
        limit = self._watch.options.max_runs
        header = f"<b>watch {escape(self.name)}</b>: {escape(self._state())} · {escape(self._sources)}" + (
            f" · at most {limit} runs" if limit else ""
        )
        rows = []
        store = self._watch.store
        for event in reversed([e for e in self.events if e.status != "baseline"]):
            run, ink = "", ""
            if event.run_uuid:
                try:
                    record = store.get_run(event.run_uuid)
                except RunNotFoundError:
                    record = None
                if record is not None:
                    status = record.status.value
                    ink = _STATUS_INK.get(status, "inherit")
                    run = f'{escape(record.name)} <span style="color:{ink}">{escape(status)}</span>'
            what = ", ".join(
                f"{k}={_short(event.payload[k])}" for k in _PAYLOAD_KEYS if k in event.payload
            )  # fmt: skip
            why = escape(event.message or "")
            rows.append(
                "<tr>"
                f"<td>{escape(event.at.strftime('%H:%M:%S'))}</td><td>{escape(event.source)}</td>"
                f"<td><code>{escape(event.event_id[:12])}</code></td><td>{escape(what)}</td>"
                f"<td>{escape(event.status)}</td><td>{run}{(' ' + why) if why else ''}</td>"
                "</tr>"
            )
        if not rows:
            rows.append('<tr><td colspan="6" style="opacity:0.7">no event yet</td></tr>')
        head = "".join(f"<th>{h}</th>" for h in ("at", "source", "event", "payload", "status", "run"))
        cell = "padding:1px 10px 1px 0;text-align:left"
        return (
            (
                f'<div class="polynb-watch" style="line-height:1.4">{header}'
                f'<table class="polynb-watch-runs" style="border-collapse:collapse;font-size:12px">'
                f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
            )
            .replace("<td>", f'<td style="{cell}">')
            .replace("<th>", f'<th style="{cell}">')
        )

    def text(self) -> str:
        limit = self._watch.options.max_runs
        state = self._state()
        lines = [f"watch {self.name}: {state} {self._sources}" + (f", at most {limit} runs" if limit else "")]
        store = self._watch.store
        for event in self.events:
            if event.status == "baseline":
                continue
            run = ""
            if event.run_uuid:
                record = store.get_run(event.run_uuid)
                run = f" -> {record.name} {record.status.value}"
            why = f": {event.message}" if event.message else ""
            lines.append(f"  {event.source} {event.event_id[:12]} {event.status}{run}{why}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.text()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        # The text and the <pre> are what a front end without widgets (and nbval) shows; with widgets, the
        # live list (the widget view outranks them).
        bundle: dict[str, Any] = {"text/plain": self.text(), "text/html": f"<pre>{escape(self.text())}</pre>"}
        widget = self.widget()
        if widget is not None:
            view = widget._repr_mimebundle_(**kwargs) or {}
            key = "application/vnd.jupyter.widget-view+json"
            if key in view:
                bundle[key] = view[key]
        return bundle


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:39] + "…"
