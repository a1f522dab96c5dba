"""The pure renderer: graph and timeline SVG, HTML, and the stable text repr."""

from __future__ import annotations

import re

from polynb.notebook.model import EdgeView, Link, LogLine, Marker, OpView, RunSnapshot, Segment
from polynb.notebook.render import (
    STATUS_COLORS,
    WRAP_ROWS,
    GraphNode,
    axis_step,
    graph_svg,
    graph_text,
    ink_on,
    layers,
    legend_html,
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
    cap = re.search(r'<rect class="polynb-cap"[^>]*>', svg)
    assert cap is not None and f'fill="{status_color("succeeded")}"' in cap.group(0)  # the final cap
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


def _boxes(svg: str) -> dict[str, tuple[float, float]]:
    """``{name: (x, y)}`` of the graph's node boxes."""
    found = re.findall(
        r'<g class="polynb-node[^"]*"><rect x="([\d.]+)" y="([\d.]+)"[^>]*/><text[^>]*>([^<]*)</text>', svg
    )
    return {name: (float(x), float(y)) for x, y, name in found}


def test_event_edges_have_their_own_colour_and_arrow_and_the_labels_are_drawn_last() -> None:
    svg = graph_svg(
        [GraphNode("a"), GraphNode("b"), GraphNode("c")],
        [EdgeView("a", "b", "event", "running"), EdgeView("a", "c", "dependency")],
    )
    event = re.search(r'<path class="polynb-edge polynb-edge-event"[^>]*>', svg)
    dep = re.search(r'<path class="polynb-edge polynb-edge-dependency"[^>]*>', svg)
    assert event is not None and dep is not None
    stroke = re.compile(r'stroke="(#[0-9a-f]{6})"')
    assert stroke.search(event.group(0)).group(1) != stroke.search(dep.group(0)).group(1)  # type: ignore[union-attr]
    assert "url(#polynb-arrow-event)" in event.group(0) and "url(#polynb-arrow-plain)" in dep.group(0)
    assert svg.rindex(">running</text>") > svg.rindex('class="polynb-node')  # no box hides a label


def test_edges_end_moving_forward_so_arrowheads_point_at_the_target() -> None:
    svg = graph_svg([GraphNode("a"), GraphNode("b")], [EdgeView("a", "b", "dependency")])
    d = re.search(r'class="polynb-edge[^"]*" d="([^"]+)"', svg)
    assert d is not None
    xs = [float(p.split(",")[0]) for p in re.findall(r"-?[\d.]+,-?[\d.]+", d.group(1))]
    assert xs[-1] > xs[-2]


def test_skipped_ops_are_outlined_services_tagged_and_text_contrasts_with_its_fill() -> None:
    svg = graph_svg([GraphNode("retrain", "job", "skipped"), GraphNode("tb", "service", "running")], [])
    skipped = re.search(r'<g class="polynb-node polynb-status-skipped">.*?</g>', svg)
    assert skipped is not None and 'fill="none"' in skipped.group(0) and "line-through" in skipped.group(0)
    assert re.search(r'<text class="polynb-kind"[^>]*>service</text>', svg)
    assert ink_on(status_color("running")) == "#ffffff" and ink_on(status_color("created")) != "#ffffff"


def test_statuses_of_different_families_have_different_colours() -> None:
    families = ["created", "queued", "starting", "running", "warning", "retrying", "stopped", "succeeded", "failed"]
    assert len({STATUS_COLORS[s] for s in [*families, "skipped", "upstream_failed"]}) == len(families) + 2


def test_a_wide_fan_out_is_folded_into_staggered_sub_columns() -> None:
    n = 30
    nodes = [GraphNode("src"), *(GraphNode(f"t{i}") for i in range(n)), GraphNode("sink")]
    edges = [EdgeView("src", f"t{i}", "dependency") for i in range(n)] + [
        EdgeView(f"t{i}", "sink", "dependency") for i in range(n)
    ]
    svg = graph_svg(nodes, edges)
    boxes = _boxes(svg)
    xs = sorted({boxes[f"t{i}"][0] for i in range(n)})
    assert len(xs) == 3  # three sub-columns, not one column of 30
    rows = max(sum(1 for i in range(n) if boxes[f"t{i}"][0] == x) for x in xs)
    assert rows <= WRAP_ROWS
    height = float(re.search(r'class="polynb-graph" width="[\d.]+" height="([\d.]+)"', svg).group(1))  # type: ignore[union-attr]
    assert height < 400
    firsts = sorted(min(y for (x, y) in boxes.values() if x == col) for col in xs)
    assert len(set(firsts)) == 3  # staggered: edges pass between the boxes of the other sub-columns
    assert "stroke-opacity" in svg  # many edges: drawn fainter


def test_timeline_axis_ends_on_a_round_tick_past_now_so_the_now_line_moves() -> None:
    assert axis_step(3.4) == 0.5 and axis_step(25) == 5 and axis_step(600) == 120

    def now_x(elapsed: float) -> float:
        snap = RunSnapshot(**{**_fields(snapshot()), "elapsed": elapsed})  # type: ignore[arg-type]
        line = re.search(r'class="polynb-now" x1="([\d.]+)"', timeline_svg(snap))
        assert line is not None
        return float(line.group(1))

    assert now_x(2.0) < now_x(2.5) < now_x(2.9)  # same axis (0..3s): the line walks right
    assert 'fill-opacity="0.7">3s</text>' in timeline_svg(RunSnapshot(**{**_fields(snapshot()), "elapsed": 2.5}))  # type: ignore[arg-type]


def _fields(snap: RunSnapshot) -> dict[str, object]:
    return {name: getattr(snap, name) for name in RunSnapshot.__dataclass_fields__}


def test_long_names_are_clipped_to_the_label_column_with_the_full_name_in_a_tooltip() -> None:
    long = "a-very-long-operation-name-that-would-run-into-the-bars-" * 2
    svg = timeline_svg(snapshot(ops=(op(long, "running"),)))
    labels = re.findall(r'<text class="polynb-row-label"[^>]*>([^<]*)<title>([^<]*)</title>', svg)
    shown, tooltip = labels[1]  # after the run's own row
    assert shown.endswith("…") and len(shown) < 40
    assert tooltip.startswith(long)


def test_big_timelines_use_smaller_rows() -> None:
    small = timeline_svg(snapshot(ops=tuple(op(f"o{i}", "running") for i in range(3))))
    big = timeline_svg(snapshot(ops=tuple(op(f"o{i}", "running") for i in range(30))))
    height = re.compile(r'class="polynb-timeline" width="\d+" height="(\d+)"')
    per_row_small = int(height.search(small).group(1)) / 4  # type: ignore[union-attr]
    per_row_big = int(height.search(big).group(1)) / 31  # type: ignore[union-attr]
    assert per_row_big < per_row_small


def test_legend_names_the_statuses_edges_and_markers_shown() -> None:
    train = op(
        "train",
        "failed",
        segments=(Segment("queued", 0.0, 1.0), Segment("running", 1.0, 2.0), Segment("failed", 2.0, 2.0)),
        markers=(Marker(1.0, "→ tb", "event"),),
    )
    snap = snapshot(ops=(train,), edges=(EdgeView("train", "tb", "event", "running"),))
    legend = legend_html(snap, graph=True)
    for status in ("queued", "running", "failed"):
        assert f"</span> {status}</span>" in legend
    assert "succeeded" not in legend and "skipped" not in legend  # only what this run shows
    assert "polynb-legend-event" in legend and "polynb-legend-hook" not in legend
    assert "event awaited" in legend and "now" in legend
    assert 'class="polynb-legend"' in run_html(snap)


def test_html_follows_the_notebook_theme_and_keeps_rows_compact() -> None:
    link = Link("TensorBoard · pipe", "/proxy/6006/", "http://127.0.0.1:6006/", UUID, "tensorboard")
    snap = snapshot(ops=(op("train", "running"),), links=(link,), log=(LogLine(1, 0.2, "train", "running", "R", "m"),))
    html = run_html(snap)
    assert html.startswith('<div class="polynb-run" style="line-height:1.4;color:var(--jp-ui-font-color1')
    assert 'fill="currentColor"' in timeline_svg(snap)  # labels take the theme's text colour
    assert "var(--jp-content-link-color" in html
    log = re.search(r'<table class="polynb-log"[^>]*>', html)
    assert log is not None and "line-height" in log.group(0)


def test_failed_ops_say_why_under_the_header() -> None:
    failed = op("flaky", "failed", reason="ExitCode", message="exit code 1: out of memory")
    html = run_html(snapshot(status="running", ops=(failed, op("ok", "succeeded"))))
    problems = re.findall(r'<div class="polynb-problem">(.*?)</div>', html)
    assert len(problems) == 1 and "flaky" in problems[0] and "out of memory" in problems[0]
    assert "flaky (job): failed — ExitCode — exit code 1: out of memory" in timeline_svg(snapshot(ops=(failed,)))


def test_only_a_few_problems_are_listed() -> None:
    html = run_html(snapshot(ops=tuple(op(f"o{i}", "failed") for i in range(10))))
    assert html.count('class="polynb-problem"') == 3 and "… and 7 more (7 failed)" in html
