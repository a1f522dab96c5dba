"""One run as the engine sees it: a cache of what the scheduling decisions need, rebuilt from the store on
restart. Only the engine thread touches it. (Below ``tallies`` and ``state``, which both hold runs.)"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from polynb.compiler.types import CompiledOp
from polynb.executors.base import ExecutorUpdate
from polynb.lifecycle import Status, is_final
from polynb.scheduler.plan import HookPlan, OpPlan

RunRole = Literal["dag", "op", "single", "hook", "sweep", "trial", "schedule", "tick"]
"""``sweep``: a matrix run; ``trial``: one of its trials (``dag_uuid`` is the sweep), otherwise a single run;
``schedule``: a schedule run; ``tick``: the run of one of its ticks (``dag_uuid`` is the schedule)."""


@dataclass(eq=False)
class RunState:
    uuid: str
    name: str
    role: RunRole
    status: Status
    executor: str
    dag_uuid: str | None = None
    hook_of: str | None = None
    root: str = ""
    """The top-level run this run belongs to (itself for a top-level run)."""
    emitted: set[str] = field(default_factory=set)
    attempt: int = 0
    plan: OpPlan | None = None
    hook: HookPlan | None = None
    compiled: CompiledOp | None = None
    submitted: bool = False
    """Claimed and handed to the executor, not final yet: holds a concurrency slot."""
    placed: bool = False
    """A service placed on its executor (its ports reserved: ``Executor.place``) that the executor does not have
    yet: if it ends so (skipped, stopped in its DAG's queue, refused), the executor gives them back at once."""
    in_flight: bool = False
    """Claimed and queued for ``executor.submit``, whose handle has not come back yet."""
    early: list[ExecutorUpdate] = field(default_factory=list)
    """Updates that came while ``in_flight``: applied once the handle is stored, so the engine sees a
    run's updates after its submission, as when ``submit`` ran on the engine thread."""
    claimed_at: float = 0.0
    """``time.monotonic()`` of the last claim: the timeout counts from it."""
    stop_requested: bool = False
    stop_grace: float | None = None
    """Seconds the stop of this run gives its processes before they are killed (``polynb stop --grace``); None:
    its executor's own."""
    timed_out: bool = False

    @property
    def is_final(self) -> bool:
        return is_final(self.status)

    @property
    def is_service(self) -> bool:
        if self.plan is not None:
            return self.plan.is_service
        return self.hook is not None and str(getattr(self.hook.component.run, "kind", "")) == "service"

    @property
    def hookable(self) -> bool:
        """Runs whose final status may start hooks: ops, single runs, DAG runs, and hook runs whose component
        has hooks of its own (as in Polyaxon, where a hook run is a run like any other)."""
        return self.role != "hook" or (self.hook is not None and bool(self.hook.component.hooks))
