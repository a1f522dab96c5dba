"""The executing kubelet's image catalogue: what each image name contains (test-only emulator).

A registry is not reachable from the tests, so an image is a description: whether it has ``python3``, which
Python distributions it can import (taken from the host's environment, with their dependencies), which
commands are on its ``PATH``, and its ``ENTRYPOINT``/``CMD``/``ENV`` as the real image declares them. The
point is to fail as a cluster would: a command or module the image lacks is missing in the container too,
and no image can import polynb (pods must not rely on it being in the image) — but one: ``polynb:<version>``,
the image ``docker/Dockerfile`` builds (polynb and its dependencies on ``python:3.11-slim``, user 1000), which
the artifacts store's sidecars run in (``store_image``).

An unknown name fails the pull (``ErrImagePull`` then ``ImagePullBackOff``), until a test adds it
(``Emulator.add_image``), as a registry where the tag gets pushed later.
"""

from __future__ import annotations

import importlib.metadata
import re
import threading
from dataclasses import dataclass, field

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PYTHON_PATH = "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
"""The official python images put ``/usr/local/bin`` first (their Dockerfile's ``ENV PATH``)."""

SHELL_TOOLS = (
    "sh",
    "bash",
    "cat",
    "echo",
    "ls",
    "mkdir",
    "ln",
    "cp",
    "mv",
    "rm",
    "touch",
    "sleep",
    "env",
    "true",
    "false",
    "test",
    "head",
    "tail",
    "grep",
    "sed",
    "date",
    "id",
    "chmod",
    "wc",
    "tr",
    "sort",
)
"""What a Debian base image offers (coreutils, grep, sed, dash/bash)."""


@dataclass(frozen=True)
class Image:
    """What an image contains; ``commands`` are host commands copied into its ``/usr/bin``."""

    commands: tuple[str, ...] = ()
    python: bool = False
    packages: tuple[str, ...] = ()
    """Distributions importable by its python3 (their requirements come along), e.g. ``("tensorboard",)``."""
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    user: int = 0
    group: int = 0
    """The image's ``USER`` (numeric): who its processes run as unless ``runAsUser`` says otherwise."""
    polynb: bool = False
    """polynb itself is installed (the source tree this test process imports, with its ``.dist-info``);
    ``packages`` then hold its requirements. Only :data:`POLYNB_IMAGE` has it."""


def python_image(version: str, *, packages: tuple[str, ...] = (), cmd: tuple[str, ...] = ("python3",)) -> Image:
    """An official ``python`` image: Debian tools, python3 (the host interpreter) and pip's stdlib only."""
    return Image(
        commands=SHELL_TOOLS,
        python=True,
        packages=packages,
        cmd=cmd,
        env={"PATH": PYTHON_PATH, "LANG": "C.UTF-8", "PYTHON_VERSION": version},
    )


def polynb_requirements() -> tuple[str, ...]:
    """polynb's required distributions (not its extras), as ``pip install polynb`` brings them."""
    try:
        requires = importlib.metadata.distribution("polynb").requires or ()
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - the tests run with polynb installed
        return ()
    names = [re.split(r"[\s;<>=!~\[(]", r, maxsplit=1)[0] for r in requires if "extra ==" not in r]
    return tuple(sorted(set(names)))


def polynb_version() -> str:
    return importlib.metadata.version("polynb")


POLYNB_IMAGE = f"polynb:{polynb_version()}"
"""``docker build -f docker/Dockerfile -t polynb:<version> .``: the store sidecars' default image."""


CATALOGUE: dict[str, Image] = {
    "python:3.11": python_image("3.11.7"),
    "python:3.11-slim": python_image("3.11.7"),
    "python:3.12-slim": python_image("3.12.7"),
    # tensorflow/tensorflow's CPU image: Ubuntu, python3 with TensorFlow, TensorBoard and numpy (TensorFlow
    # itself is not modelled: nothing polynb runs imports it).
    "tensorflow/tensorflow:2.15.0": python_image("3.11.0", packages=("tensorboard", "numpy"), cmd=("bash",)),
    # busybox: a shell and the applets, no python.
    "busybox:1.36": Image(
        commands=(
            "sh",
            "sleep",
            "echo",
            "cat",
            "wget",
            "ln",
            "mkdir",
            "ls",
            "cp",
            "mv",
            "rm",
            "touch",
            "env",
            "true",
            "false",
            "test",
            "head",
            "tail",
            "grep",
            "sed",
            "date",
            "id",
            "chmod",
            "wc",
            "hostname",
        ),
        cmd=("sh",),
        env={"PATH": DEFAULT_PATH},
    ),
    # curlimages/curl's ENTRYPOINT is a script that runs curl with the arguments; modelled as curl itself.
    # It runs as ``curl_user`` (uid 100, gid 101), not root.
    "curlimages/curl:8.10.1": Image(
        commands=("curl", "sh", "cat", "echo", "sleep", "env", "id"),
        entrypoint=("curl",),
        cmd=("--help",),
        env={"PATH": DEFAULT_PATH},
        user=100,
        group=101,
    ),
    # docker/Dockerfile: python:3.11-slim, `pip install polynb-*.whl` (and so its dependencies), USER 1000.
    POLYNB_IMAGE: Image(
        commands=SHELL_TOOLS,
        python=True,
        polynb=True,
        packages=polynb_requirements(),
        cmd=("polynb", "--help"),
        env={
            "PATH": PYTHON_PATH,
            "LANG": "C.UTF-8",
            "PYTHON_VERSION": "3.11.7",
            "PYTHONUNBUFFERED": "1",
            "POLYNB_HOME": "/home/polynb/.polynb",
        },
        workdir="/home/polynb",
        user=1000,
        group=1000,
    ),
    "alpine/git:2.45.2": Image(
        commands=("git", "sh", "cat", "echo", "ls", "mkdir", "env", "rm", "dirname"),  # busybox has them too
        entrypoint=("git",),
        cmd=("--help",),
        env={"PATH": DEFAULT_PATH},
        workdir="/git",
    ),
}


class Images:
    """The registry the kubelet pulls from: the catalogue plus what tests add (thread-safe)."""

    def __init__(self, extra: dict[str, Image] | None = None) -> None:
        self._lock = threading.Lock()
        self._images = {**CATALOGUE, **(extra or {})}

    def add(self, name: str, image: Image) -> None:
        if "polynb" in image.packages or image.polynb:
            raise ValueError("no image may contain polynb: pods must not rely on it")
        with self._lock:
            self._images[name] = image

    def get(self, name: str) -> Image | None:
        with self._lock:
            return self._images.get(_normalize(name))


def reference(name: str) -> str:
    """The fully qualified reference containerd resolves: ``busybox:1.36`` -> ``docker.io/library/busybox:1.36``."""
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        full = name
    elif rest:
        full = f"docker.io/{name}"
    else:
        full = f"docker.io/library/{name}"
    last = full.rsplit("/", 1)[-1]
    return full if ":" in last or "@" in last else f"{full}:latest"


def repository(name: str) -> str:
    """The reference without its tag (what ``imageID`` puts before ``@sha256:``)."""
    full = reference(name).split("@", 1)[0]
    head, _, last = full.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}"


def _normalize(name: str) -> str:
    """``docker.io/library/python:3.11`` and ``python:3.11`` are the same image; no tag means ``latest``."""
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    last = name.rsplit("/", 1)[-1]
    if ":" not in last and "@" not in last:
        name += ":latest"
    return name
