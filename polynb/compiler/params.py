"""Binding an op's params to its component's inputs, and resolving each param's value.

A param is a literal ``value`` (possibly a ``{{ }}`` template), or a ``value`` path (``outputs.loss``,
``globals.uuid``, ``artifacts.outputs``, ...) read from the run its ``ref`` names: ``ops.X`` (an upstream op of
the same DAG), ``dag`` (the DAG's own inputs and globals) or ``runs.UUID`` (any earlier run).

Where we differ from Polyaxon, on purpose:

* falsy upstream values (``0``, ``False``, ``""``, ``[]``) are substituted like any other value (Polyaxon
  leaves the ref in place);
* a single string given to a list-typed input becomes a one-element list, so ``uuids: {ref: ops.train,
  value: globals.uuid}`` feeds a multi-run TensorBoard (Polyaxon rejects it);
* a templated literal may name the op's other (non-template) params and the DAG's inputs by bare name.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from polynb.compiler.context import as_str, template_context
from polynb.compiler.errors import ParamError, TemplateError
from polynb.compiler.templates import is_template, render_value
from polynb.lifecycle import FINAL
from polynb.spec import iotypes
from polynb.spec.models import IO, Component, Init, Operation, Param
from polynb.spec.refs import Ref, ValuePath

__all__ = [
    "OpLike",
    "RunView",
    "artifacts_of",
    "bind_params",
    "check_input",
    "has_template",
    "param_env",
    "param_inits",
    "param_values",
    "read_value",
    "resolve_params",
]

# Polyaxon maps `globals.id`/`globals.uid` of a DAG to its uuid; harmless to honour for every run.
_UUID_ALIASES = frozenset({"id", "uid"})
_FINAL = frozenset(status.value for status in FINAL)


@dataclass(frozen=True, slots=True)
class RunView:
    """A snapshot of a run, as params and hooks see it (the scheduler builds it from the store).

    ``globals`` are the run's ``globals.*`` (``uuid``, ``name`` and ``status`` are filled from the fields when
    missing); ``artifacts`` are extra named artifact paths (lineage), relative to the artifacts root.
    """

    uuid: str
    name: str
    status: str = "created"
    inputs: Mapping[str, Any] = field(default_factory=dict)
    outputs: Mapping[str, Any] = field(default_factory=dict)
    globals: Mapping[str, Any] = field(default_factory=dict)
    artifacts: Mapping[str, Any] = field(default_factory=dict)

    def all_globals(self) -> dict[str, Any]:
        return {"uuid": self.uuid, "name": self.name, "status": self.status, **self.globals}


class OpLike(Protocol):
    """What :func:`resolve_params` needs of a pipeline op (``PipelineOp`` fits)."""

    @property
    def name(self) -> str: ...

    @property
    def operation(self) -> Operation: ...

    @property
    def component(self) -> Component: ...


def _names(keys: Any) -> str:
    listed = ", ".join(sorted(str(k) for k in keys))
    return listed or "none"


def artifacts_of(run: RunView) -> dict[str, Any]:
    """``artifacts`` of a run: paths relative to the artifacts root (``globals.artifacts_path``).

    ``base`` is the run's folder (its uuid), ``outputs`` ``<uuid>/outputs``, ``tensorboard``
    ``<uuid>/outputs/tensorboard`` and ``logs`` ``<uuid>/logs`` (the local layout); lineage entries the
    run recorded are added and may override these.
    """
    return {
        "base": run.uuid,
        "outputs": f"{run.uuid}/outputs",
        "tensorboard": f"{run.uuid}/outputs/tensorboard",
        "logs": f"{run.uuid}/logs",
        **run.artifacts,
    }


def read_value(run: RunView, path: ValuePath) -> Any:
    """Read ``path`` (``outputs.loss``, ``globals.uuid``, ``io``, ...) from ``run``; ``ValueError`` if absent."""
    section, key = path.section, path.key
    if section == "io":
        return {"inputs": dict(run.inputs), "outputs": dict(run.outputs), "artifacts": artifacts_of(run)}
    if section == "inputs":
        if key is None:
            return copy.deepcopy(dict(run.inputs))
        if key not in run.inputs:
            raise ValueError(f"run `{run.name}` has no input `{key}` (it has: {_names(run.inputs)})")
        return copy.deepcopy(run.inputs[key])
    if section == "outputs":
        if key is None:
            return copy.deepcopy(dict(run.outputs))
        if key not in run.outputs:
            pending = "" if run.status in _FINAL else f" yet (it is {run.status})"
            raise ValueError(f"run `{run.name}` has no output `{key}`{pending} (it reported: {_names(run.outputs)})")
        return copy.deepcopy(run.outputs[key])
    if section == "artifacts":
        artifacts = artifacts_of(run)
        if key is None:
            return artifacts
        if key not in artifacts:
            raise ValueError(f"run `{run.name}` has no artifacts `{key}` (it has: {_names(artifacts)})")
        value = artifacts[key]
        if path.subkey is None:
            return value
        if isinstance(value, Mapping) and path.subkey in value:
            return value[path.subkey]
        raise ValueError(f"run `{run.name}` has no artifacts `{key}.{path.subkey}`")
    if section == "globals":
        values = run.all_globals()
        if key in values:
            return copy.deepcopy(values[key])
        if key in _UUID_ALIASES:
            return run.uuid
        raise ValueError(f"run `{run.name}` has no globals `{key}` (it has: {_names(values)})")
    raise ValueError(f"`{path}` is not a value of a run")


def _referenced_run(
    ref: Ref,
    *,
    op_name: str,
    dag: RunView,
    upstream: Mapping[str, RunView],
    lookup_run: Callable[[str], RunView | None],
) -> RunView:
    if ref.kind == "dag":
        return dag
    target = ref.target or ""
    if ref.kind == "ops":
        run = upstream.get(target)
        if run is None:
            raise ValueError(f"`ops.{target}` has no run upstream of `{op_name}`")
        return run
    found = lookup_run(target)
    if found is None:
        raise ValueError(f"run `{target}` (`runs.{target}`) was not found")
    return found


def _list_typed(io: IO) -> bool:
    if io.is_list:
        return True
    return io.type is not None and iotypes.normalize_type(io.type)[1]


def check_input(io: IO, value: Any) -> Any:
    """Check (and lightly convert) a value for a declared input; ``ValueError`` with the reason.

    A single string for a list-typed input becomes a one-element list (documented leniency).
    """
    if value is None:
        return None
    if _list_typed(io) and isinstance(value, str):
        value = [value]
    checked = iotypes.check_value(io.type, value, is_list=bool(io.is_list))
    if io.options is not None and checked not in io.options:
        raise ValueError(f"{checked!r} is not one of the options {io.options}")
    return checked


def _describe_type(io: IO) -> str:
    kind = io.type or "any"
    return f"List[{kind}]" if io.is_list else kind


def bind_params(
    component: Component,
    values: Mapping[str, Any],
    *,
    op_name: str,
    params: Mapping[str, Param] | None = None,
    sources: Mapping[str, str] | None = None,
    context: Mapping[str, Any] | None = None,
    strict: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Bind resolved param ``values`` to the component's declared inputs; the rest become context values.

    Declared inputs get the param's value, else their default (rendered with ``context`` when templated),
    else None when optional; a required input with no value is an error. A declared input always wins, even
    over ``contextOnly: true`` (as Polyaxon). Undeclared params become contexts unless ``contextOnly: false``
    or strict mode without ``contextOnly: true``. ``sources`` describe where a value came from, for messages.
    Raise :class:`ParamError` listing every problem.
    """
    params = params or {}
    sources = sources or {}
    errors: list[str] = []
    inputs: dict[str, Any] = {}
    declared = {io.name for io in component.inputs or ()}
    for io in component.inputs or ():
        if io.name in values:
            value, origin = values[io.name], sources.get(io.name, "its value")
        elif io.value is not None:
            value, origin = copy.deepcopy(io.value), "its default"
            if has_template(value):
                try:
                    value = render_value(value, context or {})
                except TemplateError as exc:
                    errors.append(f"input `{io.name}`: default {exc.message}")
                    continue
        elif io.is_optional:
            inputs[io.name] = None
            continue
        else:
            errors.append(f"input `{io.name}` of `{op_name}` is required and no param gives it a value")
            continue
        if value is None and not io.is_optional:
            errors.append(f"input `{io.name}` of `{op_name}` is required and its param is null")
            continue
        try:
            inputs[io.name] = check_input(io, value)
        except ValueError as exc:
            errors.append(
                f"param `{io.name}`: {origin} is {_short_repr(value)}, which does not fit input `{io.name}` "
                f"({_describe_type(io)}): {exc}"
            )
    contexts: dict[str, Any] = {}
    for name, value in values.items():
        if name in declared:
            continue
        flag = params[name].context_only if name in params else None
        if flag is False:
            errors.append(f"param `{name}` sets contextOnly: false but `{op_name}` declares no input `{name}`")
        elif strict and flag is not True:
            errors.append(
                f"param `{name}` is not an input of `{op_name}` (strictParams): declare it or set contextOnly: true"
            )
        else:
            contexts[name] = value
    if errors:
        raise ParamError("; ".join(errors))
    return inputs, contexts


def _short_repr(value: Any, width: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def resolve_params(
    op: OpLike,
    *,
    dag_inputs: Mapping[str, Any],
    dag_globals: Mapping[str, Any],
    upstream: Mapping[str, RunView],
    lookup_run: Callable[[str], RunView | None],
    overrides: Mapping[str, Any] | None = None,
    globals_: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Resolve the op's params and bind them: return ``(inputs, contexts)``.

    ``upstream`` maps op names to snapshots of their runs (``ref: ops.X``), ``lookup_run`` finds a run by
    uuid (``ref: runs.UUID``), ``dag_inputs``/``dag_globals`` serve ``ref: dag``. ``overrides`` (``-P``
    values) replace params of the same name. ``globals_`` are the op's own globals, for templated literals
    such as ``value: "{{ globals.uuid }}"`` (rendered against the op's non-template params, the DAG's inputs
    by bare name, and these globals). Raise :class:`ParamError` naming every param that failed.
    """
    params = dict(op.operation.params or {})
    overrides = overrides or {}
    values, sources, context, errors = _param_values(
        op, params, dag_inputs=dag_inputs, dag_globals=dag_globals, upstream=upstream, lookup_run=lookup_run,
        overrides=overrides, globals_=globals_,
    )  # fmt: skip
    # Keep the params' declaration order (templated ones were set last).
    ordered = {name: values[name] for name in [*params, *overrides] if name in values}
    component = op.component
    strict = bool(component.strict_params or op.operation.strict_params)
    try:
        inputs, contexts = bind_params(
            component, ordered, op_name=op.name, params=params, sources=sources, context=context, strict=strict
        )
    except ParamError as exc:
        errors.append(exc.message)
        inputs, contexts = {}, {}
    if errors:
        raise ParamError("; ".join(errors))
    return inputs, contexts


def param_values(
    op: OpLike,
    *,
    dag_inputs: Mapping[str, Any],
    dag_globals: Mapping[str, Any],
    upstream: Mapping[str, RunView],
    lookup_run: Callable[[str], RunView | None],
    overrides: Mapping[str, Any] | None = None,
    globals_: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The values of the op's params (``overrides`` included), read and rendered as :func:`resolve_params`
    reads them, not yet bound to the inputs: what a join's query may name (Polyaxon's map-reduce reads
    `pipeline: {{ map_controller }}`, a contextOnly param). Raise :class:`ParamError` naming every param that
    failed."""
    params = dict(op.operation.params or {})
    values, _sources, _context, errors = _param_values(
        op, params, dag_inputs=dag_inputs, dag_globals=dag_globals, upstream=upstream, lookup_run=lookup_run,
        overrides=overrides or {}, globals_=globals_,
    )  # fmt: skip
    if errors:
        raise ParamError("; ".join(errors))
    return values


def _param_values(
    op: OpLike,
    params: Mapping[str, Param],
    *,
    dag_inputs: Mapping[str, Any],
    dag_globals: Mapping[str, Any],
    upstream: Mapping[str, RunView],
    lookup_run: Callable[[str], RunView | None],
    overrides: Mapping[str, Any],
    globals_: Mapping[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, str], dict[str, Any], list[str]]:
    """``(values, sources, template context, errors)`` of the params (see :func:`resolve_params`)."""
    dag = RunView(
        uuid=str(dag_globals.get("uuid", "")),
        name=str(dag_globals.get("name", "dag")),
        status=str(dag_globals.get("status", "running")),
        inputs=dag_inputs,
        globals=dag_globals,
    )
    errors: list[str] = []
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    templated: dict[str, Any] = {}
    for name, param in params.items():
        if name in overrides:
            continue
        ref = param.parsed_ref
        if ref is not None:
            path = param.value_path
            assert path is not None  # a param with a ref always has a value path (checked by the model)
            try:
                run = _referenced_run(ref, op_name=op.name, dag=dag, upstream=upstream, lookup_run=lookup_run)
                values[name] = read_value(run, path)
            except ValueError as exc:
                errors.append(f"param `{name}`: {exc}")
                continue
            sources[name] = f"`{path}` of `{ref}`"
        elif has_template(param.value):
            templated[name] = param.value
        else:
            values[name] = copy.deepcopy(param.value)
    for name, value in overrides.items():
        values[name] = value
        sources[name] = "the override"
    context = template_context(inputs={**dag_inputs, **values}, contexts={}, globals_=globals_ or {})
    for name, value in templated.items():
        try:
            values[name] = render_value(value, context)
        except TemplateError as exc:
            errors.append(f"param `{name}`: {exc.message}")
    return values, sources, context, errors


def has_template(value: Any) -> bool:
    """Whether a param value (a string, or a list or mapping holding one) has a ``{{ }}`` template."""
    if isinstance(value, str):
        return is_template(value)
    if isinstance(value, dict):
        return any(has_template(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(has_template(v) for v in value)
    return False


# ----------------------------------------------------------------------------------- toEnv and toInit


def _flagged(
    component: Component, params: Mapping[str, Param] | None, values: Mapping[str, Any]
) -> list[tuple[str, Any, IO | None, Param | None]]:
    declared = {io.name: io for io in [*(component.inputs or ()), *(component.outputs or ())]}
    names = [*declared, *(n for n in params or {} if n not in declared)]
    return [(n, values[n], declared.get(n), (params or {}).get(n)) for n in names if n in values]


def param_env(component: Component, params: Mapping[str, Param] | None, values: Mapping[str, Any]) -> dict[str, str]:
    """Environment variables from ``toEnv: NAME`` (on the param, else on the declared IO).

    Strings are passed as is, other values as JSON (``true``, ``0.1``, ``{"a": 1}``); a None value sets no
    variable.
    """
    env: dict[str, str] = {}
    for _name, value, io, param in _flagged(component, params, values):
        target = (param.to_env if param is not None else None) or (io.to_env if io is not None else None)
        if target and value is not None:
            env[target] = as_str(value)
    return env


def param_inits(component: Component, params: Mapping[str, Param] | None, values: Mapping[str, Any]) -> list[Init]:
    """Init entries from ``toInit`` params: ``git`` (a url or ``{url, revision, flags}``), ``artifacts``
    (``{files, dirs}`` or a list of such), ``path`` (one path or a list), ``dockerfile`` (its fields).

    Other types and connections are refused with :class:`ParamError` (not supported yet).
    """
    inits: list[Init] = []
    for name, value, io, param in _flagged(component, params, values):
        wanted = (param.to_init if param is not None else None) or (io.to_init if io is not None else None)
        if not wanted or value is None:
            continue
        kind = iotypes.normalize_type(io.type)[0] if io is not None and io.type else None
        connection = (param.connection if param is not None else None) or (io.connection if io else None)
        if connection:
            raise ParamError(f"param `{name}`: toInit with a connection is not supported yet")
        try:
            if kind == "git":
                inits.append(Init.model_validate({"git": {"url": value} if isinstance(value, str) else value}))
            elif kind == "artifacts":
                inits.append(Init.model_validate({"artifacts": _merge_artifacts(value)}))
            elif kind == "path":
                inits.append(Init.model_validate({"paths": value if isinstance(value, list) else [value]}))
            elif kind == "dockerfile":  # Polyaxon: the value is a V1DockerfileType, written by the init
                inits.append(Init.model_validate({"dockerfile": value}))
            else:
                raise ParamError(
                    f"param `{name}`: toInit needs an input of type git, artifacts, path or dockerfile "
                    f"(got {kind or 'no type'})"
                )
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise ParamError(f"param `{name}`: cannot turn {_short_repr(value)} into an init step: {exc}") from exc
    return inits


def _merge_artifacts(value: Any) -> Any:
    """Polyaxon's docs write artifacts as a list of ``{files: [...]}``/``{dirs: [...]}`` entries; merge them."""
    if not isinstance(value, list):
        return value
    merged: dict[str, list[Any]] = {}
    for item in value:
        if not isinstance(item, Mapping):
            raise ValueError(f"expected {{files: [...]}} or {{dirs: [...]}} entries, got {item!r}")
        for key, entries in item.items():
            merged.setdefault(str(key), []).extend(entries if isinstance(entries, list) else [entries])
    return merged
