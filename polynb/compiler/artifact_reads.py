"""Which ops of a pipeline read the artifacts of *another* run (so they need an artifacts store that the runs
share): a ``tensorboard`` init (it links other runs' ``outputs/tensorboard``), ``artifacts``/``paths`` init
entries (sources relative to the artifacts root), and params whose ``ref`` names another run and whose
value is a path into it (``artifacts.*``, ``globals.run_outputs_path``, ...).

An executor whose runs each get a private artifacts folder (Kubernetes without an artifacts claim) refuses
such a pipeline at submission rather than let TensorBoard show nothing. Pure, on the spec models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from polynb.compiler.pipeline import Pipeline
from polynb.spec.models import Component, Dag, Job, Operation

PATH_VALUES: Final = frozenset(
    {
        "globals.run_outputs_path",
        "globals.run_artifacts_path",
        "globals.outputs_path",
        "globals.artifacts_path",
    }
)
READING_INITS: Final = ("tensorboard", "artifacts", "paths")


@dataclass(frozen=True, slots=True)
class ArtifactRead:
    op: str
    """The op's name (``dag.op`` inside a nested DAG)."""
    what: str
    """What reads: ``init tensorboard``, ``param logdir (ops.experiment: artifacts.outputs)``."""

    def __str__(self) -> str:
        return f"op {self.op!r}: {self.what}"


def artifact_reads(pipeline: Pipeline) -> list[ArtifactRead]:
    """Every read of another run's artifacts in ``pipeline`` (hooks included), in op order."""
    reads: list[ArtifactRead] = []
    for name, op in pipeline.ops.items():
        reads += _op_reads(name, op.operation, op.component, depth=0)
    return reads


def _op_reads(name: str, operation: Operation | None, component: Component | None, *, depth: int) -> list[ArtifactRead]:
    reads: list[ArtifactRead] = []
    for param_name, param in ((operation.params or {}) if operation is not None else {}).items():
        ref = param.ref or ""
        value = param.value if isinstance(param.value, str) else ""
        if ref and ref != "dag" and (value in PATH_VALUES or value.startswith("artifacts")):
            reads.append(ArtifactRead(name, f"param {param_name} ({ref}: {value})"))
    if component is None:
        return reads
    run = component.run
    if isinstance(run, Job):
        for init in run.init or ():
            kind = next((k for k in READING_INITS if getattr(init, k) is not None), None)
            if kind is not None and init.connection is None:  # with a connection it reads that, not a run
                reads.append(ArtifactRead(name, f"init {kind}"))
    elif isinstance(run, Dag) and depth < 20:
        inner = {c.name: c for c in run.components or () if c.name}
        for sub in run.operations:
            sub_component = sub.component or (inner.get(sub.dag_ref) if sub.dag_ref else None)
            reads += _op_reads(f"{name}.{sub.name}", sub, sub_component, depth=depth + 1)
    return reads
