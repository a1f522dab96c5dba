"""Turning a resolved op into a :class:`CompiledOp`: every template rendered, every value bound.

Commands are argument lists and stay so: each ``command``/``args`` element renders to one argv element (a
value with spaces or ``;`` is never split or handed to a shell). Two conveniences, both documented:

* an element that is exactly one ``{{ expr }}`` whose value is a list (``"{{ params.as_args }}"``) becomes
  one argv element per item;
* an element that is a template and renders to ``""`` is dropped (``"{{ params.verbose.as_arg }}"`` of an
  unset flag), so programs never receive a stray empty argument. A literal ``""`` is kept.
* an element that is a template and renders to ``None`` (``"{{ n }}"`` of an optional input given no value) is
  dropped as Polyaxon 2.18 drops it: its parser omits a container's ``command``/``args`` item whose template
  renders the text ``None``, so a value whose text is ``None`` is dropped too. Inside a longer element the text
  stays (``"--n={{ n }}"`` gives ``--n=None``, as in Polyaxon).

Hooks compile like ops, with the main run's context (see :func:`hook_params`).
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid as uuid_mod
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic.alias_generators import to_camel

from polynb.compiler.context import op_context, placement_globals, run_globals, template_context
from polynb.compiler.dockerfile import OUTPUTS_DIR, DockerfileError, filename_of, render_dockerfile
from polynb.compiler.errors import CompileError, ParamError, TemplateError
from polynb.compiler.params import RunView, bind_params, param_env, param_inits, read_value
from polynb.compiler.templates import is_template, render_str, render_value, to_bool
from polynb.compiler.types import CompiledOp, ContainerSpec, InitStep, OpKind, Placement, TerminationSpec
from polynb.spec.base import TemplatedSection
from polynb.spec.models import Component, Container, Hook, Init, Job, Operation, Param, Service, Termination
from polynb.spec.plugins import REFUSED_PLUGINS, Plugins

__all__ = [
    "compile_hook",
    "compile_op",
    "hook_condition_context",
    "hook_inputs",
    "hook_params",
    "op_kind",
    "port_count",
]

MAIN_CONTAINER = "main"
DEFAULT_SERVICE_PORTS = (80,)  # Polyaxon's default when a service declares none
_UNSUPPORTED_INITS = {
    "lineage_ref": "lineageRef",
    "model_ref": "modelRef",
    "artifact_ref": "artifactRef",
}


# ------------------------------------------------------------------------------------------- helpers


def op_kind(component: Component) -> OpKind:
    """``job`` or ``service``; any other run kind raises :class:`CompileError` (not supported yet)."""
    run = component.run
    if run is None:
        raise CompileError("the component has no `run` section")
    kind = str(run.kind)
    if kind == "job" and isinstance(run, Job):
        return "job"
    if kind == "service" and isinstance(run, Service):
        return "service"
    raise CompileError(f"run kind `{kind}` is not supported yet")


def port_count(component: Component, context: Mapping[str, Any] | None = None) -> int:
    """How many ports the executor must place: a service's ``ports`` (``[80]`` when none), 0 for a job.
    ``ports`` written as a template is rendered in ``context``: the op's params, before it is placed."""
    run = component.run
    if isinstance(run, Service):
        return len(_service_ports(run, context) or DEFAULT_SERVICE_PORTS)
    return 0


def _service_ports(run: Service, context: Mapping[str, Any] | None) -> list[int] | None:
    """A service's ``ports``; a template (Polyaxon renders ``run`` when the op compiles) must give a list of
    integers, or the JSON text of one, else :class:`CompileError`."""
    ports = run.ports
    if not isinstance(ports, str):
        return ports
    if context is None:
        raise CompileError(f"run.ports: the template `{ports}` needs the op's params")
    value = _render(ports, context, "run.ports")
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = json.loads(value)
    if not isinstance(value, list) or not all(isinstance(p, int) and not isinstance(p, bool) for p in value):
        raise CompileError(f"run.ports: expected a list of port numbers; the template `{ports}` gave {value!r}")
    return value


def _check_service_templates(run: Service, context: Mapping[str, Any]) -> None:
    """``replicas``, ``isExternal`` and ``rewritePath`` written as templates: rendered so that one Polyaxon would
    fail the op with fails it here too, before it runs (polynb applies none of them)."""
    if isinstance(run.replicas, str):
        _whole_number(_render(run.replicas, context, "run.replicas"), run.replicas, "run.replicas")
    for name, key in (("is_external", "isExternal"), ("rewrite_path", "rewritePath")):
        template = getattr(run, name)
        if isinstance(template, str) and to_bool(value := _render(template, context, f"run.{key}")) is None:
            raise CompileError(f"run.{key}: expected true or false; the template `{template}` gave {value!r}")


def _check_plugins(component: Component, operation: Operation | None, context: Mapping[str, Any]) -> None:
    """``plugins`` written whole as one template, rendered as Polyaxon renders it when the op compiles: one that
    gives what ``polynb check`` refuses written out (``docker``, ``tmux``, ``sandbox``, ``ssh``, ``notifications``)
    fails the op before it runs; the others are not applied, as written out."""
    for plugins in (operation.plugins if operation is not None else None, component.plugins):
        rendered: Plugins | None = render_section(plugins, context, "plugins")
        if rendered is None or plugins is None or plugins.whole_template is None:
            continue
        for name, reason in REFUSED_PLUGINS.items():
            if getattr(rendered, name) not in (None, False, []):
                raise CompileError(f"plugins: plugin `{to_camel(name)}` is not supported yet: {reason} (the "
                                   f"template `{plugins.whole_template}` sets it)")  # fmt: skip


def _render(value: Any, context: Mapping[str, Any], where: str) -> Any:
    try:
        return render_value(value, context)
    except TemplateError as exc:
        raise CompileError(f"{where}: {exc.message}") from exc


def _render_text(value: str | None, context: Mapping[str, Any], where: str) -> str | None:
    if value is None or not is_template(value):
        return value
    try:
        return render_str(value, context)
    except TemplateError as exc:
        raise CompileError(f"{where}: {exc.message}") from exc


def _render_setting(value: str | None, context: Mapping[str, Any], where: str) -> str | None:
    """A container's text setting (``workingDir``, an env value): one whose template renders ``None`` (an optional
    input given no value) is not set, as Polyaxon 2.18 leaves it (its compile gives ``None``: no ``workingDir``,
    an env variable without a value, which Kubernetes makes empty), not the word ``None``."""
    text = _render_text(value, context, where)
    return None if value is not None and is_template(value) and text == "None" else text


def _arg_text(value: Any) -> str:
    # As Jinja would print it, so `{{ x }}` and `x={{ x }}` agree on how x looks.
    return value if isinstance(value, str) else str(value)


def _argv(items: Iterable[str] | None, context: Mapping[str, Any], where: str) -> tuple[str, ...]:
    out: list[str] = []
    for i, item in enumerate(items or ()):
        if not is_template(item):
            out.append(item)
            continue
        value = _render(item, context, f"{where}[{i}]")
        if isinstance(value, list | tuple):
            out.extend(_arg_text(v) for v in value)
        elif (text := _arg_text(value)) not in ("", "None"):
            out.append(text)
    return tuple(out)


def _env(container: Container, context: Mapping[str, Any], where: str) -> dict[str, str]:
    """The plain variables; ``valueFrom`` ones (and ``envFrom``) go with the Kubernetes fields (``_k8s_fields``):
    only a cluster holds what they read, and the local executor refuses an op that has them."""
    env: dict[str, str] = {}
    for var in container.env or ():
        if var.value_from is not None:
            continue
        env[var.name] = _render_setting(var.value, context, f"{where}.env `{var.name}`") or ""
    return env


def _container_spec(
    container: Container,
    context: Mapping[str, Any],
    *,
    where: str,
    default_name: str,
    extra_env: Mapping[str, str] | None = None,
) -> ContainerSpec:
    env = {**_env(container, context, where), **(extra_env or {})}
    return ContainerSpec(
        name=container.name or default_name,
        command=_argv(container.command, context, f"{where}.command"),
        args=_argv(container.args, context, f"{where}.args"),
        env=tuple(env.items()),
        working_dir=_render_setting(container.working_dir, context, f"{where}.workingDir"),
        image=_render_text(container.image, context, f"{where}.image"),
        k8s=_k8s_fields(container),
    )


# Fields the ContainerSpec carries itself; everything else of a Kubernetes container goes to `k8s`.
_PORTABLE_FIELDS = frozenset({"name", "image", "command", "args", "env", "workingDir"})


def _k8s_fields(container: Container) -> dict[str, Any]:
    """The container's Kubernetes-only fields (resources, imagePullPolicy, volumeMounts, probes, ...)
    under their API names, for the kubernetes executor; the local executor ignores them."""
    dumped = container.model_dump(by_alias=True, exclude_none=True, mode="json")
    fields = {key: value for key, value in dumped.items() if key not in _PORTABLE_FIELDS}
    from_cluster = [
        {"name": v.name, "valueFrom": v.value_from} for v in container.env or () if v.value_from is not None
    ]
    if from_cluster:
        fields["env"] = from_cluster
    return fields


# ------------------------------------------------------------------------------------------- init


def normalize_uuids(value: Any, *, where: str) -> list[str]:
    """TensorBoard ``uuids``: a list, a comma-separated string, or a mix, to a list of 32-hex run uuids.

    A value that is not a uuid is refused: uuids become paths under the artifacts root.
    """
    items = value if isinstance(value, list | tuple) else [] if value is None else [value]
    uuids: list[str] = []
    for item in items:
        for part in str(item).split(","):
            text = part.strip()
            if not text:
                continue
            try:
                uuids.append(uuid_mod.UUID(text).hex)
            except ValueError:
                raise CompileError(f"{where}: `{text}` is not a run uuid") from None
    return uuids


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return list(value) if isinstance(value, list | tuple) else [value]


def _init_spec(kind: str, fields: Any, context: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The rendered fields of one init entry, under their Polyaxonfile names (``useNames``, ``pathPrefix``)."""
    rendered = _render(fields, context, where)
    if kind == "paths":
        return {"paths": [rendered] if isinstance(rendered, str) else list(rendered)}
    spec: dict[str, Any] = dict(rendered)
    if kind == "artifacts":
        # A templated `dirs: '{{ uuids | map(...) | list }}'` renders to a list; a plain string is one entry.
        for key in ("files", "dirs"):
            if isinstance(spec.get(key), str):
                spec[key] = [spec[key]]
    elif kind == "git" and isinstance(spec.get("flags"), str):
        spec["flags"] = [spec["flags"]]
    elif kind == "tensorboard":
        spec["uuids"] = normalize_uuids(spec.get("uuids"), where=f"{where}.uuids")
        use_names = spec.get("useNames", False)
        spec["useNames"] = bool(use_names) if isinstance(use_names, bool) else str(use_names).lower() == "true"
        spec["use_names"] = spec["useNames"]  # both spellings: the Polyaxonfile's and the Python one
        if spec.get("port") not in (None, ""):
            try:
                spec["port"] = int(spec["port"])
            except (TypeError, ValueError):
                raise CompileError(f"{where}.port: `{spec['port']}` is not a port number") from None
        if "plugins" in spec:
            spec["plugins"] = _as_list(spec["plugins"])
    return spec


def _dockerfile_steps(init: Init, context: Mapping[str, Any], where: str) -> list[InitStep]:
    """A ``dockerfile`` entry as Polyaxon's init does it: the file written at the init's ``path`` (the run's
    artifacts folder by default), and a copy in the run's ``outputs/`` (``compiler.dockerfile``)."""
    fields = _render(init.model_dump(by_alias=True, exclude_none=True)["dockerfile"], context, f"{where}.dockerfile")
    try:
        spec = {"filename": filename_of(fields), "content": render_dockerfile(fields)}
    except DockerfileError as exc:
        raise CompileError(f"{where}.dockerfile.{exc}") from None
    path = _render_text(init.path, context, f"{where}.path")
    return [InitStep(kind="file", spec=spec, path=path), InitStep(kind="file", spec=dict(spec), path=OUTPUTS_DIR)]


def _init_steps(init: Init, context: Mapping[str, Any], where: str) -> list[InitStep]:
    if init.connection is not None:
        return [_connection_step(init, context, where)]
    if init.kind == "dockerfile":
        return _dockerfile_steps(init, context, where)
    return [_init_step(init, context, where)]


def _init_step(init: Init, context: Mapping[str, Any], where: str) -> InitStep:
    kind = init.kind
    if kind in _UNSUPPORTED_INITS:
        raise CompileError(f"{where}: `{_UNSUPPORTED_INITS[kind]}` init is not supported yet")
    container = None
    if init.container is not None:
        container = _container_spec(init.container, context, where=f"{where}.container", default_name="init")
    spec: dict[str, Any] = {}
    if kind != "container":
        fields = init.model_dump(by_alias=True, exclude_none=True)[_alias(kind)]
        spec = _init_spec(kind, fields, context, f"{where}.{_alias(kind)}")
    return InitStep(
        kind=kind,  # type: ignore[arg-type]  # the supported kinds are exactly InitKind
        spec=spec,
        path=_render_text(init.path, context, f"{where}.path"),
        container=container,
    )


def _connection_step(init: Init, context: Mapping[str, Any], where: str) -> InitStep:
    """An init entry reading a connection: a git connection is cloned (its ``url``; the entry's ``git`` revision and
    flags, else the schema's ``revision``), a bucket or host path is copied from (the entry's ``artifacts`` files
    and dirs or ``paths``; none: all of it, into ``<run>/<connection name>``). The connection's entry, as it is in
    the config file now, travels in the step's ``spec["connection"]`` (the executors read its env there)."""
    from polynb.connections import init_source_problem

    name = _render_text(init.connection, context, f"{where}.connection") or ""
    connection = _connections([name], "", what=f"{where}.connection")[0]
    given = "" if init.kind == "container" else init.kind
    if init.container is not None:
        raise CompileError(f"{where}.connection: a custom container reading a connection is not supported yet "
                           "(write `git:`, `artifacts:` or `paths:` with the connection, or mount it with "
                           "run.connections)")  # fmt: skip
    problem = init_source_problem(connection, given)
    if problem is not None:
        raise CompileError(f"{where}.connection: {problem}")
    schema = connection.get("schema") or {}
    if connection["kind"] == "git":
        spec = _init_spec("git", init.model_dump(by_alias=True, exclude_none=True).get("git") or {}, context,
                          f"{where}.git")  # fmt: skip
        spec["url"] = str(schema["url"])
        if not spec.get("revision") and schema.get("revision"):
            spec["revision"] = str(schema["revision"])
        kind = "git"
    else:
        kind = "paths" if given == "paths" else "artifacts"
        fields = init.model_dump(by_alias=True, exclude_none=True).get(kind) or ({} if kind == "artifacts" else [])
        spec = _init_spec(kind, fields, context, f"{where}.{kind}")
    spec["connection"] = connection
    path = _render_text(init.path, context, f"{where}.path")
    if kind != "git" and not any(spec.get(k) for k in ("files", "dirs", "paths")):
        path = path or name  # the whole bucket or folder: in a folder named for the connection
    return InitStep(kind=kind, spec=spec, path=path)  # type: ignore[arg-type]  # git, artifacts or paths


def _alias(kind: str) -> str:
    return {"lineage_ref": "lineageRef", "model_ref": "modelRef", "artifact_ref": "artifactRef"}.get(kind, kind)


# ------------------------------------------------------------------------------------------- ops


_TERMINATION_FIELDS = {"max_retries": "maxRetries", "timeout": "timeout", "ttl": "ttl"}
_Section = TypeVar("_Section", bound=TemplatedSection)


def render_section(section: _Section | None, context: Mapping[str, Any], key: str) -> _Section | None:
    """A section written whole as one template (``termination: "{{ t }}"``) rendered in the op's ``context`` and
    read as that section, as Polyaxon renders it when the op compiles: a mapping, or the JSON text of one; None
    (an optional param given no value) is no section. Anything else, or a section that does not validate, raises
    :class:`CompileError`. What the template gives is data: a template in it is an error, never rendered again.
    A section written field by field is returned as is."""
    if section is None or (template := section.whole_template) is None:
        return section
    value = _render(template, context, key)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = json.loads(value)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise CompileError(f"{key}: expected a mapping; the template `{template}` gave {value!r}")
    if is_template(json.dumps(value, default=str)):
        raise CompileError(f"{key}: the template `{template}` gave {value!r}, which holds a template: what a "
                           "template gives is not rendered again")  # fmt: skip
    try:
        return type(section).model_validate(value)
    except ValidationError as exc:
        from polynb.spec.load import translate  # the words ``check`` uses (``unexpected key 'timeot'``)
        from polynb.spec.yaml_loader import Document

        said = translate(exc.errors(include_url=False), Document(value, f"<{key}>", "{}"), type(section))[0]
        where = ".".join(str(part) for part in (key, said.path) if part)
        message = said.message.replace(" at the top level of a Polyaxonfile", "")  # its root is the section
        raise CompileError(f"{where}: {message} (the template `{template}` gave {value!r})") from None


def _termination(component: Component, operation: Operation | None, context: Mapping[str, Any]) -> TerminationSpec:
    """Field by field, the operation's termination wins over the component's. A field written as a template
    (``timeout: "{{ timeout }}"``) is rendered in the op's ``context``, as Polyaxon renders it when it compiles;
    what it gives must be a whole number, 0 or more, else :class:`CompileError` (the op fails unrun). A whole
    termination written as one template is rendered first (:func:`render_section`)."""
    written = [t for t in (component.termination, operation and operation.termination) if t]
    layers: list[Termination] = [t for w in written if (t := render_section(w, context, "termination")) is not None]
    values: dict[str, int | None] = {}
    for name, key in _TERMINATION_FIELDS.items():
        value = next((v for layer in reversed(layers) if (v := getattr(layer, name)) is not None), None)
        if isinstance(value, str):  # a template (``spec.models.Termination`` accepts no other string)
            value = _whole_number(_render(value, context, f"termination.{key}"), value, f"termination.{key}")
        values[name] = value
    timeout, ttl = values["timeout"], values["ttl"]
    return TerminationSpec(
        max_retries=values["max_retries"] or 0,
        timeout=float(timeout) if timeout else None,  # 0: no timeout
        ttl=float(ttl) if ttl is not None else None,
    )


def _whole_number(value: Any, template: str, where: str) -> int:
    """What a termination template gave, as Polyaxon reads it: an integer, or the text of one (blanks around it
    ignored); then, as polynb requires of a written number, 0 or more. A float, a boolean or other text fails."""
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise CompileError(f"{where}: expected a whole number, 0 or more; the template `{template}` gave {value!r}")


def compile_op(
    *,
    uuid: str,
    name: str,
    component: Component,
    inputs: Mapping[str, Any],
    contexts: Mapping[str, Any],
    placement: Placement,
    globals_: Mapping[str, Any],
    dag_uuid: str | None = None,
    env: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    operation: Operation | None = None,
    termination: TerminationSpec | None = None,
) -> CompiledOp:
    """Render the component's run for one run of it.

    ``inputs``/``contexts`` come from :func:`~polynb.compiler.params.resolve_params`; ``globals_`` from
    :func:`~polynb.compiler.context.run_globals` (``uuid``, ``name``, paths, ``ports`` and ``base_url`` are
    (re)set from the arguments and the placement). ``operation`` supplies the params' ``toEnv``/``toInit``
    flags and a termination that overrides the component's; ``termination``, when given, wins over both.
    The main container's environment is its ``env``, then ``toEnv`` params, then ``env`` (later wins).
    Raise :class:`CompileError` for anything unsupported or any template that fails.
    """
    kind = op_kind(component)
    run = component.run
    assert isinstance(run, Job)  # op_kind accepted it: a job or a service
    full_globals = {
        **run_globals(uuid=uuid, name=name),
        **globals_,
        "uuid": uuid,
        "name": name,
        **placement_globals(placement),
    }
    context = op_context(component, inputs=inputs, contexts=contexts, globals_=full_globals)
    ports_needed = port_count(component, context)
    if len(placement.ports) < ports_needed:
        raise CompileError(
            f"op `{name}`: the service needs {ports_needed} port(s), the placement has {len(placement.ports)}"
        )
    if isinstance(run, Service):
        _check_service_templates(run, context)
    _check_plugins(component, operation, context)
    params = operation.params if operation is not None else None
    values = {**contexts, **inputs}
    try:
        to_env = param_env(component, params, values)
        extra_inits = param_inits(component, params, values)
    except ParamError as exc:
        raise CompileError(f"op `{name}`: {exc.message}") from exc
    if run.container is None:
        raise CompileError(f"op `{name}`: the {kind} has no container (none in its component, its runPatch or presets)")
    main = _container_spec(
        run.container,
        context,
        where="run.container",
        default_name=MAIN_CONTAINER,
        extra_env={**to_env, **(env or {})},
    )
    init = [step for i, entry in enumerate(run.init or ()) for step in _init_steps(entry, context, f"run.init[{i}]")]
    init += [step for i, entry in enumerate(extra_inits)
             for step in _init_steps(entry, context, f"params (toInit) [{i}]")]  # fmt: skip
    sidecars = [
        _container_spec(c, context, where=f"run.sidecars[{i}]", default_name=f"sidecar-{i}")
        for i, c in enumerate(run.sidecars or ())
    ]
    env_labels = run.environment.labels if run.environment is not None else None
    return CompiledOp(
        uuid=uuid,
        name=name,
        kind=kind,
        container=main,
        placement=placement,
        init=tuple(init),
        sidecars=tuple(sidecars),
        termination=termination or _termination(component, operation, context),
        inputs={**contexts, **inputs},
        dag_uuid=dag_uuid,
        labels={**(env_labels or {}), **(labels or {})},
        environment=(
            run.environment.model_dump(by_alias=True, exclude_none=True, mode="json") if run.environment else {}
        ),
        volumes=tuple(dict(v) for v in run.volumes or ()),
        connections=_connections(run.connections or (), name),
    )


def _connections(names: Iterable[str], op: str, *, what: str = "") -> tuple[dict[str, Any], ...]:
    """The config file's entries for ``run.connections`` (or what ``what`` says): read when an op names some (most
    name none), so a connection changed in the file reaches the next run; an unknown name fails the op before
    anything starts."""
    names = list(names)
    if not names:
        return ()
    from polynb.config_file import load_config
    from polynb.connections import by_name
    from polynb.spec.errors import SpecErrors

    field = what or f"op `{op}`: run.connections"
    try:
        config = load_config()
    except SpecErrors as exc:
        raise CompileError(f"{field}: the config file is not valid: {exc}") from None
    known = by_name(config.connections)
    unknown = [n for n in names if n not in known]
    if unknown:
        where = config.path or "no config file"
        raise CompileError(f"{field}: no connection named {', '.join(unknown)} ({where}; "
                           f"connections: {', '.join(sorted(known)) or 'none'})")  # fmt: skip
    return tuple(dict(known[n]) for n in names)


# ------------------------------------------------------------------------------------------- hooks


def hook_condition_context(main: RunView) -> dict[str, Any]:
    """The context of a hook's ``conditions`` and templated params: the main run's.

    As Polyaxon: the main run's inputs and outputs by bare name, ``params.*`` and ``globals.*``. We also
    expose ``status`` (the main run's final status) by bare name unless an input or output is so named,
    and as ``globals.status``, so ``{{ status == 'failed' and loss > 1 }}`` works (Polyaxon has neither).
    """
    context = template_context(inputs=main.inputs, contexts={}, outputs=main.outputs, globals_=main.all_globals())
    context.setdefault("status", main.status)
    return context


def hook_defaults(main: RunView, *, main_kind: str | None = None) -> dict[str, Any]:
    """What a hook receives from its main run unless ``disableDefaults: true``.

    ``name, uuid, kind, status, inputs, outputs, duration, wait_time``; ``kind`` is ``main_kind`` (else
    ``globals.kind``), ``duration``/``wait_time`` (seconds) come from the main run's globals (None if absent).
    """
    main_globals = main.all_globals()
    return {
        "name": main.name,
        "uuid": main.uuid,
        "kind": main_kind or main_globals.get("kind"),
        "status": main.status,
        "inputs": dict(main.inputs),
        "outputs": dict(main.outputs),
        "duration": main_globals.get("duration"),
        "wait_time": main_globals.get("wait_time"),
    }


def hook_params(
    hook: Hook,
    main: RunView,
    *,
    main_kind: str | None = None,
    lookup_run: Callable[[str], RunView | None] | None = None,
) -> dict[str, Any]:
    """The hook's param values: the defaults (unless ``disableDefaults``), its ``connection`` (as the context
    param ``connection``, when set), then its own params (which win).

    Templated values render with :func:`hook_condition_context` (``{{ globals.uuid }}`` is the main run's
    uuid). A ``ref`` may name the main run (``ops.<main name>``) or any run (``runs.<uuid>``).
    """
    values = {} if hook.disable_defaults else hook_defaults(main, main_kind=main_kind)
    if hook.connection is not None:  # the notifier components read their URL from it (polynb/hub/notify.py)
        values["connection"] = hook.connection
    context = hook_condition_context(main)
    errors: list[str] = []
    for name, param in (hook.params or {}).items():
        try:
            values[name] = _hook_param_value(param, main, context, lookup_run)
        except (ValueError, TemplateError) as exc:
            errors.append(f"hook `{hook.hub_ref}` param `{name}`: {getattr(exc, 'message', exc)}")
    if errors:
        raise ParamError("; ".join(errors))
    return values


def _hook_param_value(
    param: Param,
    main: RunView,
    context: Mapping[str, Any],
    lookup_run: Callable[[str], RunView | None] | None,
) -> Any:
    ref = param.parsed_ref
    if ref is None:
        return render_value(param.value, context)
    path = param.value_path
    assert path is not None  # the model pairs every ref with a value path
    if ref.kind == "ops" and ref.target == main.name:
        return read_value(main, path)
    if ref.kind == "runs":
        found = lookup_run(ref.target or "") if lookup_run is not None else None
        if found is None:
            raise ValueError(f"run `{ref.target}` (`runs.{ref.target}`) was not found")
        return read_value(found, path)
    raise ValueError(f"`{ref}` is not available to a hook: use `ops.{main.name}` (the main run) or `runs.<uuid>`")


def hook_inputs(
    hook: Hook,
    component: Component,
    main: RunView,
    *,
    name: str,
    main_kind: str | None = None,
    lookup_run: Callable[[str], RunView | None] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The hook run's ``(inputs, contexts)``: its params (:func:`hook_params`) bound to ``component``. Raise
    :class:`ParamError`."""
    values = hook_params(hook, main, main_kind=main_kind, lookup_run=lookup_run)
    params = {
        **{key: Param(value=None, context_only=True) for key in values},
        **(hook.params or {}),
    }
    return bind_params(component, values, op_name=name, params=params, strict=bool(component.strict_params))


def compile_hook(
    *,
    hook: Hook,
    component: Component,
    main: RunView,
    uuid: str,
    placement: Placement,
    globals_: Mapping[str, Any],
    main_kind: str | None = None,
    name: str | None = None,
    dag_uuid: str | None = None,
    env: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    lookup_run: Callable[[str], RunView | None] | None = None,
) -> CompiledOp:
    """Compile one hook run of ``main``: its params (:func:`hook_params`) bound to ``component`` (resolved
    from ``hook.hubRef``), then :func:`compile_op`. Defaults bind to declared inputs of the same name (a
    TensorBoard component's ``uuid``) and are context values otherwise, even in strict mode. The name
    defaults to ``<main name>-<hubRef>`` (``:tag`` dropped). Raise :class:`ParamError` or :class:`CompileError`.
    """
    run_name = name or f"{main.name}-{hook.hub_ref.split(':')[0].replace('/', '-')}"
    inputs, contexts = hook_inputs(hook, component, main, name=run_name, main_kind=main_kind, lookup_run=lookup_run)
    return compile_op(
        uuid=uuid,
        name=run_name,
        component=component,
        inputs=inputs,
        contexts=contexts,
        placement=placement,
        globals_=globals_,
        dag_uuid=dag_uuid,
        env=env,
        labels=labels,
        operation=Operation(hub_ref=hook.hub_ref, params=hook.params),
    )
