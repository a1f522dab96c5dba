"""A ``%%polyaxon_python`` step's code, shipped into its pod as a ConfigMap.

The notebook saves a step's cell under ``$POLYNB_HOME/steps/`` on the kernel's machine and names the file in
the step's ``POLYNB_STEP_SCRIPT`` variable (see ``polynb.notebook.pystep``). A pod cannot see that disk, so at
submission the executor reads the file and carries it in a ConfigMap named by the hash of the code
(``polynb-step-<sha16>``, ``immutable``, created once per namespace: a 409 means it is there already), mounted
read-only at :data:`MOUNT_PATH` in the main container, whose ``POLYNB_STEP_SCRIPT`` then names the mounted
file. The runner comes from the runtime bundle (:mod:`.bundle`), so any image with ``python3`` runs the step.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from polynb.compiler.types import CompiledOp
from polynb.executors.kubernetes import names
from polynb.executors.kubernetes.bundle import CONFIGMAP_LIMIT

STEP_SCRIPT_ENV: Final = "POLYNB_STEP_SCRIPT"
"""The same name as ``polynb.runtime.step_runner.SCRIPT_ENV`` (the executors never import the runtime)."""
MOUNT_PATH: Final = "/polynb-step"
VOLUME: Final = "polynb-step"
NAME_PREFIX: Final = "polynb-step-"
_KEY_CHARS: Final = re.compile(r"[^-._a-zA-Z0-9]+")


@dataclass(frozen=True, slots=True)
class StepCode:
    """The code of one step: the ConfigMap that carries it and where the pod sees it."""

    key: str
    text: str
    digest: str

    @property
    def name(self) -> str:
        return NAME_PREFIX + self.digest

    @property
    def script(self) -> str:
        """The script's path inside the pod."""
        return f"{MOUNT_PATH}/{self.key}"

    def configmap(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": self.name,
                "labels": {names.MANAGED_BY: names.MANAGED_BY_VALUE, names.ROLE: "step"},
            },
            "immutable": True,
            "data": {self.key: self.text},
        }

    def volume(self) -> dict[str, Any]:
        return {"name": VOLUME, "configMap": {"name": self.name, "defaultMode": 0o444}}


def step_code(op: CompiledOp) -> StepCode | None:
    """The step code ``op`` carries (None for an op that is not a ``%%polyaxon_python`` step).

    Raises ``ValueError`` when the script cannot be read here or would not fit in a ConfigMap.
    """
    script = dict(op.container.env).get(STEP_SCRIPT_ENV)
    if not script:
        return None
    path = Path(script)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValueError(
            f"the step's code ({STEP_SCRIPT_ENV}={script}) cannot be read on this machine: {reason}; the "
            "kubernetes executor ships it into the pod from the disk of the kernel that defined the step: "
            "run the %%polyaxon_python cell again in this kernel"
        ) from None
    size = len(text.encode("utf-8"))
    if size > CONFIGMAP_LIMIT - 1024:
        raise ValueError(
            f"the step's code is {size} bytes; a ConfigMap holds at most {CONFIGMAP_LIMIT}: move the bulk "
            "of it into a module or data file the image can reach"
        )
    key = _KEY_CHARS.sub("-", path.name).strip(".") or "step.py"
    return StepCode(key, text, hashlib.sha256(text.encode("utf-8")).hexdigest()[:16])
