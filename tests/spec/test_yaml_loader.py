"""YAML layer: same data as yaml.safe_load, precise errors, positions."""

from __future__ import annotations

import datetime

import pytest
import yaml

from polynb.spec.errors import SpecError, SpecErrors
from polynb.spec.yaml_fast import Unsupported, parse_fast
from polynb.spec.yaml_loader import Document, parse


def only_error(text: str | bytes) -> SpecError:
    with pytest.raises(SpecErrors) as info:
        parse(text, "f.yaml")
    assert len(info.value.errors) == 1, info.value.errors
    return info.value.errors[0]


# ------------------------------------------------------------------------------- same data as PyYAML

# Each document is in the fast subset; the fast reader must return exactly what safe_load does.
FAST_SUBSET = [
    "a: 1\nb: x\n",
    "version: 1.1\nkind: component\nname: my-comp\n",
    "a:\n  b:\n    c: [1, 2.5, x, 'y z', \"q\"]\n",
    "ops:\n- name: a\n  deps:\n  - x\n  - y\n- name: b\n",
    "ops:\n  - name: a\n    params: {lr: {value: 0.1}, n: {value: 3}}\n",
    "a: {}\nb: []\nc:\nd: ~\ne: null\n",
    "on: yes\noff: no\nt: True\nf: false\n",
    "n: 0x1f\no: 0o17\nt: 1:30\ns: 1_000\ne: 1e3\ninf: .inf\n",
    "d: 2024-01-02\nts: 2024-01-02 10:00:00\n",
    "s: 'it''s'\nq: \"a # b\"\nc: x # comment\nu: http://x/y\n",
    "cmd: [python, -c, 'print(1)', -1]\n",
    "- a\n- b: 1\n  c: 2\n-\n  - x\n",
    "  indented: 1\n  root: 2\n",
    "# comment only before\na:   1   \n\n\n# trailing\n",
    "k: -1\nj: -x\nl: a:b\nm: '-'\n",
    "events: [{ref: ops.a, kinds: [run_status_running, run_status_done]}]\n",
    "1: int key\n2.5: float key\n",
]


@pytest.mark.parametrize("text", FAST_SUBSET)
def test_fast_reader_matches_safe_load(text: str) -> None:
    assert parse_fast(text) == yaml.safe_load(text)


# Outside the subset: the fast reader must refuse, never guess.
OUTSIDE_SUBSET = [
    "a: &x 1\nb: *x\n",
    "a: !!str 1\n",
    "a: |\n  text\n",
    "a: >\n  folded\n",
    "a: b\n  continued\n",
    "a: 'multi\n  line'\n",
    '"quoted key": 1\n',
    "? complex\n: key\n",
    "a: 1\na: 2\n",
    "a: {x: 1, x: 2}\n",
    "---\na: 1\n",
    "a:\n\tb: 1\n",
    "a: [1,\n  2]\n",
    'a: "esc\\n"\n',
    "- - nested\n",
    "a: [x, y,]\n",
    "a: b: c\n",
    "<<: {a: 1}\n",
]


@pytest.mark.parametrize("text", OUTSIDE_SUBSET)
def test_fast_reader_refuses_what_it_does_not_cover(text: str) -> None:
    with pytest.raises(Unsupported):
        parse_fast(text)


# The valid mappings among them (the others are covered by the error tests below).
FALLBACK_VALID = [
    t
    for t in OUTSIDE_SUBSET
    if "\t" not in t and t not in ("a: 1\na: 2\n", "a: {x: 1, x: 2}\n", "- - nested\n", "a: b: c\n")
]


@pytest.mark.parametrize("text", FALLBACK_VALID)
def test_fallback_gives_safe_load_data(text: str) -> None:
    assert parse(text, "f.yaml").data == yaml.safe_load(text)


def test_yaml_11_scalars_as_polyaxon_reads_them() -> None:
    data = parse("on: yes\nt: 1:30\nd: 2024-01-02\nv: 1.1\n", "f.yaml").data
    assert data == {True: True, "t": 90, "d": datetime.date(2024, 1, 2), "v": 1.1}


def test_anchors_aliases_and_merge_keys() -> None:
    text = "base: &b {image: a, tag: 1}\nc:\n  <<: *b\n  tag: 2\nd: *b\n"
    data = parse(text, "f.yaml").data
    assert data["c"] == {"image": "a", "tag": 2}
    assert data["d"] == {"image": "a", "tag": 1}


def test_windows_line_breaks() -> None:
    doc = parse(b"a: 1\r\nb:\r\n  - x # c\r\n", "f.yaml")
    assert (doc.data, doc.fast) == ({"a": 1, "b": ["x"]}, True)
    assert doc.position(("b", 0)) == (3, 5)


def test_bytes_with_bom_are_accepted() -> None:
    assert parse("\ufeffa: 1\n".encode(), "f.yaml").data == {"a": 1}


# ------------------------------------------------------------------------------------------ errors


def test_syntax_error_has_pyyaml_mark() -> None:
    error = only_error("a: [1, 2\nb: 3\n")
    assert (error.file, error.line, error.column, error.path) == ("f.yaml", 2, 2, "(root)")
    assert error.message.startswith("invalid YAML: while parsing a flow sequence")


def test_duplicate_key_reports_second_and_first() -> None:
    text = "kind: component\nrun:\n  kind: job\n  container: {image: a}\n  kind: service\n"
    error = only_error(text)
    assert (error.line, error.column, error.path) == (5, 3, "run.kind")
    assert "duplicate key 'kind' (first defined at line 3, column 3)" in error.message


def test_duplicate_key_inside_list_item_and_flow_mapping() -> None:
    with pytest.raises(SpecErrors) as info:
        parse("ops:\n- name: a\n  name: b\n- {x: 1, x: 2}\n", "f.yaml")
    assert [(e.line, e.column, e.path) for e in info.value.errors] == [(3, 3, "ops[0].name"), (4, 10, "ops[1].x")]


def test_merge_key_overrides_are_not_duplicates() -> None:
    assert parse("b: &b {x: 1}\nc: {<<: *b, x: 2}\n", "f.yaml").data["c"] == {"x": 2}


def test_tab_indentation() -> None:
    error = only_error("run:\n  kind: job\n\tcontainer: {}\n")
    assert (error.line, error.column) == (3, 1)
    assert error.message == "tabs are not allowed for indentation in YAML; use spaces"


def test_tab_after_spaces_points_at_the_tab() -> None:
    error = only_error("a:\n  b: 1\n  \tc: 2\n")
    assert (error.line, error.column) == (3, 3)
    assert "tabs are not allowed" in error.message


def test_tab_inside_a_value_is_fine() -> None:
    assert parse("a:\tb\nc: 'x\ty'\n", "f.yaml").data == {"a": "b", "c": "x\ty"}


@pytest.mark.parametrize(
    ("text", "found"),
    [("- a\n- b\n", "a list"), ("just text\n", "a string"), ("42\n", "an integer")],
)
def test_document_must_be_a_mapping(text: str, found: str) -> None:
    error = only_error(text)
    assert (error.line, error.column) == (1, 1)
    assert error.message == f"expected a mapping (a Polyaxonfile) but found {found}"


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_file(text: str) -> None:
    assert only_error(text).message == "the file is empty; expected a Polyaxonfile"


def test_several_documents_are_refused_as_polyaxon_does() -> None:
    error = only_error("a: 1\n---\nb: 2\n")
    assert (error.line, error.column) == (2, 1)
    assert "single YAML document" in error.message


def test_single_document_with_markers_is_fine() -> None:
    assert parse("---\na: 1\n...\n", "f.yaml").data == {"a": 1}


def test_non_utf8_bytes() -> None:
    error = only_error(b"a: 1\nb: caf\xe9\n")
    assert (error.line, error.column) == (2, 7)
    assert "byte 0xe9 at byte offset 11 (line 2)" in error.message


def test_control_character() -> None:
    error = only_error("a: 1\nb: x\x07\n")
    assert (error.line, error.column) == (2, 5)
    assert "control character" in error.message


def test_alias_bomb_is_refused_quickly() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    error = only_error("\n".join(lines) + "\n")
    assert "alias bomb" in error.message


def test_recursive_alias_is_refused() -> None:
    assert "recursive" in only_error("a: &a [*a]\n").message


def test_unknown_tag() -> None:
    error = only_error("a: !custom x\n")
    assert (error.line, error.column) == (1, 4)
    assert "'!custom'" in error.message


# ---------------------------------------------------------------------------------------- positions

NESTED = """\
kind: component
run:
  kind: dag
  operations:
  - name: a
    events:
    - ref: ops.b
      kinds: [run_status_running, run_status_done]
  -   name: b
      dependencies:
        - a
  components: []
"""


@pytest.mark.parametrize(
    ("path", "key", "expected"),
    [
        ((), False, (1, 1)),
        (("kind",), False, (1, 7)),
        (("kind",), True, (1, 1)),
        (("run",), False, (2, 1)),  # a block value: the key is the better place
        (("run", "operations", 0), False, (5, 5)),
        (("run", "operations", 0, "events", 0, "ref"), False, (7, 12)),
        (("run", "operations", 0, "events", 0, "kinds", 1), False, (8, 35)),
        (("run", "operations", 1), False, (9, 7)),
        (("run", "operations", 1, "dependencies", 0), False, (11, 11)),
        (("run", "operations", 1, "missing"), False, (9, 7)),  # a missing key: its parent mapping
        (("run", "operations", 7), False, (4, 3)),  # no such item: the list's key
        (("run", "components"), False, (12, 15)),
    ],
)
def test_positions(path: tuple[str | int, ...], key: bool, expected: tuple[int, int]) -> None:
    assert parse(NESTED, "f.yaml").position(path, key=key) == expected


def test_positions_follow_aliases() -> None:
    doc = parse("base: &b\n  image: a\nc: *b\n", "f.yaml")
    assert doc.position(("c", "image")) == (2, 10)


def all_paths(data: object, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    out = [prefix]
    if isinstance(data, dict):
        for k, v in data.items():
            out += all_paths(v, (*prefix, k))
        out.append((*prefix, "no-such-key"))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += all_paths(v, (*prefix, i))
    return out


INDENTLESS = """\
a:
- x
- {k: [1, {m: n}], j: 'q'}   # comment
-
  - deep
b:   # comment
  c: ~
  d:
  e: [ 1 , 2 ]
"""


@pytest.mark.parametrize("text", [NESTED, INDENTLESS, *(t for t in FAST_SUBSET if not t.startswith("-"))])
@pytest.mark.parametrize("key", [False, True])
def test_fast_locator_agrees_with_pyyaml_nodes(text: str, key: bool) -> None:
    fast = parse(text, "f.yaml")
    assert fast.fast
    assert fast.data == yaml.safe_load(text)
    slow = Document(fast.data, "f.yaml", fast.text)  # positions from PyYAML's composed nodes
    for path in all_paths(fast.data):
        assert fast.position(path, key=key) == slow.position(path, key=key), path
