"""``polynb check -f FILE [-f FILE ...] [-P name=value ...] [--graph] [--json]``.

Exit status: 0 when every file is valid, 1 otherwise, 2 for usage errors. One line per error,
``file:line:col: path: message``, on stdout; warnings (features not supported yet, ignored settings) on
stderr. ``--json`` prints ``{"valid", "errors", "ops"}``; ``--graph`` prints each pipeline's stages and edges.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from polynb.spec.dag import Edge

EXIT_VALID = 0
EXIT_INVALID = 1


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("check", help="validate Polyaxonfiles (schema, refs, DAG) without running them")
    p.add_argument("-f", "--file", dest="files", action="append", required=True, metavar="FILE",
                   help="a Polyaxonfile (repeat for several)")  # fmt: skip
    p.add_argument("-P", "--param", dest="params", action="append", default=[], type=parse_param,
                   metavar="NAME=VALUE", help="a param of the top-level component (repeatable)")  # fmt: skip
    p.add_argument("--graph", action="store_true", help="print each pipeline's stages and edges")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--executor", help="where the ops will run: what only Kubernetes runs is an error for local "
                   "(default: $POLYNB_EXECUTOR, else local)")  # fmt: skip
    p.set_defaults(func=cmd_check)


def parse_param(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value


def cmd_check(args: argparse.Namespace) -> int:
    from polynb.compiler.check import check
    from polynb.compiler.pipeline import KUBERNETES_ONLY
    from polynb.executors.registry import default_name

    params = dict(args.params)
    result = check(args.files, params=params or None)
    if (args.executor or default_name()) == "local":
        # What reads the cluster's objects cannot run here: an error, as the local executor would refuse it.
        moved = [w for w in result.warnings if w.message.startswith(KUBERNETES_ONLY)]
        if moved:
            result.warnings = [w for w in result.warnings if w not in moved]
            result.errors = [*result.errors, *moved]
            result.valid = False
    for warning in result.warnings:
        w = warning
        print(f"{w.file}:{w.line}:{w.column}: {w.path}: warning: {w.message}", file=sys.stderr)
    if args.json:
        json.dump(result.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for error in result.errors:
            print(error)
        if args.graph:
            for pipeline in result.pipelines:
                print_graph(pipeline, sys.stdout)
        files = len(args.files)
        if result.valid:
            ops = len(result.ops)
            print(f"valid: {files} file{'s' * (files != 1)}, {ops} op{'s' * (ops != 1)}")
        else:
            n = len(result.errors)
            print(f"invalid: {n} error{'s' * (n != 1)} in {files} file{'s' * (files != 1)}")
    return EXIT_VALID if result.valid else EXIT_INVALID


def describe_edge(edge: Edge) -> str:
    """``dependency, event: run_status_running, param`` — why ``edge.dst`` waits for or reads ``edge.src``."""
    from polynb.spec.dag import DEPENDENCY, EVENT, PARAM

    parts: list[str] = []
    if DEPENDENCY in edge.kinds:
        parts.append("dependency")
    if EVENT in edge.kinds:
        parts.append("event: " + ", ".join(sorted(edge.event_kinds)))
    if PARAM in edge.kinds:
        parts.append("param")
    return ", ".join(parts)


def print_graph(pipeline: Any, out: TextIO) -> None:
    """The stages and edges of one pipeline, for humans."""
    graph = pipeline.graph
    source = f"  ({pipeline.source})" if pipeline.source else ""
    print(f"{pipeline.name}: {pipeline.kind}, {len(graph.nodes)} op{'s' * (len(graph.nodes) != 1)}{source}", file=out)
    for i, stage in enumerate(graph.stages, 1):
        print(f"  stage {i}: {', '.join(stage)}", file=out)
    if graph.edges:
        width = max(len(f"{e.src} -> {e.dst}") for e in graph.edges)
        print("  edges:", file=out)
        for edge in graph.edges:
            arrow = f"{edge.src} -> {edge.dst}"
            print(f"    {arrow:<{width}}  [{describe_edge(edge)}]", file=out)
