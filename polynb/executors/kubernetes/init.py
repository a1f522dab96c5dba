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
"""

from __future__ import annotations

import json
from typing import Any, Final

from polynb.compiler.types import InitStep

INIT_SCRIPT: Final = r"""
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

GIT_SCRIPT: Final = (
    'set -e; url="$1"; dest="$2"; rev="$3"; shift 3; rm -rf "$dest"; mkdir -p "$(dirname "$dest")"; '
    'git clone "$@" -- "$url" "$dest"; if [ -n "$rev" ]; then git -C "$dest" checkout --quiet "$rev"; fi'
)


def init_container(
    step: InitStep,
    index: int,
    *,
    run_dir: str,
    artifacts_root: str,
    tools_image: str,
    git_image: str,
    default_image: str,
) -> dict[str, Any]:
    """The container of one init entry, without env and mounts (the manifest builder adds those).

    Raise ``ValueError`` for an entry that cannot run here (a git entry without url, a bad revision).
    """
    name = f"init-{index}-{step.kind}"
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
            "command": ["sh", "-c", GIT_SCRIPT, "git-init", url, dest, revision, *flags],
            "_env": {"GIT_TERMINAL_PROMPT": "0"},
        }
    payload = {
        "kind": step.kind,
        "spec": step.spec,
        "path": step.path,
        "run_dir": run_dir,
        "artifacts_root": artifacts_root,
    }
    return {
        "name": name,
        "image": tools_image,
        "command": ["python3", "-c", INIT_SCRIPT],
        "_env": {"POLYNB_INIT": json.dumps(payload, sort_keys=True)},
    }


def _join(base: str, path: str) -> str:
    return path if path.startswith("/") else f"{base.rstrip('/')}/{path}"
