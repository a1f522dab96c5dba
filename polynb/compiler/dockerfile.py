"""The ``dockerfile`` init: the Dockerfile Polyaxon's init writes (``polyaxon docker generate``), as text.

Polyaxon's ``V1DockerfileType`` describes a Dockerfile; its init container renders it into the init's ``path``
(the run's artifacts folder by default) and copies it into the run's outputs. polynb renders the same
instructions, in the same order, at compile time, and the init writes them as a ``file`` entry (twice: at the
init's path and in ``outputs/``), so nothing runs in the op to produce it:

``FROM image``; ``ENV LC_ALL/LANG/LANGUAGE`` (``langEnv``); ``ENV SHELL`` (``shell``, default ``/bin/bash``);
one ``ENV PATH="${PATH}:p"`` per ``path``; one ``ENV K V`` per ``env`` entry (a mapping or ``[K, V]`` pairs);
``WORKDIR`` (``workdir``, default ``/code``); ``COPY`` per ``copy`` entry (a path goes to the workdir, a
``[from, to]`` pair where it says); ``RUN`` per ``run`` command; ``COPY`` per ``postRunCopy`` entry; with both
``uid`` and ``gid``, the ``groupadd``/``useradd`` of a non-root user (``username``, default ``polyaxon``);
``COPY workdirPath workdir``. The file is ``filename`` (default ``Dockerfile``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DEFAULT_FILENAME = "Dockerfile"
DEFAULT_WORKDIR = "/code"
DEFAULT_SHELL = "/bin/bash"
DEFAULT_USERNAME = "polyaxon"
OUTPUTS_DIR = "outputs"
"""The run's outputs folder, relative to its artifacts folder (Polyaxon's layout, the executors' too)."""


class DockerfileError(ValueError):
    """A field the Dockerfile cannot be written from (after rendering templates)."""


def _as_list(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def _env_pairs(value: Any) -> list[tuple[str, str]]:
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [(str(k), str(v)) for k, v in value.items()]
    pairs = []
    for entry in _as_list(value):
        if not isinstance(entry, list | tuple) or len(entry) != 2:
            raise DockerfileError(f"env: {entry!r} is neither a KEY: value mapping entry nor a [KEY, value] pair")
        pairs.append((str(entry[0]), str(entry[1])))
    return pairs


def _copies(value: Any, workdir: str, key: str) -> list[tuple[str, str]]:
    out = []
    for entry in _as_list(value):
        if isinstance(entry, str):
            out.append((entry, workdir))
        elif isinstance(entry, list | tuple) and len(entry) == 2:
            out.append((str(entry[0]), str(entry[1])))
        else:
            raise DockerfileError(f"{key}: {entry!r} is neither a path nor a [from, to] pair")
    return out


def filename_of(fields: Mapping[str, Any]) -> str:
    name = str(fields.get("filename") or DEFAULT_FILENAME)
    if "/" in name or name in (".", ".."):
        raise DockerfileError(f"filename: `{name}` must be a file name, not a path (use the init's `path`)")
    return name


def render_dockerfile(fields: Mapping[str, Any]) -> str:
    """The Dockerfile for the (rendered) fields of a ``dockerfile`` init, Polyaxonfile names."""
    image = fields.get("image")
    if not image:
        raise DockerfileError("image: a Dockerfile needs an image to start FROM")
    workdir = str(fields.get("workdir") or DEFAULT_WORKDIR)
    shell = fields.get("shell", DEFAULT_SHELL)
    sections: list[list[str]] = [[f"FROM {image}"]]
    lang = fields.get("langEnv")
    head: list[str] = [f"ENV {var} {lang}" for var in ("LC_ALL", "LANG", "LANGUAGE")] if lang else []
    if shell:
        head.append(f"ENV SHELL {shell}")
    head += [f'ENV PATH="${{PATH}}:{step}"' for step in _as_list(fields.get("path"))]
    head += [f"ENV {k} {v}" for k, v in _env_pairs(fields.get("env"))]
    sections += [head, [f"WORKDIR {workdir}"]]
    body = [f"COPY {a} {b}" for a, b in _copies(fields.get("copy"), workdir, "copy")]
    body += [f"RUN {command}" for command in _as_list(fields.get("run"))]
    body += [f"COPY {a} {b}" for a, b in _copies(fields.get("postRunCopy"), workdir, "postRunCopy")]
    uid, gid = fields.get("uid"), fields.get("gid")
    if uid and gid:
        user = fields.get("username") or DEFAULT_USERNAME
        body += ["# Drop root: run as a user of its own",
                 f"RUN groupadd -g {gid} -r polyaxon && useradd -r -m -g polyaxon -u {uid} {user}"]  # fmt: skip
    if fields.get("workdirPath"):
        body.append(f"COPY {fields['workdirPath']} {workdir}")
    sections.append(body)
    return "\n\n".join("\n".join(lines) for lines in sections if lines) + "\n"
