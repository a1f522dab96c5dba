"""What the compiler hands to an executor: an op with every template rendered and every value bound.

These are plain frozen dataclasses that round-trip through JSON, so the store can keep the exact thing that
was submitted and a restarted engine (or another executor) can act on it without recompiling.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Literal

OpKind = Literal["job", "service"]
InitKind = Literal["git", "artifacts", "paths", "file", "tensorboard", "container"]


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """One process to run. ``argv`` is ``command + args``: an argument list, never a shell string."""

    name: str
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    working_dir: str | None = None
    image: str | None = None
    k8s: dict[str, Any] = field(default_factory=dict)
    """Optional: extra Kubernetes container fields under their API names (``resources``,
    ``imagePullPolicy``, ``volumeMounts``, ``ports``, ``securityContext``, ...), used by the kubernetes
    executor only and ignored by the local one."""

    @property
    def argv(self) -> tuple[str, ...]:
        return self.command + self.args

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ContainerSpec:
        return cls(
            name=data["name"],
            command=tuple(data.get("command", ())),
            args=tuple(data.get("args", ())),
            env=tuple((str(k), str(v)) for k, v in data.get("env", ())),
            working_dir=data.get("working_dir"),
            image=data.get("image"),
            k8s=dict(data.get("k8s") or {}),
        )


@dataclass(frozen=True, slots=True)
class InitStep:
    """One init entry, run in order before the main container.

    ``spec`` holds the rendered fields of the entry's kind (``git``: url/revision/flags; ``artifacts``:
    files/dirs; ``paths``: a list of paths; ``file``: content/filename/chmod; ``tensorboard``: uuids/
    useNames/plugins). ``path`` is where the entry puts its result (relative to the run's artifacts folder
    unless absolute); ``container`` is set for ``container`` entries.
    """

    kind: InitKind
    spec: dict[str, Any] = field(default_factory=dict)
    path: str | None = None
    container: ContainerSpec | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InitStep:
        container = data.get("container")
        return cls(
            kind=data["kind"],
            spec=dict(data.get("spec") or {}),
            path=data.get("path"),
            container=ContainerSpec.from_dict(container) if container else None,
        )


@dataclass(frozen=True, slots=True)
class TerminationSpec:
    max_retries: int = 0
    timeout: float | None = None
    ttl: float | None = None


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an op runs, decided by the executor before templates are rendered (they may use it)."""

    artifacts_path: str
    run_artifacts_path: str
    run_outputs_path: str
    ports: tuple[int, ...] = ()
    base_url: str | None = None
    host: str = "127.0.0.1"


_FIELDS: dict[type, tuple[str, ...]] = {}


def _plain(value: Any) -> Any:
    """``dataclasses.asdict`` without its deep copy of every leaf (the engine converts one op per run):
    the containers are new, the leaves (str, numbers, None) shared."""
    cls = type(value)
    if cls in (str, int, float, bool) or value is None:
        return value
    names = _FIELDS.get(cls)
    if names is None and is_dataclass(cls):
        names = _FIELDS[cls] = tuple(f.name for f in fields(cls))
    if names is not None:
        return {name: _plain(getattr(value, name)) for name in names}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class CompiledOp:
    """A run ready to execute: the executor needs nothing else."""

    uuid: str
    name: str
    kind: OpKind
    container: ContainerSpec
    placement: Placement
    init: tuple[InitStep, ...] = ()
    sidecars: tuple[ContainerSpec, ...] = ()
    termination: TerminationSpec = field(default_factory=TerminationSpec)
    inputs: dict[str, Any] = field(default_factory=dict)
    dag_uuid: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    """Optional: the run's ``environment`` under its Polyaxonfile names (``nodeSelector``, ``tolerations``,
    ``serviceAccountName``, ``annotations``, ``affinity``, ``imagePullSecrets``, ...); kubernetes only."""
    volumes: tuple[dict[str, Any], ...] = ()
    """Optional: the run's ``volumes`` as Kubernetes volume objects; kubernetes only."""
    connections: tuple[dict[str, Any], ...] = ()
    """The entries of the config file's ``connections:`` that ``run.connections`` names, as they were when the op
    was compiled (``polynb.connections`` says what each executor makes of them)."""

    def to_dict(self) -> dict[str, Any]:
        plain: dict[str, Any] = _plain(self)
        return plain

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CompiledOp:
        placement = dict(data["placement"])
        placement["ports"] = tuple(placement.get("ports", ()))
        return cls(
            uuid=data["uuid"],
            name=data["name"],
            kind=data["kind"],
            container=ContainerSpec.from_dict(data["container"]),
            placement=Placement(**placement),
            init=tuple(InitStep.from_dict(i) for i in data.get("init", ())),
            sidecars=tuple(ContainerSpec.from_dict(s) for s in data.get("sidecars", ())),
            termination=TerminationSpec(**data.get("termination", {})),
            inputs=dict(data.get("inputs", {})),
            dag_uuid=data.get("dag_uuid"),
            labels=dict(data.get("labels", {})),
            environment=dict(data.get("environment") or {}),
            volumes=tuple(dict(v) for v in data.get("volumes") or ()),
            connections=tuple(dict(c) for c in data.get("connections") or ()),
        )
