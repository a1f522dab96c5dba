"""What an executor is asked about a pipeline before any of its runs exists, so that a pipeline it cannot
run as configured is refused whole (nothing half-submitted), by the engine and by ``polynb run`` alike.

Executors do not see pipelines (they run compiled ops): the scheduler tells them what matters, today which
ops read another run's artifacts (:mod:`polynb.compiler.artifact_reads`). An executor that has nothing to
refuse has no ``check_submission``.
"""

from __future__ import annotations

from polynb.compiler.artifact_reads import artifact_reads
from polynb.compiler.pipeline import Pipeline
from polynb.executors.base import Executor


def check_submission(executor: Executor, pipeline: Pipeline) -> None:
    """Raise the executor's own error (a ``RuntimeError``) when it refuses ``pipeline``."""
    check = getattr(executor, "check_submission", None)
    if check is None:
        return
    check(pipeline.name, artifact_reads=[str(read) for read in artifact_reads(pipeline)])
