"""What the run-related commands share: finding a run from what a user types, times, durations, colours."""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from polynb.lifecycle import FINAL

if TYPE_CHECKING:
    from polynb.store import RunRecord

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a Ctrl-C

STATUS_STYLES: dict[str, str] = {
    "created": "dim",
    "on_schedule": "dim",
    "resuming": "dim",
    "compiled": "cyan",
    "queued": "cyan",
    "scheduled": "cyan",
    "starting": "blue",
    "running": "bold blue",
    "processing": "bold blue",
    "retrying": "yellow",
    "warning": "yellow",
    "unschedulable": "yellow",
    "unknown": "yellow",
    "stopping": "magenta",
    "stopped": "magenta",
    "succeeded": "green",
    "skipped": "dim yellow",
    "failed": "bold red",
    "upstream_failed": "red",
}


# Terminal escapes (colours, cursor moves) and the other control characters but tab and line breaks.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LINE_BREAKS = re.compile(r"\s*(?:\r\n|\r|\n)\s*")
LINE_JOINER = " ⏎ "
"""What stands for a line break in a one-line message."""


def one_line(text: str) -> str:
    """``text`` on one line, for a table row or a progress line: a failed op's message carries the tail of
    its log, whose line breaks would split the row and whose escapes would repaint the terminal."""
    text = _ESCAPES.sub("", text).replace("\t", " ")
    return _LINE_BREAKS.sub(LINE_JOINER, text.strip())


def style_of(status: str) -> str:
    return STATUS_STYLES.get(status, "")


def local_time(at: datetime, *, millis: bool = True) -> str:
    """``HH:MM:SS.mmm`` in the local time zone (what a terminal user compares with their clock)."""
    local = at.astimezone()
    text = local.strftime("%H:%M:%S")
    return f"{text}.{local.microsecond // 1000:03d}" if millis else text


def local_datetime(at: datetime) -> str:
    return at.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def iso(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def run_duration(run: RunRecord, *, now: datetime | None = None) -> float | None:
    """Seconds the run ran (or has been running so far); None before it started."""
    if run.duration is not None and run.status in FINAL:
        return run.duration
    if run.started_at is None:
        return None
    return max(0.0, ((now or datetime.now(UTC)) - run.started_at).total_seconds())


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def pipe_safe(command: Callable[[Any], int]) -> Callable[[Any], int]:
    """A command whose reader may go away (``polynb logs RUN | head``): end quietly, as ``cat`` does."""

    @functools.wraps(command)
    def run(args: Any) -> int:
        try:
            return command(args)
        except BrokenPipeError:
            # Point stdout at /dev/null so the interpreter's final flush does not fail again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_OK

    return run


class ReaderGone:
    """A text stream whose reader may go away (``polynb run -f x | head``): from then on what is written is dropped,
    so the command goes on to its end (a run is neither left half-run nor abandoned to no engine) and its exit
    status still says how it ended."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._drop()
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._drop()

    def _drop(self) -> None:
        self.gone = True
        # /dev/null in its place, so the interpreter's final flush of what is buffered does not fail again.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def positive_int(text: str) -> int:
    """An argparse type: a count of at least 1 (``--limit 0`` would list nothing and say there is nothing)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {value}")
    return value


class Once(argparse.Action):
    """An option given at most once (``run -f a.yaml -f b.yaml`` would run b alone, a silently dropped)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:  # fmt: skip
        if getattr(namespace, self.dest, None) not in (None, self.default):
            parser.error(f"{option_string} is given once (one file per run)")
        setattr(namespace, self.dest, values)


def error(message: str, *, stream: TextIO | None = None) -> None:
    print(f"polynb: {message}", file=stream or sys.stderr)


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, status_column: int | None = None) -> None:
    """Columns aligned with two spaces: with rich on a terminal (the status column coloured), otherwise
    plain text that never wraps, so pipes and ``grep`` see one row per line (cells are made one line)."""
    lines: list[Sequence[str]] = [[one_line(cell) for cell in row] for row in rows]
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        table = Table(show_edge=False, pad_edge=False, box=None)
        for column in header:
            table.add_column(column, overflow="fold")
        for row in lines:
            cells = [Text(cell, style=style_of(cell) if i == status_column else "") for i, cell in enumerate(row)]
            table.add_row(*cells)
        Console(highlight=False).print(table)
        return
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
    for row in [header, *lines]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
