"""YAML text -> plain data plus positions, with precise errors (``SpecErrors``), never a traceback.

Two paths give the same data as ``yaml.safe_load`` (what Polyaxon 2.18 uses, so YAML 1.1 applies:
``on``/``yes``/``off``/``no`` are booleans, ``1:30`` is 90, unquoted dates are dates):

* the fast path (:mod:`polynb.spec.yaml_fast`) reads the plain block subset most files use;
* anything else, and every error, goes through PyYAML (LibYAML when available) with a constructor
  that refuses duplicate keys (PyYAML silently keeps the last one; Polyaxon does too).

Positions are never recorded while loading: :meth:`Document.position` composes the node tree once,
on first use, which only happens when there is an error to report. Walking the node tree follows
aliases without expanding them, so an alias bomb costs nothing there; and before construction, a
document with aliases is refused when they would expand it far beyond its written size.
"""

from __future__ import annotations

import gc
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from polynb.limits import MAX_SPEC_BYTES, LimitError
from polynb.spec.errors import SpecError, SpecErrors, format_path
from polynb.spec.yaml_fast import Locator, Unsupported, parse_fast

PathPart = str | int
Path = tuple[PathPart, ...]

_BaseLoader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
_TAB_INDENT = re.compile(r"^ *\t", re.MULTILINE)
# An alias bomb expands to far more nodes than it is written with; legitimate reuse stays well below.
_ALIAS_EXPANSION_FACTOR = 10
_ALIAS_EXPANSION_SLACK = 10_000


@contextmanager
def gc_paused() -> Iterator[None]:
    """Building millions of containers triggers full collections that make loading super-linear."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass(frozen=True, slots=True)
class _Duplicate:
    mapping: MappingNode
    first: Node
    second: Node
    key: Any


class _Loader(_BaseLoader):  # type: ignore[misc]
    """SafeLoader (LibYAML-backed when possible) that records duplicate keys instead of dropping them."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[_Duplicate] = []

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Node] = {}
        for key_node, _ in node.value:
            # Merge keys are not constructed (SafeConstructor consumes them); two of them are a duplicate.
            key: Any = "<<" if key_node.tag == _MERGE_TAG else self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                continue  # unhashable: SafeConstructor reports it below
            if first is not None:
                self.duplicates.append(_Duplicate(node, first, key_node, key))
            else:
                seen[key] = key_node
        # SafeConstructor handles merge keys (`<<: *base`, explicit keys win) and unhashable keys.
        result: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return result


@dataclass(eq=False)
class Document:
    """A loaded Polyaxonfile: ``data`` is plain Python data; positions are computed on demand."""

    data: Any
    filename: str
    text: str
    _root: Node | None = field(default=None, repr=False)
    # Read by the fast reader: positions come from its locator, which skips what PyYAML would compose.
    fast: bool = False
    _locator: Locator | None = field(default=None, repr=False)

    def root_node(self) -> Node | None:
        if self._root is None:
            with gc_paused():
                loader = _Loader(self.text)
                try:
                    self._root = loader.get_single_node()
                finally:
                    loader.dispose()
        return self._root

    def position(self, path: Sequence[PathPart], *, key: bool = False) -> tuple[int, int]:
        """1-based (line, column) of the deepest node of ``path`` that exists.

        The last element's value is pointed at, or its key with ``key=True`` (an unexpected key);
        a missing key gives its parent mapping. Aliases are followed without expanding anything.
        """
        if self.fast:
            if self._locator is None:
                self._locator = Locator(self.text)
            return self._locator.position(path, key=key)
        node = self.root_node()
        if node is None:
            return 1, 1
        mark = node.start_mark
        for i, part in enumerate(path):
            entry = _child(node, part)
            if entry is None:
                break
            key_node, node = entry
            last = i == len(path) - 1
            # A key's position reads better than its value's when the value is a block on later lines.
            if key_node is not None and (
                (last and key)
                or node.start_mark.line != key_node.start_mark.line
                or (isinstance(node, ScalarNode) and node.value == "" and not node.style)
            ):
                mark = key_node.start_mark
            else:
                mark = node.start_mark
        return mark.line + 1, mark.column + 1

    def error(self, path: Sequence[PathPart], message: str, *, key: bool = False) -> SpecError:
        line, column = self.position(path, key=key)
        return SpecError(self.filename, line, column, format_path(path), message)


def _child(node: Node, part: PathPart) -> tuple[Node | None, Node] | None:
    if isinstance(node, SequenceNode) and isinstance(part, int):
        return (None, node.value[part]) if 0 <= part < len(node.value) else None
    if isinstance(node, MappingNode):
        # Last match wins: SafeConstructor puts merged (`<<`) keys before the mapping's own keys.
        for key_node, value_node in reversed(node.value):
            if isinstance(key_node, ScalarNode) and _scalar_key(key_node) == part:
                return key_node, value_node
    return None


def _scalar_key(node: ScalarNode) -> Any:
    if node.tag == _STR_TAG:
        return node.value
    constructor = yaml.SafeLoader.yaml_constructors.get(node.tag)
    if constructor is None:
        return node.value
    try:
        return constructor(yaml.SafeLoader(""), node)
    except (yaml.YAMLError, ValueError):
        return node.value


def read_source(path: str | os.PathLike[str], filename: str | None = None) -> bytes:
    """The bytes of a Polyaxonfile; ``SpecErrors`` when it is over ``POLYNB_MAX_SPEC_BYTES`` (judged before
    reading it). ``OSError`` propagates: each caller words it for its own context."""
    with open(path, "rb") as f:
        _check_size(os.fstat(f.fileno()).st_size, filename or os.fspath(path))
        return f.read()


def _check_size(text: str | bytes | int, filename: str) -> None:
    """Refuse a file (its size, or its text) over ``POLYNB_MAX_SPEC_BYTES``."""
    try:
        limit = MAX_SPEC_BYTES.value()
        if limit is None:
            return
        if isinstance(text, str):
            if len(text) * 4 <= limit:  # a character is at most 4 bytes of UTF-8: no need to encode
                return
            text = len(text.encode("utf-8", "surrogatepass"))
        MAX_SPEC_BYTES.check(text if isinstance(text, int) else len(text), "the file is")
    except LimitError as exc:
        raise SpecErrors([SpecError(filename, 0, 0, format_path(()), str(exc))]) from None


def parse(text: str | bytes, filename: str) -> Document:
    """Load one YAML document that must be a mapping; raise ``SpecErrors`` for anything else (a text over
    ``POLYNB_MAX_SPEC_BYTES`` included)."""
    _check_size(text, filename)
    if isinstance(text, bytes):
        text = _decode(text, filename)
    if text.startswith("\ufeff"):
        text = text[1:]  # PyYAML skips a BOM too, but counts it in the first line's columns
    if "\r\n" in text:
        text = text.replace("\r\n", "\n")  # one line break to YAML too; keeps Windows files on the fast path
    with gc_paused():
        try:
            data = parse_fast(text)
            doc = Document(data, filename, text, fast=True)
        except Unsupported:
            doc = _parse_slow(text, filename)
    _check_root(doc)
    return doc


def _decode(raw: bytes, filename: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        message = (
            f"the file is not valid UTF-8: byte 0x{raw[e.start]:02x} at byte offset {e.start} "
            f"(line {line}) cannot be decoded; save the file as UTF-8"
        )
        raise SpecErrors([SpecError(filename, line, column, format_path(()), message)]) from None


def _parse_slow(text: str, filename: str) -> Document:
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is not None and "*" in text:
            _check_alias_expansion(root, filename)
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as e:
        raise SpecErrors([_yaml_error(e, text, filename)]) from None
    except yaml.YAMLError as e:  # e.g. a ReaderError for a control character
        raise SpecErrors([_reader_error(e, text, filename)]) from None
    except RecursionError:
        raise SpecErrors([SpecError(filename, 1, 1, format_path(()), "the document is nested too deeply")]) from None
    finally:
        loader.dispose()
    doc = Document(data, filename, text, root)
    if loader.duplicates:
        raise SpecErrors([_duplicate_error(doc, d) for d in loader.duplicates])
    return doc


def _yaml_error(e: yaml.MarkedYAMLError, text: str, filename: str) -> SpecError:
    mark = e.problem_mark or e.context_mark
    line = mark.line + 1 if mark else 0
    column = mark.column + 1 if mark else 0
    tab = _TAB_INDENT.search(text)
    if tab is not None and e.problem_mark is not None and _is_tab_problem(e, text):
        tab_line = text.count("\n", 0, tab.start()) + 1
        if tab_line <= line:
            message = "tabs are not allowed for indentation in YAML; use spaces"
            return SpecError(filename, tab_line, tab.end() - tab.start(), format_path(()), message)
    if isinstance(e, yaml.composer.ComposerError) and e.problem == "but found another document":
        message = "a Polyaxonfile must be a single YAML document, but a second document ('---') starts here"
        return SpecError(filename, line, column, format_path(()), message)
    parts = [p for p in (e.context, e.problem) if p]
    message = "invalid YAML: " + ", ".join(parts)
    if e.context and e.context_mark and e.problem_mark and e.context_mark.line != e.problem_mark.line:
        message += f" (the construct started at line {e.context_mark.line + 1})"
    return SpecError(filename, line, column, format_path(()), message)


def _is_tab_problem(e: yaml.MarkedYAMLError, text: str) -> bool:
    """LibYAML says 'found a tab character that violates indentation' or points at the tab itself."""
    mark = e.problem_mark
    at_tab = mark is not None and 0 <= mark.index < len(text) and text[mark.index] == "\t"
    return at_tab or "tab" in (e.problem or "")


def _reader_error(e: yaml.YAMLError, text: str, filename: str) -> SpecError:
    position = getattr(e, "position", None)
    if isinstance(position, int):
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        char = text[position] if position < len(text) else ""
        message = f"invalid YAML: the control character {char!r} is not allowed in a YAML file"
        return SpecError(filename, line, column, format_path(()), message)
    return SpecError(filename, 0, 0, format_path(()), f"invalid YAML: {e}")


def _check_alias_expansion(root: Node, filename: str) -> None:
    """Refuse documents whose aliases expand to far more nodes than are written (an alias bomb)."""
    sizes: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        nid = id(node)
        children: list[Node] = []
        if isinstance(node, SequenceNode):
            children = node.value
        elif isinstance(node, MappingNode):
            children = [n for pair in node.value for n in pair]
        if done:
            on_stack.discard(nid)
            sizes[nid] = 1 + sum(sizes[id(c)] for c in children)
            continue
        if nid in sizes:
            continue
        if nid in on_stack:
            line, column = node.start_mark.line + 1, node.start_mark.column + 1
            message = "an alias refers to a node that contains it (a recursive structure); this is not supported"
            raise SpecErrors([SpecError(filename, line, column, format_path(()), message)])
        on_stack.add(nid)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    expanded = sizes[id(root)]
    limit = _ALIAS_EXPANSION_FACTOR * len(sizes) + _ALIAS_EXPANSION_SLACK
    if expanded > limit:
        message = (
            f"YAML aliases expand this document to {expanded} nodes from {len(sizes)} written ones; "
            "refusing it as a likely alias bomb"
        )
        raise SpecErrors([SpecError(filename, 1, 1, format_path(()), message)])


def _node_paths(root: Node, targets: set[int]) -> dict[int, Path]:
    """Paths from the root to the given mapping nodes (each node visited once, aliases not expanded)."""
    found: dict[int, Path] = {}
    seen: set[int] = set()
    stack: list[tuple[Node, Path]] = [(root, ())]
    while stack and len(found) < len(targets):
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if id(node) in targets:
            found[id(node)] = path
        if isinstance(node, SequenceNode):
            stack.extend((child, (*path, i)) for i, child in enumerate(node.value))
        elif isinstance(node, MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, ScalarNode):
                    stack.append((value_node, (*path, _path_key(_scalar_key(key_node)))))
    return found


def _path_key(key: Any) -> PathPart:
    return key if isinstance(key, str) else str(key)


def _duplicate_error(doc: Document, dup: _Duplicate) -> SpecError:
    assert doc._root is not None
    parent = _node_paths(doc._root, {id(dup.mapping)}).get(id(dup.mapping), ())
    first, second = dup.first.start_mark, dup.second.start_mark
    message = (
        f"duplicate key {dup.key!r} (first defined at line {first.line + 1}, column {first.column + 1}); "
        "YAML would silently keep only the last value"
    )
    path = format_path((*parent, _path_key(dup.key)))
    return SpecError(doc.filename, second.line + 1, second.column + 1, path, message)


def _check_root(doc: Document) -> None:
    if isinstance(doc.data, dict):
        return
    if doc.data is None:
        node = None if doc.fast else doc.root_node()  # the fast reader reads no `~`/`null` document
        if node is None or (isinstance(node, ScalarNode) and node.value in ("", "~", "null")):
            message = "the file is empty; expected a Polyaxonfile"
            raise SpecErrors([SpecError(doc.filename, 1, 1, format_path(()), message)])
    line, column = doc.position(())
    message = f"expected a mapping (a Polyaxonfile) but found {describe_value(doc.data)}"
    raise SpecErrors([SpecError(doc.filename, line, column, format_path(()), message)])


def describe_value(value: Any) -> str:
    """Plain-words name of a YAML value's type: 'a list', 'a string', ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"
