"""``cache``: when an op may reuse the outputs of an earlier run instead of running (Polyaxon's ``V1Cache``).

An op whose component or operation has a ``cache`` section (not ``disable: true``) gets a cache key when it
compiles: a hash of what makes its result, as Polyaxon's cache manager counts it: the ``sections`` (default
``init``, ``connections`` and ``containers``: the main container's image, command and args, and the init
entries; polynb has no connections) and its inputs (only those named in ``io``, when given), the run's own
uuid and DAG uuid left out (they are in every templated path). A run that ``succeeded`` with the same key and
finished within ``ttl`` seconds (any age without one) is a hit: the op does not run, it ends ``succeeded``
(reason ``Cached``) with that run's outputs. Its artifacts stay in the earlier run's folder, which the message
names.

polynb caches only where a ``cache`` section asks for it (Polyaxon's server caches DAG and sweep runs by
default): an op without one always runs, as before.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from polynb.compiler.compile import render_section
from polynb.compiler.errors import CompileError, TemplateError
from polynb.compiler.templates import is_template, render_value, to_bool
from polynb.compiler.types import CompiledOp
from polynb.spec.models import Component, Operation
from polynb.spec.plugins import Cache

DEFAULT_SECTIONS = ("containers", "init", "connections")
CACHE_META_KEY = "cache_key"
"""The run's ``meta`` entry holding its key."""


def cache_of(operation: Operation | None, component: Component) -> Cache | None:
    """The cache section that applies, the operation's over the component's; None when caching is off."""
    cache = operation.cache if operation is not None and operation.cache is not None else component.cache
    if cache is None or cache.disable is True:
        return None
    return cache


def rendered_cache(cache: Cache, context: Mapping[str, Any]) -> Cache | None:
    """``cache`` with its templated fields rendered in the op's ``context`` (``disable: "{{ no_cache }}"``), or the
    whole section written as one template (``cache: "{{ c }}"``), as Polyaxon renders them when it compiles; None
    when it renders to ``disable: true`` (or to nothing). A field that renders to
    something it cannot be raises :class:`CompileError` (the op fails before anything runs)."""
    rendered = render_section(cache, context, "cache")  # written whole as one template: rendered first
    if rendered is None:
        return None
    if rendered is not cache:
        return None if rendered.disable is True else rendered
    fields: dict[str, Any] = {}
    for name in ("disable", "ttl", "io", "sections"):
        value = getattr(cache, name)
        if not (isinstance(value, str) and is_template(value)):
            continue
        try:
            value = render_value(value, context)
        except TemplateError as exc:
            raise CompileError(f"cache.{name}: {exc.message}") from exc
        fields[name] = _cache_field(name, value)
    if not fields:
        return None if cache.disable is True else cache
    out = cache.model_copy(update=fields)
    return None if out.disable is True else out


def _cache_field(name: str, value: Any) -> Any:
    if name == "disable":
        flag = to_bool(value)
        if flag is None:
            raise CompileError(f"cache.disable: expected true or false, the template gave {value!r}")
        return flag
    if name == "ttl":
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise CompileError(f"cache.ttl: expected a number of seconds, the template gave {value!r}")
        return value
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise CompileError(f"cache.{name}: expected a list of names, the template gave {value!r}")
    if name == "sections" and (unknown := [s for s in value if s not in DEFAULT_SECTIONS]):
        raise CompileError(f"cache.sections: {', '.join(map(repr, unknown))} is not a section "
                           f"({', '.join(DEFAULT_SECTIONS)})")  # fmt: skip
    return value


def ttl_of(cache: Cache) -> float | None:
    """Seconds a hit may be old; None: any age. A ``ttl`` left as a template never matches (no caching)."""
    if cache.ttl is None:
        return None
    return float(cache.ttl) if isinstance(cache.ttl, int) else 0.0


def cache_key(op: CompiledOp, cache: Cache) -> str:
    """The hash two runs must share for one to reuse the other's outputs."""
    sections = cache.sections if isinstance(cache.sections, list) else list(DEFAULT_SECTIONS)
    io = cache.io if isinstance(cache.io, list) else None
    state: dict[str, Any] = {"kind": op.kind}
    if "containers" in sections:
        c = op.container
        state["containers"] = {"image": c.image, "command": list(c.command), "args": list(c.args)}
    if "init" in sections:
        state["init"] = [{"kind": s.kind, "spec": s.spec, "path": s.path} for s in op.init]
    state["inputs"] = {k: v for k, v in sorted(op.inputs.items()) if io is None or k in io}
    text = json.dumps(state, sort_keys=True, default=str)
    for own in (op.uuid, op.dag_uuid):
        if own:
            text = text.replace(own, "<uuid>")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
