"""Rendering of ``{{ }}`` templates: one sandboxed, immutable Jinja2 environment with strict undefined.

Templates come from Polyaxonfiles and may be fed values from upstream runs, so the environment is locked
down: no loader (``{% include %}``/``{% import %}`` fail), the immutable sandbox (no attribute starting with
``_``, no mutating methods, no ``str.format`` escapes), strict undefined (a misspelt name is an error, never an
empty string), and size caps (:mod:`polynb.compiler.template_limits`) so a template cannot allocate gigabytes.

A string that is exactly one ``{{ expr }}`` renders to the expression's native value (``"{{ uuids }}"`` stays a
list, ``"{{ n }}"`` an int); anything else renders to a string. Native values are plain data: ``str`` (never
``Markup``, which ``tojson`` and ``e`` return), ``int``, ``float``, ``bool``, ``None``, lists and dicts of them;
other iterables become lists and other objects their text, as ``x={{ x }}`` would show them. A rendered value
over ``POLYNB_MAX_RENDERED_CHARS`` is an error. Rendered values are never rendered again, so a value that
happens to contain ``{{`` (an upstream output, say) is data, not a template.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Set, ValuesView
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NoReturn

from polynb.compiler.errors import ConditionError, TemplateError
from polynb.limits import MAX_RENDERED_CHARS, LimitError

if TYPE_CHECKING:
    from jinja2 import Template
    from jinja2.environment import TemplateExpression

__all__ = [  # and ENV, map_format: see __getattr__
    "evaluate_conditions",
    "is_template",
    "render_str",
    "render_value",
    "to_bool",
]

# Exactly one `{{ ... }}` and nothing around it; the body holds no other delimiter.
_SINGLE_EXPRESSION = re.compile(r"\{\{((?:(?!\{\{|\}\}|\{%|%\}|\{#).)*)\}\}", re.DOTALL)
_CACHE_SIZE = 8192
_MESSAGE_WIDTH = 200


def __getattr__(name: str) -> Any:
    """``ENV`` and ``map_format`` live in :mod:`.sandbox`, which loads Jinja2: imported on first use."""
    if name in ("ENV", "map_format"):
        from polynb.compiler import sandbox

        return getattr(sandbox, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _short(text: str) -> str:
    return text if len(text) <= _MESSAGE_WIDTH else text[: _MESSAGE_WIDTH - 3] + "..."


def _fail(source: str, exc: BaseException) -> NoReturn:
    from jinja2 import TemplateError as JinjaTemplateError

    reason = exc.message if isinstance(exc, JinjaTemplateError) and exc.message else str(exc)
    if not isinstance(exc, JinjaTemplateError | LimitError):
        reason = f"{type(exc).__name__}: {reason}"
    raise TemplateError(source, reason) from exc


@lru_cache(maxsize=_CACHE_SIZE)
def _template(source: str) -> Template:
    from polynb.compiler.sandbox import ENV

    try:
        return ENV.from_string(source)
    except Exception as exc:  # syntax errors and anything the parser raises
        _fail(source, exc)


@lru_cache(maxsize=_CACHE_SIZE)
def _expression(source: str, body: str) -> TemplateExpression:
    from polynb.compiler.sandbox import ENV

    try:
        return ENV.compile_expression(body, undefined_to_none=False)
    except Exception as exc:
        _fail(source, exc)


def is_template(value: object) -> bool:
    """Whether ``value`` is a string with a ``{{ }}`` expression or a ``{% %}`` statement."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _single_expression(text: str) -> str | None:
    """The body of ``{{ body }}`` when ``text`` is exactly one expression, with whitespace-control marks removed."""
    match = _SINGLE_EXPRESSION.fullmatch(text)
    if match is None:
        return None
    body = match.group(1)
    # `{{- x -}}` / `{{+ x +}}`: whitespace control, not a sign (Jinja reads them the same way).
    if body.startswith(("-", "+")):
        body = body[1:]
    if body.endswith(("-", "+")):
        body = body[:-1]
    return body


def _check_defined(value: Any) -> None:
    """Raise for an undefined value anywhere in a native result (``{{ [a, missing] }}``)."""
    from jinja2 import Undefined

    def check(value: Any) -> None:
        if isinstance(value, Undefined):
            value._fail_with_undefined_error()
        if isinstance(value, list | tuple | set | frozenset):
            for item in value:
                check(item)
        elif isinstance(value, dict):
            for key, item in value.items():
                check(key)
                check(item)

    check(value)


def render_str(text: str, context: Mapping[str, Any]) -> str:
    """Render ``text`` to a string; raise :class:`TemplateError` naming the template and the cause.

    The output is gathered piece by piece, so a loop that would print gigabytes stops at the size limit.
    """
    template = _template(text)
    try:
        limit = MAX_RENDERED_CHARS.value()
        parts: list[str] = []
        size = 0
        for part in template.generate(context):
            size += len(part)
            if limit is not None and size > limit:
                MAX_RENDERED_CHARS.check(size, "the rendered value is", at_least=True)
            parts.append(part)
        return "".join(parts)  # a plain str even when the parts are Markup
    except Exception as exc:
        _fail(text, exc)


class _Budget:
    """Characters (and items) a native value may still take before it is over the size limit."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.used = 0

    def take(self, size: int) -> None:
        self.used += size
        if self.limit is not None and self.used > self.limit:
            MAX_RENDERED_CHARS.check(self.used, "the rendered value is", at_least=True)


def _plain(value: Any, budget: _Budget) -> Any:
    """``value`` as plain data (see the module docstring), its size taken from ``budget``."""
    kind = type(value)
    if kind is str:
        budget.take(len(value))
        return value
    if value is None or kind is bool or kind is int or kind is float:
        budget.take(1)
        return value
    if isinstance(value, str):  # Markup (`tojson`, `e`) and other str subclasses
        budget.take(len(value))
        return str.__str__(value)
    if isinstance(value, bool | int | float):  # subclasses (enums): their plain value
        budget.take(1)
        return bool(value) if isinstance(value, bool) else int(value) if isinstance(value, int) else float(value)
    if isinstance(value, Mapping):
        budget.take(1)
        return {_plain(k, budget): _plain(v, budget) for k, v in value.items()}
    if isinstance(value, list | tuple | Set | ValuesView | Iterator | range):
        budget.take(1)
        return [_plain(item, budget) for item in value]
    text = str(value)  # another object (a dict view, a namespace, a function): as `x={{ x }}` would print it
    budget.take(len(text))
    return str.__str__(text)


def _render_string(text: str, context: Mapping[str, Any]) -> Any:
    if not is_template(text):
        return text
    body = _single_expression(text)
    if body is None:
        return render_str(text, context)
    expression = _expression(text, body)
    try:
        value = expression(context)
        _check_defined(value)
        return _plain(value, _Budget(MAX_RENDERED_CHARS.value()))
    except Exception as exc:
        _fail(text, exc)


def render_value(obj: Any, context: Mapping[str, Any]) -> Any:
    """Render every template string in ``obj`` (walking dicts, lists and tuples; keys are left alone).

    A string that is exactly one ``{{ expr }}`` becomes the native value of ``expr``; other template strings
    become strings; non-template values are returned unchanged.
    """
    if isinstance(obj, str):
        return _render_string(obj, context)
    if isinstance(obj, dict):
        return {key: render_value(item, context) for key, item in obj.items()}
    if isinstance(obj, list):
        return [render_value(item, context) for item in obj]
    if isinstance(obj, tuple):
        return tuple(render_value(item, context) for item in obj)
    return obj


def to_bool(value: Any) -> bool | None:
    """``True``/``False`` or the strings ``true``/``false`` (any case, surrounding blanks ignored); else None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("true", "false"):
            return word == "true"
    return None


def evaluate_conditions(text: str | None, context: Mapping[str, Any]) -> bool:
    """Render an op's or a hook's ``conditions`` and read it as a boolean (no conditions: True).

    Raise :class:`ConditionError` when the template fails or the result is not a boolean; Polyaxon fails
    the run in both cases (an empty result included), and so do we.
    """
    if text is None:
        return True
    try:
        value = render_value(text, context)
    except TemplateError as exc:
        raise ConditionError(f"conditions `{_short(text)}`: {exc.reason}") from exc
    result = to_bool(value)
    if result is None:
        raise ConditionError(
            f"conditions `{_short(text)}` rendered to {_short(repr(value))}; expected a boolean (true or false)"
        )
    return result
