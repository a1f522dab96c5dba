"""Errors of the compiler: each carries one human-readable message that names what went wrong and where."""

from __future__ import annotations

_MESSAGE_WIDTH = 200


class CompilerError(Exception):
    """Base of every compiler error; ``message`` is what a user sees (``str(e)`` is the same text)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TemplateError(CompilerError):
    """A ``{{ }}`` template failed to compile or render (undefined variable, unsafe access, bad syntax).

    ``template`` is the source, ``reason`` Jinja's explanation (``'lr' is undefined``); the message names both.
    """

    def __init__(self, template: str, reason: str) -> None:
        shown = template if len(template) <= _MESSAGE_WIDTH else template[: _MESSAGE_WIDTH - 3] + "..."
        super().__init__(f"template `{shown}`: {reason}")
        self.template = template
        self.reason = reason


class ConditionError(CompilerError):
    """``conditions`` did not render to a boolean; the scheduler marks the op ``failed``."""


class ParamError(CompilerError):
    """A param could not be bound: missing required input, wrong type, unknown ref or missing output."""


class CompileError(CompilerError):
    """An op cannot be turned into a :class:`~polynb.compiler.types.CompiledOp` (unsupported feature, ...)."""
