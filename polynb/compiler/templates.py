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
from collections.abc import Callable, Iterator, Mapping, Set, ValuesView
from functools import lru_cache
from typing import Any, NoReturn

from jinja2 import StrictUndefined, Template, Undefined, nodes
from jinja2 import TemplateError as JinjaTemplateError
from jinja2.compiler import CodeGenerator, Frame
from jinja2.environment import TemplateExpression
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from polynb.compiler import template_limits
from polynb.compiler.errors import ConditionError, TemplateError
from polynb.limits import MAX_RENDERED_CHARS, LimitError

__all__ = [
    "ENV",
    "evaluate_conditions",
    "is_template",
    "map_format",
    "render_str",
    "render_value",
    "to_bool",
]

# Exactly one `{{ ... }}` and nothing around it; the body holds no other delimiter.
_SINGLE_EXPRESSION = re.compile(r"\{\{((?:(?!\{\{|\}\}|\{%|%\}|\{#).)*)\}\}", re.DOTALL)
_MAX_REPEAT = 1_000_000  # items or characters a `*` may produce
_MAX_POWER_BITS = 100_000  # size of the integer a `**` may produce
_CACHE_SIZE = 8192
_MESSAGE_WIDTH = 200


class _StrictUndefined(StrictUndefined):
    """Strict undefined that also fails inside a container: ``{{ [missing] }}`` would print ``[Undefined]``."""

    def __repr__(self) -> NoReturn:
        self._fail_with_undefined_error()


class _CodeGenerator(CodeGenerator):
    """Jinja's code generator, with ``a ~ b`` checked against the size limit (Jinja does not intercept ``~``)."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:  # noqa: N802 - Jinja's visitor name
        self.write("environment.checked_concat(")
        super().visit_Concat(node, frame)
        self.write(")")


class _Environment(ImmutableSandboxedEnvironment):
    """The immutable sandbox with size caps on what a template builds (``'a' * 10**10``, ``a ~ a``)."""

    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int) and len(seq) * times > _MAX_REPEAT:
                    raise SecurityError(f"`*` would produce more than {_MAX_REPEAT} items")
        elif operator == "**":
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and right > 0
                and abs(left) > 1
                and abs(left).bit_length() * right > _MAX_POWER_BITS
            ):
                raise SecurityError(f"`**` would produce an integer of more than {_MAX_POWER_BITS} bits")
        elif operator == "%" and isinstance(left, str):
            template_limits.check_format(left, right if isinstance(right, tuple) else (right,), printf=True)
        return template_limits.checked(
            super().call_binop(context, operator, left, right), f"the result of `{operator}`"
        )

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - as Jinja's
        template_limits.check_call(__obj, args, kwargs)
        return template_limits.checked(super().call(__context, __obj, *args, **kwargs), "the result of a call")

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt = value.__self__

        def checked_format(*args: Any, **kwargs: Any) -> str:
            template_limits.check_format(fmt, (*args, *kwargs.values()), printf=False)
            return str(template_limits.checked(wrapped(*args, **kwargs), "the result of `format`"))

        return checked_format

    @staticmethod
    def checked_concat(value: Any) -> Any:
        return template_limits.checked(value, "the result of `~`")


def map_format(value: Any, pattern: str) -> str:
    """Polyaxon's ``map_format`` filter: ``{{ uuids | map("map_format", "%s/outputs") | list }}``."""
    return pattern % (value if isinstance(value, tuple) else (value,))


def _build_environment() -> _Environment:
    # keep_trailing_newline: a rendered file `content` must keep its last newline.
    env = _Environment(undefined=_StrictUndefined, autoescape=False, loader=None, keep_trailing_newline=True)
    env.filters["map_format"] = map_format
    template_limits.guard_filters(env.filters)
    # Helpers a spec never needs; fewer callables, less surface.
    for name in ("lipsum", "cycler", "joiner"):
        env.globals.pop(name, None)
    return env


ENV: ImmutableSandboxedEnvironment = _build_environment()
"""The one environment every template is compiled in (built once; templates are cached per source)."""


def _short(text: str) -> str:
    return text if len(text) <= _MESSAGE_WIDTH else text[: _MESSAGE_WIDTH - 3] + "..."


def _fail(source: str, exc: BaseException) -> NoReturn:
    reason = exc.message if isinstance(exc, JinjaTemplateError) and exc.message else str(exc)
    if not isinstance(exc, JinjaTemplateError | LimitError):
        reason = f"{type(exc).__name__}: {reason}"
    raise TemplateError(source, reason) from exc


@lru_cache(maxsize=_CACHE_SIZE)
def _template(source: str) -> Template:
    try:
        return ENV.from_string(source)
    except Exception as exc:  # syntax errors and anything the parser raises
        _fail(source, exc)


@lru_cache(maxsize=_CACHE_SIZE)
def _expression(source: str, body: str) -> TemplateExpression:
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
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _check_defined(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_defined(key)
            _check_defined(item)


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
