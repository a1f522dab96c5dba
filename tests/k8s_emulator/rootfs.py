"""Root filesystems for the executing kubelet: an image's files, laid out once, and a copy per container.

An image folder holds ``usr/bin`` with copies of the host commands the image has (``bin`` links to it, as
on a merged-/usr distribution), ``/usr/local/bin/python3`` linking to the host's base interpreter when the
image has python, an empty ``site-packages`` that hides the interpreter's own (mounted over it in the
container) with a placeholder for each package the image may import, and ``/etc`` files a container
expects (passwd, hosts, resolv.conf). A container gets a hard-linked copy (its writable layer), into which
the sandbox mounts the host's shared libraries read-only, the interpreter's prefix, the packages and the
pod's volumes.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from .images import Image

LIBRARY_DIRS = ("lib", "lib64", "lib32", "libx32", "usr/lib", "usr/lib64", "usr/libexec", "usr/share")
"""Host folders a dynamically linked host command needs (loader, libraries, git's helpers, CA bundles); no
executables on the image's PATH are in them."""
ETC_SHARED = ("etc/ssl", "etc/ca-certificates", "etc/alternatives")


@dataclass(frozen=True)
class Mount:
    """A bind mount into a container's root: ``target`` is the path the container sees."""

    source: str
    target: str
    readonly: bool = True


def base_prefix() -> Path:
    return Path(sys.base_prefix)


def site_packages_in_prefix() -> str:
    """The interpreter's own site-packages, as a path inside its prefix (mounted over in containers)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return str(base_prefix() / "lib" / version / "site-packages")


def host_python() -> Path:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return (base_prefix() / "bin" / version).resolve()


def _requirement_names(dist: importlib.metadata.Distribution) -> list[str]:
    names = []
    for req in dist.requires or ():
        try:
            from packaging.requirements import Requirement

            parsed = Requirement(req)
            if parsed.marker is not None and not parsed.marker.evaluate({"extra": ""}):
                continue
            names.append(parsed.name)
        except ImportError:  # pragma: no cover - packaging comes with the test environment
            if "extra ==" not in req:
                names.append(re.split(r"[\s;<>=!~\[(]", req, maxsplit=1)[0])
    return names


def package_entries(packages: tuple[str, ...]) -> list[Path]:
    """The host site-packages entries (module folders, modules, ``.dist-info``) of ``packages`` and of
    everything they require, transitively."""
    return list(_package_entries(packages))


@functools.lru_cache(maxsize=32)
def _package_entries(packages: tuple[str, ...]) -> tuple[Path, ...]:
    """:func:`package_entries`, looked up once per image (hundreds of files' metadata for a big image)."""
    entries: dict[str, Path] = {}
    for dist in distributions(packages):
        root = Path(str(dist.locate_file("")))
        for file in dist.files or ():
            top = file.parts[0]
            if top in ("..", "__pycache__") or top.endswith(".pth") or top.startswith("__editable__"):
                continue
            path = root / top
            if path.exists():
                entries[top] = path
    return tuple(entries[k] for k in sorted(entries))


def distributions(packages: tuple[str, ...]) -> list[importlib.metadata.Distribution]:
    """``packages`` and what they require, transitively, as installed on the host."""
    found: list[importlib.metadata.Distribution] = []
    seen: set[str] = set()
    todo = list(packages)
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        seen.add(name)
        if name == "polynb":
            raise ValueError("no image may contain polynb")
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # an optional dependency the host lacks: the image lacks it too
        found.append(dist)
        todo.extend(_requirement_names(dist))
    return found


def polynb_entries() -> list[Path]:
    """polynb's package folder (the one this process imports: the source tree under test) and its
    ``.dist-info``, for an image that has polynb installed."""
    import polynb

    entries = [Path(polynb.__file__).resolve().parent]
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        info = Path(str(importlib.metadata.distribution("polynb").locate_file(""))) / _dist_info_name()
        if info.is_dir():
            entries.append(info)
    return entries


def _dist_info_name() -> str:
    dist = importlib.metadata.distribution("polynb")
    return f"{dist.metadata['Name']}-{dist.version}.dist-info"


def _copy_command(name: str, dest: Path) -> None:
    found = shutil.which(name, path=os.defpath + ":/usr/bin:/bin")
    if found is None:
        raise RuntimeError(f"the image catalogue needs the host command {name!r}, which this machine lacks")
    shutil.copy2(os.path.realpath(found), dest / name)


def build_image(folder: Path, image: Image) -> None:
    """Lay out ``image`` in ``folder`` (once; later containers hard-link it)."""
    if (folder / ".complete").exists():
        return
    if folder.exists():
        shutil.rmtree(folder)
    bin_dir = folder / "usr" / "bin"
    bin_dir.mkdir(parents=True)
    (folder / "usr" / "local" / "bin").mkdir(parents=True)
    for link, to in (("bin", "usr/bin"), ("sbin", "usr/bin")):
        (folder / link).symlink_to(to)
    for command in image.commands:
        _copy_command(command, bin_dir)
    if image.python:
        local = folder / "usr" / "local" / "bin"
        for alias in ("python3", "python", f"python{sys.version_info.major}.{sys.version_info.minor}"):
            (local / alias).symlink_to(host_python())
        site = folder / "site-packages"
        site.mkdir()
        for entry in package_entries(image.packages) + (polynb_entries() if image.polynb else []):
            (site / entry.name).mkdir() if entry.is_dir() else (site / entry.name).touch()
        for dist in distributions(image.packages):  # their commands, as pip installs them
            for ep in dist.entry_points.select(group="console_scripts"):
                module, _, attr = ep.value.partition(":")
                script = local / ep.name
                script.write_text(
                    "#!/usr/local/bin/python3\nimport sys\n"
                    f"from {module} import {attr.split('.')[0]}\n"
                    f"sys.exit({attr}())\n"
                )
                script.chmod(0o755)
    etc = folder / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    resolv = Path("/etc/resolv.conf")
    (etc / "resolv.conf").write_text(resolv.read_text() if resolv.exists() else "")
    for sub in ("tmp", "root", "dev", "proc", "var/tmp", image.workdir.lstrip("/")):
        if sub:
            (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / "tmp").chmod(0o1777)
    for link, to in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1")):
        (folder / "dev" / link).symlink_to(to)
    (folder / "dev" / "stderr").symlink_to("/proc/self/fd/2")
    (folder / ".complete").touch()


def container_root(image_folder: Path, dest: Path) -> None:
    """The container's writable layer: a copy of the image, its commands hard-linked (they are replaced,
    never written in place) and its small config files copied, so a container that appends to
    ``/etc/passwd`` changes its own copy only."""

    def copy(src: str, dst: str) -> object:
        if os.sep + "bin" + os.sep in src:
            os.link(src, dst)
            return dst
        return shutil.copy2(src, dst)

    shutil.copytree(image_folder, dest, symlinks=True, copy_function=copy)
    (dest / ".complete").unlink()


def system_mounts(image: Image) -> list[Mount]:
    """What every container of ``image`` gets from the host, read-only: loader and libraries, CA
    certificates, device nodes, and for python the interpreter's prefix with the image's packages."""
    mounts: list[Mount] = []
    for rel in LIBRARY_DIRS + ETC_SHARED:
        host = Path("/") / rel
        if host.is_dir() and not host.is_symlink():
            mounts.append(Mount(str(host), "/" + rel))
    for dev in ("null", "zero", "urandom", "random", "full"):
        mounts.append(Mount(f"/dev/{dev}", f"/dev/{dev}", readonly=False))
    if image.python:
        prefix = str(base_prefix())
        mounts.append(Mount(prefix, prefix))
        site = site_packages_in_prefix()
        mounts.append(Mount("<image>/site-packages", site))
        for entry in package_entries(image.packages) + (polynb_entries() if image.polynb else []):
            mounts.append(Mount(str(entry), f"{site}/{entry.name}"))
    return mounts


def library_links(dest: Path) -> None:
    """Host top-level links such as ``/lib -> usr/lib`` (merged /usr) reproduced in the container's root."""
    for rel in LIBRARY_DIRS:
        host = Path("/") / rel
        if host.is_symlink() and not (dest / rel).exists():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).symlink_to(os.readlink(host))
