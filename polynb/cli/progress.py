"""How ``polynb run`` shows a pipeline while it runs: a live rich view on a terminal, plain lines otherwise.

Both are fed from the main thread with what :class:`~polynb.cli.tree.RunTree` read from the store, never
from the engine thread: a slow terminal then cannot hold up scheduling.
"""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol, TextIO

from polynb.cli.common import format_duration, local_time, one_line, run_duration, style_of
from polynb.cli.tree import RunTree, hook_label, is_status_change, short_kind
from polynb.lifecycle import is_status_event

if TYPE_CHECKING:  # rich is imported by the live view alone: a pipe or `--no-live` does without it
    from rich.console import Console, RenderableType
    from rich.text import Text

    from polynb.store import EventRecord, RunRecord

TIMELINE_LENGTH = 12
WIDE = 110
"""Terminal columns from which the live table also shows the events each op fired."""


class Progress(Protocol):
    def update(self, tree: RunTree, new: list[EventRecord]) -> None: ...
    def note(self, message: str) -> None: ...
    def close(self) -> None: ...


def status_line(event: EventRecord, name: str, width: int = 0) -> str:
    """``HH:MM:SS.mmm  op-name  status  reason: message`` for one status event."""
    status = event.payload.get("status") or short_kind(event.kind)
    reason, message = event.payload.get("reason"), event.payload.get("message")
    detail = one_line(": ".join(str(part) for part in (reason, message) if part))
    text = f"{local_time(event.at)}  {name:<{width}}  {status:<15}  {detail}"
    return text.rstrip()


class LineProgress:
    """One line per status change, for logs and pipes (no colour, no cursor movement)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def update(self, tree: RunTree, new: list[EventRecord]) -> None:
        width = max((len(tree.label(r)) for r in tree.runs.values()), default=0)
        for event in new:
            if is_status_change(event):
                run = tree.runs[event.run_uuid]
                print(status_line(event, tree.label(run), width), file=self.stream)
        self.stream.flush()

    def note(self, message: str) -> None:
        print(message, file=self.stream, flush=True)

    def close(self) -> None:
        self.stream.flush()


class LiveProgress:
    """A rich table of the ops (status in colour, reason, duration, events fired, service URL) above the
    timeline of the latest events. Redrawn by the main thread after each poll, so nothing races."""

    def __init__(self, console: Console) -> None:
        from rich.live import Live

        self.console = console
        self.timeline: deque[tuple[EventRecord, str]] = deque(maxlen=TIMELINE_LENGTH)
        self.notes: list[str] = []
        self._tree: RunTree | None = None
        self._live = Live(console=console, auto_refresh=False, transient=False, redirect_stdout=False)
        self._live.start()

    def update(self, tree: RunTree, new: list[EventRecord]) -> None:
        self._tree = tree
        for event in new:
            if is_status_event(event.kind) and not is_status_change(event):
                continue  # run_status_done repeats the final status just shown
            self.timeline.append((event, tree.label(tree.runs[event.run_uuid])))
        self._live.update(self._render(), refresh=True)

    def note(self, message: str) -> None:
        self.notes.append(message)
        self._live.update(self._render(), refresh=True)

    def close(self) -> None:
        self._live.update(self._render(), refresh=True)
        self._live.stop()

    def _render(self) -> RenderableType:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        if self._tree is None:
            return Text("submitting…")
        tree = self._tree
        now = datetime.now(UTC)
        top = tree.top
        title = Text.assemble((top.name, "bold"), "  ", (top.status.value, style_of(top.status.value)), f"  {top.uuid}")
        table = Table(title=title, title_justify="left", expand=False, show_edge=False, pad_edge=False)
        # Names, statuses and URLs must stay readable on an 80-column terminal; the rest gives way.
        wide = self.console.width >= WIDE
        table.add_column("op", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("reason", no_wrap=True, overflow="ellipsis", max_width=40 if wide else 16)
        table.add_column("duration", no_wrap=True, justify="right")
        if wide:
            table.add_column("events", no_wrap=True, overflow="ellipsis", max_width=32)
        table.add_column("url", no_wrap=True)
        ops = tree.ops()
        while ops:  # each op, then the ops of the nested DAG it runs (``outer-op/inner-op``)
            op = ops.pop(0)
            table.add_row(*self._row(tree, op, now, wide=wide, name=tree.label(op)))
            for hook in tree.hooks(op.uuid):
                table.add_row(*self._row(tree, hook, now, wide=wide, name=f"  ↳ {hook_label(hook, op.name)}"))
            ops[:0] = tree.nested_ops(op)
        if tree.is_dag:
            for hook in tree.hooks(tree.root):
                table.add_row(*self._row(tree, hook, now, wide=wide, name=f"↳ {hook_label(hook, top.name)}"))
        timeline = Table.grid(padding=(0, 2))
        for event, name in self.timeline:
            timeline.add_row(
                Text(local_time(event.at), style="dim"),
                Text(name),
                Text(short_kind(event.kind), style=style_of(short_kind(event.kind))),
            )
        parts: list[RenderableType] = [table, Text(""), Text("events", style="bold"), timeline]
        parts += [Text(note) for note in self.notes]
        return Group(*parts)

    @staticmethod
    def _row(tree: RunTree, run: RunRecord, now: datetime, *, wide: bool, name: str | None = None) -> list[Text]:
        from rich.text import Text

        fired = [short_kind(e.kind) for e in tree.events.get(run.uuid, []) if is_status_change(e)]
        reason = run.reason or ""
        if run.message and run.status.value in ("failed", "upstream_failed", "skipped"):
            reason = f"{reason}: {run.message}" if reason else run.message
        cells = [
            Text(name or run.name),
            Text(run.status.value, style=style_of(run.status.value)),
            Text(one_line(reason), style="dim" if not run.is_final else ""),
            Text(format_duration(run_duration(run, now=now))),
            Text(("… " if len(fired) > 3 else "") + " ".join(fired[-3:]), style="dim"),
            Text(run.url or "", style="underline cyan"),
        ]
        return cells if wide else cells[:4] + cells[5:]


def make_progress(stream: TextIO, *, live: bool | None = None) -> Progress:
    """A live view when ``stream`` is a terminal (or ``live`` says so), plain lines otherwise."""
    if live is None:
        live = stream.isatty()
    if live:
        from rich.console import Console

        return LiveProgress(Console(file=stream))
    return LineProgress(stream)
