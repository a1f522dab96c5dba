"""What ``polynb run`` shows while a pipeline runs: the live view on a terminal fits it, the last view shows all."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import termios
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.clikit import DEADLOCK_GUARD, Cli

from polynb.cli.progress import Row, fit_rows
from polynb.lifecycle import Status
from polynb.store import RunRecord

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def record(name: str, status: Status, finished: float | None = None) -> RunRecord:
    return RunRecord(
        uuid=name, name=name, kind="job", status=status, reason=None, message=None, dag_uuid="dag", hook_of=None,
        hook_trigger=None, spec={}, inputs={}, outputs={}, meta={}, executor="local", handle=None, attempt=1,
        url=None, created_at=T0, updated_at=T0, started_at=None,
        finished_at=None if finished is None else T0 + timedelta(seconds=finished), wait_time=None, duration=None,
    )  # fmt: skip


def rows(*runs: RunRecord) -> list[Row]:
    return [Row(run.name, run) for run in runs]


def test_every_row_is_shown_when_they_fit() -> None:
    table = rows(record("a", Status.SUCCEEDED, 1), record("b", Status.RUNNING), record("c", Status.CREATED))
    assert fit_rows(table, 3) == (table, {})


def test_rows_that_do_not_fit_leave_out_what_a_user_watches_last_and_keep_the_order() -> None:
    table = rows(
        record("old", Status.SUCCEEDED, 1),
        record("bad", Status.FAILED, 2),
        record("recent", Status.SUCCEEDED, 5),
        record("runs", Status.RUNNING),
        record("skipped", Status.UPSTREAM_FAILED, 3),
        record("next", Status.CREATED),
        record("later", Status.CREATED),
        record("queued", Status.QUEUED),
    )
    shown, hidden = fit_rows(table, 6)  # 5 rows and the line saying what is left out
    # Problems first, then what is under way, then the next to start; the oldest finished run goes first.
    assert [row.name for row in shown] == ["bad", "runs", "skipped", "next", "queued"]
    assert hidden == {"succeeded": 2, "created": 1}
    shown, hidden = fit_rows(table, 7)
    assert [row.name for row in shown] == ["bad", "runs", "skipped", "next", "later", "queued"]
    assert hidden == {"succeeded": 2}
    finished = rows(
        record("first", Status.SUCCEEDED, 1), record("last", Status.SKIPPED, 5), record("mid", Status.SUCCEEDED, 3)
    )
    assert [row.name for row in fit_rows(finished, 3)[0]] == ["first", "last", "mid"]
    assert fit_rows(finished, 2) == ([finished[1]], {"succeeded": 2})  # the most recently finished


FAN = """
version: 1.1
kind: component
name: wide
run:
  kind: dag
  operations:
    - name: root
      component: {run: {kind: job, container: {command: [sleep, "0.3"]}}}
    - name: bad
      dependencies: [root]
      component: {run: {kind: job, container: {command: [sh, -c, "echo the disk is full >&2; exit 3"]}}}
"""
WORKERS = 30
ROWS, COLUMNS = 24, 100
# How rich's live view goes back to redraw: to the start of the line, then (erase the line, up one) per line.
REDRAW = re.compile(r"\r(?:\x1b\[2K\x1b\[1A)+\x1b\[2K")
CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    kit = Cli(tmp_path)
    kit.extra_env["TERM"] = "xterm-256color"
    yield kit
    kit.cleanup()


def run_on_a_terminal(cli: Cli, *args: str) -> tuple[int, str]:
    """``polynb`` with its stdout on a pseudo-terminal of ROWS x COLUMNS: its exit status and all it wrote."""
    main, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    env = cli.env()
    env.pop("LINES", None)
    proc = subprocess.Popen(
        cli.argv(*args), cwd=cli.tmp, env=env, stdin=subprocess.DEVNULL, stdout=terminal, stderr=subprocess.PIPE
    )
    os.close(terminal)
    output = bytearray()
    try:
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(main)
    proc.wait(timeout=DEADLOCK_GUARD)
    assert proc.stderr is not None
    assert proc.returncode in (0, 1), proc.stderr.read()
    return proc.returncode, output.decode()


def test_the_live_view_fits_the_terminal_and_its_last_view_shows_every_op(cli: Cli) -> None:
    seconds = [f"{0.2 + i % 4 * 0.2:.1f}" for i in range(WORKERS)]
    workers = "".join(
        f"    - name: w{i}\n      dependencies: [root]\n"
        f'      component: {{run: {{kind: job, container: {{command: [sleep, "{s}"]}}}}}}\n'
        for i, s in enumerate(seconds)
    )
    path = cli.write("wide.yaml", FAN.lstrip() + workers)
    code, output = run_on_a_terminal(cli, "run", "--live", "-f", str(path))
    assert code == 1  # `bad` failed
    frames = [CONTROL.sub("", frame).replace("\r\n", "\n") for frame in REDRAW.split(output)]
    *during, last = frames
    assert during, output
    for frame in during:
        lines = frame.rstrip("\n").split("\n")
        assert len(lines) < ROWS, frame  # one line left for the cursor: the terminal never scrolls
    assert any(re.search(r"… and \d+ more: ", frame) for frame in during), during
    # Once `bad` has failed, it stays in view however many rows the others need.
    shown_failed = [bool(re.search(r"^bad +│ failed", frame, re.MULTILINE)) for frame in during]
    assert True in shown_failed, during
    assert all(shown_failed[shown_failed.index(True) :]), during
    table = [line.split("│")[0].strip() for line in last.splitlines() if "│" in line]
    assert table == ["root", "bad", *(f"w{i}" for i in range(WORKERS))], last
    assert "more: " not in last
    # The table cuts a failed op's reason; the last view says it whole, with the end of the op's log.
    failures = last.split("\nfailed\n", 1)[1]
    assert re.search(r"^bad +ExitCode: exit code 3 *\n +the disk is full *$", failures, re.MULTILINE), last
