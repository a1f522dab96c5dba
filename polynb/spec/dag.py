"""DAG validation and the graph: names, orphans, cycles, topological stages and typed refs between ops.

Everything here is linear in the size of the DAG (ops + refs): names are indexed once, edges are integer
adjacency lists, stages come from Kahn's algorithm level by level, and a cycle is found by walking upstream
from a node Kahn could not place (every such node has an unplaced upstream, so the walk must loop). Nothing
recurses, so a 100,000-op chain is as fine as a 10-op one.

Problems are returned as ``DagIssue`` with a path *relative to the DAG run* (``("operations", 2,
"dependencies", 0)``); the caller prefixes it (``run``) and turns it into a positioned ``SpecError``.

Upstream = ``dependencies`` + ops named by param refs (``ref: ops.X``) + ops named by event refs, as in
Polyaxon's ``_get_op_upstream``. Stages are the breadth-first topological levels of Polyaxon's
``sort_topologically``; within a stage ops keep their document order.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence, Sized
from dataclasses import dataclass, field

from polynb.limits import MAX_NAME_LENGTH, LimitError
from polynb.spec.errors import SpecError, SpecErrors, format_path
from polynb.spec.models import IO, Component, Dag, EventKind, Operation
from polynb.spec.refs import ValuePath, parse_ref, parse_value_path

Path = tuple[str | int, ...]

DEPENDENCY = "dependency"
PARAM = "param"
EVENT = "event"

FINAL_EVENT_KINDS = frozenset(
    {
        EventKind.RUN_STATUS_DONE, EventKind.RUN_STATUS_SUCCEEDED, EventKind.RUN_STATUS_FAILED,
        EventKind.RUN_STATUS_STOPPED, EventKind.RUN_STATUS_SKIPPED, EventKind.RUN_STATUS_UPSTREAM_FAILED,
    }
)  # fmt: skip
"""Event kinds emitted only once a run is final: after them, the run's outputs exist."""

# The `globals.*` keys Polyaxon's compile-time context knows for an op or the DAG (`GLOBALS_CONTEXTS`); each is
# a `str`. Other keys (run_outputs_path, ...) exist at runtime only, so a declared input cannot take them.
GLOBALS_KEYS = frozenset(
    {
        "owner_name", "project_name", "project_unique_name", "project_uuid", "run_info", "name", "uuid",
        "status", "namespace", "iteration", "context_path", "artifacts_path", "created_at", "compiled_at",
        "schedule_at", "started_at", "finished_at", "duration", "cloning_kind", "original_uuid",
        "is_independent",
    }
)  # fmt: skip

EVENT_GLOBALS_KEYS = frozenset({"metrics", "events"})
"""polynb's own `globals.*` of a run, filled from its events as they come (docs/semantics.md, "Events"):
`metrics` (latest value of each metric) and `events` (latest payload of each kind); each a `dict`."""

# Types Polyaxon takes as interchangeable for a ref (`clipped.types.COMPATIBLE_TYPES`; its float/metric pair
# compares a Python type with a string and never matches, so it is left out here too).
_STR_LIKE = frozenset({"str", "path", "s3", "gcs", "wasb"})
ORPHAN_REF = "is not an op of this DAG (orphan ref)"
"""How an orphan ref is reported, after the name it refers to."""
_DID_YOU_MEAN_LIMIT = 2000  # difflib over more names than this costs more than the hint is worth


@dataclass(frozen=True, slots=True)
class Edge:
    """``src`` must exist (and, for dependencies, finish) before ``dst``; ``kinds`` say why."""

    src: str
    dst: str
    kinds: frozenset[str]
    event_kinds: frozenset[str] = frozenset()


@dataclass(slots=True)
class OpNode:
    name: str
    upstream: set[str] = field(default_factory=set)
    downstream: set[str] = field(default_factory=set)
    index: int = 0
    """Position of the op in ``operations``."""


@dataclass(slots=True)
class DagGraph:
    nodes: dict[str, OpNode]
    edges: list[Edge]
    stages: list[list[str]]
    _into: dict[str, list[Edge]] = field(default_factory=dict, repr=False)

    def edges_into(self, name: str) -> list[Edge]:
        if not self._into and self.edges:
            for edge in self.edges:
                self._into.setdefault(edge.dst, []).append(edge)
        return self._into.get(name, [])

    @property
    def order(self) -> list[str]:
        """A topological order (the stages flattened)."""
        return [name for stage in self.stages for name in stage]


@dataclass(frozen=True, slots=True)
class DagIssue:
    """A problem of a DAG, at ``path`` relative to the DAG run (``operations[2].dependencies[0]``)."""

    path: Path
    message: str


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """`` (did you mean `x`?)`` for a close candidate, else an empty string."""
    if isinstance(candidates, Sized) and len(candidates) > _DID_YOU_MEAN_LIMIT:
        return ""  # before copying: orphans in a 100,000-op DAG would each copy every name
    pool = list(candidates)
    if len(pool) > _DID_YOU_MEAN_LIMIT:
        return ""
    close = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""


# ----------------------------------------------------------------------------------- graph building


# Edge kinds as bits while collecting; each combination's frozenset is built once and shared by every edge.
_DEPENDENCY_BIT, _PARAM_BIT, _EVENT_BIT = 1, 2, 4
_KIND_SETS = [
    frozenset(kind for bit, kind in ((1, DEPENDENCY), (2, PARAM), (4, EVENT)) if mask & bit) for mask in range(8)
]
_NO_EVENT_KINDS: frozenset[str] = frozenset()


@dataclass(slots=True)
class _Up:
    """Why an op waits for one upstream: kind bits, event kinds, and the first field naming it."""

    kinds: int
    event_kinds: set[str] | None
    field: tuple[str, str | int]
    """(``dependencies``, k), (``params``, name) or (``events``, k): the path is built only to report a cycle."""


def _field_path(i: int, where: tuple[str, str | int]) -> Path:
    section, key = where
    return ("operations", i, section, key) if section == "dependencies" else ("operations", i, section, key, "ref")


def analyze(dag: Dag) -> tuple[DagGraph, list[DagIssue]]:
    """Build the graph of a DAG and report duplicate names, orphan refs and cycles (with their path)."""
    issues: list[DagIssue] = []
    ops = dag.operations
    _check_component_names(dag, issues)

    index: dict[str, int] = {}
    max_name = name_limit(issues, ("operations",))
    for i, op in enumerate(ops):
        name = op.name
        if not name:
            issues.append(DagIssue(("operations", i, "name"), "every op of a DAG needs a `name`"))
            continue
        if max_name is not None and len(name) > max_name:
            issues.append(DagIssue(("operations", i, "name"), name_too_long(name, max_name)))
        if name in index:
            issues.append(
                DagIssue(
                    ("operations", i, "name"),
                    f"the DAG has several ops named `{name}` (first at operations[{index[name]}]); op names "
                    "must be unique",
                )
            )
            continue
        index[name] = i

    # Upstream index -> _Up, per op index, in document order (index values ascend).
    hints: dict[str, str] = {}  # did-you-mean per orphan name: many ops may name the same missing op
    ups: dict[int, dict[int, _Up]] = {i: _collect_upstream(ops[i], i, index, issues, hints) for i in index.values()}
    graph = _assemble(ops, index, ups)
    issues.extend(_cycles(ops, ups, graph))
    return graph, issues


def name_limit(issues: list[DagIssue], path: Path) -> int | None:
    """``POLYNB_MAX_NAME_LENGTH`` (None: no limit); a malformed setting is an issue at ``path``."""
    try:
        return MAX_NAME_LENGTH.value()
    except LimitError as exc:
        issues.append(DagIssue(path, str(exc)))
        return MAX_NAME_LENGTH.default


def name_too_long(name: str, limit: int) -> str:
    """Why a run name over ``limit`` (``POLYNB_MAX_NAME_LENGTH``) is refused: runs, pods and URLs carry it."""
    shown = name if len(name) <= 40 else name[:37] + "..."
    what = f"the name `{shown}` is"
    return MAX_NAME_LENGTH.exceeded(len(name), what, limit=limit) or f"{what} too long"


def _check_component_names(dag: Dag, issues: list[DagIssue]) -> None:
    seen: dict[str, int] = {}
    for i, component in enumerate(dag.components or ()):
        name = component.name
        if not name:
            issues.append(
                DagIssue(("components", i, "name"), "every component of a DAG needs a `name` (ops use it in dagRef)")
            )
        elif name in seen:
            issues.append(
                DagIssue(
                    ("components", i, "name"),
                    f"the DAG has several components named `{name}` (first at components[{seen[name]}]); "
                    "component names must be unique",
                )
            )
        else:
            seen[name] = i


def _collect_upstream(
    op: Operation, i: int, index: Mapping[str, int], issues: list[DagIssue], hints: dict[str, str]
) -> dict[int, _Up]:
    """The upstream ops of ``op`` (dependencies, ``ops.X`` param refs, ``ops.X`` events); orphans are issues."""
    ups: dict[int, _Up] = {}
    targets: list[tuple[str, int, tuple[str, str | int], Sequence[EventKind]]] = []
    for k, dep in enumerate(op.dependencies or ()):
        targets.append((dep, _DEPENDENCY_BIT, ("dependencies", k), ()))
    if op.params:
        for pname, param in op.params.items():
            ref = param.ref
            if ref is not None and ref.startswith("ops."):
                targets.append((ref[4:], _PARAM_BIT, ("params", pname), ()))
    for k, event in enumerate(op.events or ()):
        if event.ref.startswith("ops."):
            targets.append((event.ref[4:], _EVENT_BIT, ("events", k), event.kinds))
    for target, bit, where, event_kinds in targets:
        j = index.get(target)
        if j is None:
            hint = hints.get(target)
            if hint is None:
                hint = hints[target] = did_you_mean(target, index)
            issues.append(DagIssue(_field_path(i, where), f"`{target}` {ORPHAN_REF}{hint}"))
            continue
        up = ups.get(j)
        if up is None:
            up = ups[j] = _Up(0, None, where)
        up.kinds |= bit
        if event_kinds:
            if up.event_kinds is None:
                up.event_kinds = set()
            up.event_kinds.update(str(kind.value) for kind in event_kinds)
    return ups


def _assemble(ops: Sequence[Operation], index: Mapping[str, int], ups: Mapping[int, dict[int, _Up]]) -> DagGraph:
    names = {i: name for name, i in index.items()}
    nodes: dict[str, OpNode] = {name: OpNode(name, set(), set(), i) for name, i in index.items()}
    edges: list[Edge] = []
    indegree: dict[int, int] = {}
    downstream: dict[int, list[int]] = {i: [] for i in ups}
    kind_sets = _KIND_SETS
    for i, node_ups in ups.items():  # ascending op index, so edges come out ordered by (dst, src) index
        dst = names[i]
        upstream = nodes[dst].upstream
        indegree[i] = len(node_ups)
        for j in sorted(node_ups) if len(node_ups) > 1 else node_ups:
            up = node_ups[j]
            src = names[j]
            upstream.add(src)
            nodes[src].downstream.add(dst)
            downstream[j].append(i)
            event_kinds = frozenset(up.event_kinds) if up.event_kinds else _NO_EVENT_KINDS
            edges.append(Edge(src, dst, kind_sets[up.kinds], event_kinds))

    # Kahn, one level at a time (Polyaxon's breadth-first stages); document order inside a level.
    stages: list[list[str]] = []
    level = [i for i, d in indegree.items() if d == 0]  # already ascending
    while level:
        stages.append([names[i] for i in level])
        nxt: list[int] = []
        for i in level:
            for d in downstream[i]:
                indegree[d] -= 1
                if indegree[d] == 0:
                    nxt.append(d)
        nxt.sort()
        level = nxt
    return DagGraph(nodes=nodes, edges=edges, stages=stages)


def _cycles(ops: Sequence[Operation], ups: Mapping[int, dict[int, _Up]], graph: DagGraph) -> list[DagIssue]:
    placed = sum(len(s) for s in graph.stages)
    if placed == len(ups):
        return []
    in_stage = {graph.nodes[n].index for stage in graph.stages for n in stage}
    remaining = sorted(i for i in ups if i not in in_stage)
    issues: list[DagIssue] = []
    explored: set[int] = set()
    for start in remaining:
        if start in explored:
            continue
        # Walk upstream through unplaced nodes: each has an unplaced upstream, so the walk closes a loop.
        trail: list[int] = []
        position: dict[int, int] = {}
        cur = start
        while cur not in position and cur not in explored:
            position[cur] = len(trail)
            trail.append(cur)
            cur = next(j for j in ups[cur] if j not in in_stage)
        explored.update(trail)
        if cur not in position:
            continue  # joined a walk already reported
        loop = trail[position[cur] :]  # each element's upstream is the next one
        first = min(loop)
        k = loop.index(first)
        # Display downstream-wise from the first op in document order: a -> b means b waits for a.
        upstream_wise = loop[k:] + loop[:k]
        downstream_wise = [upstream_wise[0], *reversed(upstream_wise[1:]), upstream_wise[0]]
        names = " -> ".join(str(ops[i].name) for i in downstream_wise)
        # Point at the field of the first op that names its upstream in the loop.
        upstream_of_first = upstream_wise[1] if len(upstream_wise) > 1 else first
        path = _field_path(first, ups[first][upstream_of_first].field)
        issues.append(DagIssue(path, f"the DAG has a cycle: {names}"))
    return issues


def build_graph(dag: Dag, *, file: str = "<string>", base: Path = ("run",)) -> DagGraph:
    """The graph of ``dag``; raise ``SpecErrors`` (without positions) for duplicates, orphans and cycles."""
    graph, issues = analyze(dag)
    if issues:
        raise SpecErrors(SpecError(file, 0, 0, format_path((*base, *i.path)), i.message) for i in issues)
    return graph


# --------------------------------------------------------------------------------------- ref typing


@dataclass(frozen=True, slots=True)
class _Source:
    """The type of a value a ref reads: Polyaxon's compile-time context entry."""

    type: str | None
    is_list: bool


_DICT = _Source("dict", False)
_STR = _Source("str", False)


def io_shape(io: IO) -> tuple[str | None, bool]:
    """(element type, is a list) of an IO; ``List[str]`` and ``type: str, isList: true`` are the same."""
    t = io.type
    if t is not None and t.startswith("List[") and t.endswith("]"):
        return t[5:-1].strip(), True
    return t, bool(io.is_list)


class _IOIndex:
    """A component's inputs and outputs by name, built once per component (ops often share one)."""

    __slots__ = ("component", "inputs", "outputs", "shapes")

    def __init__(self, component: Component) -> None:
        self.component = component
        self.inputs = {io.name: io for io in component.inputs or ()}
        self.outputs = {io.name: io for io in component.outputs or ()}
        self.shapes: dict[int, _Source] = {}

    def shape(self, io: IO) -> _Source:
        found = self.shapes.get(id(io))
        if found is None:
            found = self.shapes[id(io)] = _from_io(io)
        return found

    def source(self, section: str, key: str | None) -> _Source | None:
        """What ``ops.X`` offers under ``section[.key]``; None when it declares no such thing."""
        if key is None:
            return _DICT if section in ("inputs", "outputs") else _STR
        if section == "globals":
            if key in EVENT_GLOBALS_KEYS:
                return _DICT
            return _STR if key in GLOBALS_KEYS else None
        if section == "artifacts":
            io = self.outputs.get(key) or self.inputs.get(key)
            return self.shape(io) if io is not None and io.type == "artifacts" else None
        io = self.outputs.get(key) if section == "outputs" else self.inputs.get(key)
        return self.shape(io) if io is not None else None


def _from_io(io: IO) -> _Source:
    t, is_list = io_shape(io)
    return _Source(t, is_list)


def _compatible(dst: str | None, src: str | None) -> bool:
    return dst == src or (dst in _STR_LIKE and src in _STR_LIKE)


def check_refs(
    dag: Dag,
    graph: DagGraph,
    components: Mapping[str, Component],
    dag_inputs: Sequence[IO] = (),
) -> list[DagIssue]:
    """Check every param ref of every op against what it reads, and polynb's outputs-after-event rule.

    ``components`` maps op names to their resolved components (ops that failed to resolve are absent and
    skipped). Like Polyaxon, only params bound to a **declared** input are typed; an undeclared (context)
    param is not, except for the outputs-after-event rule, which holds for every param.

    Leniencies against Polyaxon (deliberate): a single ``globals.*`` value is accepted by a list-of-str input
    (so ``globals.uuid`` feeds the hub ``tensorboard``'s ``uuids``), and ``List[T]`` equals ``type: T, isList``.
    """
    issues: list[DagIssue] = []
    dag_index = {io.name: io for io in dag_inputs}
    indexes: dict[int, _IOIndex] = {}
    value_paths: dict[tuple[bool, str], ValuePath] = {}  # ops share a few value forms: parse each once

    def index_of(component: Component) -> _IOIndex:
        found = indexes.get(id(component))
        if found is None:
            found = indexes[id(component)] = _IOIndex(component)
        return found

    for i, op in enumerate(dag.operations):
        name = op.name
        if not op.params or name is None or name not in graph.nodes or graph.nodes[name].index != i:
            continue
        component = components.get(name)
        not_finished = _awaited_before_final(op) if op.events else {}
        for pname, param in op.params.items():
            ref_text = param.ref
            if ref_text is None or ref_text.startswith("runs."):
                continue  # runs.UUID is resolved from the store at runtime (Polyaxon does not check it either)
            is_dag = ref_text == "dag"
            key = (is_dag, str(param.value))
            value_path = value_paths.get(key)
            if value_path is None:
                ref = parse_ref(ref_text)  # validated by the model already
                value_path = value_paths[key] = parse_value_path(str(param.value), ref)
            path: Path = ("operations", i, "params", pname)
            source: _Source | None
            if is_dag:
                if value_path.key is None:
                    source = _DICT if value_path.section == "inputs" else _STR
                elif value_path.section == "inputs":
                    io = dag_index.get(value_path.key)
                    source = _from_io(io) if io is not None else None
                else:
                    source = _STR if value_path.section != "globals" or value_path.key in GLOBALS_KEYS else None
                where = "dag"
            else:
                target = ref_text[4:]
                if target not in graph.nodes:
                    continue  # reported as an orphan
                if target in not_finished and value_path.section in ("outputs", "io"):
                    kinds = ", ".join(sorted(not_finished[target]))
                    issues.append(
                        DagIssue(
                            (*path, "value"),
                            f"param `{pname}` reads `{value_path}` of `{target}`, but this op only waits for "
                            f"{kinds} of `{target}`, before `{target}` has finished and has outputs; wait for a "
                            f"final event (run_status_succeeded / run_status_done), add `{target}` to "
                            "`dependencies`, or use what exists while it runs (globals.uuid, globals.name, "
                            "inputs.*, artifacts.*)",
                        )
                    )
                    continue
                upstream = components.get(target)
                if upstream is None:
                    continue
                source = index_of(upstream).source(value_path.section, value_path.key)
                where = f"ops.{target}"
            if component is None:
                continue
            own = index_of(component)
            declared = own.inputs.get(pname) or own.outputs.get(pname)
            if declared is None:
                continue  # a context param: Polyaxon does not type it
            if pname in own.outputs and value_path.section != "artifacts":
                # Polyaxon checks a param named like an output against no context at all: always refused.
                issues.append(
                    DagIssue(
                        (*path, "value"),
                        f"param `{pname}` is a ref, but `{pname}` is an output of `{component.name}`; an output is "
                        "set by the run itself, not from a ref (rename the input or the output)",
                    )
                )
                continue
            if source is None:
                if value_path.section == "artifacts":
                    continue  # artifacts may be logged at runtime
                what = {"outputs": "such output", "inputs": "such input"}.get(value_path.section, "such value")
                issues.append(
                    DagIssue(
                        (*path, "value"),
                        f"param `{pname}` reads `{value_path}` from `{where}`, which has no {what}"
                        + _declared_hint(value_path.section, where, components, dag_index),
                    )
                )
                continue
            message = _type_mismatch(pname, own.shape(declared), source, value_path, where)
            if message:
                issues.append(DagIssue((*path, "value"), message))
    return issues


def _declared_hint(section: str, where: str, components: Mapping[str, Component], dag_inputs: Mapping[str, IO]) -> str:
    if where == "dag":
        names = list(dag_inputs) if section == "inputs" else []
    else:
        component = components.get(where[4:])
        ios = (component.outputs if section == "outputs" else component.inputs) if component else None
        names = [io.name for io in ios or ()]
    if section not in ("inputs", "outputs"):
        return ""
    return f" (it declares {section}: {', '.join(names)})" if names else f" (it declares no {section})"


def _type_mismatch(pname: str, dst: _Source, source: _Source, value: ValuePath, where: str) -> str | None:
    dst_type, dst_list = dst.type, dst.is_list
    if dst_type == source.type and dst_list == source.is_list:
        return None
    if value.section == "globals" and dst_list and not source.is_list and dst_type in _STR_LIKE:
        # polynb leniency: a run's identity (globals.uuid, globals.name) into a list of str, so one run's uuid
        # feeds the hub tensorboard's `uuids`. Declared outputs keep Polyaxon's strict list-ness.
        return None
    if not _compatible(dst_type, source.type):
        return (
            f"param `{pname}` has input type `{_show(dst_type, dst_list)}`, which does not correspond to the "
            f"type `{_show(source.type, source.is_list)}` of `{value}` received from `{where}`"
        )
    if dst_list != source.is_list:
        return (
            f"param `{pname}` has input type `{_show(dst_type, dst_list)}`, which does not correspond to "
            f"`{_show(source.type, source.is_list)}` of `{value}` received from `{where}` (list vs single value)"
        )
    return None


def _show(type_name: str | None, is_list: bool) -> str:
    name = type_name or "untyped"
    return f"List[{name}]" if is_list else name


def _awaited_before_final(op: Operation) -> dict[str, set[str]]:
    """Upstream ops this op may start before they finish: awaited by events only, none of them final-only.

    Triggers combine with AND, so one trigger whose kinds are all final guarantees the upstream is done;
    ``dependencies`` on it do too (an explicit dependency is always waited for).
    """
    early: dict[str, set[str]] = {}
    final: set[str] = set(op.dependencies or ())
    for event in op.events or ():
        if not event.ref.startswith("ops."):
            continue
        target = event.ref[4:]
        if all(kind in FINAL_EVENT_KINDS for kind in event.kinds):
            final.add(target)
        else:
            early.setdefault(target, set()).update(str(k.value) for k in event.kinds if k not in FINAL_EVENT_KINDS)
    return {name: kinds for name, kinds in early.items() if name not in final}
