"""``%%polyaxon_python``: a notebook cell becomes a pipeline step (a job component).

The cell body is saved, content-addressed, under ``$POLYNB_HOME/steps/`` (a running step's script never
changes under it, and a restarted kernel finds it again), and named by ``$POLYNB_STEP_SCRIPT``. The component
runs ``python3 -m polynb.runtime.step_runner`` in ``python:3.11-slim``: the local executor runs it in the
kernel's environment, the kubernetes one ships the script into the pod as a ConfigMap and the runner with the
runtime bundle, so the image needs nothing but ``python3``. Its inputs reach the script as one JSON object in
``$POLYNB_STEP_INPUTS``, rendered with ``tojson`` from ``params['<name>'].value``: values are data, never
source. Outputs are the script's variables of the declared names (see ``step_runner``).
"""

from __future__ import annotations

import hashlib
import json
import keyword
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from polynb.runtime.step_runner import INPUTS_ENV, OUTPUTS_ENV, SCRIPT_ENV
from polynb.spec import iotypes
from polynb.spec.models import Component
from polynb.store import polynb_home

STEP_IMAGE = "python:3.11-slim"
"""The image a step names: any image with ``python3`` (the local executor runs it in the kernel's environment)."""
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class StepSpecError(ValueError):
    """A bad ``--input``/``--output`` declaration."""


@dataclass(frozen=True, slots=True)
class IODecl:
    name: str
    type: str
    default: Any = None
    has_default: bool = False

    def to_io(self) -> dict[str, Any]:
        io: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.has_default:
            io.update(value=self.default, isOptional=True)
        return io


def parse_decl(text: str, *, what: str) -> IODecl:
    """``name:type`` or ``name:type=default`` (the default is read as YAML: ``3``, ``0.1``, ``[a, b]``)."""
    spec, eq, default = text.partition("=")
    name, _colon, type_ = spec.partition(":")
    name, type_ = name.strip(), (type_.strip() or "any")
    if not name.isidentifier() or keyword.iskeyword(name):
        raise StepSpecError(f"--{what} {text}: `{name}` is not a Python name (it becomes a variable of the cell)")
    if not iotypes.is_known_type(type_):
        known = ", ".join(sorted(iotypes.KNOWN_TYPES))
        raise StepSpecError(f"--{what} {text}: unknown type `{type_}`; use one of {known}")
    if eq:
        if what == "output":
            raise StepSpecError(f"--output {text}: outputs have no default")
        try:
            value = yaml.safe_load(default)
        except yaml.YAMLError as exc:
            raise StepSpecError(f"--input {text}: the default is not a YAML value: {exc}") from None
        return IODecl(name, type_, value, True)
    return IODecl(name, type_)


def save_script(name: str, body: str, *, folder: Path | None = None) -> Path:
    """Write ``body`` to ``<folder>/<name>-<sha256 prefix>.py`` (atomically, once per content)."""
    folder = folder or polynb_home() / "steps"
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()[:16]
    path = folder / f"{_SAFE.sub('-', name)}-{digest}.py"
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".step-", suffix=".py")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(body)
        os.replace(tmp, path)
    return path


def step_component(name: str, script: Path, inputs: list[IODecl], outputs: list[IODecl]) -> Component:
    """The job component running ``script`` with ``inputs`` bound and ``outputs`` logged."""
    seen: set[str] = set()
    for decl in [*inputs, *outputs]:
        if decl.name in seen:
            raise StepSpecError(f"`{decl.name}` is declared twice")
        seen.add(decl.name)
    # One JSON object: every value goes through `tojson`, the names are checked Python identifiers.
    # `params['x']`, not `params.x`: a dot would find dict methods first (an input named `values`).
    pairs = ", ".join(f"\"{d.name}\": {{{{ params['{d.name}'].value | tojson }}}}" for d in inputs)
    data: dict[str, Any] = {
        "version": 1.1,
        "kind": "component",
        "name": name,
        "tags": ["notebook-step"],
        "inputs": [d.to_io() for d in inputs] or None,
        "outputs": [d.to_io() for d in outputs] or None,
        "run": {
            "kind": "job",
            "container": {
                "image": STEP_IMAGE,
                "command": ["python3", "-m", "polynb.runtime.step_runner"],
                "env": [
                    {"name": SCRIPT_ENV, "value": str(script)},
                    {"name": INPUTS_ENV, "value": "{" + pairs + " }"},
                    {"name": OUTPUTS_ENV, "value": json.dumps([d.name for d in outputs])},
                ],
            },
        },
    }
    return Component.model_validate({k: v for k, v in data.items() if v is not None})
