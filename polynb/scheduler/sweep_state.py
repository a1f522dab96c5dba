"""One sweep as the engine sees it (only the engine thread touches it); ``sweeps`` decides on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from polynb.scheduler.plan import OpPlan
from polynb.scheduler.suggesters import Suggester
from polynb.spec.matrix import FailureEarlyStopping, MetricEarlyStopping
from polynb.spec.models import Hook

SWEEP_KIND = "matrix"
"""A sweep's run kind (Polyaxon's ``V1RunKind.MATRIX``), top-level or an op of a DAG."""


@dataclass(eq=False)
class SweepState:
    uuid: str
    name: str
    plan: OpPlan
    """The op each trial runs: the matrix taken off, the component's hooks only."""
    inputs: dict[str, Any]
    hooks: tuple[Hook, ...]
    """The operation's hooks: they run for the sweep."""
    suggester: Suggester
    concurrency: int | None
    metric: str | None
    maximize: bool
    early_stopping: tuple[MetricEarlyStopping | FailureEarlyStopping, ...]
    active: dict[str, Any] = field(default_factory=dict)
    """trial run uuid -> its suggestion's key, for the trials not final yet"""
    created: int = 0
    failed: int = 0
    stopped: int = 0
    closed: bool = False
    """No trial starts any more (early stopping, a stop)."""
    stop_requested: bool = False
    early_stop_message: str | None = None
    stop_active: bool = False
    """Stop the live trials at the next evaluation (early stopping found by a restarted engine)."""
    base_dir: str | None = None
    root: str = ""
    """The top-level run: the sweep itself, or the DAG whose op it is."""
    dag_uuid: str | None = None
    """The DAG whose op the sweep is (its trials read the DAG's inputs and upstream ops), or None."""
