"""Typed wrappers of IPython's untyped ``magic_arguments`` helpers (one place for the ignores)."""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast

from IPython.core import magic_arguments as _ma
from IPython.core.error import UsageError

F = TypeVar("F", bound=Callable[..., Any])


class Decorator(Protocol):
    def __call__(self, fn: F, /) -> F: ...


def magic_arguments() -> Decorator:
    return cast(Decorator, _ma.magic_arguments())  # type: ignore[no-untyped-call]


def argument(*args: Any, **kwargs: Any) -> Decorator:
    return cast(Decorator, _ma.argument(*args, **kwargs))  # type: ignore[no-untyped-call]


def parse_argstring(magic: Callable[..., Any], line: str) -> argparse.Namespace:
    """Parse a magic's line, quoted as a shell does (``-P who="Ada Lovelace"``, as the CLI and ``%polyaxon`` read
    it: IPython's own splitter keeps the quotes); a bad line raises ``UsageError`` (shown without a traceback)."""
    try:
        argv = shlex.split(line)
    except ValueError as exc:  # an unclosed quote
        raise UsageError(f"{exc}: {line}") from None
    return cast(argparse.Namespace, magic.parser.parse_args(argv))  # type: ignore[attr-defined]
