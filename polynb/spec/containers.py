"""Kubernetes-shaped parts of a run: containers, environment, volumes, init entries.

Shared by the run kinds (``models``) and the replicas of the distributed kinds (``distributed``).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator
from pydantic.alias_generators import to_camel

from polynb.spec.base import SharedModel, int_or_template, is_ref_field

# ------------------------------------------------------------------------- containers (k8s shapes)


class EnvVar(SharedModel):
    name: str
    value: str | None = None
    value_from: dict[str, Any] | None = None

    @field_validator("value", mode="before")
    @classmethod
    def _scalar_to_str(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


class ContainerPort(SharedModel):
    container_port: int
    name: str | None = None
    protocol: str | None = None
    host_port: int | None = None
    host_ip: str | None = Field(default=None, alias="hostIP")


class Resources(SharedModel):
    limits: dict[str, str | int | float] | None = None
    requests: dict[str, str | int | float] | None = None
    claims: list[dict[str, Any]] | None = None


class VolumeMount(SharedModel):
    name: str
    mount_path: str
    read_only: bool | None = None
    sub_path: str | None = None
    sub_path_expr: str | None = None
    mount_propagation: str | None = None
    recursive_read_only: str | None = None


def argv(value: Any) -> Any:
    """Commands are argument lists; numbers in them are written as strings.

    A string is ONE argument, as Polyaxon hands it to Kubernetes (``to_list("python train.py")`` is
    ``["python train.py"]``): ``args: "python train.py --lr 0.1"`` after ``command: [sh, -c]`` is the usual
    idiom. It is never split; ``polynb check`` warns where a string is unlikely to mean one argument.
    """
    if isinstance(value, list):
        return [str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v for v in value]
    if isinstance(value, str):
        return [value]
    return value


class Container(SharedModel):
    """A Kubernetes container as Polyaxon takes it (``image`` is ignored by the local executor)."""

    name: str | None = None
    image: str | None = None
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    working_dir: str | None = None
    ports: list[ContainerPort] | None = None
    env: list[EnvVar] | None = None
    env_from: list[dict[str, Any]] | None = None
    resources: Resources | None = None
    volume_mounts: list[VolumeMount] | None = None
    volume_devices: list[dict[str, Any]] | None = None
    liveness_probe: dict[str, Any] | None = None
    readiness_probe: dict[str, Any] | None = None
    startup_probe: dict[str, Any] | None = None
    lifecycle: dict[str, Any] | None = None
    security_context: dict[str, Any] | None = None
    stdin: bool | None = None
    stdin_once: bool | None = None
    tty: bool | None = None
    termination_message_path: str | None = None
    termination_message_policy: str | None = None
    resize_policy: list[dict[str, Any]] | None = None
    restart_policy: str | None = None

    _argv_command = field_validator("command", "args", mode="before")(argv)
    _strings: frozenset[str] = PrivateAttr(default=frozenset())

    @model_validator(mode="wrap")
    @classmethod
    def _remember_strings(cls, data: Any, handler: Any) -> Any:
        # Which of command/args were written as one string: `check` explains that a string is one argument.
        strings = frozenset(
            key for key in ("command", "args") if isinstance(data, dict) and isinstance(data.get(key), str)
        )
        container = handler(data)
        if strings and isinstance(container, Container):
            container._strings = strings
        return container

    @property
    def written_as_string(self) -> frozenset[str]:
        """``command``/``args`` written as a single string (one argv element)."""
        return self._strings


class Environment(SharedModel):
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    node_selector: dict[str, str] | None = None
    affinity: dict[str, Any] | None = None
    tolerations: list[dict[str, Any]] | None = None
    node_name: str | None = None
    service_account_name: str | None = None
    host_aliases: list[dict[str, Any]] | None = None
    security_context: dict[str, Any] | None = None
    image_pull_secrets: list[str] | None = None
    host_network: bool | None = None
    host_pid: bool | None = Field(default=None, alias="hostPID")
    dns_policy: str | None = None
    dns_config: dict[str, Any] | None = None
    scheduler_name: str | None = None
    priority_class_name: str | None = None
    priority: int | None = None
    restart_policy: str | None = None


class GitType(SharedModel):
    url: str | None = None
    revision: str | None = None
    flags: list[str] | str | None = None

    _flags = field_validator("flags", mode="before")(lambda v: _ref_or_list(v))


class ArtifactsType(SharedModel):
    # A list, or one template that renders to one (``dirs: '{{ uuids | map("map_format", "%s/outputs") | list }}'``,
    # as Polyaxon's hub tensorboard writes it): rendered when the op compiles.
    files: list[str | list[str]] | str | None = None
    dirs: list[str | list[str]] | str | None = None
    workers: int | str | None = None

    _lists = field_validator("files", "dirs", mode="before")(lambda v: _ref_or_list(v))
    _workers = field_validator("workers", mode="before")(
        lambda v: None if v is None else int_or_template(v, "`workers`")
    )


class FileType(SharedModel):
    content: str
    filename: str | None = None
    kind: str | None = None
    chmod: str | None = None

    @field_validator("chmod", mode="before")
    @classmethod
    def _chmod_str(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class TensorboardType(SharedModel):
    port: int | str | None = None
    uuids: list[str] | str | None = None
    use_names: bool | str | None = None
    path_prefix: str | None = None
    plugins: list[str] | str | None = None


_IMAGE = re.compile(r"^[^\s:/@]+(?::\d+)?(?:/[^\s:/@]+)*(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$")


def _ref_or_list(value: Any) -> Any:
    if isinstance(value, str) and not is_ref_field(value):
        raise ValueError(f"expected a list, or a `{{{{ ... }}}}` reference, got {value!r}")
    return value


class DockerfileType(SharedModel):
    """A Dockerfile init writes (Polyaxon's ``V1DockerfileType``): ``FROM image``, then env, path, copy, run."""

    image: str
    env: dict[str, Any] | list[list[str]] | str | None = None
    path: list[str] | str | None = None
    copy_: list[str | list[str]] | str | None = Field(default=None, alias="copy")
    post_run_copy: list[str | list[str]] | str | None = None
    run: list[str] | str | None = None
    lang_env: str | None = None
    uid: int | str | None = None
    gid: int | str | None = None
    username: str | None = None
    filename: str | None = None
    workdir: str | None = None
    workdir_path: str | None = None
    shell: str | None = None

    _lists = field_validator("env", "path", "copy_", "post_run_copy", "run", mode="before")(_ref_or_list)

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        # Polyaxon's validate_image: an image reference, no spaces (a template is resolved later).
        if not is_ref_field(value) and not _IMAGE.match(value):
            raise ValueError(f"`{value}` is not a container image reference such as python:3.11 or ghcr.io/org/img:tag")
        return value

    @field_validator("uid", "gid", mode="before")
    @classmethod
    def _id(cls, value: Any) -> Any:
        if value is None or is_ref_field(value) or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        raise ValueError(f"expected a numeric user or group id, got {value!r}")


INIT_SCHEMAS = ("artifacts", "paths", "git", "dockerfile", "file", "tensorboard", "lineage_ref", "model_ref",
                 "artifact_ref")  # fmt: skip


class Init(SharedModel):
    """One init entry; at most one of its kinds, optionally with a custom ``container``."""

    artifacts: ArtifactsType | None = None
    paths: list[str | list[str]] | str | None = None
    git: GitType | None = None
    dockerfile: DockerfileType | None = None
    file: FileType | None = None
    tensorboard: TensorboardType | None = None
    lineage_ref: str | None = None
    model_ref: str | None = None
    artifact_ref: str | None = None
    connection: str | None = None
    path: str | None = None
    container: Container | None = None

    _paths = field_validator("paths", mode="before")(lambda v: _ref_or_list(v))

    @model_validator(mode="after")
    def _one_kind(self) -> Init:
        given = [name for name in INIT_SCHEMAS if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(f"an init entry takes one kind, got {', '.join(given)}")
        if self.git is not None and self.git.url is None and self.connection is None:
            raise ValueError("a git init needs a `url` (or a `connection`)")
        if not given and self.container is None and self.connection is None:
            raise ValueError(
                "an init entry needs one of " + ", ".join(to_camel(n) for n in INIT_SCHEMAS) + " or a container"
            )
        return self

    @property
    def kind(self) -> str:
        for name in INIT_SCHEMAS:
            if getattr(self, name) is not None:
                return name
        return "container"


def check_volume(value: Any) -> Any:
    if isinstance(value, list):
        for item in value:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise ValueError("each volume is a Kubernetes volume mapping with a `name`")
    return value
