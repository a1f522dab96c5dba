"""How ``polynb run`` shows a pipeline while it runs: a live rich view on a terminal, plain lines otherwise.

Both are fed from the main thread with what :class:`~polynb.cli.tree.RunTree` read from the store, never
from the engine thread: a slow terminal then cannot hold up scheduling.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol, TextIO

from polynb.cli.common import format_duration, local_time, one_line, run_duration, style_of
from polynb.cli.tree import RunTree, hook_label, is_status_change, short_kind
from polynb.lifecycle import FINAL, PENDING_VALUES, Status, is_status_event

if TYPE_CHECKING:  # rich is imported by the live view alone: a pipe or `--no-live` does without it
    from rich.console import Console, RenderableType
    from rich.text import Text

    from polynb.store import EventRecord, RunRecord

TIMELINE_LENGTH = 12
WIDE = 110
"""Terminal columns from which the live table also shows the events each op fired."""
MIN_REDRAW_INTERVAL = 0.1
"""Shortest pause between two redraws of the live view (the statuses' times are exact either way)."""
REDRAW_SHARE = 0.2
"""Most of the main thread's time the live view may take: a redraw that cost ``c`` waits ``c / share`` before
the next. Rendering is Python code that holds the GIL the engine thread needs to schedule the next op."""
TABLE_CHROME = 3
"""Lines of the table that are not rows: the title above it, its header and the rule under the header."""
MIN_TIMELINE = 3
MIN_OP_ROWS = 5
PROBLEMS: frozenset[Status] = frozenset({Status.FAILED, Status.UPSTREAM_FAILED, Status.STOPPED, Status.STOPPING})


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
        self._width = 0
        self._measured = 0  # how many runs the tree had when the names' width was measured

    def update(self, tree: RunTree, new: list[EventRecord]) -> None:
        if len(tree.runs) != self._measured:  # a DAG's runs come all at once: measured once, not every poll
            self._measured = len(tree.runs)
            self._width = max((len(tree.label(r)) for r in tree.runs.values()), default=0)
        width = self._width
        for event in new:
            if is_status_change(event):
                run = tree.runs[event.run_uuid]
                print(status_line(event, tree.label(run), width), file=self.stream)
        self.stream.flush()

    def note(self, message: str) -> None:
        print(message, file=self.stream, flush=True)

    def close(self) -> None:
        self.stream.flush()


@dataclass(frozen=True, slots=True)
class Row:
    """One run of the live table: an op, a hook (``↳ …``) or an op of a nested DAG (``outer/inner``)."""

    name: str
    run: RunRecord


def fit_rows(rows: Sequence[Row], budget: int) -> tuple[list[Row], Counter[str]]:
    """The rows to show when at most ``budget`` fit (one of them saying what is left out), in their order,
    and the statuses of the rows left out.

    What a user watches comes first: runs that failed or were stopped, then those under way, then the next
    to start, then the most recently finished."""
    if len(rows) <= budget:
        return list(rows), Counter()
    shown = max(budget - 1, 0)

    def rank(index: int) -> tuple[int, float]:
        run = rows[index].run
        if run.status in PROBLEMS:
            return 0, index
        if run.status in FINAL:
            finished = run.finished_at or run.updated_at
            return 3, -finished.timestamp() if finished is not None else index
        if run.status in PENDING_VALUES:
            return 2, index
        return 1, index

    kept = set(sorted(range(len(rows)), key=rank)[:shown])
    hidden = Counter(rows[i].run.status.value for i in range(len(rows)) if i not in kept)
    return [rows[i] for i in sorted(kept)], hidden


class LiveProgress:
    """A rich table of the ops (status in colour, reason, duration, events fired, service URL) above the
    timeline of the latest events. Redrawn by the main thread after a poll, so nothing races.

    While the run goes on, the view fits the terminal (the runs a user watches first, a line counting the others)
    and is redrawn at most every :data:`MIN_REDRAW_INTERVAL` and within :data:`REDRAW_SHARE` of the time: a
    table of hundreds of ops redrawn after every poll took most of a core from the engine (a 200-op fan-out ran
    three times slower on a terminal than into a pipe). The last view, left on the terminal, shows every run."""

    def __init__(self, console: Console) -> None:
        from rich.live import Live

        self.console = console
        self.timeline: deque[tuple[EventRecord, str]] = deque(maxlen=TIMELINE_LENGTH)
        self.notes: list[str] = []
        self._tree: RunTree | None = None
        self._live = Live(console=console, auto_refresh=False, transient=False, redirect_stdout=False)
        self._next_draw = 0.0
        self._live.start()

    def update(self, tree: RunTree, new: list[EventRecord]) -> None:
        self._tree = tree
        for event in new:
            if is_status_event(event.kind) and not is_status_change(event):
                continue  # run_status_done repeats the final status just shown
            self.timeline.append((event, tree.label(tree.runs[event.run_uuid])))
        if time.monotonic() >= self._next_draw:
            self._draw()
        # else: the follower calls again within its wake interval, with or without new events

    def note(self, message: str) -> None:
        self.notes.append(message)
        self._draw()

    def close(self) -> None:
        self._live.update(self._render(fit=False), refresh=False)
        self._live.stop()  # draws it, taller than the terminal if need be: the record left in its scrollback

    def _draw(self) -> None:
        start = time.monotonic()
        self._live.update(self._render(fit=True), refresh=True)
        end = time.monotonic()
        self._next_draw = end + max(MIN_REDRAW_INTERVAL, (end - start) / REDRAW_SHARE)

    def _rows(self, tree: RunTree) -> list[Row]:
        """Every run of the table in its order: each op, its hooks, the ops of the nested DAG it runs, and the
        DAG's own hooks last."""
        rows: list[Row] = []
        ops = tree.ops()
        while ops:
            op = ops.pop(0)
            rows.append(Row(tree.label(op), op))
            rows += [Row(f"  ↳ {hook_label(hook, op.name)}", hook) for hook in tree.hooks(op.uuid)]
            ops[:0] = tree.nested_ops(op)
        if tree.is_dag:
            rows += [Row(f"↳ {hook_label(hook, tree.top.name)}", hook) for hook in tree.hooks(tree.root)]
        return rows

    def _render(self, *, fit: bool) -> RenderableType:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        if self._tree is None:
            return Text("submitting…")
        tree = self._tree
        now = datetime.now(UTC)
        top = tree.top
        title = Text.assemble((top.name, "bold"), "  ", (top.status.value, style_of(top.status.value)), f"  {top.uuid}")
        # The title above the table, not in it: a table's title wraps at the table's width (the uuid would take a
        # second line of a narrow table), this one only at the terminal's.
        title.no_wrap, title.overflow = True, "ellipsis"
        table = Table(expand=False, show_edge=False, pad_edge=False)
        # Names, statuses and URLs must stay readable on an 80-column terminal; the rest gives way.
        wide = self.console.width >= WIDE
        table.add_column("op", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("reason", no_wrap=True, overflow="ellipsis", max_width=40 if wide else 16)
        table.add_column("duration", no_wrap=True, justify="right")
        if wide:
            table.add_column("events", no_wrap=True, overflow="ellipsis", max_width=32)
        table.add_column("url", no_wrap=True)
        rows = self._rows(tree)
        events = list(self.timeline)
        hidden: Counter[str] = Counter()
        if fit:
            height = self.console.size.height
            events = events[-max(MIN_TIMELINE, min(TIMELINE_LENGTH, height // 4)) :]
            # What is not a row: the table's chrome, a blank line, "events" and its lines, the notes, the cursor.
            budget = height - TABLE_CHROME - 2 - len(events) - len(self.notes) - 1
            rows, hidden = fit_rows(rows, max(MIN_OP_ROWS, budget))
        for row in rows:
            table.add_row(*self._row(tree, row.run, now, wide=wide, name=row.name))
        if hidden:
            counts = ", ".join(f"{count} {status}" for status, count in hidden.most_common())
            table.caption = Text(
                f"… and {hidden.total()} more: {counts}", style="dim", no_wrap=True, overflow="ellipsis"
            )
            table.caption_justify = "left"
        timeline = Table.grid(padding=(0, 2))
        for event, name in events:
            timeline.add_row(
                Text(local_time(event.at), style="dim"),
                Text(name),
                Text(short_kind(event.kind), style=style_of(short_kind(event.kind))),
            )
        parts: list[RenderableType] = [title, table, Text(""), Text("events", style="bold"), timeline]
        if not fit:
            parts += self._failures(rows)
        parts += [Text(note) for note in self.notes]
        return Group(*parts)

    @staticmethod
    def _failures(rows: Sequence[Row]) -> list[RenderableType]:
        """The last view's account of each failed run: its reason and whole message (an exit code and the
        last lines of its log), which the table's reason column cuts to a few words."""
        from rich.table import Table
        from rich.text import Text

        failed = [row for row in rows if row.run.status is Status.FAILED]
        if not failed:
            return []
        grid = Table.grid(padding=(0, 2))
        for row in failed:
            detail = ": ".join(part for part in (row.run.reason, row.run.message) if part)
            grid.add_row(Text(row.name.strip(), style="bold"), Text(detail or "failed", style=style_of("failed")))
        return [Text(""), Text("failed", style="bold"), grid]

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
