"""Param resolution and op compilation, the smallest correct version the engine needs.

Stand-in until ``polynb.compiler.params`` / ``compile`` land (another engineer's modules); the engine calls
only the functions below through ``compiling.OpCompiler``, so swapping them is local. It uses the
compiler's template environment and context builder; what it adds is reading refs from run views.

Differences from Polyaxon kept on purpose: falsy upstream outputs (0, False, "") are substituted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from polynb.compiler import context as tctx
from polynb.compiler.errors import CompileError, ParamError
from polynb.compiler.templates import render_value
from polynb.compiler.types import CompiledOp, ContainerSpec, OpKind, Placement, TerminationSpec
from polynb.lifecycle import is_final
from polynb.scheduler.plan import TerminationPlan
from polynb.spec.models import Component, Container, Operation
from polynb.spec.refs import parse_ref, parse_value_path
from polynb.store import RunRecord, run_paths

BASE_DIR_LABEL = "polynb.io/base-dir"
_MISSING = object()


@dataclass(frozen=True, slots=True)
class RunView:
    """What a param ref may read of another run."""

    uuid: str
    name: str
    status: str
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    globals: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)


def run_view(record: RunRecord) -> RunView:
    paths = run_paths(record.uuid)
    placement = record.spec.get("placement") if isinstance(record.spec, dict) else None
    globals_ = tctx.run_globals(
        uuid=record.uuid,
        name=record.name,
        created_at=record.created_at,
        started_at=record.started_at,
        extra={
            "status": record.status.value,
            "finished_at": record.finished_at.isoformat() if record.finished_at else None,
            "duration": record.duration,
            "artifacts_path": str(paths.root.parent),
            "run_artifacts_path": str(paths.root),
            "run_outputs_path": str(paths.outputs),
            **({"ports": list(placement.get("ports", ())), "base_url": placement.get("base_url")} if placement else {}),
        },
    )
    return RunView(
        uuid=record.uuid,
        name=record.name,
        status=record.status.value,
        inputs=dict(record.inputs),
        outputs=dict(record.outputs),
        globals=globals_,
        artifacts={"base": record.uuid, "outputs": f"{record.uuid}/outputs"},
    )


def _read(view: RunView, value: str, ref_text: str, *, final: bool) -> Any:
    path = parse_value_path(value, parse_ref(ref_text))
    sections: dict[str, dict[str, Any]] = {
        "inputs": view.inputs,
        "outputs": view.outputs,
        "globals": view.globals,
        "artifacts": view.artifacts,
    }
    if path.section == "outputs" and not final:
        raise ParamError(f"`{ref_text}` ({view.name}) is {view.status}: its outputs are not known before it is done")
    if path.section == "io":
        return {"inputs": view.inputs, "outputs": view.outputs, "artifacts": view.artifacts}
    section = sections[path.section]
    if path.key is None:
        return dict(section)
    found = section.get(path.key, _MISSING)
    if found is _MISSING:
        raise ParamError(f"`{ref_text}` has no {path.section}.{path.key} (run {view.name} {view.uuid[:12]})")
    if path.subkey is not None:
        found = found.get(path.subkey, _MISSING) if isinstance(found, dict) else _MISSING
        if found is _MISSING:
            raise ParamError(f"`{ref_text}` has no {path}")
    return found


def resolve_params(
    operation: Operation,
    component: Component,
    *,
    dag_inputs: Mapping[str, Any],
    dag_globals: Mapping[str, Any],
    upstream: Mapping[str, RunView],
    lookup_run: Callable[[str], RunView | None],
    extra_context: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Bind params to the component's inputs: ``(inputs, contexts)``; raise ``ParamError`` on a bad ref."""
    declared = {io.name: io for io in component.inputs or ()}
    inputs: dict[str, Any] = {}
    contexts: dict[str, Any] = dict(extra_context or {})
    for io in declared.values():
        if io.value is not None:
            inputs[io.name] = io.value
    for name, param in (operation.params or {}).items():
        if param.ref is None:
            value = param.value
        else:
            ref = parse_ref(param.ref)
            if ref.kind == "dag":
                view = RunView(uuid=str(dag_globals.get("uuid", "")), name="dag", status="running",
                               inputs=dict(dag_inputs), globals=dict(dag_globals))  # fmt: skip
                value = _read(view, str(param.value), param.ref, final=False)
            elif ref.kind == "ops":
                view_or_none = upstream.get(str(ref.target))
                if view_or_none is None:
                    raise ParamError(f"param `{name}`: `{param.ref}` is not an upstream op of this one")
                value = _read(view_or_none, str(param.value), param.ref, final=is_final(view_or_none.status))
            else:
                found = lookup_run(str(ref.target))
                if found is None:
                    raise ParamError(f"param `{name}`: no run {ref.target} in the store")
                value = _read(found, str(param.value), param.ref, final=is_final(found.status))
        if name in declared and not param.context_only:
            inputs[name] = value
        else:
            contexts[name] = value
    missing = [n for n, io in declared.items() if n not in inputs and not io.is_optional]
    if missing:
        raise ParamError(f"missing required input(s): {', '.join(missing)}")
    for name, io in declared.items():
        inputs.setdefault(name, io.value)
    return inputs, contexts


def op_kind(component: Component) -> OpKind:
    kind = str(getattr(component.run, "kind", "job"))
    if kind == "service":
        return "service"
    if kind == "job":
        return "job"
    raise CompileError(f"run kind `{kind}` is not supported yet by the engine")


def port_count(component: Component) -> int:
    return len(getattr(component.run, "ports", None) or ())


def globals_for(*, uuid: str, name: str, placement: Placement) -> dict[str, Any]:
    return tctx.run_globals(uuid=uuid, name=name, placement=placement)


def template_context(
    inputs: Mapping[str, Any], contexts: Mapping[str, Any], globals_: Mapping[str, Any]
) -> dict[str, Any]:
    return tctx.template_context(inputs=inputs, contexts=contexts, globals_=globals_)


def _container(container: Container, context: Mapping[str, Any], default_name: str) -> ContainerSpec:
    env = tuple((e.name, str(render_value(e.value or "", context))) for e in container.env or ())
    return ContainerSpec(
        name=container.name or default_name,
        command=tuple(str(render_value(c, context)) for c in container.command or ()),
        args=tuple(str(render_value(a, context)) for a in container.args or ()),
        env=env,
        working_dir=container.working_dir,
        image=container.image,
    )


def compile_op(
    *,
    uuid: str,
    name: str,
    component: Component,
    termination: TerminationPlan | None,
    inputs: Mapping[str, Any],
    context: Mapping[str, Any],
    placement: Placement,
    dag_uuid: str | None,
    base_dir: str | None,
) -> CompiledOp:
    run = component.run
    container = getattr(run, "container", None)
    if run is None or container is None:
        raise CompileError(f"op `{name}` has no container to run")
    kind = op_kind(component)
    term = termination or TerminationPlan()
    return CompiledOp(
        uuid=uuid,
        name=name,
        kind=kind,
        container=_container(container, context, "main"),
        placement=placement,
        sidecars=tuple(
            _container(c, context, f"sidecar-{i}") for i, c in enumerate(getattr(run, "sidecars", None) or ())
        ),
        termination=TerminationSpec(max_retries=term.max_retries, timeout=term.timeout, ttl=term.ttl),
        inputs=dict(inputs),
        dag_uuid=dag_uuid,
        labels={BASE_DIR_LABEL: base_dir} if base_dir else {},
    )
