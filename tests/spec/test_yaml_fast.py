"""The fast reader against ``yaml.safe_load``: equal data, or it declines (``Unsupported``); never a guess.

Explicit cases cover flow collections with colons, quotes and comments; the property tests generate small
block/flow documents (many of them invalid YAML) and compare the two readers on each.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from polynb.spec.yaml_fast import Unsupported, parse_fast
from polynb.spec.yaml_loader import Document, parse

_ERROR = object()


def typed(value: Any) -> Any:
    """A comparable form that tells 1, 1.0 and True apart, keeps key order and equates NaNs."""
    if isinstance(value, dict):
        return ("dict", [(typed(k), typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [typed(v) for v in value])
    if isinstance(value, float) and math.isnan(value):
        return ("float", "nan")
    return (type(value).__name__, value)


def safe_load_or_error(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return _ERROR


def assert_same_or_declined(text: str) -> bool:
    """True when the fast reader accepted ``text`` (and then gave exactly safe_load's data)."""
    expected = safe_load_or_error(text)
    try:
        got = parse_fast(text)
    except Unsupported:
        return False
    assert expected is not _ERROR, f"fast reader accepted invalid YAML {text!r}: {got!r}"
    assert typed(got) == typed(expected), text
    return True


# ------------------------------------------------------------------------------- explicit flow cases

ACCEPTED = [
    "k: {a: 'x: y'}\n",
    "k: {image: python:3.11}\n",
    "k: {image: python:3.11-slim, tag: 'v: 1'}\n",
    "k: [a, 'b, c']\n",
    "k: [a, [b, {c: d}], {e: [f, g]}]\n",
    "k: [http://x:80/p, https://h.example.com/a/b.yaml]\n",
    "k: {url: http://x:80/p}\n",
    "k: a: b:c\n".replace("k: a: ", "a: "),
    "k: {}\nl: []\nm: { }\nn: [ ]\n",
    "k: [a, b]  # trailing comment\nl: {a: 1} # another\n",
    "k: {t: 1:30, n: 012, h: 0x1f, f: 1.5, i: .inf, z: ~, b: on, d: 2024-01-02}\n",
    "k: [a :b, a:b:c, a#b, a b  c, -a, -, --, a&b]\n",
    "k: [-]\nl: {x: -}\n",
    'k: {"a":b, \'c\': "d e"}\n',
    "k: ['it''s', '', \"\"]\n",
    "k: [a ,b , c]\nl: {a : b , c : d}\n",
    "k: [a,b]\nl: {a: 1,b: 2}\n",
    'cmd: [python, -c, "print({{ x }})"]\n',
    "- {name: x, type: int}\n- {name: up, type: float, isOptional: true}\n",
    "k: [é, ü:x, 名前]\n",
]


@pytest.mark.parametrize("text", ACCEPTED)
def test_flow_constructs_match_safe_load(text: str) -> None:
    assert assert_same_or_declined(text), f"declined {text!r}"


# Valid YAML the fast reader leaves to PyYAML (rare forms; declining only costs time), and invalid YAML.
DECLINED = [
    "k: {a:b}\n",  # one scalar 'a:b' as a key without a value
    "k: {a, b: c}\n",
    "k: {a: }\n",
    "k: [a: b]\n",  # a single-pair mapping inside a sequence
    "k: [a:]\n",
    "k: [a, b,]\n",
    "k: [a]#c\n",
    'k: ["a":b]\n',
    "k: {? a: b}\n",
    "k: [a #b]\n",
    "k: [a?b]\n",
    "k: [https://h/a?b=c]\n",  # '?' ends a plain scalar in a flow collection
    "k: ['a'b]\n",
    "k: [:a]\n",
    "k: [- a]\n",
    "k: [!a]\n",
    "k: [&a b]\n",
    "k: {a: b: c}\n",
    "k: {a: b:}\n",
    "k: [a\n",
    "k: [a, [b]\n",
    "k: {a: 1, a: 2}\n",
    'k: ["a\\tb"]\n',
    "k: x\u2028y\n",  # a Unicode line break: PyYAML breaks the line there
    "k: x\x85y\n",
    "k: [x\u2029y]\n",
    "a" * 1100 + ": 1\n",  # PyYAML drops a simple key longer than 1024 characters
    "k: {" + "a" * 1100 + ": 1}\n",
]


@pytest.mark.parametrize("text", DECLINED)
def test_fast_reader_declines(text: str) -> None:
    with pytest.raises(Unsupported):
        parse_fast(text)
    assert_same_or_declined(text)


def _libyaml_reads(text: str) -> bool:
    try:
        yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return False
    return True


# The slow path reads with LibYAML, which refuses a few flow forms PyYAML accepts (`[a:]`), and refuses
# duplicate keys, which PyYAML silently drops.
@pytest.mark.parametrize(
    "text",
    [t for t in DECLINED if safe_load_or_error(t) is not _ERROR and _libyaml_reads(t) and "1, a: 2" not in t],
)
def test_declined_valid_documents_still_load(text: str) -> None:
    assert typed(parse(text, "f.yaml").data) == typed(yaml.safe_load(text))


def test_colon_in_flow_scalar_stays_on_the_fast_path() -> None:
    text = "kind: component\nrun:\n  kind: job\n  container: {image: python:3.11, command: [python, -c, 'x: 1']}\n"
    doc = parse(text, "f.yaml")
    assert doc.fast
    assert doc.data == yaml.safe_load(text)


FLOW_POSITIONS = """\
a: {image: python:3.11, url: http://x:80/p, q: 'x: y', n: [a :b, {c: d}]}
b: [x, 'y, z', {k: v}, [1, 2]]   # comment
c:
  - {name: x, type: int}
  - [a,b ,  c]
"""


@pytest.mark.parametrize("key", [False, True])
def test_flow_positions_agree_with_pyyaml_nodes(key: bool) -> None:
    fast = parse(FLOW_POSITIONS, "f.yaml")
    assert fast.fast
    slow = Document(fast.data, "f.yaml", fast.text)  # positions from PyYAML's composed nodes
    paths: list[tuple[str | int, ...]] = [
        ("a",), ("a", "image"), ("a", "url"), ("a", "q"), ("a", "n"), ("a", "n", 0), ("a", "n", 1),
        ("a", "n", 1, "c"), ("a", "missing"), ("b", 1), ("b", 2, "k"), ("b", 3, 1), ("b", 9), ("c", 0, "type"),
        ("c", 1, 2), ("c", 1, 5),
    ]  # fmt: skip
    for path in paths:
        assert fast.position(path, key=key) == slow.position(path, key=key), path


# ------------------------------------------------------------------------------------ property tests

# Scalar texts mixing the characters that matter to YAML's tokenizer.
_SCALAR_CHARS = "ab1:-, #?[]{}'\"&*!|>%@`~./_"
_known_scalar = st.sampled_from(
    ["a", "x y", "1", "-1", "012", "1:30", "0x1f", ".inf", "~", "null", "on", "No", "2024-01-02", "python:3.11",
     "http://x:80/p", "a: b", "a:b", "-", "'q'", "\"q\"", "'it''s'", "''", "a #c", "a&b", "é"]
)  # fmt: skip
# Two draws in three from the known scalars: random texts are mostly invalid YAML, which only tests declining.
_scalar_text = st.one_of(_known_scalar, _known_scalar, st.text(alphabet=_SCALAR_CHARS, min_size=1, max_size=6))
_simple_key = st.sampled_from(["a", "b", "kind", "on", "1", "x.y", "a-b", "a_b"])
_key_text = st.one_of(_simple_key, _simple_key, _scalar_text)


def _flow(draw: st.DrawFn, depth: int) -> str:
    sep = draw(st.sampled_from([", ", ",", " , ", ",  "]))
    if depth > 0 and draw(st.booleans()):
        items = draw(st.lists(st.deferred(lambda: _node_text(depth - 1)), max_size=3))
    else:
        items = draw(st.lists(_scalar_text, max_size=3))
    if draw(st.booleans()):
        colon = draw(st.sampled_from([": ", ":", " : "]))
        keys = draw(st.lists(_key_text, min_size=len(items), max_size=len(items)))
        body = sep.join(f"{k}{colon}{v}" for k, v in zip(keys, items, strict=True))
        return "{" + draw(st.sampled_from(["", " "])) + body + "}"
    return "[" + sep.join(items) + draw(st.sampled_from(["", " ", ","])) + "]"


def _node_text(depth: int) -> st.SearchStrategy[str]:
    @st.composite
    def node(draw: st.DrawFn) -> str:
        if depth > 0 and draw(st.booleans()):
            return _flow(draw, depth)
        return draw(_scalar_text)

    return node()


@st.composite
def _documents(draw: st.DrawFn) -> str:
    """A block document: mappings and sequences, values scalars or flow collections, optional comments."""
    lines: list[str] = []

    def block(indent: int, depth: int) -> None:
        pad = " " * indent
        if draw(st.booleans()):  # a sequence
            for _ in range(draw(st.integers(1, 3))):
                if depth > 0 and draw(st.booleans()):
                    lines.append(pad + "-")
                    block(indent + draw(st.sampled_from([2, 4])), depth - 1)
                else:
                    lines.append(pad + "- " + draw(_node_text(2)))
            return
        for key in draw(st.lists(_key_text, min_size=1, max_size=3)):
            if depth > 0 and draw(st.booleans()):
                lines.append(f"{pad}{key}:")
                block(indent + draw(st.sampled_from([0, 2, 3])), depth - 1)
            else:
                comment = draw(st.sampled_from(["", " # c", "  #c", "#c"]))
                lines.append(f"{pad}{key}: {draw(_node_text(2))}{comment}")

    block(0, 2)
    return "\n".join(lines) + "\n"


# No example database: it would be written into the working tree.
_SETTINGS = settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(_documents())
@example("k: {image: python:3.11}\n")
@example("k: [a :b, {c: d}]\n")
def test_generated_documents_match_safe_load_or_are_declined(text: str) -> None:
    assert_same_or_declined(text)


@_SETTINGS
@given(st.text(alphabet=_SCALAR_CHARS + "\n  k", max_size=40))
def test_arbitrary_text_matches_safe_load_or_is_declined(text: str) -> None:
    assert_same_or_declined(text)


@_SETTINGS
@given(st.builds(lambda node: "k: " + node + "\n", _node_text(3)))
def test_generated_flow_values_match_safe_load_or_are_declined(text: str) -> None:
    assert_same_or_declined(text)
