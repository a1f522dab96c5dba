"""Kubernetes' ``$(VAR_NAME)`` expansion, as polynb applies it on every executor (``polynb.executors.expansion``),
against the table the emulator's kubelet is held to as well (``support.expansion_cases``)."""

from __future__ import annotations

import pytest
from support.expansion_cases import CASES, ENV, ENV_ENTRIES

from polynb.executors.expansion import declared_env, expand, expand_argv


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_expansion_follows_kubernetes(text: str, expected: str) -> None:
    assert expand(text, ENV) == expected


@pytest.mark.parametrize(("entries", "expected"), ENV_ENTRIES)
def test_env_entries_see_the_ones_declared_before_them(
    entries: list[tuple[str, str]], expected: dict[str, str]
) -> None:
    assert declared_env(entries) == expected


def test_declared_ahead_is_seen_and_the_entries_win() -> None:
    assert declared_env([("OUT", "$(BASE)/model"), ("BASE", "mine")], {"BASE": "/runs/1"}) == {
        "BASE": "mine",
        "OUT": "/runs/1/model",
    }


def test_a_word_stays_one_argument() -> None:
    assert expand_argv(["sh", "-c", "echo $(SPACED)", "$(SPACED)"], ENV) == [
        "sh",
        "-c",
        "echo a b; rm -rf /",
        "a b; rm -rf /",
    ]
