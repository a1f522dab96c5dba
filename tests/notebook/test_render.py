"""The pure renderer: graph and timeline SVG, HTML, and the stable text repr."""

from __future__ import annotations

import re

from polynb.notebook.model import EdgeView, Link, LogLine, Marker, OpView, RunSnapshot, Segment
from polynb.notebook.render import (
    GraphNode,
    graph_svg,
    graph_text,
    layers,
    run_html,
    run_text,
    status_color,
    timeline_svg,
)

UUID = "0123456789abcdef0123456789abcdef"


def snapshot(*, status: str = "running", ops: tuple[OpView, ...] = (), **kwargs: object) -> RunSnapshot:
    root = OpView(UUID, "pipe", "dag", "dag", status, segments=(Segment("running", 0.0, None),))
    return RunSnapshot(UUID, "pipe", "dag", status, None, None, 12.0, (root, *ops), **kwargs)  # type: ignore[arg-type]


def op(name: str, status: str, *, kind: str = "job", role: str = "op", **kwargs: object) -> OpView:
    return OpView(f"{name:0<32}"[:32], name, kind, role, status, **kwargs)  # type: ignore[arg-type]


def test_layers_put_each_op_right_of_its_deepest_upstream() -> None:
    edges = [EdgeView("a", "b", "dependency"), EdgeView("b", "c", "param"), EdgeView("a", "c", "event", "running")]
    assert layers(["a", "b", "c", "d"], edges) == [["a", "d"], ["b"], ["c"]]


def test_graph_draws_event_edges_dashed_with_their_kinds_and_colours_ops_by_status() -> None:
    nodes = [GraphNode("experiment", "job", "running"), GraphNode("tensorboard", "service", "created")]
    svg = graph_svg(nodes, [EdgeView("experiment", "tensorboard", "event", "running")])
    edge = re.search(r'<path class="polynb-edge polynb-edge-event"[^>]*>', svg)
    assert edge is not None and 'stroke-dasharray="6,4"' in edge.group(0)
    assert ">running</text>" in svg
    assert status_color("running") in svg and status_color("created") in svg
    assert "experiment" in svg and "tensorboard" in svg


def test_dependency_edges_are_solid_and_hook_edges_dotted() -> None:
    svg = graph_svg(
        [GraphNode("a"), GraphNode("b"), GraphNode("a-webhook")],
        [EdgeView("a", "b", "dependency"), EdgeView("a", "a-webhook", "hook", "failed")],
    )
    dep = re.search(r'<path class="polynb-edge polynb-edge-dependency"[^>]*>', svg)
    hook = re.search(r'<path class="polynb-edge polynb-edge-hook"[^>]*>', svg)
    assert dep is not None and "dasharray" not in dep.group(0)
    assert hook is not None and 'stroke-dasharray="2,3"' in hook.group(0)
    assert ">on failed</text>" in svg


def test_names_are_escaped() -> None:
    svg = graph_svg([GraphNode("<b>x</b>")], [])
    assert "<b>x" not in svg and "&lt;b&gt;x" in svg


def test_graph_text_lists_ops_by_stage_with_what_they_wait_for() -> None:
    text = graph_text(
        [GraphNode("experiment"), GraphNode("tensorboard", "service")],
        [EdgeView("experiment", "tensorboard", "event", "running")],
    )
    assert text.splitlines() == [
        "  experiment   job",
        "  tensorboard  service  after: experiment running",
    ]


def test_timeline_draws_segments_caps_and_markers() -> None:
    train = op(
        "train",
        "succeeded",
        segments=(Segment("queued", 0.5, 1.0), Segment("running", 1.0, 9.0), Segment("succeeded", 9.0, 9.0)),
        markers=(Marker(1.0, "→ tensorboard", "event"), Marker(9.0, "hook train-webhook", "hook")),
    )
    svg = timeline_svg(snapshot(ops=(train,)))
    assert svg.count(f'fill="{status_color("running")}"') >= 2  # the DAG's bar and train's segment
    assert f'width="4" height="13" fill="{status_color("succeeded")}"' in svg  # the final cap
    assert 'class="polynb-marker-event"' in svg and 'class="polynb-marker-hook"' in svg
    assert 'class="polynb-now"' in svg  # live: the "now" line


def test_timeline_of_many_ops_is_capped_and_says_how_many_more() -> None:
    ops = tuple(op(f"op{i}", "running" if i % 2 else "created") for i in range(100))
    svg = timeline_svg(snapshot(ops=ops))
    assert "… and 61 more" in svg


def test_html_shows_links_notes_log_and_outputs_when_settled() -> None:
    link = Link("TensorBoard · pipe", "/proxy/6006/", "http://127.0.0.1:6006/", UUID, "tensorboard")
    done = op("train", "succeeded", outputs=(("accuracy", 0.5),))
    snap = snapshot(
        status="succeeded",
        ops=(done,),
        links=(link,),
        notes=("something odd",),
        log=(LogLine(1, 0.2, "train", "running", "ProcessStarted", "pid 7"),),
    )
    snap = RunSnapshot(**_replace_root(snap))  # type: ignore[arg-type]
    html = run_html(snap)
    assert 'href="/proxy/6006/"' in html and 'href="http://127.0.0.1:6006/"' in html
    assert "something odd" in html
    assert "ProcessStarted" in html
    assert "accuracy" in html
    assert "window.open" not in html and "<script" not in html


def _replace_root(snap: RunSnapshot) -> dict[str, object]:
    root = OpView(UUID, "pipe", "dag", "dag", "succeeded", segments=(Segment("succeeded", 3.0, 3.0),))
    fields = {name: getattr(snap, name) for name in RunSnapshot.__dataclass_fields__}
    fields["ops"] = (root, *snap.ops[1:])
    return fields


def test_text_is_stable_while_running_and_informative_when_final() -> None:
    running = snapshot(ops=(op("train", "running"), op("train-webhook", "created", role="hook")))
    assert run_text(running) == (
        "polynb run pipe (dag): submitted — live status in the widget\n  train  job"  # hooks: once final
    )
    final = snapshot(status="failed", ops=(op("train", "failed"), op("report", "skipped", outputs=(("n", 3),))))
    text = run_text(final)
    expected = ["polynb run pipe (dag): failed", "  train   job      failed", "  report  job      skipped  n=3"]
    assert text.splitlines() == expected
    assert UUID not in text and UUID[:12] not in text
