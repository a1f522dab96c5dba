"""``runPatch``: an operation's changes to its component's ``run``, applied with ``patchStrategy``.

Polyaxon's semantics (``BaseSchemaModel.patch_obj`` in its config library, ``polyaxon/_flow/run/patch.py``):
a key the patch does not set is left alone; a key the run does not set takes the patch's value; otherwise,
by strategy,

* ``post_merge`` (the default): mappings are merged recursively with the patch winning, lists keep the run's
  items then append the patch's new ones, other values are the patch's;
* ``pre_merge``: the same with the run winning (the patch's list items first);
* ``replace``: the patch's value;
* ``isnull``: the run's value (the patch only fills what is unset).

Sections that are models in Polyaxon (the run itself, ``environment``, ``container``, the replicas of
distributed kinds, their policies) are patched key by key with the same rule; everything else (``labels``,
``resources``, ``nodeSelector``, lists such as ``init`` or ``env``) is a value. The result is validated
again as the run's kind.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from pydantic import BaseModel, TypeAdapter, ValidationError

from polynb.spec.base import DEFERRED
from polynb.spec.models import Component, PatchStrategy, Run

# Keys whose value is a model in Polyaxon: patched key by key rather than as one value.
_MODEL_KEYS = frozenset({"environment", "container", "chief", "ps", "worker", "evaluator", "master", "launcher",
                         "scheduler", "head", "elasticPolicy", "schedulingPolicy", "autoscalerOptions"})  # fmt: skip
# Polyaxon patches the entries of these mappings that the run has (`_FIELDS_DICT_PATCH`), each as a model.
_MODEL_MAPS = frozenset({"workers"})
_RUN = TypeAdapter(Run, config=DEFERRED)

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails


def _deep_update(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_update(dict(out[key]), value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _merge_value(current: Any, value: Any, strategy: PatchStrategy) -> Any:
    if strategy is PatchStrategy.ISNULL:
        return current
    if strategy is PatchStrategy.REPLACE:
        return copy.deepcopy(value)
    post = strategy is PatchStrategy.POST_MERGE
    if isinstance(current, Mapping) and isinstance(value, Mapping):
        return _deep_update(dict(current), value) if post else _deep_update(dict(value), current)
    if isinstance(current, list) and isinstance(value, list):
        if post:
            return [*current, *(copy.deepcopy(i) for i in value if i not in current)]
        return [*copy.deepcopy(value), *(i for i in current if i not in value)]
    return copy.deepcopy(value) if post else current


def patch_mapping(current: Mapping[str, Any], patch: Mapping[str, Any], strategy: PatchStrategy) -> dict[str, Any]:
    """``current`` (a run, as its Polyaxonfile mapping) with ``patch`` applied key by key."""
    out = dict(current)
    for key, value in patch.items():
        if value is None:
            continue
        existing = out.get(key)
        if existing is None:
            out[key] = copy.deepcopy(value)
        elif key in _MODEL_KEYS and isinstance(existing, Mapping) and isinstance(value, Mapping):
            out[key] = patch_mapping(existing, value, strategy)
        elif key in _MODEL_MAPS and isinstance(existing, Mapping) and isinstance(value, Mapping):
            out[key] = {
                name: patch_mapping(entry, value.get(name) or {}, strategy) if isinstance(entry, Mapping) else entry
                for name, entry in existing.items()
            }
        else:
            out[key] = _merge_value(existing, value, strategy)
    return out


class RunPatchError(ValueError):
    """The patched run is not a valid run of its kind; ``errors`` are pydantic's, located in the patched run."""

    def __init__(self, message: str, location: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.location = location
        """Where in the patched run the problem is (``("container", "imagee")``)."""


def apply_run_patch(component: Component, patch: Mapping[str, Any], strategy: PatchStrategy | None) -> Component:
    """A copy of ``component`` whose ``run`` has ``patch`` applied (``post_merge`` unless ``strategy``).

    The patch cannot change the run's kind. Raise :class:`RunPatchError` when the result does not validate.
    """
    run = component.run
    if run is None:
        raise RunPatchError("`runPatch` needs a component with a `run` to patch")
    kind = str(run.kind)
    if "kind" in patch and patch["kind"] != kind:
        raise RunPatchError(f"`runPatch` cannot change the run kind (`{kind}` to `{patch['kind']}`)", ("kind",))
    current = run.model_dump(by_alias=True, exclude_none=True, mode="json")
    merged = patch_mapping(current, patch, strategy or PatchStrategy.POST_MERGE)
    try:
        new_run = _RUN.validate_python(merged)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        loc = tuple(errors[0]["loc"][1:])  # loc[0] is the run kind's tag
        said = _said(errors, merged, type(run))
        raise RunPatchError(f"the patched run is not a valid `{kind}`: {said}", loc) from None
    return component.model_copy(update={"run": new_run})


_OPERATION_KEYS = frozenset({"termination", "params", "presets", "queue", "cache", "plugins", "hooks", "matrix",
                             "joins", "schedule", "events", "dependencies", "trigger", "conditions"})  # fmt: skip
"""Keys of an operation (or a component) that a run does not have: a patch naming one is misplaced."""


def _said(errors: list[Any], merged: dict[str, Any], model: type[BaseModel]) -> str:
    """The first problem in the words ``check`` uses elsewhere (``unexpected key 'imagee'; did you mean 'image'?``),
    not pydantic's, with where it is in the run."""
    from polynb.spec.load import translate
    from polynb.spec.yaml_loader import Document

    first = errors[0]
    loc = tuple(first["loc"][1:])
    where = ".".join(str(p) for p in loc) or "run"
    if first["type"] == "extra_forbidden" and len(loc) == 1 and loc[0] in _OPERATION_KEYS:
        return f"{where}: `{loc[0]}` is not a field of a run: write it on the operation itself, not in `runPatch`"
    shifted = [cast("ErrorDetails", {**e, "loc": tuple(e["loc"][1:])}) for e in errors[:1]]
    translated = translate(shifted, Document(merged, "<runPatch>", "{}"), model)
    return f"{where}: {translated[0].message}" if translated else f"{where}: {first['msg']}"
