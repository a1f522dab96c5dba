"""A fast reader for the plain block subset of YAML that Polyaxonfiles are written in.

PyYAML, even with LibYAML, spends ~10 µs per line building events, nodes and marks in Python; a
100,000-op DAG (over a million lines) takes 10-25 s. Most Polyaxonfiles only use block mappings,
block sequences, one-line scalars and one-line flow collections, which a line-oriented reader handles
several times faster. This module returns exactly what ``yaml.safe_load`` returns for that subset
(scalars are resolved by PyYAML's own YAML 1.1 resolver and constructors, so ``on`` is ``True`` as in
Polyaxon) and raises :class:`Unsupported` for anything else: anchors, tags, block scalars,
multi-line scalars, duplicate keys, odd indentation, syntax errors. The caller then falls back to
PyYAML, which also produces the precise error messages; this module never reports errors itself.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import yaml
from yaml.nodes import ScalarNode

_STR_TAG = "tag:yaml.org,2002:str"
# Keys the fast path accepts unquoted; anything else (spaces, quotes, '<<', '?', ...) falls back.
_KEY_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-/]*\Z")
# Characters YAML forbids in a stream (PyYAML's Reader rejects them); such text takes the PyYAML path.
_NON_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# Characters that cannot start a plain scalar (or start an unsupported construct) in block context.
_BLOCK_INDICATORS = frozenset("-?:,[]{}#&*!|>'\"%@`")
# PyYAML's line breaks besides '\n': a line-oriented reader would read them as characters.
_UNICODE_BREAKS = ("\x85", "\u2028", "\u2029")
_PRINTABLE_ASCII = bytes(range(0x20, 0x7F)) + b"\t\n\r"
# PyYAML forgets a possible simple key once the ':' is more than 1024 characters past its start.
_MAX_KEY = 1000
_MISSING = object()

# One token of a one-line flow collection, after optional spaces, following PyYAML's scanner in flow
# context: an indicator, a quoted scalar (double-quoted without escapes), a plain scalar, or a comment
# (after a space). A plain scalar starts with a character that may start one ('-' only when not followed
# by a space), ends before ',?[]{}', before ':' followed by a space, an indicator or the end, and before
# ' #'; spaces inside it are kept. Anything else matches the last alternative, outside the group, and
# leaves an empty string in ``findall``'s result: the text is then outside the subset.
_FLOW_PLAIN = (
    r"(?:[^ \-?:,\[\]{}#&*!|>'\"%@`]|-(?=[^ ]))"
    r"(?:[^ ,?\[\]{}:]|:(?=[^ ,\[\]{}])| +(?=[^ ,?\[\]{}:#]|:[^ ,\[\]{}]))*"
)
_FLOW_TOKENS = re.compile(r" *(?:([\[\]{},:]|'(?:[^']|'')*'|\"[^\"\\]*\"|" + _FLOW_PLAIN + r"|(?<= )#.*)|[^ ])")
# The most common flow collections, `[a, b]` and `{a: b, c: d}` with word-like plain scalars and one space
# after separators, are split with str methods once validated; ':' inside a scalar is followed by a word
# character, so neither ', ' nor ': ' occurs inside one.
_SIMPLE_SCALAR = r"-?[\w./](?:[\w./\-]|:(?=[\w./\-]))*"
_SIMPLE_SEQUENCE = re.compile(rf"\[{_SIMPLE_SCALAR}(?:, {_SIMPLE_SCALAR})*\]")
_SIMPLE_MAPPING = re.compile(rf"\{{{_SIMPLE_SCALAR}: {_SIMPLE_SCALAR}(?:, {_SIMPLE_SCALAR}: {_SIMPLE_SCALAR})*\}}")
# Tokens that are not scalars where a flow node is expected.
_FLOW_NOT_SCALAR = frozenset("]},:#")


class Unsupported(Exception):
    """The text is outside the fast subset (or invalid): parse it with PyYAML instead."""


class _Scalars:
    """Resolves plain scalars as PyYAML's SafeLoader does, caching per distinct string."""

    def __init__(self) -> None:
        self._loader = yaml.SafeLoader("")
        self._cache: dict[str, Any] = {}
        # PyYAML's implicit resolvers by first character (wildcards appended), as its resolve() looks them up;
        # inlined because op names and refs are resolved once each, 100,000 times in a big DAG.
        table: dict[Any, list[tuple[str, re.Pattern[str]]]] = self._loader.yaml_implicit_resolvers
        wildcard = tuple(table.get(None, ()))
        self._wildcard = wildcard
        self._resolvers = {first: (*resolvers, *wildcard) for first, resolvers in table.items() if first is not None}
        self._inline = not self._loader.yaml_path_resolvers  # path resolvers (none in PyYAML itself) need resolve()

    def plain(self, text: str) -> Any:
        value: Any = self._cache.get(text, _MISSING)  # not try/except: a raised KeyError costs more than a lookup
        if value is not _MISSING:
            return value
        if text.isdigit() and text.isascii() and (text[0] != "0" or len(text) == 1):
            return int(text)  # decimal ints (op indexes, ...) are mostly distinct: skip the resolver and the cache
        tag: str = _STR_TAG
        if self._inline:
            for resolver_tag, regexp in self._resolvers.get(text[:1], self._wildcard):
                if regexp.match(text):
                    tag = resolver_tag
                    break
        else:
            tag = self._loader.resolve(ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
        if tag == _STR_TAG:
            value = text
        else:
            constructor = self._loader.yaml_constructors.get(tag)
            if constructor is None:  # '=' (value tag) and '<<' (merge): leave them to PyYAML
                raise Unsupported(tag)
            # Every implicit scalar (int, float, bool, null, timestamp) is immutable, so sharing is safe.
            value = constructor(self._loader, ScalarNode(tag, text))
        self._cache[text] = value
        return value


class _Reader:
    def __init__(self, text: str) -> None:
        if text.startswith(("---", "...", "%")) or "\n---" in text or "\n..." in text or "\n%" in text:
            raise Unsupported("document marker or directive")
        # The significant lines as (indent, content): a comprehension, not a loop, for a million lines.
        self.sig: list[tuple[int, str]] = [
            (len(line) - len(content), content.rstrip(" "))
            for line in text.split("\n")
            if (content := line.lstrip(" ")) and content[0] != "#"
        ]
        self.scalars = _Scalars()
        self.keys: dict[str, Any] = {}
        self.values: dict[str, Any] = {}

    def document(self) -> Any:
        sig = self.sig
        if not sig:
            return None
        value, i = self.block(0, sig[0][0])
        if i != len(sig):
            raise Unsupported("trailing content")
        return value

    def block(self, i: int, indent: int) -> tuple[Any, int]:
        content = self.sig[i][1]
        if content == "-" or content.startswith("- "):
            return self.sequence(i, indent)
        return self.mapping(i, indent, None)

    def sequence(self, i: int, indent: int) -> tuple[list[Any], int]:
        sig = self.sig
        end = len(sig)
        out: list[Any] = []
        while i < end:
            ind, content = sig[i]
            if ind != indent:
                if ind > indent:
                    raise Unsupported("indentation")
                break
            if content == "-":
                i += 1
                value: Any = None
                if i < end and sig[i][0] > indent:
                    value, i = self.block(i, sig[i][0])
            elif content.startswith("- "):
                rest = content[2:].lstrip(" ")
                if rest == "-" or rest.startswith("- "):
                    raise Unsupported("compact nested sequence")
                if self.split_key(rest) is not None:
                    # `- key: value`: a mapping whose keys sit at the column of the first key.
                    value, i = self.mapping(i, indent + len(content) - len(rest), rest)
                else:
                    value = self.value(rest)
                    i += 1
                    if i < end and sig[i][0] > indent:
                        raise Unsupported("multi-line scalar")
            else:
                break
            out.append(value)
        return out, i

    def mapping(self, i: int, indent: int, first: str | None) -> tuple[dict[Any, Any], int]:
        sig = self.sig
        end = len(sig)
        keys = self.keys
        values = self.values
        out: dict[Any, Any] = {}
        while i < end:
            if first is not None:
                content, first = first, None
            else:
                ind, content = sig[i]
                if ind != indent:
                    if ind > indent:
                        raise Unsupported("indentation")
                    break
            # The hot loop: `key: value` split inline, keys resolved once per distinct text.
            key_text, sep, rest = content.partition(": ")  # an empty key_text is refused by key()
            if sep:
                if rest[:1] == " ":
                    rest = rest.lstrip(" ")
                if rest[:1] == "#":
                    rest = ""
            elif content[-1] == ":":
                key_text, rest = content[:-1], ""
            else:
                raise Unsupported("not a key")  # a scalar or a stray '- ' where a key belongs
            key = keys.get(key_text, _MISSING)
            if key is _MISSING:
                key = self.key(key_text, content)
            if key in out:
                raise Unsupported("duplicate key")  # PyYAML's path reports it with both positions
            i += 1
            value: Any = None
            if rest:
                value = values.get(rest, _MISSING)
                if value is _MISSING:
                    value = self.value(rest)
                if i < end and sig[i][0] > indent:
                    raise Unsupported("multi-line scalar")
            elif i < end:
                ind, content = sig[i]
                if ind > indent:
                    value, i = self.block(i, ind)
                elif ind == indent and (content == "-" or content.startswith("- ")):
                    value, i = self.sequence(i, indent)  # an indentless sequence
            out[key] = value
        return out, i

    def key(self, key_text: str, content: str) -> Any:
        if _KEY_RE.match(key_text) is None or content[0] in "[{" or len(key_text) > _MAX_KEY:
            raise Unsupported("key")
        key = self.keys[key_text] = self.scalars.plain(key_text)
        return key

    @staticmethod
    def split_key(content: str) -> tuple[str, str] | None:
        """``key: rest`` -> (key, rest without a comment); None when the line is not a plain key."""
        if content[0] in "[{":
            return None  # a flow collection (a complex key `{a: 1}: x` is then refused by value())
        j = content.find(": ")
        if j < 0:
            if not content.endswith(":"):
                return None
            key, rest = content[:-1], ""
        else:
            key, rest = content[:j], content[j + 2 :].lstrip(" ")
            if rest[:1] == "#":
                rest = ""
        if _KEY_RE.match(key) is None:
            if content[0] in "'\"?" or ": " in content or content.endswith(":"):
                raise Unsupported("key")
            return None
        return key, rest

    def value(self, text: str) -> Any:
        value: Any = self.values.get(text, _MISSING)  # plain scalars seen before (kinds, refs, images, ...)
        if value is not _MISSING:
            return value
        c = text[0]
        if c == "'" or c == '"':
            value, j = _quoted(text, 0)
            _expect_end(text, j)
            return value
        if c == "[" or c == "{":
            return self.flow(text)
        if c in _BLOCK_INDICATORS and not (c == "-" and len(text) > 1 and text[1] not in " ,[]{}#"):
            raise Unsupported("indicator")
        j = text.find(" #")
        if j >= 0:
            text = text[:j].rstrip(" ")
        if ": " in text or text.endswith(":"):
            raise Unsupported("colon in plain scalar")
        value = self.scalars.plain(text)
        if j < 0:
            self.values[text] = value
        return value

    def flow(self, text: str) -> Any:
        """A one-line flow collection: all of ``text`` but an optional trailing comment."""
        if text[0] == "[":
            if _SIMPLE_SEQUENCE.fullmatch(text) is not None:
                plain = self.scalars.plain
                return [plain(item) for item in text[1:-1].split(", ")]
        elif _SIMPLE_MAPPING.fullmatch(text) is not None and len(text) <= _MAX_KEY:
            plain = self.scalars.plain
            pairs = [item.split(": ") for item in text[1:-1].split(", ")]
            mapping = {plain(key): plain(value) for key, value in pairs}
            if len(mapping) != len(pairs):
                raise Unsupported("duplicate key")
            return mapping
        tokens: list[str] = _FLOW_TOKENS.findall(text)
        if "" in tokens:
            raise Unsupported("flow token")
        if len(text) > _MAX_KEY and "{" in text:
            raise Unsupported("long flow mapping")  # a key could be too long for PyYAML
        try:
            value, i = self.collection(tokens, 0)
        except IndexError:
            raise Unsupported("unterminated flow collection") from None
        if i < len(tokens) and (i != len(tokens) - 1 or tokens[i][0] != "#"):
            raise Unsupported("content after a flow collection")
        return value

    def collection(self, tokens: list[str], i: int) -> tuple[Any, int]:
        """The collection opening at ``tokens[i]``; returns it and the index after its closing token."""
        scalar = self.flow_scalar
        i += 1
        if tokens[i - 1] == "[":
            seq: list[Any] = []
            if tokens[i] == "]":
                return seq, i + 1
            while True:
                tok = tokens[i]
                if tok == "[" or tok == "{":
                    value, i = self.collection(tokens, i)
                else:
                    value = scalar(tok)
                    i += 1
                seq.append(value)
                tok = tokens[i]
                if tok == "]":
                    return seq, i + 1
                if tok != ",":
                    raise Unsupported("flow separator")  # also `[a: b]`, a mapping in a sequence
                i += 1
        mapping: dict[Any, Any] = {}
        if tokens[i] == "}":
            return mapping, i + 1
        while True:
            key = scalar(tokens[i])  # `{[a]: b}`, a collection as a key, is refused here
            if key in mapping:
                raise Unsupported("duplicate key")
            if tokens[i + 1] != ":":
                raise Unsupported("flow mapping entry without ':'")
            tok = tokens[i + 2]
            if tok == "[" or tok == "{":
                mapping[key], i = self.collection(tokens, i + 2)
            else:
                mapping[key] = scalar(tok)
                i += 3
            tok = tokens[i]
            if tok == "}":
                return mapping, i + 1
            if tok != ",":
                raise Unsupported("flow separator")
            i += 1

    def flow_scalar(self, token: str) -> Any:
        c = token[0]
        if c == "'":
            return token[1:-1].replace("''", "'")
        if c == '"':
            return token[1:-1]
        if c in _FLOW_NOT_SCALAR or c == "[" or c == "{":
            raise Unsupported("flow node")  # an empty entry (`[a, , b]`, `[a,]`, `{a: }`) or a misplaced token
        return self.scalars.plain(token)


def _quoted(text: str, j: int) -> tuple[str, int]:
    """A one-line quoted scalar at ``text[j]``; returns (value, index after the closing quote)."""
    quote = text[j]
    if quote == '"':
        k = text.find('"', j + 1)
        if k < 0 or "\\" in text[j + 1 : k]:
            raise Unsupported("multi-line or escaped double-quoted scalar")
        return text[j + 1 : k], k + 1
    parts: list[str] = []
    start = j + 1
    while True:
        k = text.find("'", start)
        if k < 0:
            raise Unsupported("multi-line single-quoted scalar")
        parts.append(text[start:k])
        if text[k + 1 : k + 2] == "'":
            parts.append("'")
            start = k + 2
            continue
        return "".join(parts), k + 1


def _expect_end(text: str, j: int) -> None:
    rest = text[j:]
    if (rest and not rest.lstrip(" ").startswith("#")) or rest[:1] == "#":
        raise Unsupported("content after a value")


def _printable(text: str) -> bool:
    if text.isascii():  # deleting the printable bytes is several times faster than a regex search
        return not text.encode("ascii").translate(None, _PRINTABLE_ASCII)
    return _NON_PRINTABLE.search(text) is None


def parse_fast(text: str) -> Any:
    """Return ``yaml.safe_load(text)`` for the fast subset, or raise :class:`Unsupported`."""
    if (
        "\t" in text or "\r" in text or "\ufeff" in text or any(b in text for b in _UNICODE_BREAKS)
        or not _printable(text)
    ):  # fmt: skip
        raise Unsupported("tabs, carriage returns, BOMs, Unicode line breaks and control characters go through PyYAML")
    try:
        return _Reader(text).document()
    except RecursionError as e:
        raise Unsupported("deep nesting") from e


# ------------------------------------------------------------------------------------------ positions

# A node of a document the fast reader accepted: (shape, line index, column), all 0-based; shape is
# "block" (a mapping or sequence starting at that line and column), "flow" or "scalar".
_Node = tuple[str, int, int]
_DONE = -1


class Locator:
    """Positions in a document :func:`parse_fast` accepted; nothing is recorded while parsing.

    A lookup reads only the lines on the way, and only the indentation of the siblings it skips. What a
    scan of a mapping or a sequence finds is kept and the scan resumes from there, so reporting many
    errors in a long list of ops stays linear in the document, not in errors x lines.
    """

    def __init__(self, text: str) -> None:
        self.lines = text.split("\n")
        self.reader = _Reader("")
        self.scalars = self.reader.scalars
        self._items: dict[tuple[int, int], tuple[list[int], int]] = {}
        self._entries: dict[tuple[int, int], tuple[dict[Any, tuple[int, str, str]], int]] = {}

    def position(self, path: Sequence[str | int], *, key: bool = False) -> tuple[int, int]:
        """1-based (line, column), with the rules of ``Document.position``."""
        first = self.next_sig(0)
        if first >= len(self.lines):
            return 1, 1
        node: _Node | None = ("block", first, self.indent(first))
        position = (first, self.indent(first))
        for i, part in enumerate(path):
            assert node is not None
            step = self.child(node, part)
            if step is None:
                break
            key_position, node = step
            later_line = node is not None and key_position is not None and node[1] != key_position[0]
            if key_position is not None and ((key and i == len(path) - 1) or node is None or later_line):
                position = key_position
            elif node is not None:
                position = (node[1], node[2])
            if node is None:
                break
        return position[0] + 1, position[1] + 1

    def indent(self, j: int) -> int:
        line = self.lines[j]
        return len(line) - len(line.lstrip(" "))

    def next_sig(self, j: int) -> int:
        lines = self.lines
        while j < len(lines):
            content = lines[j].lstrip(" ")
            if content and content[0] != "#":
                return j
            j += 1
        return j

    def child(self, node: _Node, part: str | int) -> tuple[tuple[int, int] | None, _Node | None] | None:
        shape, j, col = node
        if shape == "flow":
            return self.flow_child(j, col, part)
        if shape != "block":
            return None
        content = self.lines[j][col:].rstrip(" ")
        if content == "-" or content.startswith("- "):
            return self.item(j, col, part) if isinstance(part, int) else None
        return self.entry(j, col, part)

    def item(self, j: int, col: int, index: int) -> tuple[None, _Node | None] | None:
        items, k = self._items.get((j, col), ([], j))
        while len(items) <= index and k != _DONE:
            if k >= len(self.lines):
                k = _DONE
                break
            ind = self.indent(k)
            if ind < col:
                k = _DONE
                break
            if ind == col:
                content = self.lines[k][ind:].rstrip(" ")
                if not (content == "-" or content.startswith("- ")):
                    k = _DONE
                    break
                items.append(k)
            k = self.next_sig(k + 1)
        self._items[(j, col)] = (items, k)
        if not 0 <= index < len(items):
            return None
        line = items[index]
        return None, self.item_value(line, col, self.lines[line][col:].rstrip(" "))

    def item_value(self, k: int, col: int, content: str) -> _Node:
        if content == "-":
            m = self.next_sig(k + 1)
            if m < len(self.lines) and self.indent(m) > col:
                return ("block", m, self.indent(m))
            return ("scalar", k, col)
        rest = content[2:].lstrip(" ")
        rcol = col + len(content) - len(rest)
        if self.reader.split_key(rest) is not None:
            return ("block", k, rcol)  # `- key: value`: a mapping starting at the first key
        return ("flow" if rest[0] in "[{" else "scalar", k, rcol)

    def entry(self, j: int, col: int, part: str | int) -> tuple[tuple[int, int], _Node | None] | None:
        found, k = self._entries.get((j, col), ({}, j))
        while part not in found and k != _DONE:
            if k >= len(self.lines):
                k = _DONE
                break
            ind = col if k == j else self.indent(k)  # line j may be `- key: ...` with its key at col
            if ind < col:
                k = _DONE
                break
            content = self.lines[k][col:].rstrip(" ")
            # Lines `- x` at this indent are an indentless sequence under the previous key: skip them.
            if ind == col and (k == j or not (content == "-" or content.startswith("- "))):
                pair = self.reader.split_key(content)
                if pair is None:
                    k = _DONE
                    break
                found.setdefault(self.scalars.plain(pair[0]), (k, content, pair[1]))
            k = self.next_sig(k + 1)
        self._entries[(j, col)] = (found, k)
        if part not in found:
            return None
        line, content, rest = found[part]
        return (line, col), self.entry_value(line, col, content, rest)

    def entry_value(self, k: int, col: int, content: str, rest: str) -> _Node | None:
        if rest:
            vcol = col + len(content) - len(content[content.index(": ") + 2 :].lstrip(" "))
            return ("flow" if rest[0] in "[{" else "scalar", k, vcol)
        m = self.next_sig(k + 1)
        if m < len(self.lines):
            ind = self.indent(m)
            following = self.lines[m][ind:]
            if ind > col or (ind == col and (following.rstrip(" ") == "-" or following.startswith("- "))):
                return ("block", m, ind)
        return None  # a null value: its key is the place to point at

    def flow_child(self, j: int, col: int, part: str | int) -> tuple[tuple[int, int] | None, _Node] | None:
        text = self.lines[j]
        # (token, column) from the collection's opening bracket on; the reader accepted this line.
        tokens = [(m.group(1), m.start(1)) for m in _FLOW_TOKENS.finditer(text, col)]
        is_seq = tokens[0][0] == "["
        i = 1
        index = 0
        while tokens[i][0] not in ("]", "}"):
            if is_seq:
                if part == index:
                    return None, self.flow_node(j, tokens[i][1])
            else:
                key_col = tokens[i][1]
                i += 2  # the key and ':'
                if self.reader.flow_scalar(tokens[i - 2][0]) == part:
                    return (j, key_col), self.flow_node(j, tokens[i][1])
            i = _after_flow_node(tokens, i)
            index += 1
            if tokens[i][0] == ",":
                i += 1
        return None

    def flow_node(self, j: int, p: int) -> _Node:
        return ("flow" if self.lines[j][p] in "[{" else "scalar", j, p)


def _after_flow_node(tokens: list[tuple[str, int]], i: int) -> int:
    """The index of the token after the flow node starting at ``tokens[i]``."""
    if tokens[i][0] not in ("[", "{"):
        return i + 1
    depth = 0
    while True:
        tok = tokens[i][0]
        if tok == "[" or tok == "{":
            depth += 1
        elif tok == "]" or tok == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
