"""The runtime bundle: the parts of polynb that run *inside* pods, shipped as code so stock images run them.

A pod on a real cluster has no polynb unless its image does; the code polynb's own containers run (the step
runner, ``polynb.tracking``, the webhook and TensorBoard programs of the built-in hub, the example programs)
travels instead as one ConfigMap per namespace, named by the hash of its content (``polynb-runtime-<sha16>``),
``immutable`` (the API server then refuses changes and the kubelet stops watching it), mounted read-only at
:data:`MOUNT_PATH` in every generated container, with :data:`MOUNT_PATH` on ``PYTHONPATH``. Two kernels
of the same polynb share the object; a new polynb version makes a new one.

Every shipped module is standard-library only at import time (``tests/executors/kubernetes/test_bundle.py``
imports each one with nothing else on ``sys.path``); a module that needs a package *to run* declares it in
:data:`SHIPPED` (``train`` needs NumPy, the TensorBoard program needs TensorBoard), and the component that
runs it names an image that has it. The package layout is written here, not copied: ``polynb/`` has no
``__init__.py`` (a namespace package: an image that has polynb installed keeps its own, since a regular
package anywhere on ``sys.path`` wins over a namespace portion), and its subpackages get docstring-only ones.

A ConfigMap holds at most 1 MiB (``data`` and ``binaryData`` together; see "ConfigMaps" in the Kubernetes
documentation); :func:`runtime_bundle` refuses to build a bigger one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

from polynb.executors.kubernetes import names

MOUNT_PATH: Final = "/polynb-runtime"
VOLUME: Final = "polynb-runtime"
NAME_PREFIX: Final = "polynb-runtime-"
CONFIGMAP_LIMIT: Final = 1024 * 1024
"""Bytes a ConfigMap may hold (the API server's limit on its data)."""

SHIPPED: Final[Mapping[str, tuple[str, ...]]] = {
    # module: packages it needs to *run* beyond the standard library (never to be imported)
    "polynb.tracking": (),
    "polynb.runtime.tracking": (),
    "polynb.runtime.step_runner": (),
    "polynb.hub.webhook": (),
    "polynb.hub.tensorboard": ("tensorboard",),
    "polynb.examples.steps": (),
    "polynb.examples.tbwriter": (),
    "polynb.examples.train": ("numpy",),
}

_PACKAGE_ROOT: Final = Path(__file__).resolve().parents[2]
"""The folder of the ``polynb`` package this executor runs from."""


class BundleTooLargeError(ValueError):
    """The runtime bundle would not fit in a ConfigMap."""


@dataclass(frozen=True, slots=True)
class Bundle:
    """The bundle's files (``polynb/runtime/tracking.py`` -> text) and the ConfigMap that carries them."""

    files: Mapping[str, str]
    digest: str

    @property
    def name(self) -> str:
        return NAME_PREFIX + self.digest

    @property
    def size(self) -> int:
        return sum(len(k.encode()) + len(v.encode()) for k, v in self.items().items())

    def items(self) -> dict[str, str]:
        """ConfigMap keys -> file text. Keys may not hold ``/``; the volume's ``items`` put them back in place."""
        return {config_key(path): text for path, text in self.files.items()}

    def configmap(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": self.name,
                "labels": {names.MANAGED_BY: names.MANAGED_BY_VALUE, names.ROLE: "runtime"},
            },
            "immutable": True,
            "data": self.items(),
        }

    def volume(self) -> dict[str, Any]:
        return {
            "name": VOLUME,
            "configMap": {
                "name": self.name,
                "items": [{"key": config_key(p), "path": p} for p in sorted(self.files)],
                "defaultMode": 0o444,
            },
        }


def config_key(path: str) -> str:
    """``polynb/runtime/tracking.py`` -> ``polynb.runtime.tracking.py`` (a valid, unique ConfigMap key)."""
    return path.replace("/", ".")


def _package_init(package: str) -> str:
    return (
        f'"""{package} as shipped into pods by polynb\'s Kubernetes executor: only the modules code in a pod runs '
        '(see polynb/executors/kubernetes/bundle.py)."""\n'
    )


def bundle_files(modules: Mapping[str, tuple[str, ...]] = SHIPPED, root: Path = _PACKAGE_ROOT) -> dict[str, str]:
    """The bundle's files: each module's source, and a minimal ``__init__.py`` for every package on the way."""
    files: dict[str, str] = {}
    for module in modules:
        parts = module.split(".")
        if parts[0] != "polynb":
            raise ValueError(f"{module}: only polynb's own modules are shipped")
        for depth in range(2, len(parts)):  # not polynb/__init__.py: see the module docstring
            package = ".".join(parts[:depth])
            files["/".join(parts[:depth]) + "/__init__.py"] = _package_init(package)
        source = root.joinpath(*parts[1:]).with_suffix(".py")
        files["/".join(parts) + ".py"] = source.read_text(encoding="utf-8")
    return files


def make_bundle(files: Mapping[str, str], *, limit: int = CONFIGMAP_LIMIT) -> Bundle:
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.encode() + b"\0" + files[path].encode() + b"\0")
    bundle = Bundle(dict(sorted(files.items())), digest.hexdigest()[:16])
    if bundle.size > limit:
        raise BundleTooLargeError(
            f"the runtime bundle is {bundle.size} bytes; a ConfigMap holds at most {limit}: ship fewer modules"
        )
    return bundle


@cache
def runtime_bundle() -> Bundle:
    """This polynb's bundle (built once per process: the sources do not change under a running kernel)."""
    return make_bundle(bundle_files())
