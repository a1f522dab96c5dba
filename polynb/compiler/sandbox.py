"""The Jinja2 side of :mod:`polynb.compiler.templates`: the one sandboxed, immutable environment with strict
undefined and size caps (see that module's docstring for the rules).

Imported by :mod:`.templates` when a template is first rendered, not when the compiler is imported: a run whose
spec has no ``{{ }}`` never loads Jinja2 (tens of milliseconds of a command's start-up).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

from jinja2 import StrictUndefined, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from polynb.compiler import template_limits

_MAX_REPEAT = 1_000_000  # items or characters a `*` may produce
_MAX_POWER_BITS = 100_000  # size of the integer a `**` may produce


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
