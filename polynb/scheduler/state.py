"""The engine's in-memory view of the runs it manages. Only the engine thread touches it.

The store is the source of truth; this is a cache of what the scheduling decisions need (statuses, the
event kinds each run emitted, plans, which runs hold a concurrency slot), rebuilt from the store on restart.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from polynb.compiler.types import CompiledOp
from polynb.executors.base import ExecutorUpdate
from polynb.lifecycle import Status, is_final
from polynb.scheduler.plan import DagPlan, HookPlan, OpPlan

if TYPE_CHECKING:
    from polynb.scheduler.tallies import DagIndex

RunRole = Literal["dag", "op", "single", "hook"]


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
    in_flight: bool = False
    """Claimed and queued for ``executor.submit``, whose handle has not come back yet."""
    early: list[ExecutorUpdate] = field(default_factory=list)
    """Updates that came while ``in_flight``: applied once the handle is stored, so the engine sees a
    run's updates after its submission, as when ``submit`` ran on the engine thread."""
    claimed_at: float = 0.0
    """``time.monotonic()`` of the last claim: the timeout counts from it."""
    stop_requested: bool = False
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
        """Runs whose final status starts hooks: ops, single runs and DAG runs, not hook runs themselves."""
        return self.role != "hook"


@dataclass(eq=False)
class DagState:
    uuid: str
    plan: DagPlan
    ops: dict[str, str] = field(default_factory=dict)
    """op name -> run uuid"""
    ready: deque[str] = field(default_factory=deque)
    """compiled op runs waiting for a concurrency slot, in the order they became ready"""
    stopping: bool = False
    index: DagIndex | None = None
    """set once every op is adopted; see ``tallies``"""


@dataclass(frozen=True, slots=True)
class Settled:
    """What ``Engine.wait`` looks at for one top-level run, published by the engine thread."""

    status: Status | None
    """The run's final status, or None while it is not final."""
    services_done: bool
    hooks_done: bool
