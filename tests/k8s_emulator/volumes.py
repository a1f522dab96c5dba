"""Pod volumes, bound as a kubelet binds them (test-only emulator).

* ``emptyDir``: a folder per pod, shared by its containers only, gone with the pod;
* ``persistentVolumeClaim``: a folder per claim (namespace and name), shared by every pod that mounts it;
  the scheduler enforces ReadWriteOnce per node (see ``scheduler``);
* ``configMap`` / ``secret``: the object's keys (or ``items``) as files with ``defaultMode``/``mode``,
  mounted read-only; a missing object that is not ``optional`` keeps the pod in ``ContainerCreating``
  with a ``FailedMount`` event, as the kubelet's volume manager does;
* ``hostPath``: the host path itself (``DirectoryOrCreate``/``FileOrCreate`` create it);
* ``subPath`` mounts a path inside the volume (a missing one is created as a folder, as the kubelet does).

https://kubernetes.io/docs/concepts/storage/volumes/
"""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path
from typing import Any

from .podenv import Lookup
from .rootfs import Mount


class MountError(Exception):
    """``MountVolume.SetUp failed`` for a volume: the message is the kubelet's event message."""


def claim_folder(root: Path, ns: str, claim: str) -> Path:
    return root / "claims" / ns / claim


def _project(dest: Path, data: dict[str, bytes], source: dict[str, Any], name: str, kind: str) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    default_mode = int(source.get("defaultMode", 0o644))
    items = source.get("items")
    chosen = [(i["key"], i["path"], i.get("mode")) for i in items] if items else [(k, k, None) for k in data]
    for key, rel, mode in chosen:
        if key not in data:
            if source.get("optional"):
                continue
            raise MountError(
                f'MountVolume.SetUp failed for volume "{name}" : configmap references non-existent config key: {key}'
                if kind == "configmap"
                else f'MountVolume.SetUp failed for volume "{name}" : references non-existent secret key: {key}'
            )
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data[key])
        os.chmod(path, int(mode) if mode is not None else default_mode)


def prepare(root: Path, pod: dict[str, Any], lookup: Lookup) -> dict[str, tuple[Path, bool]]:
    """Set up every volume of ``pod``: name -> (host folder or file, read-only)."""
    uid = pod["metadata"]["uid"]
    ns = pod["metadata"]["namespace"]
    out: dict[str, tuple[Path, bool]] = {}
    for volume in pod["spec"].get("volumes") or ():
        name = volume["name"]
        own = root / "pods" / uid / "volumes" / name
        if "emptyDir" in volume:
            own.mkdir(parents=True, exist_ok=True)
            own.chmod(0o777)
            out[name] = (own, False)
        elif "persistentVolumeClaim" in volume:
            source = volume["persistentVolumeClaim"]
            folder = claim_folder(root, ns, source["claimName"])
            folder.mkdir(parents=True, exist_ok=True)
            out[name] = (folder, bool(source.get("readOnly")))
        elif "configMap" in volume or "secret" in volume:
            kind = "configmap" if "configMap" in volume else "secret"
            source = volume["configMap"] if kind == "configmap" else volume["secret"]
            ref = source.get("name") if kind == "configmap" else source.get("secretName")
            obj = lookup("configmaps" if kind == "configmap" else "secrets", str(ref or ""))
            if obj is None and not source.get("optional"):
                raise MountError(f'MountVolume.SetUp failed for volume "{name}" : {kind} "{ref}" not found')
            data: dict[str, bytes] = {}
            if obj is not None:
                if kind == "secret":
                    data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
                else:
                    data = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
                    data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
            _project(own, data, source, name, kind)
            out[name] = (own, True)
        elif "hostPath" in volume:
            source = volume["hostPath"]
            path = Path(source["path"])
            kind = source.get("type", "")
            if kind == "DirectoryOrCreate":
                path.mkdir(parents=True, exist_ok=True)
            elif kind == "FileOrCreate" and not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
            elif not path.exists():
                if kind in ("Directory", "File", "Socket", "CharDevice", "BlockDevice"):
                    raise MountError(
                        f'MountVolume.SetUp failed for volume "{name}" : hostPath type check failed: '
                        f"{path} is not a {kind.lower()}"
                    )
                path.mkdir(parents=True, exist_ok=True)  # type "" : no check, the runtime creates a folder
            out[name] = (path, False)
        else:
            raise MountError(
                f'MountVolume.SetUp failed for volume "{name}" : volume type not supported by the emulator'
            )
    return out


def container_mounts(container: dict[str, Any], volumes: dict[str, tuple[Path, bool]]) -> list[Mount]:
    mounts: list[Mount] = []
    for vm in container.get("volumeMounts") or ():
        source, readonly = volumes[vm["name"]]
        sub = vm.get("subPath")
        if sub:
            source = source / sub
            if not source.exists():
                source.mkdir(parents=True)
        mounts.append(Mount(str(source), vm["mountPath"].rstrip("/") or "/", readonly or bool(vm.get("readOnly"))))
    return sorted(mounts, key=lambda m: m.target.count("/"))  # parents before what is mounted inside them
