"""Size caps inside the template sandbox: no template builds a string or list beyond ``POLYNB_MAX_RENDERED_CHARS``.

Jinja's sandbox stops escapes, not allocations: ``{% set b = a ~ a %}`` seven times over a 1 MB string builds
128 MB, and ``'x' | center(10**9)`` a gigabyte. The operations that grow a value are checked: before they run
when their size is known from the arguments (``center``, ``indent``, ``replace``, ``join``, ``sum``, printf and
``str.format`` widths), right after otherwise (``~``, ``+``, every filter and method result). One step can
therefore make at most a few times the limit, never an unbounded amount.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from functools import wraps
from typing import Any

from jinja2.exceptions import SecurityError

from polynb.limits import MAX_RENDERED_CHARS

__all__ = ["check_call", "check_format", "checked", "guard_filters", "size_of"]

# Filters whose result size follows from their arguments, checked before they run.
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
# Digits inside a printf conversion (`%09999d`, `%.9999f`) or a str.format field (`{:>9999}`).
_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_FORMAT_FIELD = re.compile(r"\{[^{}]*\}")
_DIGITS = re.compile(r"\d+")


def _limit() -> int | None:
    return MAX_RENDERED_CHARS.value()


def _refuse(size: int, what: str) -> SecurityError:
    message = MAX_RENDERED_CHARS.exceeded(size, f"{what} is")
    return SecurityError(message or f"{what} is too large")


def size_of(value: Any) -> int:
    """Characters of a string, items of a collection, 1 for anything else (not recursive: cheap)."""
    if isinstance(value, str | list | tuple | dict | set | frozenset):
        return len(value)
    return 1


def checked(value: Any, what: str = "a value the template builds") -> Any:
    """``value`` unchanged, or :class:`SecurityError` when it is over the limit."""
    if isinstance(value, str | list | tuple | dict | set | frozenset):
        limit = _limit()
        if limit is not None and len(value) > limit:
            raise _refuse(len(value), what)
    return value


def _check_width(width: Any, what: str) -> None:
    limit = _limit()
    if limit is not None and isinstance(width, int) and width > limit:
        raise _refuse(width, what)


def check_format(fmt: str, args: Iterable[Any], *, printf: bool) -> None:
    """Refuse a format whose widths or precisions (written, or given as ``*``/nested arguments) exceed the limit."""
    limit = _limit()
    if limit is None:
        return
    specs = [m.group(0) for m in (_PRINTF_SPEC if printf else _FORMAT_FIELD).finditer(fmt)]
    for spec in specs:
        for digits in _DIGITS.findall(spec):
            if len(digits) > 12 or int(digits) > limit:
                raise _refuse(int(digits) if len(digits) <= 12 else 10**12, "a width in a format")
    if any("*" in s or "{" in s[1:] for s in specs):
        for arg in args:
            _check_width(arg, "a width given to a format")


def check_call(obj: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Before a method call from a template: the size-driving arguments of string methods."""
    owner = getattr(obj, "__self__", None)
    name = getattr(obj, "__name__", "")
    if not isinstance(owner, str):
        return
    if name in _WIDTH_METHODS:
        for arg in (*args, *kwargs.values()):
            _check_width(arg, f"the width given to `{name}`")
    elif name == "replace" and len(args) >= 2:
        _check_replace(owner, args[0], args[1], args[2] if len(args) > 2 else -1)
    elif name == "join" and args:
        _check_join(owner, args[0])


def _check_replace(text: str, old: Any, new: Any, count: Any) -> None:
    old, new = str(old), str(new)
    if len(new) <= len(old):
        return
    hits = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    limit = _limit()
    size = len(text) + hits * (len(new) - len(old))
    if limit is not None and size > limit:
        raise _refuse(size, "the result of `replace`")


def _check_join(separator: Any, items: Any) -> None:
    limit = _limit()
    if limit is None or not isinstance(items, list | tuple):
        return
    size = len(str(separator)) * max(len(items) - 1, 0) + sum(len(i) if isinstance(i, str) else 1 for i in items)
    if size > limit:
        raise _refuse(size, "the result of `join`")


def _guard(name: str, fn: Callable[..., Any], before: Callable[..., None] | None) -> Callable[..., Any]:
    @wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if before is not None:
            before(*args, **kwargs)
        return checked(fn(*args, **kwargs), f"the result of the `{name}` filter")

    return guarded


def _before_center(value: Any, width: Any = 80, *_: Any, **__: Any) -> None:
    _check_width(width, "the width given to `center`")


def _before_indent(value: Any, width: Any = 4, *_: Any, **__: Any) -> None:
    lines = str(value).count("\n") + 1
    unit = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    _check_width(len(str(value)) + lines * unit, "the result of `indent`")


def _before_replace(ctx: Any, value: Any, old: Any = "", new: Any = "", count: Any = None, *_: Any) -> None:
    _check_replace(str(value), old, new, -1 if count is None else count)


def _before_join(ctx: Any, value: Any, d: Any = "", attribute: Any = None, *_: Any) -> None:
    if attribute is None:
        _check_join(d, value)


def _before_sum(env: Any, iterable: Any, attribute: Any = None, start: Any = 0, *_: Any) -> None:
    if isinstance(start, str | list | tuple) and isinstance(iterable, list | tuple):
        size = len(start) + sum(size_of(item) for item in iterable)
        limit = _limit()
        if limit is not None and size > limit:
            raise _refuse(size, "the result of `sum`")


def _before_format(value: Any, *args: Any, **kwargs: Any) -> None:
    check_format(str(value), (*args, *kwargs.values()), printf=True)


_BEFORE: dict[str, Callable[..., None]] = {
    "center": _before_center,
    "indent": _before_indent,
    "replace": _before_replace,
    "join": _before_join,
    "sum": _before_sum,
    "format": _before_format,
}


def guard_filters(filters: dict[str, Callable[..., Any]]) -> None:
    """Wrap every filter (in place): its result is checked, and the size-driving ones are checked first.

    Jinja passes the environment or eval context to some filters by an attribute on the function; ``wraps``
    copies it, so the wrapped filter is called the same way.
    """
    for name, fn in list(filters.items()):
        filters[name] = _guard(name, fn, _BEFORE.get(name))
