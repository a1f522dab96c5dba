"""Ask Polyaxon 2.18 whether Polyaxonfiles are valid: the oracle of the agreement test and the peer of the bench.

Run it with the interpreter of Polyaxon's own virtualenv (``$POLYAXON_PYTHON``), never with polynb's:

    $POLYAXON_PYTHON tests/spec/polyaxon_oracle.py [--hub-dir polynb/hub] [--repeat N] FILE...

It imports Polyaxon once (about 1.3 s) and calls
``polyaxon.polyaxonfile.check_polyaxonfile(polyaxonfile=path, is_cli=False, verbose=False)`` per file, then
prints one JSON object on stdout: ``{path: {"valid": bool, "error": str, "seconds": float}}``. ``seconds``
is the best of ``--repeat`` in-process calls (for the bench); ``error`` is empty for a valid file.

Polyaxon fetches ``hubRef`` and ``urlRef`` components over the network during a check, and the tests run
offline. The oracle therefore swaps the ``ConfigSpec`` used by Polyaxon's reference collection
(``polyaxon._polyaxonfile.references``) for an offline one:

* ``hubRef: NAME[:TAG]`` reads ``NAME.yaml`` (``NAME/TAG.yaml`` for a tag, as polynb's registry does) from
  ``--hub-dir`` (polynb's built-in hub), so Polyaxon checks a file against the same component polynb resolves.
  An unknown name or tag is an error, as it is for polynb.
* ``urlRef`` is refused with "urlRef is not fetched (offline)"; the corpus's urlRef names an unreachable
  URL, which polynb fails to fetch, so both say invalid.

Hook ``hubRef`` values are not resolved by ``check_polyaxonfile`` at all, so nothing is needed for them.
This script must not import polynb: it runs in a different virtualenv.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
from typing import Any


def install_offline_references(hub_dir: str | None) -> None:
    """Make Polyaxon's reference collection read hubRef from ``hub_dir`` and refuse urlRef."""
    from polyaxon._config.spec import ConfigSpec
    from polyaxon._polyaxonfile import references
    from polyaxon.exceptions import PolyaxonfileError

    class OfflineConfigSpec(ConfigSpec):
        @classmethod
        def get_from(cls, value: Any, config_type: str | None = None) -> Any:
            if config_type == "hub":
                path = hub_file(hub_dir, str(value))
                if path is None:
                    raise PolyaxonfileError(f"hub component `{value}` not found in the offline hub")
                return ConfigSpec.get_from(path)
            if config_type == "url":
                raise PolyaxonfileError(f"urlRef `{value}` is not fetched (offline)")
            return ConfigSpec.get_from(value, config_type)

    references.ConfigSpec = OfflineConfigSpec


def hub_file(hub_dir: str | None, ref: str) -> str | None:
    """The file polynb's registry reads for ``NAME[:TAG]``: ``NAME.yaml`` untagged or ``latest``, ``NAME/TAG.yaml``
    (``.yml``) tagged, so both tools check a file against the same component; None for an unknown tag."""
    if not hub_dir:
        return None
    name, _, tag = (part.strip() for part in ref.partition(":"))
    candidates = [os.path.join(hub_dir, f"{name}.yaml")] if tag in ("", "latest") else []
    if tag:
        candidates += [os.path.join(hub_dir, name, f"{tag}{ext}") for ext in (".yaml", ".yml")]
    if tag == "latest":
        candidates.append(os.path.join(hub_dir, name, "latest.yaml"))
    return next((path for path in candidates if os.path.isfile(path)), None)


def describe(exc: BaseException) -> str:
    """The error and its causes, one per line (Polyaxon wraps the useful message in ``__cause__``)."""
    parts: list[str] = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        parts.append(f"{type(cur).__name__}: {cur}".strip())
        cur = cur.__cause__ or cur.__context__
    return "\n".join(parts)


def check_one(path: str, repeat: int) -> dict[str, Any]:
    from polyaxon.polyaxonfile import check_polyaxonfile

    best = float("inf")
    error = ""
    for _ in range(max(1, repeat)):
        sink = io.StringIO()
        start = time.perf_counter()
        try:
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                check_polyaxonfile(polyaxonfile=path, is_cli=False, verbose=False)
        except (Exception, SystemExit) as exc:  # Polyaxon raises many types; all mean "invalid"
            error = describe(exc) or type(exc).__name__
        best = min(best, time.perf_counter() - start)
        if error:
            break
    return {"valid": not error, "error": error, "seconds": best}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("files", nargs="+")
    parser.add_argument("--hub-dir", default=None, help="folder of NAME.yaml hub components")
    parser.add_argument("--repeat", type=int, default=1, help="best of N in-process checks (bench)")
    args = parser.parse_args(argv)

    import_start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        import polyaxon.polyaxonfile  # noqa: F401  (the 1.3 s import, done once)
    install_offline_references(args.hub_dir)
    results: dict[str, Any] = {path: check_one(path, args.repeat) for path in args.files}
    json.dump(results, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    sys.stderr.write(f"polyaxon import: {time.perf_counter() - import_start:.2f}s\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
