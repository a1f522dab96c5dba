"""Init entries of a local run: ``file``, ``git``, ``artifacts``, ``paths`` and ``tensorboard``.

Imported by the shim only when a run has init entries (standard library only). Each entry either does its
work here and notes it in its log, or returns the external commands to run (``git``), which the shim runs
like containers so that a stop reaches them. ``container`` entries never come here.

Where results go (Polyaxon's layout, with the run's artifacts folder as the context):

* the entry's ``path``, relative to the run's artifacts folder unless absolute, else
* ``file``: the run's artifacts folder; ``git``: ``<run>/<repository name>``;
  ``artifacts``/``paths``: ``<run>/<the source path>`` (sources are relative to the artifacts root: a source
  ``<uuid>/...`` of a run created with another root is read there);
  ``tensorboard``: ``<run>/tensorboard``, one symlink per run to ``<uuid>/outputs/tensorboard``.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from typing import Any
from urllib.parse import urlsplit

from polynb.executors.local.layout import CREATED_FILE, INTERNAL_DIR, OP_FILE, OUTPUTS_DIR, TENSORBOARD_DIR

Command = tuple[list[str], dict[str, str]]
"""An external command (argv, extra environment) the shim runs for an entry."""

GIT_ENV = {"GIT_TERMINAL_PROMPT": "0"}  # fail instead of waiting for a password nobody can type


class InitError(Exception):
    """An init entry cannot be done; the message says why (the shim prefixes the entry)."""


class _Step:
    """One entry being run: where it writes, what it logs and what it creates."""

    def __init__(self, step: dict[str, Any], run: dict[str, Any], log_path: str) -> None:
        self.spec: dict[str, Any] = step.get("spec") or {}
        self.path: str | None = step.get("path")
        self.run_dir: str = run["run_dir"]
        self.artifacts_root: str = run["artifacts_root"]
        self.run_roots: dict[str, str] = run.get("run_roots") or {}
        """Other runs' artifacts roots by uuid, where they differ from this run's."""
        self.base_dir: str = run["base_dir"]
        self.log_path = log_path
        self.store: dict[str, Any] | None = run.get("artifacts_store")
        """The artifacts store's connection entry when it is a bucket: sources not on this machine come from it."""
        self.package_root: str = run.get("package_root") or ""
        self.python: str = sys.executable

    def dest(self, default: str) -> str:
        """Where the entry puts its result: ``path`` if given (relative to the run folder), else default."""
        return os.path.join(self.run_dir, self.path or default)

    def log(self, line: str) -> None:
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def created(self, path: str) -> None:
        """Note a path for ``cleanup()`` (only paths inside the run folder are ever removed)."""
        with open(os.path.join(self.run_dir, INTERNAL_DIR, CREATED_FILE), "a", encoding="utf-8") as f:
            f.write(path + "\n")

    def root_of(self, uuid: str) -> str:
        """The artifacts root of run ``uuid`` (this run's unless the run was created with another)."""
        return self.run_roots.get(uuid, self.artifacts_root)

    def local_source(self, rel: str) -> str:
        """Where a source path of ``artifacts``/``paths`` is on this machine: relative to the artifacts root of
        the run it starts with (this run's root for anything else) unless absolute."""
        return os.path.join(self.root_of(rel.split("/", 1)[0]), rel)

    def source(self, rel: str) -> str:
        """:meth:`local_source`, which must exist."""
        src = self.local_source(rel)
        if not os.path.lexists(src):
            raise InitError(f"{rel}: not found under {self.root_of(rel.split('/', 1)[0])}")
        return src

    def clear(self, dest: str) -> None:
        """Make room for a result again (a retried run), but only inside the run's own folder."""
        if os.path.lexists(dest) and _inside(dest, self.run_dir):
            if os.path.isdir(dest) and not os.path.islink(dest):
                shutil.rmtree(dest)
            else:
                os.unlink(dest)


def run_step(step: dict[str, Any], run: dict[str, Any], log_path: str) -> list[Command]:
    """Do one init entry; return the external commands still to run (in order)."""
    kind = step["kind"]
    handler = _HANDLERS.get(kind)
    if handler is None:
        raise InitError(f"init kind {kind!r} is not supported by the local executor")
    try:
        return handler(_Step(step, run, log_path))
    except OSError as exc:
        raise InitError(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")) from None


def _file(step: _Step) -> list[Command]:
    spec = step.spec
    filename = spec.get("filename")
    if not filename:
        raise InitError("file: no filename")
    target = os.path.join(step.dest(""), str(filename))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "w", encoding="utf-8") as f:
        f.write(str(spec.get("content") or ""))
    if spec.get("chmod") is not None:
        os.chmod(target, parse_chmod(spec["chmod"], os.stat(target).st_mode))
    step.created(target)
    step.log(f"wrote {target} (mode {stat.filemode(os.stat(target).st_mode)})")
    return []


def parse_chmod(value: str | int, mode: int) -> int:
    """``chmod`` as octal (``"755"``, ``"0o755"``, ``755`` written in YAML) or symbolic (``"+x"``, ``"go-w"``)."""
    text = str(value).strip()
    try:
        return int(text.removeprefix("0o"), 8)
    except ValueError:
        pass
    mode = stat.S_IMODE(mode)
    bits = {"r": 0o4, "w": 0o2, "x": 0o1}
    shifts = {"u": (6,), "g": (3,), "o": (0,), "a": (6, 3, 0)}
    for clause in text.split(","):
        who, op, perms = "", "", ""
        for i, ch in enumerate(clause):
            if ch in "+-=":
                who, op, perms = clause[:i] or "a", ch, clause[i + 1 :]
                break
        if not op or any(c not in shifts for c in who) or any(c not in bits for c in perms):
            raise InitError(f"file: chmod {value!r} is neither octal nor like 'u+x'")
        for w in who:
            for shift in shifts[w]:
                mask = sum(bits[p] for p in perms) << shift
                if op == "+":
                    mode |= mask
                elif op == "-":
                    mode &= ~mask
                else:
                    mode = (mode & ~(0o7 << shift)) | mask
    return mode


GIT_CREDENTIALS = "POLYAXON_GIT_CREDENTIALS"


def _git(step: _Step) -> list[Command]:
    spec = step.spec
    url = str(spec.get("url") or "")
    if not url:
        raise InitError("git: no url")
    if _is_local_path(url):
        url = os.path.join(step.base_dir, os.path.expanduser(url))  # relative to the notebook's folder
    name = os.path.basename(url.rstrip("/")).removesuffix(".git") or "repo"
    dest = step.dest(name)
    step.clear(dest)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    step.created(dest)
    # Each flag may hold an option and its value ("--depth 1"): split on whitespace, never by a shell.
    flags = [part for flag in spec.get("flags") or () for part in str(flag).split()]
    env = {**_connection_env(spec), **GIT_ENV}
    clone = ["git", "clone", *flags, "--", url, dest]
    if env.get(GIT_CREDENTIALS):
        # git asks the helper, which reads the credentials from its environment: they are in no argv, no url
        # and no log; no credential helper of the user's may keep them.
        from polynb.connections import GIT_CREDENTIAL_HELPER

        clone = ["git", "-c", "credential.helper=", "-c", GIT_CREDENTIAL_HELPER, "clone", *flags, "--", url, dest]
        step.log(f"git: credentials of connection {spec['connection']['name']} ({GIT_CREDENTIALS})")
    commands: list[Command] = [(clone, env)]
    revision = spec.get("revision")
    if revision:
        if str(revision).startswith("-"):
            raise InitError(f"git: revision {revision!r} looks like an option")
        commands.append((["git", "-C", dest, "checkout", "--quiet", str(revision)], GIT_ENV))
    return commands


def _connection_env(spec: dict[str, Any]) -> dict[str, str]:
    """The ``env`` of the connection an entry reads (credentials, endpoint), for its commands only."""
    connection = spec.get("connection") or {}
    return {str(e["name"]): str(e.get("value", "")) for e in connection.get("env") or () if isinstance(e, dict)}


def _is_local_path(url: str) -> bool:
    if "://" in url:
        return False
    head = url.split("/", 1)[0]
    return ":" not in head  # "host:path" is git's scp-like syntax


def _artifacts(step: _Step) -> list[Command]:
    spec = step.spec
    commands: list[Command] = []
    if _whole_connection(spec):
        return _from_connection(step, "", step.dest(""))
    for rel in spec.get("files") or ():
        commands += _copy(step, str(rel), None, want_dir=False)
    for rel in spec.get("dirs") or ():
        commands += _copy(step, str(rel), None, want_dir=True)
    return commands


def _paths(step: _Step) -> list[Command]:
    entries = step.spec.get("paths")
    if entries is None:
        entries = [*step.spec.get("files", ()), *step.spec.get("dirs", ())]
    if _whole_connection(step.spec):
        return _from_connection(step, "", step.dest(""))
    commands: list[Command] = []
    for entry in entries:
        if isinstance(entry, list | tuple):
            if len(entry) != 2:
                raise InitError(f"paths: {entry!r} is neither a path nor a [from, to] pair")
            commands += _copy(step, str(entry[0]), str(entry[1]), want_dir=None)
        else:
            commands += _copy(step, str(entry), None, want_dir=None)
    return commands


def _whole_connection(spec: dict[str, Any]) -> bool:
    return bool(spec.get("connection")) and not any(spec.get(k) for k in ("files", "dirs", "paths"))


def _from_connection(step: _Step, rel: str, dest: str) -> list[Command]:
    """``rel`` of the connection the entry reads (all of it for ``''``) to ``dest``: a folder's copied here, a
    bucket's fetched by a command (credentials in its environment only)."""
    connection = step.spec["connection"]
    schema = connection.get("schema") or {}
    if connection.get("kind") == "host_path":
        root = os.path.expanduser(str(schema.get("hostPath") or ""))
        src = os.path.join(root, rel) if rel else root
        if not os.path.lexists(src):
            raise InitError(f"{rel or '.'}: not found in connection {connection['name']} ({root})")
        _place(step, src, dest)
        return []
    return [_fetch(step, connection, rel, dest)]


def _fetch(step: _Step, connection: dict[str, Any], rel: str, dest: str) -> Command:
    url = str((connection.get("schema") or {}).get("bucket") or "").rstrip("/")
    source = f"{url}/{rel.strip('/')}" if rel.strip("/") else url
    os.makedirs(os.path.dirname(dest.rstrip("/")) or ".", exist_ok=True)
    step.created(dest)
    env = {
        **_connection_env({"connection": connection}),  # credentials: variables of their own, as in a pod
        "POLYNB_STORE_CONNECTION": json.dumps({k: v for k, v in connection.items() if k in ("name", "kind", "schema")}),
        "PYTHONPATH": os.pathsep.join(p for p in (step.package_root, os.environ.get("PYTHONPATH")) if p),
    }
    return ([step.python, "-m", "polynb.runtime.bucket_fetch", "--source", source, "--target", dest], env)


def _copy(step: _Step, rel: str, to: str | None, *, want_dir: bool | None) -> list[Command]:
    if to is None:
        to = rel if not os.path.isabs(rel) else os.path.basename(rel.rstrip("/"))
    dest = os.path.join(step.dest(""), to)
    if step.spec.get("connection"):
        return _from_connection(step, rel, dest)
    store = step.store
    if store is not None and not os.path.isabs(rel) and not os.path.lexists(step.local_source(rel)):
        return [_fetch(step, store, rel, dest)]  # not on this machine: the bucket artifacts store has it
    src = step.source(rel)
    if want_dir is not None and os.path.isdir(src) != want_dir:
        raise InitError(f"{rel}: expected a {'folder' if want_dir else 'file'}")
    _place(step, src, dest)
    return []


def _place(step: _Step, src: str, dest: str) -> None:
    os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
    if os.path.isdir(src):
        shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True)
    else:
        shutil.copy2(src, dest)
    step.created(dest)
    step.log(f"copied {src} -> {dest}")


def _tensorboard(step: _Step) -> list[Command]:
    spec = step.spec
    uuids = spec.get("uuids") or []
    if isinstance(uuids, str):
        uuids = [u.strip() for u in uuids.split(",")]
    uuids = [str(u) for u in uuids if str(u)]
    logdir = step.dest("tensorboard")
    os.makedirs(logdir, exist_ok=True)
    step.created(logdir)
    taken: set[str] = set()
    for uuid in uuids:
        # Symlinks, not copies: TensorBoard then shows what the runs are still writing.
        target = os.path.join(step.root_of(uuid), uuid, OUTPUTS_DIR, TENSORBOARD_DIR)
        name = _run_name(step.root_of(uuid), uuid) if spec.get("useNames") else None
        link_name = _unique(name or uuid, uuid, taken)
        link = os.path.join(logdir, link_name)
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(target, link, target_is_directory=True)
        step.log(f"linked {link} -> {target}" + ("" if os.path.isdir(target) else " (not there yet)"))
    if spec.get("plugins"):
        step.log(f"plugins not installed by the local executor (install them yourself): {spec['plugins']}")
    if spec.get("port"):
        script = os.path.join(step.run_dir, "start_tensorboard")
        argv = ["tensorboard", f"--logdir={logdir}", f"--port={spec['port']}", "--host=127.0.0.1"]
        prefix = _path_prefix(spec.get("pathPrefix"))
        if prefix:
            argv.append(f"--path_prefix={prefix}")
        with open(script, "w", encoding="utf-8") as f:
            f.write("#!/bin/sh\nexec " + " ".join(_sh_quote(a) for a in argv) + "\n")
        os.chmod(script, 0o755)  # noqa: S103 - a script to run
        step.created(script)
        step.log(f"wrote {script}")
    return []


def _run_name(artifacts_root: str, uuid: str) -> str | None:
    """A run's name from the op the local executor stored beside it, when there is one."""
    try:
        with open(os.path.join(artifacts_root, uuid, INTERNAL_DIR, OP_FILE), encoding="utf-8") as f:
            name = json.load(f).get("name")
    except (OSError, ValueError, AttributeError):
        return None
    return name if isinstance(name, str) and name and "/" not in name else None


def _unique(name: str, uuid: str, taken: set[str]) -> str:
    if name in taken:
        name = f"{name}-{uuid[:8]}"
    taken.add(name)
    return name


def _path_prefix(value: object) -> str:
    """TensorBoard wants a path: keep the path of a URL (``globals.base_url``), drop a bare ``/``."""
    text = str(value or "")
    if "://" in text:
        text = urlsplit(text).path
    return text.rstrip("/")


def _sh_quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\"'\"'") + "'"


def _inside(path: str, folder: str) -> bool:
    real, root = os.path.realpath(os.path.dirname(path)), os.path.realpath(folder)
    return real == root or real.startswith(root + os.sep)


_HANDLERS = {
    "file": _file,
    "git": _git,
    "artifacts": _artifacts,
    "paths": _paths,
    "tensorboard": _tensorboard,
}
