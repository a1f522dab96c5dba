"""Polyaxonfile YAML -> models, with every validation problem as a positioned, plain-words ``SpecError``."""

from __future__ import annotations

import types
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Annotated, Any, ForwardRef, Literal, Union, get_args, get_origin, get_type_hints

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from polynb.spec import models
from polynb.spec.errors import SpecError, SpecErrors, format_path
from polynb.spec.suggest import did_you_mean
from polynb.spec.yaml_loader import Document, PathPart, describe_value, gc_paused, parse, read_source

_ROOT_MODELS: dict[str, type[BaseModel]] = {"Component": models.Component, "Operation": models.Operation}
# What a value of each enum is called in a message: "'x' is not an event kind".
_ENUM_NOUNS: dict[type[Enum], str] = {
    models.EventKind: "an event kind",
    models.TriggerPolicy: "a trigger policy",
    models.HookTrigger: "a hook trigger",
    models.Status: "a status",
    models.PatchStrategy: "a patch strategy",
}
# Kinds of older Polyaxon versions that 2.18 spells otherwise.
_RENAMED_KINDS = {
    "hyperopt": " (Polyaxon 2.18 calls the Hyperopt search `tpe`: `kind: tpe`, without `algorithm`)",
    "daskjob": " (Polyaxon 2.18 runs Dask as `kind: daskcluster`)",
    "rayjob": " (Polyaxon 2.18 runs Ray as `kind: raycluster`, with an `entrypoint`)",
    "xgbjob": " (Polyaxon 2 dropped the XGBoost operator: use a pytorchjob, an mpijob or a job)",
    "mxjob": " (Polyaxon 2 dropped the MXNet operator: use a pytorchjob, an mpijob or a job)",
    "paddlejob": " (Polyaxon 2 dropped the Paddle operator: use a pytorchjob, an mpijob or a job)",
}
# The plain-words expectation behind pydantic's type errors.
_EXPECTED: dict[str, str] = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "a boolean (true or false)",
    "bool_parsing": "a boolean (true or false)",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def load(path: str | Path) -> models.Component | models.Operation:
    """Read, parse and validate a Polyaxonfile; raise ``SpecErrors`` (also when it cannot be read)."""
    try:
        raw = read_source(path)
    except OSError as e:
        reason = e.strerror or str(e)
        raise SpecErrors([SpecError(str(path), 0, 0, format_path(()), f"cannot read the file: {reason}")]) from None
    return load_data(parse(raw, str(path)))


def load_text(text: str | bytes, filename: str = "<string>") -> models.Component | models.Operation:
    """Parse and validate Polyaxonfile text; raise ``SpecErrors``."""
    return load_data(parse(text, filename))


def load_preset(path: str | Path) -> models.Polyaxonfile:
    """Read a preset (Polyaxon's ``isPreset: true`` operation: any fields of an operation, none required);
    raise ``SpecErrors`` positioned in the file."""
    try:
        raw = read_source(path)
    except OSError as e:
        reason = e.strerror or str(e)
        raise SpecErrors([SpecError(str(path), 0, 0, format_path(()), f"cannot read the file: {reason}")]) from None
    document = parse(raw, str(path))
    if not isinstance(document.data, dict):
        raise SpecErrors([SpecError(str(path), 1, 1, format_path(()), "a preset is a mapping of operation fields")])
    try:
        return models.Polyaxonfile.model_validate(document.data)
    except ValidationError as e:
        details = e.errors(include_url=False)
        raise SchemaErrors(translate(details, document, models.Polyaxonfile), details) from None


class SchemaErrors(SpecErrors):
    """The document parsed but does not validate; ``details`` are pydantic's errors, for
    :func:`polynb.spec.salvage.salvage` (what can still be checked)."""

    def __init__(self, errors: list[SpecError], details: list[ErrorDetails]) -> None:
        super().__init__(errors)
        self.details = details


def load_data(document: Document) -> models.Component | models.Operation:
    """Validate a parsed document; pydantic's errors become ``SchemaErrors`` positioned in the document."""
    try:
        with gc_paused():  # a 100,000-op DAG builds millions of objects: full collections would dominate
            return models.parse_polyaxonfile(document.data)
    except ValidationError as e:
        root = _ROOT_MODELS.get(e.title, models.Component)
        details = e.errors(include_url=False)
        raise SchemaErrors(translate(details, document, root), details) from None


def error_path(error: ErrorDetails, data: Any) -> tuple[PathPart, ...]:
    """Where in ``data`` a pydantic error is (its ``loc`` without the union tags pydantic inserts)."""
    return _entry(error, data).path


# ----------------------------------------------------------------------------- error translation


@dataclass
class _Entry:
    error: ErrorDetails
    path: tuple[PathPart, ...]  # the path in the document, union tags dropped
    tags: list[int]  # indexes in ``loc`` of the union tags pydantic inserted


def translate(errors: Sequence[ErrorDetails], document: Document, root: type[BaseModel]) -> list[SpecError]:
    """One ``SpecError`` per problem: union alternatives are folded, messages in plain words."""
    entries = [_entry(error, document.data) for error in errors]
    out: list[SpecError] = []
    for group in _fold_unions(entries):
        out.append(_to_spec_error(group, document, root))
    return drop_explained_missing(list({(e.line, e.column, e.path, e.message): e for e in out}.values()))


def drop_explained_missing(errors: list[SpecError]) -> list[SpecError]:
    """A misspelled required key is one mistake, not two: ``containr:`` makes pydantic (or ``check``, for a key
    required once patches apply) report both the unexpected ``containr`` and the missing ``container``; keep the
    first, which says "did you mean"."""
    suggested = {
        (_parent(e.path), hint)
        for e in errors
        if e.message.startswith("unexpected key ") and (hint := _suggestion(e.message)) is not None
    }
    return [
        e
        for e in errors
        if not (
            e.message.startswith(f"missing required field '{_leaf(e.path)}'")
            and (_parent(e.path), _leaf(e.path)) in suggested
        )
    ]


def _suggestion(message: str) -> str | None:
    marker = "; did you mean '"
    if marker not in message:
        return None
    return message.split(marker, 1)[1].split("'", 1)[0]


def _parent(path: str) -> str:
    return path.rpartition(".")[0]


def _leaf(path: str) -> str:
    return path.rpartition(".")[2]


def _entry(error: ErrorDetails, data: Any) -> _Entry:
    """Walk ``loc`` through the data: parts that index into it are the path, the others are union tags."""
    path: list[PathPart] = []
    tags: list[int] = []
    node = data
    loc = error["loc"]
    tagged = False  # whether the node's kind tag was met already (it is met once per node)
    for i, part in enumerate(loc):
        if not tagged and _is_kind_tag(node, part, loc[i + 1 :], error["type"]):
            tags.append(i)  # `kind: cron` tags the union with `cron`, which is also a key of a cron schedule
            tagged = True
        elif isinstance(node, dict | list) and _has(node, part):
            tagged = False
            path.append(part)
            node = node[part]  # type: ignore[index]
        elif i == len(loc) - 1 and isinstance(node, dict) and error["type"] == "missing":
            path.append(part)  # the missing key itself
        else:
            tags.append(i)
    return _Entry(error, tuple(path), tags)


def _is_kind_tag(node: Any, part: Any, rest: tuple[Any, ...], kind: str) -> bool:
    """Whether ``part`` is the discriminator tag pydantic put in ``loc`` although the data has a key of that
    name: the rest of ``loc`` then continues in ``node`` itself, not in ``node[part]``."""
    if not (isinstance(node, dict) and part in node and node.get("kind") == part):
        return False
    return not rest or rest[0] in node or (len(rest) == 1 and kind == "missing")


def _fold_unions(entries: list[_Entry]) -> list[list[_Entry]]:
    """Group the errors pydantic reports for each alternative of a (non-discriminated) union.

    Alternatives are errors whose ``loc`` agree up to a tag and differ in it. The alternative that got
    deepest into the data is the one the author meant; when all failed at the union itself, their
    expectations are merged into one message ("expected a string or a list").
    """
    tags_at: dict[tuple[Any, ...], set[Any]] = {}
    for entry in entries:
        loc = entry.error["loc"]
        for i in entry.tags:
            tags_at.setdefault(tuple(loc[:i]), set()).add(loc[i])
    groups: dict[tuple[Any, ...], list[_Entry]] = {}
    singles: list[list[_Entry]] = []
    for entry in entries:
        loc = entry.error["loc"]
        union = next((tuple(loc[:i]) for i in reversed(entry.tags) if len(tags_at[tuple(loc[:i])]) > 1), None)
        if union is None:
            singles.append([entry])
        else:
            groups.setdefault(union, []).append(entry)
    for union, group in groups.items():
        deepest = max(len(e.path) for e in group)
        depth_at_union = min(len(e.path) for e in group)
        if deepest == depth_at_union:
            if not _deeper_elsewhere(union, group, entries):
                singles.append(group)
            continue
        branch = len(union)
        best = {e.error["loc"][branch] for e in group if len(e.path) == deepest}
        singles.extend([e] for e in group if e.error["loc"][branch] in best)
    return singles


def _deeper_elsewhere(union: tuple[Any, ...], group: list[_Entry], entries: list[_Entry]) -> bool:
    """Whether another alternative of ``union`` got deeper into the data than ``group`` (whose alternatives
    all failed at the union itself): ``earlyStopping: [...]`` failing deep inside the list alternative must
    not also report "expected a string" for the ``{{ ... }}`` alternative."""
    depth = len(group[0].path)
    tags = {e.error["loc"][len(union)] for e in group if len(e.error["loc"]) > len(union)}
    return any(
        len(e.path) > depth
        and tuple(e.error["loc"][: len(union)]) == union
        and len(e.error["loc"]) > len(union)
        and e.error["loc"][len(union)] not in tags
        for e in entries
    )


def _to_spec_error(group: list[_Entry], document: Document, root: type[BaseModel]) -> SpecError:
    entry = group[0]
    error = entry.error
    path = entry.path
    kind = error["type"]
    if len(group) > 1:
        expected = [_EXPECTED.get(e.error["type"]) for e in group]
        if all(expected):
            nouns = list(dict.fromkeys(x for x in expected if x))
            message = f"expected {_join_or(nouns)}, got {_show(error['input'])}"
            return document.error(path, message)
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        # The problem is the discriminator (`kind: jbo`, or no kind): name it in the path.
        path = (*path, str((error.get("ctx") or {}).get("discriminator", "'kind'")).strip("'"))
    if kind == "extra_forbidden":
        return document.error(path, _unexpected_key(path, document.data, root), key=True)
    if kind == "invalid_key":
        return _invalid_key(entry, document)
    message = _message(error, path, document.data, root)
    return document.error(path, message)


def _message(error: ErrorDetails, path: tuple[PathPart, ...], data: Any, root: type[BaseModel]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error["input"]
    if kind == "missing":
        return f"missing required field '{path[-1]}'" if path else "missing required field"
    if kind == "enum":
        enum = _annotation_at(root, path, data)
        noun = _ENUM_NOUNS.get(enum, "one of the allowed values") if isinstance(enum, type) else "allowed"
        allowed = [m.value for m in enum] if isinstance(enum, type) and issubclass(enum, Enum) else []
        return _not_one_of(value, noun, allowed or _quoted_list(str(ctx.get("expected", ""))))
    if kind == "literal_error":
        allowed = _quoted_list(str(ctx.get("expected", "")))
        is_file_kind = bool(path) and path[-1] == "kind" and "component" in allowed
        noun = "a Polyaxonfile kind" if path == ("kind",) or is_file_kind else "an allowed value"
        if is_file_kind and isinstance(value, str) and value in _run_kinds():
            return (
                f"'{value}' is a run kind, not a Polyaxonfile kind (component or operation): it belongs under"
                f" `run:` (`run: {{kind: {value}, container: ...}}`); check the indentation of `kind:` and the"
                " lines after it"
            )
        return _not_one_of(value, noun, allowed)
    if kind == "union_tag_invalid":
        allowed = _quoted_list(str(ctx.get("expected_tags", "")))
        message = _not_one_of(ctx.get("tag"), "a run kind" if path[-2:] == ("run", "kind") else "a known kind", allowed)
        return message + _RENAMED_KINDS.get(str(ctx.get("tag")), "")
    if kind == "union_tag_not_found":
        allowed = _quoted_list(_expected_tags(root, path[:-1], data))
        return f"missing required field 'kind' (one of {', '.join(allowed)})" if allowed else "missing 'kind'"
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", error["msg"])).removeprefix("Value error, ")
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {_show(value)}{_yaml11_hint(value)}"
    if kind == "too_short":
        return (
            f"expected at least {ctx.get('min_length')} item(s), got {len(value) if hasattr(value, '__len__') else 0}"
        )
    if kind == "too_long":
        return f"expected at most {ctx.get('max_length')} item(s)"
    if kind == "greater_than":
        return f"expected a number greater than {ctx.get('gt')}, got {_show(value)}"
    if kind == "greater_than_equal":
        return f"expected a number of at least {ctx.get('ge')}, got {_show(value)}"
    if kind == "less_than":
        return f"expected a number below {ctx.get('lt')}, got {_show(value)}"
    if kind == "less_than_equal":
        return f"expected a number of at most {ctx.get('le')}, got {_show(value)}"
    return f"{error['msg'][:1].lower()}{error['msg'][1:]}, got {_show(value)}"


def _run_kinds() -> set[str]:
    runs = (models.Job, models.Notifier, models.Cleaner, models.Tuner, models.Service, models.TFJob,
            models.PytorchJob, models.MPIJob, models.DaskCluster, models.RayCluster, models.Dag)  # fmt: skip
    return {str(k) for run in runs for k in _kind_values(run)}


def _not_one_of(value: Any, noun: str, allowed: list[str]) -> str:
    if not isinstance(value, str):
        return f"expected {noun}, got {_show(value)}" + (f" (one of {', '.join(allowed)})" if allowed else "")
    hint = did_you_mean(value, allowed)
    if hint:
        return f"'{value}' is not {noun}{hint}"
    return f"'{value}' is not {noun}; expected one of {', '.join(allowed)}"


def _unexpected_key(path: tuple[PathPart, ...], data: Any, root: type[BaseModel]) -> str:
    key = str(path[-1])
    model = _annotation_at(root, path[:-1], data)
    aliases = _aliases(model) if isinstance(model, type) and issubclass(model, BaseModel) else []
    hint = did_you_mean(key, aliases)
    where = " at the top level of a Polyaxonfile" if len(path) == 1 else ""
    return f"unexpected key '{key}'{where}{hint}"


def _invalid_key(entry: _Entry, document: Document) -> SpecError:
    """A non-string key where field names belong: YAML 1.1 turned ``on:``/``yes:``/``1:`` into a bool or number."""
    # The key stands for itself in ``loc``; `on` (True) appears there as 1, hence the position lookup by value.
    loc = entry.error["loc"]
    parent = entry.path[:-1] if entry.path and entry.path[-1] == loc[-1] else entry.path
    key = entry.error["input"]
    line, column = document.position((*parent, key), key=True)
    written = document.text.splitlines()[line - 1][column - 1 :].split(":", 1)[0].strip() if line else str(key)
    message = f"key '{written}' is read as {describe_value(key)} ({_show(key)}), but field names are strings"
    if isinstance(key, bool):
        message += "; YAML 1.1 reads unquoted on/off/yes/no as booleans: quote the key"
    return SpecError(document.filename, line, column, format_path((*parent, written)), message)


def _yaml11_hint(value: Any) -> str:
    if isinstance(value, bool):
        return " (YAML 1.1 reads unquoted yes/no/on/off/true/false as booleans: quote it for a string)"
    return ""


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f"'{value}'" if len(value) <= 60 else f"'{value[:57]}...'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return str(value)
    return describe_value(value)


def _join_or(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _quoted_list(text: str) -> list[str]:
    """pydantic's "'a', 'b' or 'c'" -> ['a', 'b', 'c']."""
    return [part.strip().strip("'") for part in text.replace(" or ", ", ").split(",") if part.strip()]


# ---------------------------------------------------------------------------- model introspection


def _field_type(model: type[BaseModel], name: str, field: FieldInfo) -> Any:
    """``field``'s type, its forward references resolved: a model that has not validated yet (built on first use)
    keeps those it could not resolve when its class was made (a DAG's ``list[Operation]``) as ``ForwardRef``."""
    if isinstance(field.annotation, ForwardRef | str):
        return _resolved_hints(model)[name]
    return field.annotation


@cache
def _resolved_hints(model: type[BaseModel]) -> dict[str, Any]:
    return get_type_hints(model, include_extras=True)


def _aliases(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def _annotation_at(root: type[BaseModel], path: Sequence[PathPart], data: Any) -> Any:
    """The type of the field at ``path`` (a model class, an enum, ...), unions chosen by the data."""
    tp: Any = root
    node = data
    for part in path:
        tp = _pick(tp, node)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            found = next(((n, f) for n, f in tp.model_fields.items() if (f.alias or n) == part or n == part), None)
            if found is None:
                return None
            tp = _field_type(tp, *found)
        elif get_origin(tp) is list and isinstance(part, int):
            tp = get_args(tp)[0]
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        else:
            return None
        node = node[part] if isinstance(node, dict | list) and _has(node, part) else None  # type: ignore[index]
    return _pick(tp, node)


def _has(node: dict[Any, Any] | list[Any], part: PathPart) -> bool:
    if isinstance(node, dict):
        return part in node
    return isinstance(part, int) and 0 <= part < len(node)


def _pick(tp: Any, node: Any) -> Any:
    """Unwrap ``Annotated`` and unions; for a union of models, the member whose ``kind`` matches the data."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin is Union or origin is types.UnionType:
            members = [m for m in get_args(tp) if m is not type(None)]
            tp = _member_for(members, node)
        else:
            return tp


def _member_for(members: list[Any], node: Any) -> Any:
    model_members = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
    if isinstance(node, dict) and model_members:
        kind = node.get("kind")
        for member in model_members:
            if kind in _kind_values(member):
                return member
        return model_members[0]
    return members[0] if members else None


def _kind_values(model: type[BaseModel]) -> tuple[Any, ...]:
    field = model.model_fields.get("kind")
    if field is None:
        return ()
    return tuple(
        arg
        for member in _flatten(_field_type(model, "kind", field))
        if get_origin(member) is Literal
        for arg in get_args(member)
    )


def _flatten(tp: Any) -> list[Any]:
    origin = get_origin(tp)
    if origin is Union or origin is types.UnionType:
        return [m for arg in get_args(tp) for m in _flatten(arg)]
    return [tp]


def _expected_tags(root: type[BaseModel], path: Sequence[PathPart], data: Any) -> str:
    """The run kinds a discriminated union accepts, as pydantic words them ("'job', 'service'")."""
    tp = _annotation_at(root, path[:-1], data) if path else None
    if not (isinstance(tp, type) and issubclass(tp, BaseModel)):
        return ""
    field = tp.model_fields.get(str(path[-1]))
    members = _flatten(_unannotate(_field_type(tp, str(path[-1]), field))) if field is not None else []
    kinds = [k for m in members if isinstance(m, type) and issubclass(m, BaseModel) for k in _kind_values(m)]
    return ", ".join(f"'{k}'" for k in dict.fromkeys(kinds))


def _unannotate(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    if get_origin(tp) is Union or get_origin(tp) is types.UnionType:
        return Union[tuple(_unannotate(a) for a in get_args(tp))]  # noqa: UP007 - built at runtime
    return tp


__all__ = ["SchemaErrors", "error_path", "load", "load_data", "load_text", "translate"]
