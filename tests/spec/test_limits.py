"""Size limits on Polyaxonfiles: file size, ops per DAG, run name length; each error names its variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from polynb.compiler.check import check
from polynb.spec.errors import SpecErrors
from polynb.spec.load import load, load_text

DAG = """\
version: 1.1
kind: component
name: {top}
run:
  kind: dag
  operations:
{ops}
"""


def dag(n: int, *, op_name: str = "op-{i}", top: str = "limits") -> str:
    ops = "\n".join(
        f"    - {{name: {op_name.format(i=i)}, component: {{run: {{kind: job, container: {{command: ['true']}}}}}}}}"
        for i in range(n)
    )
    return DAG.format(top=top, ops=ops)


def only_error(text_or_path: str | Path) -> str:
    result = check(text_or_path)
    assert not result.valid
    assert len(result.errors) == 1, result.errors
    return str(result.errors[0])


# ------------------------------------------------------------------------------------------ file size


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as f:
        f.truncate(50 * 1024 * 1024)  # sparse: 50 MB that cost nothing to write
    message = only_error(path)
    assert message == (
        f"{path}:0:0: (root): the file is 52,428,800 bytes, more than the limit of 33,554,432 bytes; "
        "set POLYNB_MAX_SPEC_BYTES to raise it (0 for no limit)"
    )
    with pytest.raises(SpecErrors, match="POLYNB_MAX_SPEC_BYTES"):
        load(path)


def test_the_file_size_limit_applies_to_texts_and_can_be_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    text = dag(3)
    monkeypatch.setenv("POLYNB_MAX_SPEC_BYTES", "100")
    with pytest.raises(SpecErrors, match=r"the file is \d+ bytes, more than the limit of 100 bytes"):
        load_text(text)
    with pytest.raises(SpecErrors, match="the file is 126 bytes"):
        load_text("name: " + "é" * 60)  # 66 characters of 2 bytes or 1: bytes count
    monkeypatch.setenv("POLYNB_MAX_SPEC_BYTES", "0")
    assert check(text).valid


# ------------------------------------------------------------------------------------------ op count


def test_a_dag_over_the_op_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYNB_MAX_OPS", "5")
    assert check(dag(5)).valid
    assert only_error(dag(6)) == (
        "<string>:6:3: run.operations: the DAG has 6 ops, more than the limit of 5 ops; "
        "set POLYNB_MAX_OPS to raise it (0 for no limit)"
    )
    monkeypatch.setenv("POLYNB_MAX_OPS", "0")
    assert check(dag(6)).valid


def test_the_default_op_limit_is_the_benchmark_size() -> None:
    from polynb.limits import MAX_OPS

    assert MAX_OPS.default == 100_000  # bench/spec_check.py checks a 100,000-op DAG


# ---------------------------------------------------------------------------------------- name length


def test_an_op_name_over_the_length_limit_is_refused() -> None:
    message = only_error(dag(1, op_name="x" * 5000))
    assert message == (
        "<string>:7:14: run.operations[0].name: the name `" + "x" * 37 + "...` is 5,000 characters, more than the "
        "limit of 128 characters; set POLYNB_MAX_NAME_LENGTH to raise it (0 for no limit)"
    )
    assert check(dag(1, op_name="x" * 128)).valid


def test_the_top_level_name_has_the_same_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    message = only_error(dag(1, top="t" * 129))
    assert message.startswith("<string>:3:7: name: the name `")
    assert "129 characters, more than the limit of 128 characters" in message
    monkeypatch.setenv("POLYNB_MAX_NAME_LENGTH", "200")
    assert check(dag(1, top="t" * 129)).valid


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("POLYNB_MAX_NAME_LENGTH", "lots", "POLYNB_MAX_NAME_LENGTH='lots' is not a whole number"),
        ("POLYNB_MAX_OPS", "-3", "POLYNB_MAX_OPS='-3' is negative"),
        ("POLYNB_MAX_SPEC_BYTES", "1e6", "POLYNB_MAX_SPEC_BYTES='1e6' is not a whole number"),
    ],
)
def test_a_malformed_limit_is_reported_not_a_crash(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    messages = [e.message for e in check(dag(2)).errors]
    assert f"{message} (0 turns the limit off)" in messages
    assert not any("internal error" in m for m in messages)
