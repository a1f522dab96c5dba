"""Init entries of a Kubernetes run as init containers.

* ``container`` entries run their own container (the main container's image when they name none);
* ``git`` runs ``git clone`` (then ``git checkout <revision>``) in the *git image* (default
  ``alpine/git``): values are passed as arguments of a fixed ``sh -c`` script, never spliced into it;
* ``file``, ``artifacts``, ``paths`` and ``tensorboard`` run :data:`INIT_SCRIPT` with ``python -c`` in
  the *tools image* (default ``python:3.11-slim``; any image with ``python3`` works) and read their entry
  as JSON from the ``POLYNB_INIT`` variable.

Every init container mounts the artifacts volume, so results land in the run's artifacts folder as with the
local executor (``path`` relative to it unless absolute). Sources of ``artifacts``/``paths`` are relative to
the artifacts root, which is shared between runs only when the executor has an ``artifacts_claim`` (a
ReadWriteMany PVC); with the default ``emptyDir`` they see this run's folder only.

**The run's folders.** Before any init entry and the main container, the run's folder, ``outputs/`` and
``outputs/tensorboard/`` are made on the artifacts volume, as the local executor has them when an op starts
(Polyaxon's init container makes the first two): by the pod's first init entry when it runs in the tools image
(:data:`INIT_SCRIPT` makes the folders its arguments name first), else by :func:`folders_container`, an init
container of its own, first in the pod. Paths are arguments, never part of a shell line. Best effort
(:data:`MAKE_FOLDERS`): a folder that cannot be made (an artifacts claim whose root the container's user cannot
write) is a warning in that container's log, not a failure: a run that never writes outputs must not fail for it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from polynb.compiler.types import InitStep
from polynb.connections import GIT_CREDENTIAL_HELPER

MAKE_FOLDERS: Final = r"""
import os, sys
def make_folders(paths):
    for path in paths:
        try:
            os.mkdir(path)
        except FileExistsError:
            if os.path.isdir(path):
                continue  # a retry's, or another container's: left as it is
            problem = "it exists and is not a folder"
        except OSError as exc:
            problem = exc.strerror or str(exc)
        else:
            try:
                # Every container of the pod writes here, whatever its user (polynb's own run as root or as
                # 65534, the op's image as its own): as Polyaxon's `mkdir -m 0777`.
                os.chmod(path, 0o777)
            except OSError:
                pass
            continue
        return (f"polynb: warning: cannot create the run's folder {path} ({problem}; uid {os.getuid()}): "
                "the op must create it before writing there")
    return ""
"""
"""Makes the folders its caller names, in order (each in the one before): those that exist are left as they are,
the new ones are made writable by any user. The first that cannot be made ends it, with a warning (returned)."""

FOLDERS_SCRIPT: Final = (
    MAKE_FOLDERS
    + r"""
warning = make_folders(sys.argv[1:])
if warning:
    print(warning, file=sys.stderr, flush=True)
    # The termination message says so without reading the log (the executor reads this container's log then).
    with open("/dev/termination-log", "w", encoding="utf-8") as f:
        f.write(warning)
"""
)
"""The script of :func:`folders_container`; its arguments: the folders to make, parents first."""
FOLDERS_CONTAINER: Final = "polynb-folders"
"""The name of the init container that makes the run's folders when no init entry of the pod can."""

INIT_SCRIPT: Final = (
    MAKE_FOLDERS
    + r"""
warning = make_folders(sys.argv[1:])  # the first tools entry of a pod makes the run's folders (none else)
if warning:
    print(warning, file=sys.stderr, flush=True)
import json, os, shutil, sys
e = json.loads(os.environ["POLYNB_INIT"])
kind, spec, run_dir, root = e["kind"], e.get("spec") or {}, e["run_dir"], e["artifacts_root"]
def dest(default):
    return os.path.join(run_dir, e.get("path") or default)
def copy(rel, to):
    src = os.path.join(root, rel)
    if not os.path.lexists(src):
        sys.exit(f"{kind}: {rel}: not found under {root}")
    target = os.path.join(dest(""), to or (rel if not os.path.isabs(rel) else os.path.basename(rel.rstrip("/"))))
    os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
    if os.path.isdir(src):
        shutil.copytree(src, target, symlinks=True, dirs_exist_ok=True)
    else:
        shutil.copy2(src, target)
    print(f"copied {src} -> {target}")
if kind == "file":
    target = os.path.join(dest(""), spec.get("filename") or "file")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "w", encoding="utf-8") as f:
        f.write(str(spec.get("content") or ""))
    mode = str(spec.get("chmod") or "").strip()
    if mode:
        os.chmod(target, (os.stat(target).st_mode | 0o111) if mode == "+x" else int(mode.removeprefix("0o"), 8))
    print(f"wrote {target}")
elif kind in ("artifacts", "paths"):
    entries = spec.get("paths") if kind == "paths" else [*(spec.get("files") or ()), *(spec.get("dirs") or ())]
    for entry in entries or ():
        if isinstance(entry, list):
            copy(str(entry[0]), str(entry[1]))
        else:
            copy(str(entry), None)
elif kind == "tensorboard":
    logdir = dest("tensorboard")
    os.makedirs(logdir, exist_ok=True)
    uuids = spec.get("uuids") or []
    for uuid in ([u.strip() for u in uuids.split(",")] if isinstance(uuids, str) else uuids):
        if not uuid:
            continue
        link = os.path.join(logdir, str(uuid))
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(os.path.join(root, str(uuid), "outputs", "tensorboard"), link, target_is_directory=True)
        print(f"linked {link}")
else:
    sys.exit(f"init kind {kind!r} is not supported by the kubernetes executor")
"""
)

GIT_SCRIPT: Final = (
    'set -e; url="$1"; dest="$2"; rev="$3"; helper="$4"; shift 4; rm -rf "$dest"; mkdir -p "$(dirname "$dest")"; '
    'if [ -n "${POLYAXON_GIT_CREDENTIALS:-}" ]; then '
    'git -c credential.helper= -c "$helper" clone "$@" -- "$url" "$dest"; '
    'else git clone "$@" -- "$url" "$dest"; fi; '
    'if [ -n "$rev" ]; then git -C "$dest" checkout --quiet "$rev"; fi'
)
"""The git entry's script; its arguments: url, destination, revision, the credential helper
(:data:`~polynb.connections.GIT_CREDENTIAL_HELPER`, used when ``POLYAXON_GIT_CREDENTIALS`` is set: the connection's
secret or env), then the flags."""
FETCH_MODULE: Final = "polynb.runtime.bucket_fetch"
STORE_CONNECTION_ENV: Final = "POLYNB_STORE_CONNECTION"


def init_container(
    step: InitStep,
    index: int,
    *,
    run_dir: str,
    artifacts_root: str,
    tools_image: str,
    git_image: str,
    default_image: str,
    store_image: str = "polynb:latest",
    bucket_store: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The container of one init entry, without env and mounts (the manifest builder adds those, and what the
    connection in ``spec["connection"]`` brings: its env, its secret).

    An ``artifacts``/``paths`` entry reading a bucket connection, or any when the artifacts store is a bucket
    (``bucket_store``: its connection entry; the pods' artifacts volume then holds only their own run), fetches
    from the bucket in the *store image* (polynb installed, ``docker/Dockerfile``).

    Raise ``ValueError`` for an entry that cannot run here (a git entry without url, a bad revision).
    """
    name = f"init-{index}-{step.kind}"
    connection = step.spec.get("connection") or None
    if connection is not None and connection.get("kind") == "host_path":
        raise ValueError(f"init[{index}]: connection {connection['name']} is a host path, which an init entry reads "
                         "on the local executor only (on Kubernetes, mount it with run.connections)")  # fmt: skip
    source = connection if connection is not None else bucket_store
    if step.kind in ("artifacts", "paths") and source is not None:
        return _fetch_container(step, name, run_dir, source, store_image)
    if step.kind == "container":
        spec = step.container
        if spec is None:
            raise ValueError(f"init[{index}]: a container entry without a container")
        return {
            "name": name,
            "image": spec.image or default_image,
            "command": list(spec.command) or None,
            "args": list(spec.args) or None,
            "_env": dict(spec.env),
            "_k8s": dict(spec.k8s),
            "workingDir": spec.working_dir,
        }
    if step.kind == "git":
        url = str(step.spec.get("url") or "")
        if not url:
            raise ValueError(f"init[{index}]: git entry without url (connections are not supported yet)")
        revision = str(step.spec.get("revision") or "")
        if revision.startswith("-"):
            raise ValueError(f"init[{index}]: git revision {revision!r} looks like an option")
        repo = url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git") or "repo"
        dest = _join(run_dir, step.path or repo)
        flags = [part for flag in step.spec.get("flags") or () for part in str(flag).split()]
        return {
            "name": name,
            "image": git_image,
            "command": ["sh", "-c", GIT_SCRIPT, "git-init", url, dest, revision, GIT_CREDENTIAL_HELPER, *flags],
            "_env": {"GIT_TERMINAL_PROMPT": "0"},
        }
    payload = {
        "kind": step.kind,
        "spec": {k: v for k, v in step.spec.items() if k != "connection"},
        "path": step.path,
        "run_dir": run_dir,
        "artifacts_root": artifacts_root,
    }
    return {
        "name": name,
        "image": tools_image,
        "command": ["python3", "-c", INIT_SCRIPT],
        "_env": {"POLYNB_INIT": json.dumps(payload, sort_keys=True)},
        "_makes_folders": True,  # the run's folders may be appended to its command (run_folders)
    }


def run_folders(run_dir: str) -> list[str]:
    """The folders of a run that exist when its op starts, parents first (the local executor's too)."""
    outputs = _join(run_dir, "outputs")
    return [run_dir, outputs, _join(outputs, "tensorboard")]


def folders_container(run_dir: str, *, tools_image: str) -> dict[str, Any]:
    """The init container making the run's folders (:func:`run_folders`), first in a pod whose first init entry
    cannot make them; without env and mounts (the manifest builder adds the artifacts volume)."""
    return {
        "name": FOLDERS_CONTAINER,
        "image": tools_image,
        "command": ["python3", "-c", FOLDERS_SCRIPT, *run_folders(run_dir)],
        # A warning is its termination message (the executor then reads its log); a crash, its log's tail.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def _fetch_container(
    step: InitStep, name: str, run_dir: str, connection: Mapping[str, Any], image: str
) -> dict[str, Any]:
    """``python -m polynb.runtime.bucket_fetch`` with a ``--source``/``--target`` pair per file, folder or path of
    the entry (all of the bucket for none), as the local executor lays them out."""
    url = str((connection.get("schema") or {}).get("bucket") or "").rstrip("/")
    base = _join(run_dir, step.path) if step.path else run_dir
    spec = step.spec
    entries = spec.get("paths") if step.kind == "paths" else [*(spec.get("files") or ()), *(spec.get("dirs") or ())]
    pairs: list[tuple[str, str]] = []
    for entry in entries or ():
        rel, to = (str(entry[0]), str(entry[1])) if isinstance(entry, list | tuple) else (str(entry), None)
        to = to or (rel if not rel.startswith("/") else rel.rstrip("/").rsplit("/", 1)[-1])
        pairs.append((f"{url}/{rel.strip('/')}", _join(base, to)))
    if not pairs:
        pairs.append((url, base))
    public = {k: v for k, v in connection.items() if k in ("name", "kind", "schema")}
    return {
        "name": name,
        "image": image,
        "command": ["python", "-m", FETCH_MODULE, *(a for s, t in pairs for a in ("--source", s, "--target", t))],
        "_env": {STORE_CONNECTION_ENV: json.dumps(public, sort_keys=True), "PYTHONUNBUFFERED": "1"},
        "_connection": dict(connection),
    }


def _join(base: str, path: str) -> str:
    return path if path.startswith("/") else f"{base.rstrip('/')}/{path}"
