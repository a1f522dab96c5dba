"""``%polyaxon watch -f FILE``: a reactive pipeline watched by this kernel's engine (``scheduler.watch``).

The watch runs in the background, like a run: the cell returns a :class:`WatchHandle` at once. Its text repr
lists the events and the runs they started, read from the store when it is displayed (nothing is printed
from the watch's threads: late output never lands in another cell). ``handle.stop()`` ends it; the kernel's
shutdown ends every watch of the session.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from polynb.scheduler.watch import Watch
    from polynb.store.watches import WatchEvent


class WatchHandle:
    def __init__(self, watch: Watch, sources: str) -> None:
        self._watch = watch
        self.name = watch.options.name
        self._sources = sources
        self.stopped = False

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

    def text(self) -> str:
        limit = self._watch.options.max_runs
        state = "stopped" if self.stopped else ("done" if self._watch.done else "watching")
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
        from html import escape

        return {"text/plain": self.text(), "text/html": f"<pre>{escape(self.text())}</pre>"}
