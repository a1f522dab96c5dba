"""Kubernetes' ``$(VAR_NAME)`` expansion, applied by every executor so a file runs the same everywhere.

On a cluster the kubelet expands a container's ``command`` and ``args``, and the ``value`` of each of its ``env``
entries, before the process starts (the Container and EnvVar API reference; the kubelet's
``third_party/forked/golang/expansion``):

* ``$(NAME)`` is replaced by the variable's value when ``NAME`` is defined, and left as written when it is not;
* ``$$`` is reduced to ``$``, so ``$$(NAME)`` gives the literal ``$(NAME)`` whether or not ``NAME`` is defined;
* anything else is kept: a ``$`` before another character (``$HOME``, ``${HOME}``, ``$1``), a ``$`` at the end, an
  unterminated ``$(NAME``; the name of a reference is everything up to the first ``)``, and a value put in is
  never expanded again;
* an ``env`` entry's value sees the entries declared before it (in order), a ``command``/``args`` word sees the
  container's whole declared environment.

"Defined" means declared for the container (its ``env``, and what polynb declares for it on both executors),
never what the process inherits (the image's ``ENV`` on a cluster, the engine's environment here).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def expand(text: str, env: Mapping[str, str]) -> str:
    """``text`` with its ``$(NAME)`` references to ``env`` replaced, ``$$`` reduced to ``$``, the rest as written."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        dollar = text.find("$", i)
        if dollar == -1 or dollar == n - 1:
            out.append(text[i:])
            break
        out.append(text[i:dollar])
        after = text[dollar + 1]
        if after == "$":
            out.append("$")
            i = dollar + 2
            continue
        if after == "(":
            close = text.find(")", dollar + 2)
            if close != -1:
                name = text[dollar + 2 : close]
                out.append(env[name] if name in env else text[dollar : close + 1])
                i = close + 1
                continue
        # Not a reference: the `$` stays, and scanning goes on from the next character (an unterminated
        # `$(` keeps its `(` and whatever follows it).
        out.append("$")
        i = dollar + 1
    return "".join(out)


def declared_env(entries: Iterable[tuple[str, str]], defined: Mapping[str, str] | None = None) -> dict[str, str]:
    """A container's ``env`` entries, in order, each value expanded against what is declared before it:
    ``defined`` (declared ahead of the entries), then the earlier entries (a later entry of the same name wins)."""
    env = dict(defined or {})
    for name, value in entries:
        env[name] = expand(value, env)
    return env


def expand_argv(words: Iterable[str], env: Mapping[str, str]) -> list[str]:
    """``command + args`` as the process gets them: each word expanded against the container's declared ``env``
    (one word stays one argument, whatever its values hold)."""
    return [expand(word, env) for word in words]
