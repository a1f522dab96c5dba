"""The executor protocol: what the scheduler needs from anything that runs a compiled op.

An executor places a run (paths and ports, before templates render), submits it, reports every status
change as an :class:`ExecutorUpdate` through a callback, stops it, streams its logs, re-attaches to it
after an engine restart, and cleans up after it. The scheduler owns statuses; an executor only observes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, runtime_checkable

from polynb.compiler.types import CompiledOp, OpKind, Placement

EXECUTOR_STATUSES: Final = frozenset(
    {"scheduled", "starting", "running", "succeeded", "failed", "stopped", "unknown", "warning", "unschedulable"}
)
"""The statuses an executor may report; the scheduler maps them onto the run's lifecycle."""

BASE_DIR_LABEL: Final = "polynb.io/base-dir"
"""Label the scheduler sets on a compiled op: the folder its relative paths (working dir, local git urls)
are relative to — the notebook's or the YAML file's folder."""

FINAL_EXECUTOR_STATUSES: Final = frozenset({"succeeded", "failed", "stopped"})
"""An update with one of these is the last one for the run (until it is submitted again)."""


class SubmitRefusedError(Exception):
    """An executor refuses a run for a reason its message says in full (a missing namespace, RBAC, a quota):
    the engine records the message as the run's failure and logs it without a traceback."""


@dataclass(frozen=True, slots=True)
class ExecutorUpdate:
    """One observed status change of a run.

    ``reason`` is a short CamelCase word (``ProcessStarted``, ``ExitCode``, ``InitFailed``, ``PortReady``,
    ``ServiceNotReady``, ``Stopped``, ``Reattached``, ``ProcessLost``, ...); ``message`` is for humans (exit
    code, the tail of the log on failure). ``outputs`` is set on a final update, ``url`` once a service is
    ready. ``at`` is the executor's observation time (``time.time()``), not the delivery time.
    """

    run_uuid: str
    status: str
    reason: str
    message: str = ""
    outputs: dict[str, Any] | None = None
    url: str | None = None
    at: float = 0.0

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_EXECUTOR_STATUSES


EVENTS_AWAITED_LABEL: Final = "polynb.io/events-awaited"
"""Label the scheduler sets (``"true"``) on a compiled op some op of its DAG awaits a non-status event of
(``log_artifact`` & co.): an executor that cannot read the run folder brings them back another way."""

EventSink = Callable[[str, Sequence[Mapping[str, Any]]], None]
"""``(run_uuid, events)``: events an executor read from where an op runs, each an events-file line as JSON
(``kind``, ``at``, ``payload``, ``seq``), in order, all before the run's final update (an executor that has
``set_event_sink(sink)`` is given one by the engine)."""

UpdateCallback = Callable[[ExecutorUpdate], None]
"""Called from executor threads, in order per run; it must be cheap (the scheduler only enqueues)."""


@runtime_checkable
class Executor(Protocol):
    """What the scheduler codes against. Every method but ``logs(follow=True)`` returns promptly."""

    name: str

    def place(self, run_uuid: str, kind: OpKind, port_count: int) -> Placement:
        """Decide where the run lives (paths, free ports, base URL) before its templates are rendered."""
        ...

    def submit(self, op: CompiledOp, on_update: UpdateCallback) -> dict[str, Any]:
        """Start the run; return a JSON-serialisable handle record for the store (used by ``reattach``)."""
        ...

    def stop(self, run_uuid: str, *, grace: float | None = None) -> None:
        """Ask the run to stop (SIGTERM, then SIGKILL after ``grace`` seconds; None: the executor's own default,
        ``stop_grace``); the final ``stopped`` is an update."""
        ...

    def logs(self, run_uuid: str, *, follow: bool = False) -> Iterator[str]:
        """The run's log lines (without line endings); ``follow`` tails them until the run is final."""
        ...

    def reattach(self, op: CompiledOp, record: dict[str, Any], on_update: UpdateCallback) -> bool:
        """Resume watching a run submitted by an earlier engine; replay what it missed, then follow.

        Returns False only when there is nothing at all to attach to (the run never started here).
        """
        ...

    def cleanup(self, run_uuid: str) -> None:
        """After ``termination.ttl``: remove the run's working resources (never its logs or outputs). Also called,
        at once, for a service placed but never submitted (skipped, stopped before it started, refused): what
        ``place`` reserved for it (ports) is given back."""
        ...

    def shutdown(self, *, stop_running: bool = True) -> None:
        """Stop watching; unless ``stop_running`` is False, stop every run still alive and wait for it."""
        ...
