"""``check`` never reports an internal error: valid corpus files, mutated, are judged (valid or not), never crash.

Each example takes a valid file of ``tests/spec/corpus/valid``, applies one to three mutations to its data
(delete, replace, rename or duplicate an entry, add a key) or to its text (drop, repeat or cut a line), writes
it beside copies of the corpus (so ``pathRef`` still resolves) and checks it, sometimes with ``-P`` params.
Derandomized with a fixed number of examples: the same files in every run, so CI is stable.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polynb.compiler.check import check

CORPUS = Path(__file__).parent / "corpus" / "valid"
VALID = sorted(CORPUS.glob("*.yaml"))
DATA = {path.name: yaml.safe_load(path.read_text()) for path in VALID}
TEXTS = {path.name: path.read_text() for path in VALID}

KEYS = [
    "ref", "value", "kind", "name", "dependencies", "events", "hooks", "params", "component", "dagRef", "hubRef",
    "pathRef", "urlRef", "run", "operations", "components", "inputs", "outputs", "trigger", "conditions", "matrix",
    "termination", "isOptional", "type", "toInit", "toEnv", "contextOnly", "connection", "init", "container",
    "command", "args", "kinds", "concurrency", "strictParams", "skipOnUpstreamSkip", "isList", "options", "cache",
    "schedule", "joins", "disableDefaults", "sidecars", "ports", "env", "version", "delayValidation", "argFormat",
]  # fmt: skip
WORDS = [
    "ops.a", "ops.", "ops.train", "dag", "runs.x", "runs.0de53b5bf8b04a219d12a39c6b92bcce", "inputs", "outputs",
    "outputs.loss", "inputs.lr", "globals.uuid", "globals", "artifacts.x.y", "io", "{{ x }}", "{{ lr }}", "{{",
    "run_status_running", "run_status_done", "run_new_artifacts", "job", "dag", "service", "tuner", "component",
    "operation", "all_done", "one_succeeded", "int", "float", "str", "list", "dict", "bool", "path", "List[str]",
    "tensorboard", "notifier", "", " ", "a.b", "1e3", "1.1", "yes", "~", "-", "a b", "é", "x" * 300,
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(WORDS),
    st.text(max_size=12),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.sampled_from(KEYS), scalars, max_size=3),
    st.lists(st.dictionaries(st.sampled_from(KEYS), scalars, max_size=3), max_size=2),
)


def slots(node: Any) -> Iterator[tuple[Any, Any]]:
    """Every (container, key or index) of a document, depth first."""
    if isinstance(node, dict):
        for key, child in node.items():
            yield node, key
            yield from slots(child)
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield node, index
            yield from slots(child)


@st.composite
def mutate_data(draw: st.DrawFn, data: Any) -> str:
    data = copy.deepcopy(data)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        places = list(slots(data))
        if not places:
            break
        container, key = draw(st.sampled_from(places))
        action = draw(st.sampled_from(["delete", "replace", "replace", "rename", "duplicate", "add"]))
        if action == "delete":
            del container[key]
        elif action == "replace":
            container[key] = draw(values)
        elif action == "rename" and isinstance(container, dict):
            container[draw(st.sampled_from(KEYS))] = container.pop(key)
        elif action == "duplicate":
            item = copy.deepcopy(container[key])
            if isinstance(container, list):
                container.insert(key, item)
            else:
                container[draw(st.sampled_from(KEYS))] = item
        elif action == "add":
            target = container[key]
            if isinstance(target, dict):
                target[draw(st.sampled_from(KEYS))] = draw(values)
            elif isinstance(target, list):
                target.append(draw(values))
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


@st.composite
def mutate_text(draw: st.DrawFn, text: str) -> str:
    lines = text.splitlines(keepends=True)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        if not lines:
            break
        i = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        action = draw(st.sampled_from(["drop", "repeat", "cut", "indent"]))
        if action == "drop":
            del lines[i]
        elif action == "repeat":
            lines.insert(i, lines[i])
        elif action == "cut":
            lines[i] = lines[i][: draw(st.integers(min_value=0, max_value=max(len(lines[i]) - 1, 0)))] + "\n"
        else:
            lines[i] = "  " + lines[i]
    return "".join(lines)


@st.composite
def mutated_files(draw: st.DrawFn) -> tuple[str, str, dict[str, str]]:
    name = draw(st.sampled_from(sorted(DATA)))
    if draw(st.integers(min_value=0, max_value=3)) == 0:
        text = draw(mutate_text(TEXTS[name]))
    else:
        text = draw(mutate_data(DATA[name]))
    params = draw(st.dictionaries(st.sampled_from(["lr", "x", "epochs", "uuids", "name"]), st.sampled_from(WORDS),
                                  max_size=2))  # fmt: skip
    return name, text, params


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="polynb-fuzz-") as tmp:
        for path in VALID:
            shutil.copy(path, tmp)
        yield Path(tmp)


@settings(
    max_examples=200,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
@given(mutated_files())
def test_check_never_reports_an_internal_error(folder: Path, case: tuple[str, str, dict[str, str]]) -> None:
    name, text, params = case
    path = folder / f"mutated-{name}"
    path.write_text(text)
    result = check(path, params=params or None)
    internal = [str(e) for e in result.errors if "internal error" in e.message]
    assert not internal, f"{name} mutated to:\n{text}\n-> {internal}"
    assert result.valid == (not result.errors)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # Found by the fuzz test: each was an internal error.
        ("kind: []\nrun: {kind: job, container: {command: [x]}}\n", "expected a Polyaxonfile kind"),
        (
            "kind: operation\nmatrix: {kind: grid, params: 1, values: 2}\n"
            "component: {run: {kind: job, container: {command: [x]}}}\n",
            None,
        ),
    ],
)
def test_inputs_that_once_crashed_check(text: str, message: str | None) -> None:
    result = check(text)
    assert not any("internal error" in e.message for e in result.errors), result.errors
    if message is not None:
        assert any(message in e.message for e in result.errors), result.errors


def test_a_ref_without_a_value_is_a_positioned_error() -> None:
    text = """\
version: 1.1
kind: component
name: refs
run:
  kind: dag
  operations:
    - name: a
      component: {outputs: [{name: x, type: int}], run: {kind: job, container: {command: ["true"]}}}
    - name: b
      params: {y: {ref: ops.a}}
      component: {inputs: [{name: y, type: int}], run: {kind: job, container: {command: ["true"]}}}
"""
    result = check(text)
    assert [str(e) for e in result.errors] == [
        "<string>:10:19: run.operations[1].params.y: a param with `ref: ops.a` needs a string `value` such as "
        "outputs.loss or globals.uuid"
    ]
