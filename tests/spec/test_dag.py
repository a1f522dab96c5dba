"""DAG validation and the graph: names, orphans, cycles (with their path), stages, edges and ref typing."""

from __future__ import annotations

from typing import Any

import pytest

from polynb.spec.dag import DagGraph, analyze, build_graph, check_refs
from polynb.spec.errors import SpecErrors
from polynb.spec.models import Component, Dag, parse_polyaxonfile

JOB: dict[str, Any] = {"kind": "job", "container": {"image": "python:3.11", "command": ["python", "x.py"]}}


def dag_of(ops: list[dict[str, Any]], components: list[dict[str, Any]] | None = None) -> Dag:
    components = components or [{"name": "job", "run": JOB}]
    spec = parse_polyaxonfile(
        {"kind": "component", "run": {"kind": "dag", "operations": ops, "components": components}}
    )
    assert isinstance(spec.run, Dag)
    return spec.run


def op(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "dagRef": fields.pop("dagRef", "job"), **fields}


def messages(dag: Dag) -> list[tuple[tuple[str | int, ...], str]]:
    return [(i.path, i.message) for i in analyze(dag)[1]]


def test_stages_are_breadth_first_in_document_order() -> None:
    dag = dag_of([op("a"), op("c", dependencies=["a"]), op("b", dependencies=["a"]), op("d", dependencies=["b", "c"])])
    graph, issues = analyze(dag)
    assert issues == []
    assert graph.stages == [["a"], ["c", "b"], ["d"]]
    assert graph.nodes["d"].upstream == {"b", "c"}
    assert graph.nodes["a"].downstream == {"b", "c"}
    assert graph.order == ["a", "c", "b", "d"]


def test_upstream_is_dependencies_params_and_events_with_edge_kinds() -> None:
    dag = dag_of(
        [
            op("experiment"),
            op(
                "tensorboard",
                params={"uuid": {"ref": "ops.experiment", "value": "globals.uuid"}},
                events=[{"ref": "ops.experiment", "kinds": ["run_status_running"]}],
            ),
            op("report", dependencies=["experiment"], params={"x": {"ref": "ops.experiment", "value": "globals.name"}}),
        ]
    )
    graph, issues = analyze(dag)
    assert issues == []
    (edge,) = graph.edges_into("tensorboard")
    assert (edge.src, edge.kinds, edge.event_kinds) == ("experiment", {"param", "event"}, {"run_status_running"})
    (edge,) = graph.edges_into("report")
    assert edge.kinds == {"dependency", "param"} and edge.event_kinds == frozenset()
    assert graph.edges_into("experiment") == []
    assert graph.stages == [["experiment"], ["tensorboard", "report"]]


def test_cycle_reports_its_path_at_the_first_op() -> None:
    dag = dag_of([op("a", dependencies=["c"]), op("b", dependencies=["a"]), op("c", dependencies=["b"])])
    assert messages(dag) == [(("operations", 0, "dependencies", 0), "the DAG has a cycle: a -> b -> c -> a")]


def test_self_dependency_is_a_cycle() -> None:
    dag = dag_of([op("prepare"), op("train", dependencies=["train"])])
    assert messages(dag) == [(("operations", 1, "dependencies", 0), "the DAG has a cycle: train -> train")]


def test_cycle_through_a_param_and_an_event_points_at_the_param() -> None:
    dag = dag_of(
        [
            op("train", params={"best": {"ref": "ops.select", "value": "outputs.best", "contextOnly": True}}),
            op("select", events=[{"ref": "ops.train", "kinds": ["run_status_running"]}]),
        ]
    )
    ((path, message),) = messages(dag)
    assert path == ("operations", 0, "params", "best", "ref")
    assert message.endswith("train -> select -> train")


def test_ops_downstream_of_a_cycle_are_not_reported_as_cycles() -> None:
    dag = dag_of([op("a", dependencies=["b"]), op("b", dependencies=["a"]), op("c", dependencies=["a"])])
    assert [m for _, m in messages(dag)] == ["the DAG has a cycle: a -> b -> a"]


def test_orphans_in_dependencies_params_and_events() -> None:
    dag = dag_of(
        [
            op("train"),
            op("x", dependencies=["trian"]),
            op("y", params={"p": {"ref": "ops.nope", "value": "outputs.a"}}),
            op("z", events=[{"ref": "ops.gone", "kinds": ["run_status_done"]}]),
        ]
    )
    found = messages(dag)
    assert [p for p, _ in found] == [
        ("operations", 1, "dependencies", 0),
        ("operations", 2, "params", "p", "ref"),
        ("operations", 3, "events", 0, "ref"),
    ]
    assert "did you mean `train`" in found[0][1]
    assert "orphan" in found[1][1] and "`nope`" in found[1][1]


def test_orphan_hints_are_computed_once_per_name_and_never_over_a_huge_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    import difflib  # the module polynb.spec.dag asks for close matches

    calls: list[int] = []
    real = difflib.get_close_matches

    def counting(word: str, possibilities: list[str], *args: Any, **kwargs: Any) -> list[str]:
        calls.append(len(possibilities))
        return real(word, possibilities, *args, **kwargs)

    monkeypatch.setattr(difflib, "get_close_matches", counting)
    # Every op names the same missing op: one hint, shared by every message.
    dag = dag_of([op("train"), *(op(f"x{i}", dependencies=["trian"]) for i in range(50))])
    found = messages(dag)
    assert len(found) == 50 and all("did you mean `train`" in m for _, m in found)
    assert calls == [51]
    # Past the limit no hint is looked for (a copy of 100,000 names per orphan made big DAGs quadratic).
    calls.clear()
    many = dag_of([op(f"op-{i}", dependencies=[f"nope-{i}"] if i % 100 == 0 else []) for i in range(2500)])
    found = messages(many)
    assert len(found) == 25 and calls == []
    assert found[0][1] == "`nope-0` is not an op of this DAG (orphan ref)"


def test_edges_are_ordered_by_downstream_then_upstream_position() -> None:
    dag = dag_of(
        [
            op("a"),
            op("b"),
            op("c", dependencies=["b"], params={"p": {"ref": "ops.a", "value": "globals.uuid"}}),
            op("d", events=[{"ref": "ops.c", "kinds": ["run_status_done"]}], dependencies=["b", "a"]),
        ]
    )
    graph, issues = analyze(dag)
    assert issues == []
    assert [(e.src, e.dst, sorted(e.kinds)) for e in graph.edges] == [
        ("a", "c", ["param"]),
        ("b", "c", ["dependency"]),
        ("a", "d", ["dependency"]),
        ("b", "d", ["dependency"]),
        ("c", "d", ["event"]),
    ]
    assert graph.edges[-1].event_kinds == {"run_status_done"}
    assert graph.edges[0].event_kinds == frozenset()


def test_duplicate_op_and_component_names() -> None:
    dag = dag_of(
        [op("train"), op("train")],
        [{"name": "job", "run": JOB}, {"name": "job", "run": JOB}],
    )
    found = dict(messages(dag))
    assert "several components named `job`" in found[("components", 1, "name")]
    assert "several ops named `train`" in found[("operations", 1, "name")]


def test_build_graph_raises_spec_errors() -> None:
    dag = dag_of([op("a", dependencies=["a"])])
    with pytest.raises(SpecErrors) as info:
        build_graph(dag, file="f.yaml")
    assert str(info.value.errors[0]) == "f.yaml:0:0: run.operations[0].dependencies[0]: the DAG has a cycle: a -> a"
    assert isinstance(build_graph(dag_of([op("a")])), DagGraph)


# ------------------------------------------------------------------------------------------ ref typing

PRODUCER = {
    "name": "producer",
    "outputs": [
        {"name": "loss", "type": "float"},
        {"name": "count", "type": "int"},
        {"name": "label", "type": "str"},
        {"name": "labels", "type": "str", "isList": True},
        {"name": "path", "type": "path"},
    ],
    "run": JOB,
}


def consumer(inputs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": "consumer", "inputs": inputs, "run": JOB}


def ref_issues(x_input: dict[str, Any], value: str, *, events: list[Any] | None = None) -> list[str]:
    fields: dict[str, Any] = {"params": {"x": {"ref": "ops.p", "value": value}}}
    if events:
        fields["events"] = events
    dag = dag_of(
        [op("p", dagRef="producer"), op("c", dagRef="consumer", **fields)],
        [PRODUCER, consumer([{"name": "x", **x_input}])],
    )
    graph, issues = analyze(dag)
    assert issues == []
    components = {o.name: next(c for c in dag.components or () if c.name == o.dag_ref) for o in dag.operations}
    assert all(o.name for o in dag.operations)
    found = check_refs(dag, graph, {str(k): v for k, v in components.items()})
    assert all(i.path == ("operations", 1, "params", "x", "value") for i in found)
    return [i.message for i in found]


@pytest.mark.parametrize(
    ("x_input", "value", "fragment"),
    [
        ({"type": "int"}, "outputs.loss", "`int`, which does not correspond to the type `float`"),
        ({"type": "float"}, "outputs.count", "type `int`"),  # Polyaxon does not widen int to float
        ({"type": "int"}, "globals.uuid", "type `str`"),
        ({"type": "str"}, "outputs.labels", "list vs single value"),
        ({"type": "str", "isList": True}, "outputs.label", "list vs single value"),
        ({"type": "int"}, "outputs.nope", "has no such output (it declares outputs: loss, count, label"),
        ({"type": "int"}, "inputs.seed", "has no such input"),
        ({"type": "str"}, "globals.run_outputs_path", "no such value"),
        ({}, "globals.uuid", "`untyped`"),
    ],
)
def test_ref_type_errors(x_input: dict[str, Any], value: str, fragment: str) -> None:
    (message,) = ref_issues(x_input, value)
    assert fragment in message


@pytest.mark.parametrize(
    ("x_input", "value"),
    [
        ({"type": "float"}, "outputs.loss"),
        ({"type": "str"}, "outputs.path"),  # str-like types are compatible, as in Polyaxon
        ({"type": "str", "isList": True}, "outputs.labels"),
        ({"type": "List[str]"}, "outputs.labels"),  # polynb: List[str] == type str + isList
        ({"type": "str", "isList": True}, "globals.uuid"),  # polynb leniency: one uuid into a list of str
        ({"type": "List[str]"}, "globals.name"),
        ({"type": "dict"}, "outputs"),
        ({"type": "str"}, "artifacts.anything"),  # artifacts may be logged at runtime
    ],
)
def test_ref_types_accepted(x_input: dict[str, Any], value: str) -> None:
    assert ref_issues(x_input, value) == []


def test_context_params_are_not_typed() -> None:
    dag = dag_of(
        [op("p", dagRef="producer"), op("c", params={"zz": {"ref": "ops.p", "value": "outputs.nope"}})],
        [PRODUCER, {"name": "job", "run": JOB}],
    )
    graph, _ = analyze(dag)
    comps = {"p": Component.model_validate(PRODUCER), "c": Component.model_validate({"name": "job", "run": JOB})}
    assert check_refs(dag, graph, comps) == []


@pytest.mark.parametrize(
    ("kinds", "dependencies", "ok"),
    [
        (["run_status_running"], None, False),
        (["run_status_starting", "run_status_succeeded"], None, False),  # may fire on starting
        (["run_status_succeeded"], None, True),
        (["run_status_done"], None, True),
        (["run_status_running"], ["p"], True),  # an explicit dependency is waited for
    ],
)
def test_outputs_through_a_non_final_event(kinds: list[str], dependencies: list[str] | None, ok: bool) -> None:
    events = [{"ref": "ops.p", "kinds": kinds}]
    fields: dict[str, Any] = {"params": {"x": {"ref": "ops.p", "value": "outputs.loss"}}, "events": events}
    if dependencies:
        fields["dependencies"] = dependencies
    dag = dag_of(
        [op("p", dagRef="producer"), op("c", dagRef="consumer", **fields)],
        [PRODUCER, consumer([{"name": "x", "type": "float"}])],
    )
    graph, _ = analyze(dag)
    comps = {
        "p": Component.model_validate(PRODUCER),
        "c": Component.model_validate(consumer([{"name": "x", "type": "float"}])),
    }
    found = check_refs(dag, graph, comps)
    assert (found == []) is ok
    if not ok:
        assert "before `p` has finished" in found[0].message


def test_outputs_through_a_running_event_even_in_a_context_param() -> None:
    dag = dag_of(
        [
            op("p", dagRef="producer"),
            op(
                "c",
                params={
                    "m": {"ref": "ops.p", "value": "outputs", "contextOnly": True},
                    "u": {"ref": "ops.p", "value": "globals.uuid"},
                },
                events=[{"ref": "ops.p", "kinds": ["run_status_running"]}],
            ),
        ],
        [PRODUCER, {"name": "job", "run": JOB}],
    )
    graph, _ = analyze(dag)
    found = check_refs(dag, graph, {})
    assert [i.path for i in found] == [("operations", 1, "params", "m", "value")]


def test_long_chain_and_long_cycle_without_recursion() -> None:
    n = 20_000
    ops = [op(f"op-{i}", **({"dependencies": [f"op-{i - 1}"]} if i else {})) for i in range(n)]
    ops[0]["dependencies"] = [f"op-{n - 1}"]  # one long cycle: the walk must not recurse
    dag = dag_of(ops)
    graph, issues = analyze(dag)
    assert len(issues) == 1 and issues[0].message.startswith("the DAG has a cycle: op-0 -> op-1 -> ")
    ops[0].pop("dependencies")
    graph, issues = analyze(dag_of(ops))
    assert issues == [] and len(graph.stages) == n
