"""``polynb.tracking``: what a job calls to report its outputs (``log_outputs``), find its paths, and emit
events while it runs (``log_artifact``, ``log_metrics``, ``log_model_version``, ``alert``, ``emit``).

The public name of :mod:`polynb.runtime.tracking`, where the code lives with the rest of what runs inside ops.
"""

from polynb.runtime.tracking import (
    EVENTS_FILE,
    OUTPUTS_FILE,
    TERMINATION_LOG_ENV,
    NotInRunError,
    OutputsTooLargeError,
    alert,
    artifacts_path,
    emit,
    log_artifact,
    log_metrics,
    log_model_version,
    log_outputs,
    outputs_path,
    run_uuid,
    tensorboard_path,
)

__all__ = [
    "EVENTS_FILE",
    "OUTPUTS_FILE",
    "TERMINATION_LOG_ENV",
    "NotInRunError",
    "OutputsTooLargeError",
    "alert",
    "artifacts_path",
    "emit",
    "log_artifact",
    "log_metrics",
    "log_model_version",
    "log_outputs",
    "outputs_path",
    "run_uuid",
    "tensorboard_path",
]
