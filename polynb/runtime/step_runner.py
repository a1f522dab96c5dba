"""Runs a ``%%polyaxon_python`` step: ``python3 -m polynb.runtime.step_runner [SCRIPT]``.

The script is ``SCRIPT``, else the file ``$POLYNB_STEP_SCRIPT`` names (on Kubernetes the executor mounts the
step's code from a ConfigMap and points the variable at it; this module reaches the pod in the runtime bundle).

The step's inputs arrive as one JSON object in ``$POLYNB_STEP_INPUTS`` (rendered by the compiler with
``tojson``) and become variables of the script's namespace; values are never spliced into source code.
After the script ran, the variables named like the declared outputs (``$POLYNB_STEP_OUTPUTS``, a JSON
list) are logged with ``polynb.runtime.tracking.log_outputs``. The script is compiled under its own file name, so
tracebacks point at the cell's lines. Imports nothing of IPython: a step starts like a plain script.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

INPUTS_ENV = "POLYNB_STEP_INPUTS"
OUTPUTS_ENV = "POLYNB_STEP_OUTPUTS"
SCRIPT_ENV = "POLYNB_STEP_SCRIPT"


class StepError(Exception):
    """A problem of the step's contract (not of the user's code)."""


def load_inputs(environ: dict[str, str] | os._Environ[str]) -> dict[str, Any]:
    raw = environ.get(INPUTS_ENV, "{}")
    try:
        values = json.loads(raw)
    except ValueError as exc:
        raise StepError(f"${INPUTS_ENV} is not JSON: {exc}") from None
    if not isinstance(values, dict):
        raise StepError(f"${INPUTS_ENV} must hold a JSON object")
    return values


def declared_outputs(environ: dict[str, str] | os._Environ[str]) -> list[str]:
    names = json.loads(environ.get(OUTPUTS_ENV, "[]"))
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise StepError(f"${OUTPUTS_ENV} must hold a JSON list of names")
    return names


def run_step(script: Path, environ: dict[str, str] | os._Environ[str]) -> dict[str, Any]:
    """Run ``script`` with the inputs bound; return the outputs it produced (already logged)."""
    namespace: dict[str, Any] = {"__name__": "__main__", "__file__": str(script)}
    namespace.update(load_inputs(environ))
    code = compile(script.read_text(encoding="utf-8"), str(script), "exec")
    exec(code, namespace)  # noqa: S102 -- the user's own cell, run as their script
    outputs = declared_outputs(environ)
    missing = [n for n in outputs if n not in namespace]
    if missing:
        raise StepError(
            "declared output" + "s" * (len(missing) > 1) + f" {', '.join(missing)} not set: assign a variable of "
            "that name in the cell"
        )
    values = {n: namespace[n] for n in outputs}
    if values:
        from polynb.runtime.tracking import log_outputs

        log_outputs(**values)
    return values


def main(argv: list[str] | None = None) -> int:
    from polynb.runtime.tracking import OutputsTooLargeError

    args = sys.argv[1:] if argv is None else argv
    script = args[0] if len(args) == 1 else os.environ.get(SCRIPT_ENV) if not args else None
    if not script:
        print(f"usage: python3 -m polynb.runtime.step_runner SCRIPT (or with ${SCRIPT_ENV} set)", file=sys.stderr)
        return 2
    try:
        run_step(Path(script), os.environ)
    except (StepError, OutputsTooLargeError) as exc:
        print(f"polynb step: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
