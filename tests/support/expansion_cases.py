"""Kubernetes' ``$(VAR_NAME)`` expansion as a table: polynb's function (``polynb.executors.expansion``) and the
emulator's kubelet (``k8s_emulator.podenv``) are both tested against it, and neither imports the other.

The rules, from the API reference (Container ``command``/``args``, EnvVar ``value``): "Variable references
$(VAR_NAME) are expanded using the container's environment. If a variable cannot be resolved, the reference in the
input string will be unchanged. Double $$ are reduced to a single $, which allows for escaping the $(VAR_NAME)
syntax: i.e. "$$(VAR_NAME)" will produce the string literal "$(VAR_NAME)". Escaped references will never be
expanded, regardless of whether the variable exists or not." The edge cases follow the kubelet's
``third_party/forked/golang/expansion`` and its tests.
"""

from __future__ import annotations

ENV: dict[str, str] = {"LR": "0.1", "EPOCHS": "10", "EMPTY": "", "REF": "$(LR)", "SPACED": "a b; rm -rf /"}
"""The container's declared environment the cases expand against."""

CASES: list[tuple[str, str, str]] = [
    # (what the case shows, as written, as the process gets it)
    ("a whole word", "$(LR)", "0.1"),
    ("inside a word", "--lr=$(LR)", "--lr=0.1"),
    ("several, and repeated", "$(LR)/$(EPOCHS)/$(LR)", "0.1/10/0.1"),
    ("an empty value", "a$(EMPTY)b", "ab"),
    ("undefined: left as written", "$(NOT_SET)", "$(NOT_SET)"),
    ("undefined beside defined", "$(NOT_SET)-$(LR)", "$(NOT_SET)-0.1"),
    ("$$ escapes a reference", "$$(LR)", "$(LR)"),
    ("$$ escapes an undefined one too", "$$(NOT_SET)", "$(NOT_SET)"),
    ("$$ alone is one $ (a shell's pid variable is not)", "echo $$", "echo $"),
    ("$$$$ is $$", "echo $$$$", "echo $$"),
    ("an even run of $ before a reference", "$$$$(LR)", "$$(LR)"),
    ("an odd run of $ before a reference", "$$$$$(LR)", "$$0.1"),
    ("$$ before a shell variable", "x-$$HOME", "x-$HOME"),
    ("shell variables are not references", "$HOME ${HOME} $1 $? $@", "$HOME ${HOME} $1 $? $@"),
    ("a $ at the end stays", "cost: 5$", "cost: 5$"),
    ("a lone $ inside stays", "a $ b", "a $ b"),
    ("unterminated: kept", "$(LR", "$(LR"),
    ("unterminated after a reference", "$(LR)-$(", "0.1-$("),
    ("many unterminated", "--$($($(--", "--$($($(--"),
    ("a name runs to the first )", "$(LR$(EPOCHS))", "$(LR$(EPOCHS))"),
    ("$$ inside a name is not reduced", "$(L$$R)", "$(L$$R)"),
    ("shell command substitution is not a defined name", '$(cat "f" || echo 0)', '$(cat "f" || echo 0)'),
    ("shell arithmetic stays", "$((1+2))", "$((1+2))"),
    ("a value is put in once, never expanded again", "$(REF)", "$(LR)"),
    ("a value is put in whole, as one word", "$(SPACED)", "a b; rm -rf /"),
    ("backslashes do not escape", "\\$(LR)", "\\0.1"),
    ("nothing to expand", "plain (text)", "plain (text)"),
    ("empty", "", ""),
]

ENV_ENTRIES: list[tuple[list[tuple[str, str]], dict[str, str]]] = [
    # (a container's env entries in order, the environment they declare)
    ([("A", "1"), ("B", "$(A)-2"), ("C", "$(B)-3")], {"A": "1", "B": "1-2", "C": "1-2-3"}),
    # an entry sees only those before it
    ([("B", "$(A)"), ("A", "1")], {"B": "$(A)", "A": "1"}),
    ([("P", "p$$word"), ("Q", "$$(P)")], {"P": "p$word", "Q": "$(P)"}),
    # a later entry of the same name replaces the value, seeing the earlier one
    ([("A", "1"), ("A", "$(A)+1")], {"A": "1+1"}),
]
