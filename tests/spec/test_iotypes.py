"""Values are checked against IO types the same way for defaults, -P params and upstream outputs."""

from typing import Any

import pytest

from polynb.spec.iotypes import check_value, is_known_type


@pytest.mark.parametrize(
    ("type_name", "value", "expected"),
    [
        ("int", 3, 3),
        ("int", "3", 3),
        ("int", 3.0, 3),
        ("float", 1, 1.0),
        ("float", "0.01", 0.01),
        ("bool", "true", True),
        ("bool", False, False),
        ("str", 5, "5"),
        ("path", "/data", "/data"),
        ("dict", {"a": 1}, {"a": 1}),
        ("List[str]", ["a", "b"], ["a", "b"]),
        ("any", object, object),
        (None, [1], [1]),
    ],
)
def test_accepted_values_are_converted(type_name: str | None, value: Any, expected: Any) -> None:
    assert check_value(type_name, value) == expected


@pytest.mark.parametrize(
    ("type_name", "value", "is_list", "fragment"),
    [
        ("int", "abc", False, "expected an integer, got 'abc'"),
        ("int", True, False, "expected an integer"),
        ("int", 1.5, False, "expected an integer"),
        ("float", "fast", False, "expected a number"),
        ("bool", "maybe", False, "expected a boolean"),
        ("dict", [1], False, "expected a mapping"),
        ("str", "a", True, "expected a list of str"),
        ("int", ["1", "x"], True, "expected an integer, got 'x'"),
    ],
)
def test_rejected_values_say_what_was_expected(type_name: str, value: Any, is_list: bool, fragment: str) -> None:
    with pytest.raises(ValueError) as info:  # noqa: PT011 (the message is asserted below)
        check_value(type_name, value, is_list=is_list)
    assert fragment in str(info.value)


def test_known_types_cover_polyaxon_and_python_names() -> None:
    for name in ("int", "float", "bool", "str", "dict", "list", "path", "uri", "image", "git", "List[int]"):
        assert is_known_type(name)
    assert not is_known_type("integer")
