"""``presets``: named partial operations merged into an operation, in order, as Polyaxon applies them.

A preset is a file ``NAME.yaml`` holding any fields of an operation (Polyaxon's ``isPreset: true``), looked up
in ``$POLYNB_HOME/presets/`` then in the ``presets/`` folder of each ``POLYNB_HUB_PATH`` folder. An operation's
``presets: [a, b]`` apply ``a`` then ``b``; without any, those of the component it runs apply (Polyaxon: "the
default presets of all operations using this component").

Each preset is applied as Polyaxon's ``CompiledOperationSpecification.apply_preset`` does, with the preset's
own ``patchStrategy`` (``post_merge`` by default, so the preset's values win and its list items are appended):

1. its run shortcuts (``container``, ``environment``, ``init``, ``sidecars``, ``connections``, ``volumes``,
   ``ports``) patch the component's run, then its ``runPatch`` does (``compiler.patch``);
2. its top-level fields among ``PATCH_KEYS`` patch the operation's (the operation's value, else the
   component's, is what the preset merges with), mappings such as ``termination`` key by key.

Presets apply after the operation's own ``runPatch`` (Polyaxon resolves them on the compiled operation).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic.alias_generators import to_camel

from polynb.compiler.patch import RunPatchError, apply_run_patch, patch_mapping
from polynb.compiler.registry import hub_folders
from polynb.spec.load import load_preset
from polynb.spec.models import Component, Operation, PatchStrategy, Polyaxonfile
from polynb.store.paths import polynb_home

PRESETS_DIR = "presets"
RUN_SHORTCUTS = ("container", "environment", "init", "sidecars", "connections", "volumes", "ports")
"""A preset's fields that are written into the run (Polyaxon's root shortcuts)."""
PATCH_KEYS = ("description", "tags", "queue", "namespace", "cache", "hooks", "events", "plugins", "termination",
              "mount", "dependencies", "trigger", "conditions", "skip_on_upstream_skip")  # fmt: skip
"""A preset's top-level fields patched into the operation (Polyaxon's ``patch_keys``, less what polynb refuses
in a preset: ``name``, ``presets``, ``isApproved``, ``build``, ``matrix``, ``joins``, ``schedule``)."""
REFUSED_KEYS = ("name", "presets", "is_approved", "build", "matrix", "joins", "schedule", "params", "inputs",
                "outputs", "run", "hub_ref", "dag_ref", "path_ref", "url_ref", "component", "cmd", "env",
                "resources")  # fmt: skip
"""Fields a preset may not set here, each with the reason in ``PresetError``: identity and references belong
to the operation; sweeps, joins and schedules are not patched in by polynb; ``cmd``/``env``/``resources`` are
written in ``runPatch`` instead."""

Spec = TypeVar("Spec", Operation, Component)


class PresetError(ValueError):
    """A preset that cannot be found, read or applied; ``index`` is its position in ``presets``."""

    def __init__(self, message: str, index: int, *, missing: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.index = index
        self.missing = missing
        """Not found here: the file may be valid for Polyaxon (whose presets live in its server), so `check`
        reports it as unsupported, and `run` refuses it."""


def preset_folders() -> list[Path]:
    """Where presets are looked up, in order."""
    return [polynb_home() / PRESETS_DIR, *(folder / PRESETS_DIR for folder in hub_folders())]


def find_preset(name: str, index: int) -> Path:
    folders = preset_folders()
    if "/" in name or "\\" in name or name.startswith("."):
        raise PresetError(f"preset `{name}`: a preset is named, not a path", index)
    for folder in folders:
        for suffix in (".yaml", ".yml"):
            candidate = folder / f"{name}{suffix}"
            if candidate.is_file():
                return candidate
    looked = ", ".join(str(f) for f in folders)
    raise PresetError(f"preset `{name}`: no {name}.yaml in {looked}", index, missing=True)


def read_preset(name: str, index: int) -> Polyaxonfile:
    """The preset ``name`` (``SpecErrors`` for a file that does not validate, positioned in it)."""
    preset = load_preset(find_preset(name, index))
    for key in REFUSED_KEYS:
        if getattr(preset, key) is not None:
            raise PresetError(f"preset `{name}`: `{to_camel(key)}` cannot be set by a preset here (set it on the "
                              "operation)", index)  # fmt: skip
    return preset


def _dump(value: Any) -> Any:
    if isinstance(value, list):
        return [_dump(v) for v in value]
    dump = getattr(value, "model_dump", None)
    return dump(by_alias=True, exclude_none=True, mode="json") if dump is not None else value


def apply_preset(target: Spec, component: Component, preset: Polyaxonfile, name: str, index: int,
                 *, own_component: bool = False) -> tuple[Spec, Component]:  # fmt: skip
    """``target`` (the operation, or a component run as is) and ``component`` with ``preset`` applied.

    ``own_component``: ``target`` is ``component`` (a component run directly): its fields are patched there.
    """
    strategy = preset.patch_strategy or PatchStrategy.POST_MERGE
    run_patch = {to_camel(k): _dump(getattr(preset, k)) for k in RUN_SHORTCUTS if getattr(preset, k) is not None}
    for patch in (run_patch, preset.run_patch):
        if patch:
            try:
                component = apply_run_patch(component, patch, strategy)
            except RunPatchError as exc:
                raise PresetError(f"preset `{name}`: {exc}", index) from None
    if own_component:
        target = component  # type: ignore[assignment]
    keys = [k for k in PATCH_KEYS if getattr(preset, k) is not None]
    if keys:
        fallback = component if target is not component else None
        base = {}
        for k in keys:
            value = getattr(target, k)
            if value is None and fallback is not None and k != "hooks":  # hooks: the component's run anyway
                value = getattr(fallback, k)
            if value is not None:
                base[to_camel(k)] = _dump(value)
        merged = _patch_fields(base, {to_camel(k): _dump(getattr(preset, k)) for k in keys}, strategy)
        try:
            fields = Polyaxonfile.model_validate(merged)  # only the patched fields: nothing else is re-read
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            raise PresetError(f"preset `{name}`: the operation it gives is not valid: {where}: {first['msg']}",
                              index) from None  # fmt: skip
        target = target.model_copy(update={k: getattr(fields, k) for k in keys})
        if own_component:
            component = target  # type: ignore[assignment]
    return target, component


def _patch_fields(current: Mapping[str, Any], patch: Mapping[str, Any], strategy: PatchStrategy) -> dict[str, Any]:
    """Top-level fields: models (``termination``, ``plugins``, ``cache``) key by key, the rest as values."""
    out = dict(current)
    for key, value in patch.items():
        existing = out.get(key)
        if isinstance(existing, Mapping) and isinstance(value, Mapping):
            out[key] = patch_mapping(existing, value, strategy)
        else:
            out[key] = patch_mapping({key: existing} if existing is not None else {}, {key: value}, strategy)[key]
    return out


def apply_presets(target: Spec, component: Component, names: Sequence[str],
                  *, own_component: bool = False) -> tuple[Spec, Component]:  # fmt: skip
    """Apply the presets ``names`` in order (``PresetError``/``SpecErrors`` on the first that fails)."""
    for index, name in enumerate(names):
        preset = read_preset(name, index)
        target, component = apply_preset(target, component, preset, name, index, own_component=own_component)
    return target, component
