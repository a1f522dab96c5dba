"""Component resolution: which component an operation runs.

An operation names its component in one of these ways (Polyaxon 2.18 allows at most one):

* ``dagRef: NAME`` — a component of the enclosing DAG's ``components``; a component there may itself be an
  alias (``dagRef`` again), and chains that loop back are reported with their path;
* ``component: {...}`` — inline;
* ``run: {...}`` — an operation with a run is its own component (2.18);
* ``pathRef: FILE`` — a YAML file relative to the folder of the file that refers to it (a pathRef inside
  that file is relative to *its* folder);
* ``hubRef: NAME[:TAG]`` — looked up in this order: components registered at runtime (notebook cells), the
  built-in hub shipped in ``polynb/hub/``, then the folders of ``POLYNB_HUB_PATH`` (``:``-separated). In a
  hub folder ``NAME.yaml`` is the untagged / ``latest`` version and ``NAME/TAG.yaml`` a tagged one. Polyaxon's
  public names polynb cannot serve (``kaniko``, ``jupyterlab``, …: ``UNSERVED_HUB``) are refused with the reason;
* ``urlRef: URL`` — fetched over HTTP(S), revalidated against a content cache (``compiler.urlref``); an
  unreachable URL is an error naming it. pathRefs inside a fetched component have no folder to resolve in.

Failures raise ``ResolutionError`` whose ``path`` is relative to the operation (``("hubRef",)``) or, for
problems inside the DAG's ``components``, to the DAG run (``anchor="dag"``). Errors inside a referenced
file are ``SpecErrors`` positioned in that file.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from polynb.spec.errors import SpecErrors
from polynb.spec.load import load
from polynb.spec.models import Component, Dag, Operation

HUB_DIR = Path(__file__).resolve().parent.parent / "hub"
HUB_PATH_ENV = "POLYNB_HUB_PATH"
Anchor = Literal["op", "dag"]

# A component's fields an operation with an inline `run` lends to the component it is (2.18 semantics).
# Not `hooks`: they stay the operation's, or they would run twice (once as the op's, once as the component's).
_COMPONENT_FIELDS = ("name", "description", "tags", "inputs", "outputs", "run", "termination", "cache",
                     "plugins", "presets", "queue", "namespace", "is_approved", "cost")  # fmt: skip


class ResolutionError(ValueError):
    """A component reference that cannot be resolved; ``path`` is relative to ``anchor`` (the op or the DAG)."""

    def __init__(self, message: str, path: tuple[str | int, ...] = (), *, anchor: Anchor = "op") -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.anchor: Anchor = anchor


@dataclass(frozen=True, slots=True)
class Resolved:
    """A resolved component and where it came from (``base_dir`` anchors the pathRefs inside it)."""

    component: Component
    base_dir: Path | None
    source: str | None
    """The file the component was read from, or None when it came from the referring document itself."""
    dag_index: int | None = None
    """For a dagRef: the index of the component in the DAG's ``components``."""


# ------------------------------------------------------------------------------------- file loading

_FILE_CACHE: dict[Path, tuple[int, Component | Operation]] = {}


def load_file(path: Path) -> Component | Operation:
    """Load a Polyaxonfile, cached by path and modification time (hub files are read once)."""
    path = path.resolve()
    mtime = path.stat().st_mtime_ns
    cached = _FILE_CACHE.get(path)
    if cached is not None and cached[0] == mtime:
        return cached[1]
    spec = load(path)
    _FILE_CACHE[path] = (mtime, spec)
    return spec


def as_component(spec: Component | Operation) -> Component:
    """A file's spec as a component: an operation with an inline ``run`` is its own component (2.18)."""
    if isinstance(spec, Component):
        return spec
    if spec.run is None:
        raise ValueError("it is an operation without a `run`; a referenced file must hold a component")
    return component_of_run(spec)


def component_of_run(op: Operation) -> Component:
    values: dict[str, Any] = {name: getattr(op, name) for name in _COMPONENT_FIELDS if getattr(op, name) is not None}
    return Component.model_construct(kind="component", **values)


# ------------------------------------------------------------------------------------------ the hub


def split_hub_ref(ref: str) -> tuple[str, str | None]:
    """``tensorboard:latest`` -> (``tensorboard``, ``latest``); ``webhook`` -> (``webhook``, None)."""
    name, _, tag = ref.partition(":")
    return name.strip(), (tag.strip() or None)


def hub_folders() -> list[Path]:
    """The configured hub folders (``POLYNB_HUB_PATH``), in order; missing folders are skipped."""
    raw = os.environ.get(HUB_PATH_ENV, "")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()]


def _hub_file(folder: Path, name: str, tag: str | None) -> Path | None:
    candidates = [folder / f"{name}.yaml"] if tag in (None, "latest") else []
    if tag is not None:
        candidates += [folder / name / f"{tag}.yaml", folder / name / f"{tag}.yml"]
    else:
        candidates.append(folder / name / "latest.yaml")
    return next((c for c in candidates if c.is_file()), None)


def _hub_names(folder: Path) -> Iterator[str]:
    if not folder.is_dir():
        return
    for entry in sorted(folder.iterdir()):
        if entry.suffix in (".yaml", ".yml") and entry.is_file():
            yield entry.stem
        elif entry.is_dir() and not entry.name.startswith((".", "_")):
            for tagged in sorted(entry.glob("*.y*ml")):
                yield f"{entry.name}:{tagged.stem}"


# Polyaxon's public hub components polynb does not serve, with the reason (a folder of POLYNB_HUB_PATH or a
# notebook registration with the same name still wins: this is said only when nothing else answers).
_NO_IMAGES = "polynb builds no images (build it with docker or your CI, then name it in `image`)"
_IN_JUPYTER = ("polynb runs inside JupyterLab: use this JupyterLab (or the VS Code you opened it from), or "
               "`hubRef: jupyterlab` for a JupyterLab of the op's own")  # fmt: skip
_NO_VSCODE = ("polynb serves no VS Code (code-server is not part of it): open the run's folder in the VS Code you "
              "use, or `hubRef: jupyterlab` for a JupyterLab of the op's own")  # fmt: skip
UNSERVED_HUB: dict[str, str] = {
    "kaniko": _NO_IMAGES,
    "dockerizer": _NO_IMAGES,
    "build": _NO_IMAGES,
    "notebook": _IN_JUPYTER,
    "vscode": _NO_VSCODE,
}


# ------------------------------------------------------------------------------------- the registry


class ComponentRegistry:
    """Resolves operations to components; holds the components registered at runtime (notebook cells)."""

    def __init__(self, *, builtin_hub: bool = True) -> None:
        self._registered: dict[str, Component] = {}
        self._builtin_hub = builtin_hub
        # One DAG's component index at a time: ops of a DAG are resolved one after another.
        self._dag_index: tuple[Dag, dict[str, tuple[int, Component]]] | None = None

    # ---- runtime registry

    def register(self, name: str, component: Component) -> None:
        """Make ``component`` available as ``hubRef: name`` (``name`` may carry a tag: ``train:v2``)."""
        self._registered[name] = component

    def unregister(self, name: str) -> None:
        self._registered.pop(name, None)

    def registered(self) -> dict[str, Component]:
        return dict(self._registered)

    # ---- resolution

    def resolve(self, op: Operation, *, dag: Dag | None = None, base_dir: Path | None = None) -> Component:
        return self.resolve_full(op, dag=dag, base_dir=base_dir).component

    def resolve_full(self, op: Operation, *, dag: Dag | None = None, base_dir: Path | None = None) -> Resolved:
        """Resolve ``op``'s component; raise ``ResolutionError`` or ``SpecErrors`` (errors in another file)."""
        if op.component is not None:
            if op.component.dag_ref is not None:  # an inline alias of a DAG component
                return self._from_dag(op.component.dag_ref, dag, base_dir)
            return Resolved(op.component, base_dir, None)
        if op.dag_ref is not None:
            return self._from_dag(op.dag_ref, dag, base_dir)
        if op.hub_ref is not None:
            return self.hub(op.hub_ref)
        if op.path_ref is not None:
            return self._from_path(op.path_ref, base_dir)
        if op.url_ref is not None:
            return self._from_url(op.url_ref)
        if op.run is not None:
            return Resolved(component_of_run(op), base_dir, None)
        raise ResolutionError("the operation names no component: use dagRef, hubRef, pathRef, component or run")

    def _components_of(self, dag: Dag) -> dict[str, tuple[int, Component]]:
        if self._dag_index is None or self._dag_index[0] is not dag:
            index: dict[str, tuple[int, Component]] = {}
            for i, c in enumerate(dag.components or ()):
                if c.name and c.name not in index:
                    index[c.name] = (i, c)
            self._dag_index = (dag, index)
        return self._dag_index[1]

    def _from_dag(self, name: str, dag: Dag | None, base_dir: Path | None) -> Resolved:
        if dag is None:
            raise ResolutionError(
                f"dagRef `{name}` names a component of an enclosing DAG, and this operation is not in a DAG",
                ("dagRef",),
            )
        index = self._components_of(dag)
        if name not in index:
            known = sorted(index)
            hint = _suggest(name, known)
            listing = f"; it has: {', '.join(known)}" if known and len(known) <= 20 else ""
            raise ResolutionError(
                f"dagRef `{name}`: the DAG has no component named `{name}`{hint}{listing}", ("dagRef",)
            )
        chain = [name]
        i, component = index[name]
        while component.dag_ref is not None:
            target = component.dag_ref
            if target in chain:
                raise ResolutionError(
                    f"template reference cycle: {' -> '.join([*chain, target])}",
                    ("components", i, "dagRef"),
                    anchor="dag",
                )
            if target not in index:
                raise ResolutionError(
                    f"component `{component.name}` is an alias of `{target}`, which is not a component of this "
                    f"DAG{_suggest(target, sorted(index))}",
                    ("components", i, "dagRef"),
                    anchor="dag",
                )
            chain.append(target)
            i, component = index[target]
        return Resolved(component, base_dir, None, i)

    def _from_path(self, ref: str, base_dir: Path | None) -> Resolved:
        path = Path(ref).expanduser()
        if not path.is_absolute():
            path = (base_dir or Path.cwd()) / path
        if not path.is_file():
            where = f" (relative to {base_dir})" if base_dir is not None and not Path(ref).is_absolute() else ""
            raise ResolutionError(f"pathRef `{ref}`: no such file{where}", ("pathRef",))
        try:
            component = as_component(load_file(path))
        except ValueError as exc:
            if isinstance(exc, SpecErrors):
                raise
            raise ResolutionError(f"pathRef `{ref}`: {exc}", ("pathRef",)) from None
        return Resolved(component, path.resolve().parent, str(path))

    def _from_url(self, url: str) -> Resolved:
        """Fetch (or revalidate the cached copy of) ``url`` and read the component in it (``urlref``)."""
        from polynb.compiler import urlref  # urllib's HTTP client and ssl: loaded when a spec names a URL

        try:
            body = urlref.fetch(url)
        except urlref.UrlRefError as exc:
            raise ResolutionError(str(exc), ("urlRef",)) from None
        try:
            component = as_component(load_file(body))
        except ValueError as exc:
            if isinstance(exc, SpecErrors):
                raise
            raise ResolutionError(f"urlRef `{url}`: {exc}", ("urlRef",)) from None
        return Resolved(component, None, str(body))

    def hub(self, ref: str) -> Resolved:
        """Resolve ``hubRef: NAME[:TAG]``: runtime registry, built-in hub, then ``POLYNB_HUB_PATH`` folders."""
        name, tag = split_hub_ref(ref)
        for key in (ref, f"{name}:{tag}" if tag else name, name if tag in (None, "latest") else None):
            if key is not None and key in self._registered:
                return Resolved(self._registered[key], None, None)
        for folder in self._folders():
            file = _hub_file(folder, name, tag)
            if file is None:
                continue
            try:
                component = as_component(load_file(file))
            except ValueError as exc:
                if isinstance(exc, SpecErrors):
                    raise
                raise ResolutionError(f"hubRef `{ref}` ({file}): {exc}", ("hubRef",)) from None
            return Resolved(component, file.resolve().parent, str(file))
        if name in UNSERVED_HUB:
            raise ResolutionError(f"hubRef `{ref}`: Polyaxon's public hub component `{name}` is not served by polynb: "
                                  f"{UNSERVED_HUB[name]}", ("hubRef",))  # fmt: skip
        available = self.hub_names()
        hint = _suggest(ref, available) or _suggest(name, available)
        listing = f"; available: {', '.join(available)}" if available else ""
        raise ResolutionError(
            f"hubRef `{ref}`: no such component in the notebook registry, the built-in hub or {HUB_PATH_ENV}"
            f"{hint}{listing}",
            ("hubRef",),
        )

    def _folders(self) -> list[Path]:
        return ([HUB_DIR] if self._builtin_hub else []) + hub_folders()

    def hub_names(self) -> list[str]:
        """Every name a hubRef can use right now, in lookup order, without duplicates."""
        names = dict.fromkeys(self._registered)
        for folder in self._folders():
            names.update(dict.fromkeys(_hub_names(folder)))
        return list(names)


def _suggest(name: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""
