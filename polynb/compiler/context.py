"""The ``{{ }}`` context of a run: params by bare name, ``params.<n>.*``, ``params.as_args`` and ``globals.*``.

Polyaxon's context, with one deliberate difference: ``as_str`` of a string is the string itself (Polyaxon
JSON-quotes values because it hands them to a shell; polynb never uses a shell, so quotes would reach the
program).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from polynb.compiler.templates import render_str
from polynb.compiler.types import Placement
from polynb.spec.models import IO, Component

LOCAL_OWNER = "local"


def as_str(value: Any) -> str:
    """A value as it appears in an argument or an environment variable: strings as is, the rest as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def param_info(name: str, value: Any, io: IO | None) -> dict[str, Any]:
    """``params.<name>``: ``value``, ``type``, ``connection``, ``as_str`` and ``as_arg``.

    ``as_arg`` is ``--name=<as_str>``; for a flag (``isFlag``) it is ``--name`` when the value is true and
    ``''`` otherwise; with an ``argFormat`` it is that template rendered with ``{name: value}``; ``''`` for
    a None value.
    """
    text = as_str(value)
    if value is None:
        arg = ""
    elif io is not None and io.arg_format:
        arg = render_str(io.arg_format, {name: value})
    elif io is not None and io.is_flag:
        arg = f"--{name}" if value else ""
    else:
        arg = f"--{name}={text}"
    return {
        "value": value,
        "type": io.type if io is not None else None,
        "connection": io.connection if io is not None else None,
        "as_str": text,
        "as_arg": arg,
    }


def template_context(
    *,
    inputs: Mapping[str, Any],
    contexts: Mapping[str, Any],
    globals_: Mapping[str, Any],
    outputs: Mapping[str, Any] | None = None,
    ios: Iterable[IO] = (),
) -> dict[str, Any]:
    """Build the context templates of a run are rendered with.

    ``inputs`` are the bound declared inputs, ``contexts`` the undeclared (context-only) params, ``outputs``
    output values when known (a hook's main run, declared output defaults), ``ios`` the declarations that
    give ``params.<n>.type`` and flags. Bare names: contexts, then outputs, then inputs (later wins);
    ``params`` and ``globals`` always mean the structured values, whatever a param is called.
    ``params.as_args`` lists every non-empty ``as_arg``, context-only params included (as Polyaxon). A flag
    (``isFlag``) by bare name is ``--name`` when true and ``''`` otherwise, as in Polyaxon.
    """
    declared = {io.name: io for io in ios}
    context: dict[str, Any] = {**contexts, **(outputs or {}), **inputs}
    params: dict[str, Any] = {}
    as_args: list[str] = []
    for name, value in [*inputs.items(), *((k, v) for k, v in contexts.items() if k not in inputs)]:
        info = param_info(name, value, declared.get(name))
        params[name] = info
        if info["as_arg"]:
            as_args.append(info["as_arg"])
    for name, io in declared.items():
        if io.is_flag and name in context:
            # As Polyaxon (ParamSpec.get_display_value): a flag by bare name is its option, `--name`, when
            # true and `` otherwise, so `args: "train {{ verbose }}"` passes the option; `params.<n>.value`
            # keeps the bool.
            context[name] = f"--{name}" if context[name] else ""
    params["as_args"] = as_args
    context["params"] = params
    context["globals"] = dict(globals_)
    return context


def op_context(
    component: Component, *, inputs: Mapping[str, Any], contexts: Mapping[str, Any], globals_: Mapping[str, Any]
) -> dict[str, Any]:
    """The context an op's templates and ``conditions`` render with: :func:`template_context` with the
    component's declarations (types, flags, ``argFormat``) and its declared output defaults."""
    return template_context(
        inputs=inputs,
        contexts=contexts,
        globals_=globals_,
        outputs={io.name: io.value for io in component.outputs or () if io.value is not None},
        ios=[*(component.inputs or ()), *(component.outputs or ())],
    )


def _iso(value: datetime | str | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def run_globals(
    *,
    uuid: str,
    name: str,
    placement: Placement | None = None,
    project_name: str | None = None,
    owner_name: str = LOCAL_OWNER,
    created_at: datetime | str | None = None,
    started_at: datetime | str | None = None,
    schedule_at: datetime | str | None = None,
    namespace: str | None = None,
    iteration: int | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``globals.*`` of a run.

    Locally the owner is ``local`` and the project is the pipeline's name (``project_name``, defaulting to the
    run's name); ``run_info`` is ``owner.project.runs.uuid`` as in Polyaxon. ``artifacts_path`` is the root
    holding every run's artifacts folder (``{{ globals.artifacts_path }}/<uuid>/outputs`` is another run's
    outputs), ``run_artifacts_path``/``run_outputs_path`` this run's folders, ``ports``/``base_url`` the
    service's placement. ``namespace`` and ``iteration`` are None unless given. ``schedule_at`` is the nominal
    time of the tick a schedule's run was made for (ISO 8601, UTC), None for any other run, as in Polyaxon.
    ``extra`` keys are added last.
    """
    project = project_name or name
    values: dict[str, Any] = {
        "owner_name": owner_name,
        "project_name": project,
        "project_unique_name": f"{owner_name}.{project}",
        "run_info": f"{owner_name}.{project}.runs.{uuid}",
        "uuid": uuid,
        "name": name,
        "namespace": namespace,
        "iteration": iteration,
        "created_at": _iso(created_at),
        "started_at": _iso(started_at),
        "schedule_at": _iso(schedule_at),
        "artifacts_path": None,
        "run_artifacts_path": None,
        "run_outputs_path": None,
        "ports": [],
        "base_url": None,
    }
    if placement is not None:
        values.update(placement_globals(placement))
    values.update(extra or {})
    return values


def placement_globals(placement: Placement) -> dict[str, Any]:
    """The globals an executor's placement decides: artifact paths, ports and base URL."""
    return {
        "artifacts_path": placement.artifacts_path,
        "run_artifacts_path": placement.run_artifacts_path,
        "run_outputs_path": placement.run_outputs_path,
        "ports": list(placement.ports),
        "base_url": placement.base_url,
        # The address a service binds: 127.0.0.1 locally, 0.0.0.0 in a pod (reached through its Service).
        "host": placement.host,
    }
