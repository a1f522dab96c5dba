"""Ref and value forms of params and events, as Polyaxon reads them (and where polynb is stricter)."""

import pytest

from polynb.spec.refs import Ref, ValuePath, parse_ref, parse_value_path

UUID = "0de53b5bf8b04a219d12a39c6b92bcce"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ops.train", Ref("ops", "train")),
        ("dag", Ref("dag", None)),
        (f"runs.{UUID}", Ref("runs", UUID)),
        ("runs.0de53b5b-f8b0-4a21-9d12-a39c6b92bcce", Ref("runs", UUID)),
    ],
)
def test_valid_refs(text: str, expected: Ref) -> None:
    assert parse_ref(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("ops.a.b", "expected `ops.<op-name>`"),
        ("ops", "expected `ops.<op-name>`"),
        ("runs.not-a-uuid", "`not-a-uuid` is not a run uuid"),
        ("dag.inputs", "`dag` takes no suffix"),
        ("job.a", "expected `ops.<op-name>`, `runs.<uuid>` or `dag`"),
        ("{{ ops.a }}", "write `ops.a` without"),
    ],
)
def test_invalid_refs_say_what_was_expected(text: str, fragment: str) -> None:
    with pytest.raises(ValueError) as info:  # noqa: PT011 (the message is asserted below)
        parse_ref(text)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("outputs.loss", ValuePath("outputs", "loss")),
        ("{{ outputs.loss }}", ValuePath("outputs", "loss")),
        ("globals.uuid", ValuePath("globals", "uuid")),
        ("inputs", ValuePath("inputs")),
        ("io", ValuePath("io")),
        ("artifacts.tensorboard", ValuePath("artifacts", "tensorboard")),
        ("artifacts.lineage.path", ValuePath("artifacts", "lineage", "path")),
    ],
)
def test_value_paths(text: str, expected: ValuePath) -> None:
    assert parse_value_path(text, Ref("ops", "a")) == expected


@pytest.mark.parametrize(
    ("text", "ref", "fragment"),
    [
        ("globals", Ref("ops", "a"), "`globals` as a whole is not a value"),
        ("status", Ref("ops", "a"), "is not a value of a referenced run"),
        ("outputs.a.b", Ref("ops", "a"), "too many parts"),
        ("outputs.loss", Ref("dag", None), "`ref: dag` has no outputs"),
        ("params.lr", Ref("ops", "a"), "expected inputs.<x>, outputs.<x>"),
    ],
)
def test_invalid_value_paths(text: str, ref: Ref, fragment: str) -> None:
    with pytest.raises(ValueError) as info:  # noqa: PT011 (the message is asserted below)
        parse_value_path(text, ref)
    assert fragment in str(info.value)
