"""Templates checked with the file: a ``{{ }}`` that does not parse, or that names a filter or a test the sandbox
does not have, is an error of ``check`` at its field. Rendered only when its op compiles, it would fail that op
after the DAG's ops upstream of it had run.

What a template *names* (inputs, ``globals.*``, upstream outputs) is left to the compile: which names exist depends
on params, refs and joins resolved at run time. Free text (``description``, ``tags``) is never rendered.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

_FREE_TEXT = frozenset({"description", "tags"})
"""Keys whose values polynb and Polyaxon never render."""

Path_ = tuple[str | int, ...]


def template_problems(data: Any) -> list[tuple[Path_, str]]:
    """``(path, message)`` for each template string in ``data`` (a parsed Polyaxonfile) that cannot render."""
    found: list[tuple[Path_, str]] = []
    stack: list[tuple[Any, Path_]] = [(data, ())] if isinstance(data, dict | list) else []
    while stack:  # a loop, not recursion: it visits every node of every file checked
        node, path = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            if type(value) is str:
                if ("{{" in value or "{%" in value) and key not in _FREE_TEXT:
                    problem = template_problem(value)
                    if problem is not None:
                        found.append(((*path, key), problem))
            elif isinstance(value, dict | list) and key not in _FREE_TEXT:
                stack.append((value, (*path, key)))
    return found


@lru_cache(maxsize=4096)
def template_problem(text: str) -> str | None:
    """Why ``text`` cannot render whatever the values given to it, or None."""
    from jinja2 import TemplateSyntaxError, nodes

    from polynb.compiler.sandbox import ENV

    try:
        tree = ENV.parse(text)
    except TemplateSyntaxError as exc:
        return f"template {_quoted(text)} does not parse: {exc.message}"
    for node in tree.find_all((nodes.Filter, nodes.Test)):
        known, what = (ENV.filters, "filter") if isinstance(node, nodes.Filter) else (ENV.tests, "test")
        if node.name not in known:
            return f"template {_quoted(text)}: no {what} named `{node.name}`{_close(node.name, known)}"
    return None


def _quoted(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _close(name: str, known: Any) -> str:
    from difflib import get_close_matches

    match = get_close_matches(name, list(known), n=1)
    return f"; did you mean `{match[0]}`?" if match else ""
