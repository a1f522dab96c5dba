"""polynb's own configuration file: ``$POLYNB_CONFIG``, else ``$POLYNB_HOME/config.yaml`` (optional).

Today it has one section, ``kubernetes:``, whose keys are those of
:class:`~polynb.executors.kubernetes.settings.KubernetesSettings`::

    kubernetes:
      namespace: ml
      artifacts_claim: polynb-artifacts   # a ReadWriteMany PVC: TensorBoard sees the experiments' outputs
      security_profile: restricted
      keep_finished: false

and ``connections:``, Polyaxon's connection entries (``name``, ``kind``, ``schema``) that ``polynb watch``
watches for ``{ref: connections.NAME, kinds: [...]}`` events (``polynb.scheduler.sources``)::

    connections:
      - {name: repo, kind: git, schema: {url: /src/project, revision: main}}
      - {name: incoming, kind: host_path, schema: {hostPath: /data/incoming}}
      - {name: images, kind: registry, schema: {url: "http://127.0.0.1:5000", image: team/trainer}, poll: 30}

The kubernetes section sits at the bottom of the settings' precedence (defaults < this file < ``POLYNB_K8S_*`` < the
command line, the magics or ``polynb.run(kubernetes=...)``; :mod:`polynb.executors.kubernetes.sources`).
Every problem is reported as ``file:line:col: path: message``, like a Polyaxonfile's, and nothing runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError

from polynb.spec.errors import SpecError, SpecErrors
from polynb.spec.yaml_loader import Document, parse
from polynb.store.paths import polynb_home

CONFIG_ENV: Final = "POLYNB_CONFIG"
FILENAME: Final = "config.yaml"

Seconds = StrictFloat | StrictInt


class KubernetesSection(BaseModel):
    """The ``kubernetes:`` section; each key is the setting of the same name (unset: not given here)."""

    model_config = ConfigDict(extra="forbid")

    namespace: StrictStr | None = None
    context: StrictStr | None = None
    kubeconfig: StrictStr | None = None
    default_image: StrictStr | None = None
    tools_image: StrictStr | None = None
    git_image: StrictStr | None = None
    artifacts_claim: StrictStr | None = None
    security_profile: Literal["default", "restricted"] | None = None
    keep_finished: StrictBool | None = None
    native_sidecars: StrictBool | None = None
    port_forward: StrictBool | None = None
    service_port_base: StrictInt | None = None
    deadline_slack: StrictInt | None = None
    pod_start_timeout: Seconds | None = None
    failed_create_timeout: Seconds | None = None
    image_pull_grace: Seconds | None = None
    heartbeat_interval: Seconds | None = None
    lease_seconds: Seconds | None = None
    sweep: StrictBool | None = None


class ConnectionSection(BaseModel):
    """One ``connections:`` entry: Polyaxon's ``V1Connection`` keys (``schema`` holds the kind's own keys, as
    Polyaxon's ``schema_``), plus ``poll``: seconds between two looks at a remote source (polynb's own)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: StrictStr
    kind: StrictStr
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    description: StrictStr | None = None
    tags: list[StrictStr] | None = None
    poll: Seconds | None = None


class ConfigModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kubernetes: KubernetesSection | None = None
    connections: list[ConnectionSection] | None = None


@dataclass(frozen=True)
class ConfigFile:
    """A loaded configuration file (or none: ``path`` None and nothing set)."""

    path: str | None = None
    kubernetes: Mapping[str, Any] = field(default_factory=dict)
    """The keys the file sets in its ``kubernetes:`` section (only those)."""
    connections: tuple[Mapping[str, Any], ...] = ()
    """The ``connections:`` entries, as written (``schema`` under that name)."""
    document: Document | None = field(default=None, repr=False)

    def where(self, section: str, key: str) -> str:
        """``file:line:col`` of a key, for messages about its value."""
        if self.document is None or self.path is None:
            return self.path or "<no config file>"
        line, column = self.document.position((section, key))
        return f"{self.path}:{line}:{column}"


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the configuration file is looked for (it need not exist)."""
    env = os.environ if environ is None else environ
    explicit = env.get(CONFIG_ENV, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    home = env.get("POLYNB_HOME", "").strip()
    return (Path(home).expanduser() if home else polynb_home()) / FILENAME


def load_config(environ: Mapping[str, str] | None = None) -> ConfigFile:
    """The configuration file, or an empty :class:`ConfigFile` when there is none.

    ``$POLYNB_CONFIG`` naming a missing file is an error (it was asked for); a missing
    ``$POLYNB_HOME/config.yaml`` is not. Raises ``SpecErrors`` (with positions) for a bad file."""
    env = os.environ if environ is None else environ
    path = config_path(env)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if env.get(CONFIG_ENV, "").strip():
            raise SpecErrors([SpecError(str(path), 0, 0, "(root)", f"no such file (from ${CONFIG_ENV})")]) from None
        return ConfigFile()
    except OSError as exc:
        raise SpecErrors([SpecError(str(path), 0, 0, "(root)", f"cannot read it: {exc.strerror}")]) from None
    return parse_config(raw, str(path))


def parse_config(text: str | bytes, filename: str) -> ConfigFile:
    """A configuration file's text; an empty (or comments-only) file sets nothing."""
    body = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    if not any(line.strip() and not line.lstrip().startswith("#") for line in body.splitlines()):
        return ConfigFile(path=filename)
    document = parse(text, filename)
    try:
        model = ConfigModel.model_validate(document.data)
    except ValidationError as exc:
        errors = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            unexpected = error["type"] == "extra_forbidden"
            message = "unknown key" + _known(loc) if unexpected else error["msg"]
            errors.append(document.error(loc, message, key=unexpected))
        raise SpecErrors(errors) from None
    section = model.kubernetes
    values = {} if section is None else section.model_dump(exclude_unset=True)
    connections = tuple(c.model_dump(by_alias=True, exclude_none=True) for c in model.connections or ())
    return ConfigFile(path=filename, kubernetes=values, connections=connections, document=document)


def _known(loc: tuple[Any, ...]) -> str:
    if len(loc) == 3 and loc[0] == "connections":
        return f"; expected one of: {', '.join(sorted(('name', 'kind', 'schema', 'description', 'tags', 'poll')))}"
    fields = KubernetesSection.model_fields if len(loc) == 2 and loc[0] == "kubernetes" else ConfigModel.model_fields
    return f"; expected one of: {', '.join(sorted(fields))}"
