"""Pydantic v2 models of the Polyaxonfile v1.1 form, as Polyaxon 2.18 reads it.

Attribute names are snake_case; YAML keys are the camelCase aliases. Unknown keys are rejected everywhere
(``extra="forbid"``) so a misspelled key is an error with a did-you-mean, never silently ignored. Features
that parse but that the engine cannot run yet (``build``, distributed run kinds, some ``matrix`` kinds and
``schedule`` places, ...) are accepted here and refused at compile time with "not supported yet".
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    PositiveInt,
    PrivateAttr,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from polynb.lifecycle import (
    CONNECTION_REF_PREFIX,
    CUSTOM_EVENT_KINDS,
    is_status_event,
    status_of_event,
)
from polynb.lifecycle import Status as Status
from polynb.limits import MAX_OPS
from polynb.spec import iotypes, shortcuts
from polynb.spec.base import DEFERRED, TemplatedSection, is_ref_field, on_first_use
from polynb.spec.base import Model as Model
from polynb.spec.base import nested_error as _nested_error
from polynb.spec.containers import Container as Container
from polynb.spec.containers import Environment as Environment
from polynb.spec.containers import EnvVar as EnvVar
from polynb.spec.containers import Init as Init
from polynb.spec.containers import Resources as Resources
from polynb.spec.containers import check_volume
from polynb.spec.distributed import DaskCluster as DaskCluster
from polynb.spec.distributed import DistributedRun as DistributedRun
from polynb.spec.distributed import MPIJob as MPIJob
from polynb.spec.distributed import PytorchJob as PytorchJob
from polynb.spec.distributed import RayCluster as RayCluster
from polynb.spec.distributed import TFJob as TFJob
from polynb.spec.joins import Join as Join
from polynb.spec.matrix import EarlyStopping
from polynb.spec.matrix import Matrix as Matrix
from polynb.spec.plugins import Cache as Cache
from polynb.spec.plugins import Plugins as Plugins
from polynb.spec.refs import Ref, ValuePath, parse_ref_cached, parse_value_path
from polynb.spec.schedule import Schedule as Schedule

NAME_PATTERN = re.compile(r"^[-a-zA-Z0-9_]+$")


def _check_name(value: str | None) -> str | None:
    if value is not None and not NAME_PATTERN.match(value):
        raise ValueError(
            f"`{value}` is not a valid name: use letters, digits, `-` and `_` only "
            "(no dots or spaces: refs such as `ops.NAME` split on `.`)"
        )
    return value


def _split_csv(value: Any) -> Any:
    """Polyaxon accepts ``tags: a, b`` as well as a list."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


# --------------------------------------------------------------------------------------------- enums
# `Status` (Polyaxon's 20 statuses) lives in `polynb.lifecycle`, shared with the engine and the store.


class EventKind(StrEnum):
    RUN_STATUS_CREATED = "run_status_created"
    RUN_STATUS_RESUMING = "run_status_resuming"
    RUN_STATUS_COMPILED = "run_status_compiled"
    RUN_STATUS_ON_SCHEDULE = "run_status_on_schedule"
    RUN_STATUS_QUEUED = "run_status_queued"
    RUN_STATUS_SCHEDULED = "run_status_scheduled"
    RUN_STATUS_STARTING = "run_status_starting"
    RUN_STATUS_RUNNING = "run_status_running"
    RUN_STATUS_PROCESSING = "run_status_processing"
    RUN_STATUS_STOPPING = "run_status_stopping"
    RUN_STATUS_FAILED = "run_status_failed"
    RUN_STATUS_STOPPED = "run_status_stopped"
    RUN_STATUS_SUCCEEDED = "run_status_succeeded"
    RUN_STATUS_SKIPPED = "run_status_skipped"
    RUN_STATUS_WARNING = "run_status_warning"
    RUN_STATUS_UNSCHEDULABLE = "run_status_unschedulable"
    RUN_STATUS_UPSTREAM_FAILED = "run_status_upstream_failed"
    RUN_STATUS_RETRYING = "run_status_retrying"
    RUN_STATUS_UNKNOWN = "run_status_unknown"
    RUN_STATUS_DONE = "run_status_done"
    RUN_APPROVED_ACTOR = "run_approved_actor"
    RUN_INVALIDATED_ACTOR = "run_invalidated_actor"
    RUN_NEW_ARTIFACTS = "run_new_artifacts"
    CONNECTION_GIT_COMMIT = "connection_git_commit"
    CONNECTION_DATASET_VERSION = "connection_dataset_version"
    CONNECTION_REGISTRY_IMAGE = "connection_registry_image"
    ALERT_INFO = "alert_info"
    ALERT_WARNING = "alert_warning"
    ALERT_CRITICAL = "alert_critical"
    MODEL_VERSION_NEW_METRIC = "model_version_new_metric"
    PROJECT_CUSTOM_EVENT = "project_custom_event"
    ORG_CUSTOM_EVENT = "org_custom_event"

    @property
    def status(self) -> Status | None:
        """The status this event reports, for ``run_status_*`` kinds."""
        if is_status_event(self.value):
            return Status(status_of_event(self.value))
        return None


class TriggerPolicy(StrEnum):
    ALL_SUCCEEDED = "all_succeeded"
    ALL_FAILED = "all_failed"
    ALL_DONE = "all_done"
    ONE_SUCCEEDED = "one_succeeded"
    ONE_FAILED = "one_failed"
    ONE_DONE = "one_done"


class HookTrigger(StrEnum):
    """The statuses a hook may wait for; ``done`` means any final status."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"
    SKIPPED = "skipped"
    UPSTREAM_FAILED = "upstream_failed"
    DONE = "done"


class PatchStrategy(StrEnum):
    REPLACE = "replace"
    ISNULL = "isnull"
    POST_MERGE = "post_merge"
    PRE_MERGE = "pre_merge"


# ----------------------------------------------------------------------------------- io and params


class IO(Model):
    """A declared input or output of a component."""

    name: str
    description: str | None = None
    type: str | None = None
    is_optional: bool | None = None
    is_list: bool | None = None
    is_flag: bool | None = None
    arg_format: str | None = None
    connection: str | None = None
    to_init: bool | None = None
    to_env: str | None = None
    # `options` is declared before `value` so the value's validator can see it (fields validate in order).
    options: list[Any] | None = None
    value: Any = None
    validation: dict[str, Any] | None = None
    delay_validation: bool | None = None

    _check_name = field_validator("name")(_check_name)

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str | None) -> str | None:
        if value is not None and not iotypes.is_known_type(value):
            known = ", ".join(sorted(iotypes.KNOWN_TYPES))
            raise ValueError(f"`{value}` is not an IO type; expected one of {known}, or List[...]/Dict[...]")
        return value

    @field_validator("value")
    @classmethod
    def _value_matches_type(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None or (isinstance(value, str) and "{{" in value):
            return value
        name = info.data.get("name", "?")
        try:
            value = iotypes.check_value(info.data.get("type"), value, is_list=bool(info.data.get("is_list")))
            iotypes.require_finite(value)
        except ValueError as exc:
            raise ValueError(f"value of `{name}`: {exc}") from None
        options = info.data.get("options")
        if options is not None and value not in options:
            raise ValueError(f"value {value!r} of `{name}` is not one of the options {options}")
        return value

    @model_validator(mode="after")
    def _optional_if_defaulted(self) -> IO:
        # As Polyaxon: a default value with `isOptional` written false (or null) says two things at once.
        if "is_optional" in self.model_fields_set and not self.is_optional and self.value is not None:
            written = "false" if self.is_optional is False else "null"
            raise ValueError(f"`{self.name}` has a default value ({self.value!r}) but `isOptional: {written}`: make it "
                             "optional (`isOptional: true`, or leave the key out) or remove the value")  # fmt: skip
        return self

    @property
    def required(self) -> bool:
        return not self.is_optional and self.value is None


_PARAM_KEYS = frozenset({"value", "ref", "contextOnly", "context_only", "connection", "toInit", "to_init",
                         "toEnv", "to_env"})  # fmt: skip


class Param(Model):
    """A param of an operation: a literal ``value``, or a ``value`` read from the run named by ``ref``."""

    ref: str | None = None
    value: Any = Field(default=None, validate_default=True)  # validated when absent too: a ref needs one
    context_only: bool | None = None
    connection: str | None = None
    to_init: bool | None = None
    to_env: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        # `lr: 0.1` and `cfg: {a: 1}` are both the short form of `{value: ...}`.
        if isinstance(data, dict) and not _PARAM_KEYS.isdisjoint(data):
            return data
        return {"value": data}

    @field_validator("ref")
    @classmethod
    def _valid_ref(cls, value: str | None) -> str | None:
        if value is not None:
            parse_ref_cached(value)
        return value

    @field_validator("value")
    @classmethod
    def _valid_value_for_ref(cls, value: Any, info: ValidationInfo) -> Any:
        ref = info.data.get("ref")
        if ref is None:
            return value
        if not isinstance(value, str):
            raise ValueError(f"a param with `ref: {ref}` needs a string `value` such as outputs.loss or globals.uuid")
        parse_value_path(value, parse_ref_cached(ref))
        return value

    @property
    def parsed_ref(self) -> Ref | None:
        return parse_ref_cached(self.ref) if self.ref is not None else None

    @property
    def value_path(self) -> ValuePath | None:
        ref = self.parsed_ref
        return parse_value_path(str(self.value), ref) if ref is not None else None


# --------------------------------------------------------------------------------- events and hooks


class EventTrigger(Model):
    """Start the op when the referenced run emits one of ``kinds`` (kinds are alternatives)."""

    kinds: list[EventKind] = Field(min_length=1)
    ref: str

    @field_validator("ref")
    @classmethod
    def _valid_ref(cls, value: str) -> str:
        if value.startswith(CONNECTION_REF_PREFIX):
            name = value.removeprefix(CONNECTION_REF_PREFIX)
            if not NAME_PATTERN.match(name):
                raise ValueError(f"`{value}` is not a valid ref: expected `connections.<connection-name>`")
            return value
        parse_ref_cached(value)
        return value

    @model_validator(mode="after")
    def _kinds_match_the_ref(self) -> EventTrigger:
        # ``ref: dag`` awaits what a notebook cell or a terminal emits to the running DAG (polynb.emit);
        # ``connections.NAME`` what a watched connection produces (a commit, a file, an image tag); every
        # other kind comes from a run, so it names one.
        # Which kinds fit a run or a connection ref is checked by the compiler ("not supported"), as Polyaxon
        # accepts any pairing in a valid file.
        if self.connection is not None:
            return self
        if parse_ref_cached(self.ref).kind == "dag":
            others = [k.value for k in self.kinds if k.value not in CUSTOM_EVENT_KINDS]
            if others:
                raise ValueError(
                    "an event ref names a run: `ops.<op-name>` or `runs.<uuid>`; `dag` is only for "
                    f"project_custom_event / org_custom_event, not {', '.join(others)}"
                )
        return self

    @property
    def connection(self) -> str | None:
        """The connection's name for ``ref: connections.NAME``; None for a run ref."""
        if self.ref.startswith(CONNECTION_REF_PREFIX):
            return self.ref.removeprefix(CONNECTION_REF_PREFIX)
        return None

    @property
    def parsed_ref(self) -> Ref:
        """The run ref (``ops.X``, ``runs.UUID``, ``dag``); a ``connections.NAME`` ref raises ValueError."""
        return parse_ref_cached(self.ref)


class Hook(Model):
    """A post-done operation: runs after the main op reaches a final status matching ``trigger``."""

    hub_ref: str
    connection: str | None = None
    trigger: HookTrigger | None = None
    conditions: str | None = None
    presets: list[str] | None = None
    queue: str | None = None
    namespace: str | None = None
    params: dict[str, Param] | None = None
    disable_defaults: bool | None = None

    _split_presets = field_validator("presets", mode="before")(_split_csv)


# ---------------------------------------------------------------------------------- small sections


class Build(Model):
    """Build an image before the run (Polyaxon's ``V1Build``, a hub component such as kaniko)."""

    hub_ref: str
    connection: str | None = None
    presets: list[str] | None = None
    queue: str | None = None
    namespace: str | None = None
    cache: Cache | None = None
    params: dict[str, Param] | None = None
    run_patch: dict[str, Any] | None = None
    patch_strategy: PatchStrategy | None = None


def _or_template(adapter: TypeAdapter[Any]) -> Any:
    """A field validator: a ``{{ ... }}`` template of the op's params (Polyaxon's ``...OrRef`` fields), kept as
    written and rendered when the op compiles (``compiler.compile``), where what it gives is checked; any other
    value is read by ``adapter`` as the field always read it, with the same errors (``expected an integer``)."""

    def validate(value: Any) -> Any:
        if value is None or is_ref_field(value):
            return value
        return adapter.validate_python(value)  # its errors are this field's: pydantic prefixes the location

    return validate


_COUNT: TypeAdapter[int] = TypeAdapter(Annotated[int, Field(ge=0)], config=DEFERRED)
_PORTS: TypeAdapter[list[int]] = TypeAdapter(list[int], config=DEFERRED)
_FLAG: TypeAdapter[bool] = TypeAdapter(bool, config=DEFERRED)
_COST: TypeAdapter[float] = TypeAdapter(float, config=DEFERRED)


class Culling(Model):
    """Stop a service once idle for ``timeout`` seconds (Polyaxon's ``V1Culling``); read, not applied (a warning)."""

    timeout: int | None = None


class HttpActivity(Model):
    """Kubernetes' ``HTTPGetAction``, as Polyaxon's activity probe reads it: ``port`` is required."""

    port: int | str
    path: str | None = None
    host: str | None = None
    scheme: str | None = None
    http_headers: list[dict[str, Any]] | None = None


class ExecActivity(Model):
    """Kubernetes' ``ExecAction``."""

    command: list[str] | str | None = None


class ActivityProbe(Model):
    """What tells culling a service is idle (Polyaxon's ``V1ActivityProbe``): a command or an HTTP request."""

    exec_: ExecActivity | None = Field(default=None, alias="exec")
    http: HttpActivity | None = None


class PodFailurePolicy(Model):
    """A batch/v1 Job's ``podFailurePolicy``: its ``rules`` are required, and read as Kubernetes' client reads
    them (as given); not applied (a warning)."""

    rules: list[dict[str, Any]]


class Termination(TemplatedSection):
    max_retries: int | str | None = None
    ttl: int | str | None = None
    timeout: int | str | None = None
    culling: Culling | None = None
    probe: ActivityProbe | None = None
    pod_failure_policy: PodFailurePolicy | None = None

    _numbers = field_validator("max_retries", "ttl", "timeout", mode="before")(_or_template(_COUNT))


# -------------------------------------------------------------------------------------- run kinds


class Job(Model):
    kind: Literal["job"] = "job"
    environment: Environment | None = None
    connections: list[str] | None = None
    volumes: list[dict[str, Any]] | None = None
    init: list[Init] | None = None
    sidecars: list[Container] | None = None
    container: Container | None = None
    """Required by the time the job runs: written here, or given by an operation's ``runPatch`` or a preset
    (``check`` says when an op's job has none)."""

    _volumes = field_validator("volumes")(check_volume)


class Notifier(Job):
    kind: Literal["notifier"] = "notifier"  # type: ignore[assignment]


class Cleaner(Job):
    kind: Literal["cleaner"] = "cleaner"  # type: ignore[assignment]


class Tuner(Job):
    kind: Literal["tuner"] = "tuner"  # type: ignore[assignment]


class Service(Job):
    kind: Literal["service"] = "service"  # type: ignore[assignment]
    ports: list[int] | str | None = None
    rewrite_path: bool | str | None = None
    is_external: bool | str | None = None
    replicas: int | str | None = None

    _ports = field_validator("ports", mode="before")(_or_template(_PORTS))
    _flags = field_validator("rewrite_path", "is_external", mode="before")(_or_template(_FLAG))
    _replicas = field_validator("replicas", mode="before")(_or_template(_COUNT))


class Dag(Model):
    kind: Literal["dag"] = "dag"
    operations: list[Operation] = Field(min_length=1)
    components: list[Component] | None = None
    environment: Environment | None = None
    connections: list[str] | None = None
    volumes: list[dict[str, Any]] | None = None
    concurrency: PositiveInt | None = None
    early_stopping: Annotated[list[EarlyStopping] | None, on_first_use(list[EarlyStopping] | None)] = None

    _volumes = field_validator("volumes")(check_volume)

    @field_validator("operations", mode="before")
    @classmethod
    def _not_too_many(cls, value: Any) -> Any:
        # Before the ops are validated: a million ops would cost gigabytes to refuse afterwards.
        if isinstance(value, list):
            MAX_OPS.check(len(value), "the DAG has")
        return value


Run = Annotated[
    Job | Service | Dag | Notifier | Cleaner | Tuner | TFJob | PytorchJob | MPIJob | DaskCluster | RayCluster,
    Field(discriminator="kind"),
]
RUN_KINDS = ("job", "service", "dag", "notifier", "cleaner", "tuner", "mpijob", "tfjob", "pytorchjob",
             "daskcluster", "raycluster")  # fmt: skip


# ------------------------------------------------------------------------------ the Polyaxonfile


_SHORTCUTS = ("ports", "container", "cmd", "env", "resources", "environment", "init", "connections", "sidecars",
              "volumes")  # fmt: skip
_REFS = ("hub_ref", "dag_ref", "url_ref", "path_ref", "component")
_ALIAS = {name: to_camel(name) for name in (*_SHORTCUTS, *_REFS)}


_NOT_WHOLE_TEMPLATES = {
    "hooks": ("hooks", "Polyaxon 2.18 takes it but never renders it (the compiled op keeps the template), so no hook "
              "would run; write the list of hooks (their params may be templates)"),
    "events": ("events", "the events an op awaits are known before its params are (Polyaxon 2.18 refuses it in a "
               "DAG, and drops it from a single op when it compiles); write the list of event triggers"),
    "dependencies": ("dependencies", "the DAG's edges are known before any op's params are (Polyaxon 2.18 refuses "
                     "it in a DAG too); write the list of op names"),
    "trigger": ("trigger", "the trigger policy decides when the op starts, before its params are rendered; write "
                "one of all_succeeded, all_failed, all_done, one_succeeded, one_failed, one_done"),
    "is_approved": ("isApproved", "polynb decides whether an op waits for an approval when the op is created, "
                    "before its params are rendered (Polyaxon 2.18 renders it when the op compiles); write true "
                    "or false"),
}  # fmt: skip
"""Fields Polyaxon's schema takes written as one ``{{ ... }}`` template that polynb refuses, with the reason."""


class Polyaxonfile(Model):
    """The fields shared by components and operations (one field set in Polyaxon 2.18)."""

    version: float | str | None = None
    kind: str | None = None
    name: str | None = None
    description: str | None = None
    tags: list[str] | None = None
    presets: list[str] | None = None
    strict_params: bool | None = None
    queue: str | None = None
    namespace: str | None = None
    cache: Cache | None = None
    termination: Termination | None = None
    plugins: Annotated[Plugins | None, on_first_use(Plugins | None)] = None
    build: Annotated[Build | None, on_first_use(Build | None)] = None
    hooks: Annotated[list[Hook] | None, on_first_use(list[Hook] | None)] = None
    is_approved: bool | None = None
    cost: float | str | None = None
    """Not used by polynb; a ``{{ ... }}`` template of the op's params is taken, as Polyaxon's ``FloatOrRef``."""
    mount: list[Any] | None = None
    schedule: Annotated[Schedule | None, on_first_use(Schedule | None)] = None
    events: Annotated[list[EventTrigger] | None, on_first_use(list[EventTrigger] | None)] = None
    matrix: Annotated[Matrix | None, on_first_use(Matrix | None)] = None
    joins: Annotated[list[Join] | None, on_first_use(list[Join] | None)] = None
    dependencies: list[str] | None = None
    trigger: TriggerPolicy | None = None
    conditions: str | None = None
    skip_on_upstream_skip: bool | None = None
    inputs: list[IO] | None = None
    outputs: list[IO] | None = None
    run: Run | None = None
    # Polyaxon 2.18 "shortcuts": run fields written at the top level, lowered into `run`.
    ports: list[int] | None = None
    container: Container | None = None
    cmd: str | list[str] | None = None
    env: dict[str, str] | None = None
    resources: dict[str, Any] | None = None
    environment: Environment | None = None
    init: list[Init] | None = None
    connections: list[str] | None = None
    sidecars: list[Container] | None = None
    volumes: list[dict[str, Any]] | None = None
    template: dict[str, Any] | None = None
    params: dict[str, Param] | None = None
    hub_ref: str | None = None
    dag_ref: str | None = None
    url_ref: str | None = None
    path_ref: str | None = None
    component: Component | None = None
    patch_strategy: PatchStrategy | None = None
    is_preset: bool | None = None
    run_patch: dict[str, Any] | None = None

    _lowered: bool = PrivateAttr(default=False)

    _check_name = field_validator("name")(_check_name)
    _split_tags = field_validator("tags", "presets", mode="before")(_split_csv)
    _cost = field_validator("cost", mode="before")(_or_template(_COST))
    _cmd = field_validator("cmd", mode="before")(shortcuts.check_cmd)
    _env = field_validator("env", mode="before")(shortcuts.check_env)
    _resources = field_validator("resources", mode="before")(shortcuts.check_resources)
    _volumes = field_validator("volumes")(check_volume)

    @field_validator(*_NOT_WHOLE_TEMPLATES, mode="before")
    @classmethod
    def _not_one_template(cls, value: Any, info: ValidationInfo) -> Any:
        # Polyaxon 2.18's schema takes these written whole as one template too (RefField); say why polynb does not,
        # rather than "expected a list". (``termination``, ``cache`` and ``plugins`` may be: ``TemplatedSection``.)
        if is_ref_field(value):
            key, reason = _NOT_WHOLE_TEMPLATES[str(info.field_name)]
            raise ValueError(f"`{key}` written as one template is not supported: {reason}")
        return value

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> Any:
        if value is not None and str(value) not in {"1.1", "1.0", "1", "1.10"}:
            raise ValueError(f"unsupported Polyaxonfile version {value!r}; polynb reads version 1.1")
        return value

    @field_validator("inputs", "outputs")
    @classmethod
    def _unique_io_names(cls, value: list[IO] | None, info: ValidationInfo) -> list[IO] | None:
        seen: set[str] = set()
        for index, io in enumerate(value or ()):
            if io.name in seen:
                # Point at the second declaration itself, not at the whole list.
                raise _nested_error((index, "name"), f"{info.field_name} declares `{io.name}` twice", io.name)
            seen.add(io.name)
        return value

    @field_validator("dependencies")
    @classmethod
    def _dependency_names(cls, value: list[str] | None) -> list[str] | None:
        for name in value or ():
            _check_name(name)
        return value

    @model_validator(mode="after")
    def _refs_and_shortcuts(self) -> Polyaxonfile:
        # Runs once per op of a DAG (100,000 in the benchmark): keep it to attribute reads.
        fields_set = self.model_fields_set
        given = [name for name in _REFS if name in fields_set and getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(
                "an operation takes at most one of hubRef, dagRef, urlRef, pathRef, component; got "
                + ", ".join(_ALIAS[n] for n in given)
            )
        if given and self.run is not None:
            raise ValueError(f"`run` cannot be combined with `{_ALIAS[given[0]]}`")
        if not fields_set.isdisjoint(_SHORTCUTS):
            self._lower_shortcuts()
        return self

    def _lower_shortcuts(self) -> None:
        # Pydantic runs after-validators of recursive models (DAG ops) twice on the same instance: lower once.
        if self._lowered:
            return
        self._lowered = True
        used = [name for name in _SHORTCUTS if getattr(self, name) is not None]
        if not used:
            return
        if self.run is None:
            if self.container is None and self.cmd is None:
                return  # reported by the component check ("missing run")
            kind = "service" if self.ports is not None else "job"
            data: dict[str, Any] = {"kind": kind, "container": self.container or Container()}
            self.run = (Service if kind == "service" else Job).model_validate(data)
        run = self.run
        if isinstance(run, Dag | DistributedRun):
            raise ValueError(
                f"{', '.join(_ALIAS[u] for u in used)} cannot be set at the top level of a "
                f"`{run.kind}`; put them in the ops' components"
            )
        container = run.container or Container()
        if self.container is not None and self.container is not container:
            container = self.container
        updates: dict[str, Any] = {}
        if self.cmd is not None:
            updates.update(shortcuts.cmd_container(self.cmd))
        if self.env is not None:
            entries = shortcuts.env_entries(list(container.env or []), self.env)
            updates["env"] = [EnvVar.model_validate(e) if isinstance(e, dict) else e for e in entries]
        if self.resources is not None:
            current = container.resources.model_dump(exclude_none=True) if container.resources else {}
            lowered = shortcuts.lower_resources(self.resources)
            merged = {side: {**current.get(side, {}), **lowered.get(side, {})} for side in ("requests", "limits")}
            updates["resources"] = Resources.model_validate({k: v for k, v in merged.items() if v})
        if updates:
            container = container.model_copy(update=updates)
        run_updates: dict[str, Any] = {"container": container}
        for name in ("environment", "init", "connections", "sidecars", "volumes"):
            if getattr(self, name) is not None:
                run_updates[name] = getattr(self, name)
        if self.ports is not None:
            if not isinstance(run, Service):
                raise ValueError("`ports` at the top level needs a service run")
            run_updates["ports"] = self.ports
        self.run = run.model_copy(update=run_updates)

    # ---- convenience used by the compiler and the scheduler

    @property
    def reference(self) -> tuple[str, Any] | None:
        """The one reference of an operation, as (alias, value), or None for an inline run."""
        for name in _REFS:
            value = getattr(self, name)
            if value is not None:
                return _ALIAS[name], value
        return None

    def input(self, name: str) -> IO | None:
        return next((io for io in self.inputs or () if io.name == name), None)

    def output(self, name: str) -> IO | None:
        return next((io for io in self.outputs or () if io.name == name), None)


class Component(Polyaxonfile):
    """``kind: component``: inputs, outputs and a run."""

    kind: Literal["component"] | None = "component"

    @model_validator(mode="after")
    def _needs_run(self) -> Component:
        if self.run is None and self.reference is None:
            raise ValueError("a component needs a `run` section (job, service or dag)")
        # A DAG's component may alias another one of the same DAG by `dagRef` (Polyaxon 2.18 resolves the chain
        # and reports reference cycles); the other references are for operations.
        if self.reference is not None and self.reference[0] != "dagRef":
            raise ValueError(f"a component cannot use `{self.reference[0]}`; that is for operations")
        if self.params is not None:
            raise ValueError("`params` belong to an operation; a component declares `inputs`")
        return self


class Operation(Polyaxonfile):
    """``kind: operation``: params bound to a component given by reference, inline ``component`` or ``run``."""

    kind: Literal["operation"] | None = "operation"

    @model_validator(mode="after")
    def _needs_component(self) -> Operation:
        if self.reference is None and self.run is None:
            raise ValueError("an operation needs one of hubRef, dagRef, pathRef, urlRef, component or run")
        return self


PolyaxonfileKind = Literal["component", "operation"]


def parse_polyaxonfile(data: dict[str, Any]) -> Component | Operation:
    """Validate a top-level document; ``kind`` picks the model (a kindless file with a ref is an operation)."""
    kind = data.get("kind")
    if kind == "component":
        return Component.model_validate(data)
    if kind == "operation":
        return Operation.model_validate(data)
    if kind is None:
        if any(key in data for key in ("hubRef", "dagRef", "urlRef", "pathRef", "component", "params")):
            return Operation.model_validate(data)
        return Component.model_validate(data)
    # Let pydantic report the bad kind with the expected values.
    return Component.model_validate(data)
