"""Ask Polyaxon 2.18 what argv a component's main container gets: the oracle of the argv agreement tests.

Run it with the interpreter of Polyaxon's own virtualenv (``$POLYAXON_PYTHON``), never with polynb's:

    $POLYAXON_PYTHON tests/spec/polyaxon_compile.py FILE PARAMS_JSON

It reads FILE as Polyaxon's CLI does (``check_polyaxonfile(..., to_op=True)`` with PARAMS_JSON, ``{name: value}``),
compiles the operation and resolves it as Polyaxon's agent does (``OperationSpecification.compile_operation``, then
``polyaxon._compiler.resolver.resolve``, with an agent configured with a host-path artifacts store), then cleans
the main container's ``command`` and ``args`` as Polyaxon's converter does before it writes the pod
(``sanitize_container_command_args``: ``None`` and ``""`` items dropped). It prints one JSON object on stdout:
``{"command": [...], "args": [...]}``, or ``{"error": "..."}``. This script must not import polynb.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import uuid
from typing import Any


def compile_argv(path: str, params: dict[str, Any]) -> dict[str, Any]:
    from polyaxon import settings
    from polyaxon._compiler import resolver
    from polyaxon._connections import V1Connection, V1ConnectionKind, V1HostPathConnection
    from polyaxon._polyaxonfile import OperationSpecification
    from polyaxon._polyaxonfile.check import check_polyaxonfile
    from polyaxon._runner.converter.common.containers import sanitize_container_command_args
    from polyaxon._schemas.agent import AgentConfig

    store = V1Connection(
        name="store",
        kind=V1ConnectionKind.HOST_PATH,
        schema_=V1HostPathConnection(host_path="/artifacts-store", mount_path="/artifacts-store"),
    )
    settings.AGENT_CONFIG = AgentConfig(namespace="default", artifacts_store=store, connections=[])
    op = check_polyaxonfile(polyaxonfile=path, params=params, is_cli=False, verbose=False, to_op=True)
    compiled = OperationSpecification.compile_operation(op)
    run_uuid = uuid.uuid4().hex
    _, compiled = resolver.resolve(
        compiled_operation=compiled,
        owner_name="owner",
        project_name="project",
        project_uuid="project",
        run_name="run",
        run_path=run_uuid,
        run_uuid=run_uuid,
        params=op.params,
    )
    container = sanitize_container_command_args(compiled.run.container)
    return {"command": list(container.command or []), "args": list(container.args or [])}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path, params = args[0], json.loads(args[1]) if len(args) > 1 else {}
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            result = compile_argv(path, params)
    except (Exception, SystemExit) as exc:  # Polyaxon raises many types
        result = {"error": f"{type(exc).__name__}: {exc}"}
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
