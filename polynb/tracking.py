"""``polynb.tracking``: what a job calls to report its outputs (``log_outputs``) and find its paths.

The public name of :mod:`polynb.runtime.tracking`, where the code lives with the rest of what runs inside ops.
"""

from polynb.runtime.tracking import (
    OUTPUTS_FILE,
    TERMINATION_LOG_ENV,
    NotInRunError,
    OutputsTooLargeError,
    artifacts_path,
    log_outputs,
    outputs_path,
    run_uuid,
    tensorboard_path,
)

__all__ = [
    "OUTPUTS_FILE",
    "TERMINATION_LOG_ENV",
    "NotInRunError",
    "OutputsTooLargeError",
    "artifacts_path",
    "log_outputs",
    "outputs_path",
    "run_uuid",
    "tensorboard_path",
]
