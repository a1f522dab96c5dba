"""Pure rendering of runs: SVG/HTML strings for the widget, stable text for terminals and nbval.

Every function takes frozen data (``model.RunSnapshot``, :class:`GraphNode`, ``model.EdgeView``) and
returns a string; nothing here touches widgets, the store or the clock. HTML needs no JavaScript, so it
renders the same in JupyterLab, Notebook 7, VS Code and in a saved notebook.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from polynb.notebook.model import EdgeView, OpView, RunSnapshot, SweepView

MAX_GRAPH_NODES = 80
"""Bigger graphs are not drawn (the timeline and the counts still are)."""
MAX_TIMELINE_ROWS = 40
LOG_SHOWN = 12
COMPACT_ROWS = 8
"""A graph column or a timeline taller than this many rows is drawn with smaller rows."""
WRAP_ROWS = 12
"""A graph column with more nodes is folded into side-by-side sub-columns, so a wide fan-out stays short."""

# Each family of statuses has its own hue (grey: waiting, cyan: getting a slot, blue: running, amber:
# needs attention, purple: stopped, green/red: done) and lightness separates the steps inside a family.
_PENDING = "#cfd8dc"
STATUS_COLORS: dict[str, str] = {
    "created": _PENDING,
    "on_schedule": _PENDING,
    "resuming": _PENDING,
    "compiled": "#b0bec5",
    "queued": "#8fa3ad",
    "scheduled": "#80deea",
    "starting": "#00acc1",
    "running": "#1e88e5",
    "processing": "#1e88e5",
    "warning": "#fbc02d",
    "unknown": "#fbc02d",
    "unschedulable": "#fbc02d",
    "retrying": "#fb8c00",
    "stopping": "#ce93d8",
    "stopped": "#8e24aa",
    "succeeded": "#43a047",
    "failed": "#e53935",
    "upstream_failed": "#f4a3a3",
    "skipped": "#9e9e9e",
}
STATUS_ORDER = tuple(STATUS_COLORS)
PROBLEMS = frozenset({"failed", "warning", "unschedulable", "unknown", "retrying"})
"""Statuses whose reason the widget shows under its header."""
PROBLEMS_SHOWN = 3
"""The legend's order: a run's life from left to right."""
EDGE_COLORS = {"dependency": "#78909c", "param": "#78909c", "event": "#ef6c00", "hook": "#78909c", "source": "#00897b"}
EDGE_DASH = {"event": "6,4", "hook": "2,3", "source": "6,4"}
SOURCE_FILL = "#e0f2f1"
_FONT = 'font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="12"'
# Text outside the coloured boxes follows the notebook's theme (JupyterLab's variable, a dark-grey fallback
# elsewhere): SVG text is black by default, unreadable on a dark theme.
_INK = "var(--jp-ui-font-color1, #263238)"
_SVG_STYLE = f'style="color:{_INK};overflow:visible"'
_CHAR_W = 7.0
"""Rough width of a character at 12px, to clip labels before they run into bars (no layout engine here)."""


def status_color(status: str) -> str:
    return STATUS_COLORS.get(status, "#757575")


def ink_on(fill: str) -> str:
    """Dark or white text, whichever reads better on ``fill`` (``#rrggbb``)."""
    r, g, b = (int(fill[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return "#1b1f24" if 0.299 * r + 0.587 * g + 0.114 * b > 0.6 else "#ffffff"


@dataclass(frozen=True, slots=True)
class GraphNode:
    name: str
    kind: str = "job"
    status: str = ""
    """Empty for a graph that did not run (``--dry-run``)."""
    source: bool = False
    """An external source (a connection, custom events, approvals): drawn as a rounded, dashed box."""


# ---------------------------------------------------------------------------------------------- graph


def layers(names: Sequence[str], edges: Iterable[EdgeView]) -> list[list[str]]:
    """Columns of the drawing: each node one column right of its deepest upstream (cycles cannot occur
    in a validated DAG; a node on one is put in column 0 rather than looping)."""
    upstream: dict[str, list[str]] = {n: [] for n in names}
    for edge in edges:
        if edge.src in upstream and edge.dst in upstream and edge.src != edge.dst:
            upstream[edge.dst].append(edge.src)
    depth: dict[str, int] = {}

    def visit(name: str, stack: frozenset[str]) -> int:
        if name in depth:
            return depth[name]
        if name in stack:
            return 0
        d = max((visit(u, stack | {name}) + 1 for u in upstream[name]), default=0)
        depth[name] = d
        return d

    for name in names:
        visit(name, frozenset())
    columns: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for name in names:
        columns[depth[name]].append(name)
    return columns


MAX_FOLDS = 3
"""At most this many sub-columns per layer: staggering keeps edges in the gaps only up to about three."""


@dataclass(frozen=True, slots=True)
class _Layout:
    pos: dict[str, tuple[float, float]]
    layer_of: dict[str, int]
    left: dict[int, float]
    """Each layer's leftmost and rightmost x: edges run straight across a folded layer's sub-columns."""
    right: dict[int, float]
    width: float
    height: float
    node_h: int
    font: int


def _layout(columns: list[list[str]]) -> _Layout:
    """Place nodes column by column. A column taller than ``WRAP_ROWS`` is folded into up to
    ``MAX_FOLDS`` sub-columns, each shifted down by a fraction of a row: an edge entering or leaving a
    node of one sub-column then runs through the gaps of the others instead of behind their boxes."""
    tallest = max(len(c) for c in columns)
    folds = {i: min(MAX_FOLDS, max(1, -(-len(c) // WRAP_ROWS))) for i, c in enumerate(columns)}
    most = max(folds.values())
    compact = tallest > COMPACT_ROWS
    node_w, pad, gap_x, gap_sub = 150, 8, (60 if compact else 70), 14
    node_h, font = (16, 11) if compact else (26, 12)
    # The row pitch that leaves a stagger of pitch/folds between sub-columns clear of every box.
    pitch = {1: node_h + (5 if compact else 14), 2: 26, 3: 32}[most]
    pos: dict[str, tuple[float, float]] = {}
    layer_of: dict[str, int] = {}
    left: dict[int, float] = {}
    right: dict[int, float] = {}
    x, bottom = float(pad) - gap_x - node_w, 0.0
    for layer, column in enumerate(columns):
        parts = folds[layer]
        per = -(-len(column) // parts)
        x += node_w + gap_x
        left[layer] = x
        for j, start in enumerate(range(0, len(column), per)):
            if j:
                x += node_w + gap_sub
            shift = j * pitch / parts
            for r, name in enumerate(column[start : start + per]):
                pos[name] = (x, pad + shift + r * pitch)
                layer_of[name] = layer
                bottom = max(bottom, pad + shift + r * pitch + node_h)
        right[layer] = x + node_w
    return _Layout(pos, layer_of, left, right, x + node_w + pad, bottom + pad, node_h, font)


def graph_svg(nodes: Sequence[GraphNode], edges: Sequence[EdgeView]) -> str:
    """The DAG: ops as boxes coloured by status, dependency edges solid, event edges dashed, orange and
    labelled with the awaited kinds, hook edges dotted and labelled with the trigger. Skipped ops are
    outlined only; services carry a tag. Wide fan-outs are folded into sub-columns and drawn smaller."""
    if not nodes:
        return ""
    if len(nodes) > MAX_GRAPH_NODES:
        return f'<div class="polynb-graph-omitted">graph of {len(nodes)} ops not drawn (see the timeline)</div>'
    by_name = {n.name: n for n in nodes}
    columns = layers([n.name for n in nodes], edges)
    lay = _layout(columns)
    pos, node_h, font, node_w = lay.pos, lay.node_h, lay.font, 150
    # Many edges would hide one another: draw them fainter.
    opacity = ' stroke-opacity="0.45"' if len(edges) > 24 else ""
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="polynb-graph" width="{lay.width:.0f}" '
        f'height="{lay.height:.0f}" {_FONT} {_SVG_STYLE}><defs>'
        + "".join(
            f'<marker id="polynb-arrow-{kind}" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" '
            f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L8,4 L0,8 z" fill="{color}"/></marker>'
            for kind, color in (
                ("plain", EDGE_COLORS["dependency"]),
                ("event", EDGE_COLORS["event"]),
                ("source", EDGE_COLORS["source"]),
            )
        )
        + "</defs>",
    ]
    labels = []
    for edge in edges:
        if edge.src not in pos or edge.dst not in pos:
            continue
        (x0, y0), (x1, y1) = pos[edge.src], pos[edge.dst]
        sx, sy, ex, ey = x0 + node_w, y0 + node_h / 2, x1, y1 + node_h / 2
        # Straight out of the source's layer and into the target's (they differ from the node's own
        # edge only when the layer is folded), curved in between.
        lx = max(sx, lay.right[lay.layer_of[edge.src]])
        end = ex - 2  # the arrowhead's tip touches the box
        rx = min(end, lay.left[lay.layer_of[edge.dst]]) if lay.layer_of[edge.dst] > lay.layer_of[edge.src] else end
        mid = (lx + rx) / 2
        # A zero-length last segment would turn the arrowhead (``orient="auto"``) the wrong way.
        tail = f" L{end:.0f},{ey:.1f}" if end - rx > 0.5 else ""
        dash = f' stroke-dasharray="{EDGE_DASH[edge.kind]}"' if edge.kind in EDGE_DASH else ""
        arrow = edge.kind if edge.kind in ("event", "source") else "plain"
        color = EDGE_COLORS.get(edge.kind, EDGE_COLORS["dependency"])
        width_px = "1.6" if edge.kind in ("event", "source") else "1.3"
        title = f"{edge.src} → {edge.dst}: {edge.kind}" + (f" ({edge.label})" if edge.label else "")
        out.append(
            f'<path class="polynb-edge polynb-edge-{edge.kind}" d="M{sx:.0f},{sy:.0f} L{lx:.0f},{sy:.0f} '
            f'C{mid:.0f},{sy:.0f} {mid:.0f},{ey:.1f} {rx:.0f},{ey:.1f}{tail}" fill="none" '
            f'stroke="{color}" stroke-width="{width_px}"{dash}{opacity} marker-end="url(#polynb-arrow-{arrow})">'
            f"<title>{escape(title)}</title></path>"
        )
        if edge.label:
            label = ("on " if edge.kind == "hook" else "") + edge.label
            fill = EDGE_COLORS[edge.kind] if edge.kind in ("event", "source") else "currentColor"
            labels.append(
                f'<text x="{mid:.0f}" y="{(sy + ey) / 2 - 4:.0f}" text-anchor="middle" font-size="10" '
                f'fill="{fill}">{escape(label)}</text>'
            )
    for name, (nx, ny) in pos.items():
        nx, ny = round(nx, 1), round(ny, 1)
        node = by_name[name]
        title = f"{name} ({node.kind})" + (f": {node.status}" if node.status else "")
        tag = node.kind if node.kind not in ("job", "") else ""
        room = node_w - 14 - (len(tag) * 5.5 + 6 if tag else 0)
        if node.source:  # outside the DAG: a rounded, dashed box in the sources' colour
            box = f'fill="{SOURCE_FILL}" stroke="{EDGE_COLORS["source"]}" stroke-dasharray="4,2" rx="10"'
            text, tag_fill = f'fill="{ink_on(SOURCE_FILL)}"', ink_on(SOURCE_FILL)
        elif node.status == "skipped":  # it never ran: an outline, struck through
            box = f'fill="none" stroke="{status_color("skipped")}" stroke-dasharray="4,3"'
            text = 'fill="currentColor" fill-opacity="0.65" text-decoration="line-through"'
            tag_fill = "currentColor"
        else:
            fill = status_color(node.status) if node.status else "#eceff1"
            box, text = f'fill="{fill}" stroke="#546e7a" stroke-opacity="0.6"', f'fill="{ink_on(fill)}"'
            tag_fill = ink_on(fill)
        cls = "polynb-source" if node.source else f"polynb-node polynb-status-{escape(node.status or 'none')}"
        corner = "" if node.source else 'rx="4" '  # a source's box has its own, rounder corners
        parts = [
            f'<g class="{cls}"><rect x="{nx}" y="{ny}" '
            f'width="{node_w}" height="{node_h}" {corner}{box}/>'
            f'<text x="{nx + 7}" y="{ny + node_h / 2 + font * 0.36:.1f}" font-size="{font}" {text}>'
            f"{escape(_clip(name, int(room / (font * 0.58))))}</text>"
        ]
        if tag:
            parts.append(
                f'<text class="polynb-kind" x="{nx + node_w - 5}" y="{ny + node_h / 2 + 3:.1f}" font-size="9" '
                f'text-anchor="end" fill="{tag_fill}" fill-opacity="0.8">{escape(tag)}</text>'
            )
        parts.append(f"<title>{escape(title)}</title></g>")
        out.append("".join(parts))
    out += labels  # above the nodes and edges, so no box hides them
    out.append("</svg>")
    return "".join(out)


def graph_text(nodes: Sequence[GraphNode], edges: Sequence[EdgeView]) -> str:
    """The graph as text: one line per op with what it waits for (stable: no times, no uuids)."""
    incoming: dict[str, list[str]] = {}
    for edge in edges:
        if edge.kind in ("event", "source"):
            how = f"{edge.src} {edge.label}"
        elif edge.kind == "hook":
            how = f"hook of {edge.src} on {edge.label}"
        else:
            how = edge.src
        incoming.setdefault(edge.dst, []).append(how)
    width = max((len(n.name) for n in nodes), default=0)
    lines = []
    for column in layers([n.name for n in nodes], edges):
        for name in column:
            node = next(n for n in nodes if n.name == name)
            after = incoming.get(name)
            row = f"  {name.ljust(width)}  {node.kind:<7}" + (f"  after: {', '.join(after)}" if after else "")
            lines.append(row.rstrip())
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- timeline


def axis_step(span: float) -> float:
    """A round tick interval (1, 2 or 5 times a power of ten seconds, minutes and hours past a minute)
    giving at most 8 ticks over ``span``."""
    for step in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400):
        if span / step <= 8:
            return float(step)
    return 86400.0


def timeline_svg(snapshot: RunSnapshot, *, width: int = 760) -> str:
    """A bar per op (the run itself first): status segments, a cap in the final status' colour, diamond
    markers for events other ops waited for and triangles for hooks; a dashed line marks now.

    The axis ends on the first round tick past now, so while a run is live the now line walks right
    and the ticks step, rather than everything being stretched to the full width at every update."""
    ops = list(snapshot.ops[:MAX_TIMELINE_ROWS]) + [
        OpView(uuid="", name=src.name, kind=src.kind, role="source", status="", markers=src.markers)
        for src in snapshot.sources
    ]
    longest = max((len(_row_label(op)) * (1.1 if op.role == "dag" else 1.0) for op in ops), default=4.0)
    label_w = int(min(220, max(90, longest * _CHAR_W + 12)))
    compact = len(ops) > 2 * COMPACT_ROWS
    row_h, bar_h, font = (14, 8, 11) if compact else (18, 10, 12)
    top, bottom = 4, 18
    latest = max(snapshot.elapsed, max((s.start for op in ops for s in op.segments), default=0.0))
    step = axis_step(max(latest, 1.0))
    span = max(1.0, (int(latest / step + 1e-9) + 1) * step)
    scale = (width - label_w - 14) / span
    height = top + len(ops) * row_h + bottom

    def x(t: float) -> float:
        return label_w + max(0.0, t) * scale

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="polynb-timeline" width="{width}" height="{height}" '
        f"{_FONT} {_SVG_STYLE}>"
    ]
    axis_y = top + len(ops) * row_h
    for i in range(int(span / step + 1e-9) + 1):  # faint grid lines behind the bars
        tx = x(i * step)
        out.append(
            f'<line class="polynb-tick" x1="{tx:.1f}" y1="{top}" x2="{tx:.1f}" y2="{axis_y + 3}" '
            'stroke="currentColor" stroke-opacity="0.12"/>'
            f'<text x="{tx:.1f}" y="{axis_y + 14}" text-anchor="middle" font-size="10" fill="currentColor" '
            f'fill-opacity="0.7">{_tick(i * step)}</text>'
        )
    for i, op in enumerate(ops):
        y = top + i * row_h
        by = y + (row_h - bar_h) / 2
        weight = ' font-weight="bold"' if op.role == "dag" else ""
        room = (label_w - 8) / (_CHAR_W * (1.1 if op.role == "dag" else 1.0) * font / 12)
        out.append(
            f'<text class="polynb-row-label" x="2" y="{y + row_h / 2 + font * 0.36:.1f}" font-size="{font}" '
            f'fill="currentColor"{weight}>{escape(_clip(_row_label(op), int(room)))}'
            f"<title>{escape(_describe(op))}</title></text>"
        )
        for seg in op.segments:
            color = status_color(seg.status)
            if seg.end is not None and seg.end == seg.start:  # a final status: the bar's end cap
                out.append(
                    f'<rect class="polynb-cap" x="{x(seg.start) - 1:.1f}" y="{y + 1}" width="4" height="{row_h - 2}" '
                    f'fill="{color}" stroke="{_cap_edge(seg.status)}" stroke-width="0.6"><title>{escape(op.name)}: '
                    f"{seg.status} at {_seconds(seg.start)}</title></rect>"
                )
                continue
            end = seg.end if seg.end is not None else snapshot.elapsed
            w = max(x(end) - x(seg.start), 1.0)
            out.append(
                f'<rect x="{x(seg.start):.1f}" y="{by:.1f}" width="{w:.1f}" height="{bar_h}" '
                f'fill="{color}"><title>{escape(op.name)}: {seg.status} '
                f"({_seconds(seg.start)} → {_seconds(end)})</title></rect>"
            )
        for marker in op.markers:
            mx, my, r = x(marker.at), y + row_h / 2, row_h * 0.3
            if marker.kind in ("event", "source"):  # a diamond
                points = f"M{mx:.1f},{my - r:.1f} L{mx + r:.1f},{my:.1f} L{mx:.1f},{my + r:.1f} L{mx - r:.1f},{my:.1f}z"
                stroke = EDGE_COLORS[marker.kind]
            else:  # a triangle
                points = f"M{mx:.1f},{my - r:.1f} L{mx + r:.1f},{my + r:.1f} L{mx - r:.1f},{my + r:.1f} z"
                stroke = "#263238"
            shape = f'<path class="polynb-marker-{marker.kind}" d="{points}"'
            out.append(f'{shape} fill="#fff" stroke="{stroke}" stroke-width="1.4"><title>{escape(marker.label)} '
                       f"at {_seconds(marker.at)}</title></path>")  # fmt: skip
    if not snapshot.settled:
        now_x = x(snapshot.elapsed)
        out.append(
            f'<line class="polynb-now" x1="{now_x:.1f}" y1="0" x2="{now_x:.1f}" y2="{axis_y}" stroke="currentColor" '
            f'stroke-dasharray="3,3"><title>now: {_seconds(snapshot.elapsed)}</title></line>'
        )
    out.append(
        f'<line x1="{label_w}" y1="{axis_y}" x2="{x(span):.1f}" y2="{axis_y}" stroke="currentColor" '
        'stroke-opacity="0.35"/>'
    )
    out.append("</svg>")
    shown = min(len(snapshot.ops), MAX_TIMELINE_ROWS)
    more = len(snapshot.ops) - shown
    if more > 0:
        out.append(f'<div class="polynb-more">… and {more} more ({_counts(snapshot.ops[shown:])})</div>')
    return "".join(out)


def legend_html(snapshot: RunSnapshot, *, graph: bool) -> str:
    """What the colours and line styles mean, for the statuses and kinds this run shows."""
    seen = {op.status for op in snapshot.ops} | {s.status for op in snapshot.ops for s in op.segments}
    items = []
    for status in STATUS_ORDER:
        if status not in seen:
            continue
        if status == "skipped" and graph:
            swatch = f"border:1px dashed {status_color(status)}"
        else:
            swatch = f"background:{status_color(status)}"
        items.append(
            f'<span class="polynb-legend-status"><span style="display:inline-block;width:10px;height:10px;'
            f'border-radius:2px;vertical-align:-1px;{swatch}"></span> {escape(status)}</span>'
        )
    if graph:
        for kind, text in (("dependency", "after"), ("event", "on event"), ("source", "on external event"),
                           ("hook", "hook")):  # fmt: skip
            if any(e.kind == kind or (kind == "dependency" and e.kind == "param") for e in snapshot.edges):
                dash = f' stroke-dasharray="{EDGE_DASH[kind]}"' if kind in EDGE_DASH else ""
                items.append(
                    f'<span class="polynb-legend-edge polynb-legend-{kind}"><svg width="22" height="8">'
                    f'<line x1="0" y1="4" x2="22" y2="4" stroke="{EDGE_COLORS[kind]}" stroke-width="1.6"{dash}/>'
                    f"</svg> {text}</span>"
                )
    kinds = {m.kind for op in snapshot.ops for m in op.markers}
    if "event" in kinds:
        items.append(f'<span class="polynb-legend-marker"><span style="color:{EDGE_COLORS["event"]}">◇</span> '
                     "event awaited</span>")  # fmt: skip
    if "hook" in kinds:
        items.append('<span class="polynb-legend-marker">△ hook started</span>')
    if any(src.markers for src in snapshot.sources):
        items.append(f'<span class="polynb-legend-marker"><span style="color:{EDGE_COLORS["source"]}">◇</span> '
                     "external event</span>")  # fmt: skip
    if not snapshot.settled:
        items.append('<span class="polynb-legend-now">┆ now</span>')
    if not items:
        return ""
    gap = '<span style="display:inline-block;width:12px"></span>'
    return f'<div class="polynb-legend" style="font-size:11px;opacity:0.85;margin:2px 0 6px">{gap.join(items)}</div>'


# ------------------------------------------------------------------------------------------ html, text


_CELL = "padding:1px 12px 1px 0;text-align:left;vertical-align:top"
_HEAD = f"{_CELL};font-weight:600;opacity:0.75"
_LINK = "color:var(--jp-content-link-color, #1565c0)"


def _table(cls: str, head: Sequence[str], rows: Iterable[Sequence[str]], nowrap: int) -> str:
    """A compact table; the first ``nowrap`` columns do not wrap. Styles are inline: the widget's own
    line height (28px, meant for form controls) would otherwise spread rows far apart."""

    def cells(values: Sequence[str], tag: str, style: str) -> str:
        return "".join(
            f'<{tag} style="{style}{";white-space:nowrap" if i < nowrap else ""}">{v}</{tag}>'
            for i, v in enumerate(values)
        )

    body = "".join(f"<tr>{cells(r, 'td', _CELL)}</tr>" for r in rows)
    return (
        f'<table class="{cls}" style="font-size:12px;line-height:1.35;border-collapse:collapse;margin:4px 0">'
        f"<tr>{cells(head, 'th', _HEAD)}</tr>{body}</table>"
    )


def log_html(snapshot: RunSnapshot, *, limit: int = LOG_SHOWN) -> str:
    """The newest ``limit`` status changes, oldest first."""
    rows = []
    for line in snapshot.log[-limit:]:
        why = " — ".join(p for p in (line.reason, line.message) if p)
        rows.append((
            f'<span style="font-variant-numeric:tabular-nums">+{_seconds(line.at)}</span>',
            escape(line.name),
            f'<span style="color:{status_color(line.status)}">●</span> {escape(line.status)}',
            escape(_clip(why, 120)),
        ))  # fmt: skip
    if not rows:
        return ""
    return _table("polynb-log", ("t", "run", "status", "why"), rows, nowrap=3)


def outputs_html(snapshot: RunSnapshot) -> str:
    rows = [
        (escape(op.name), f"<code>{escape(key)}</code>", f"<code>{escape(_clip(_show(value), 200))}</code>")
        for op in snapshot.ops
        for key, value in op.outputs
    ]
    if not rows:
        return ""
    return _table("polynb-outputs", ("op", "output", "value"), rows, nowrap=2)


def links_html(snapshot: RunSnapshot) -> str:
    parts = []
    for link in snapshot.links:
        direct = (
            f' <a href="{escape(link.direct_url)}" target="_blank" rel="noopener" style="{_LINK};font-size:11px"'
            f' title="the service\'s own address, for a browser that can reach it">(direct)</a>'
            if link.direct_url != link.url
            else ""
        )
        parts.append(
            f'<a class="polynb-link polynb-link-{escape(link.kind)}" href="{escape(link.url)}" target="_blank" '
            f'rel="noopener" style="{_LINK};font-weight:600">{escape(link.title)} ↗</a>{direct}'
        )
    return " · ".join(parts)


def run_html(snapshot: RunSnapshot, *, selected: str | None = None) -> str:
    """The whole widget body: header, links, notes, graph, sweeps, timeline, legend, event log, outputs.
    ``selected``: the op chosen in the widget's op list (a sweeping op's trials are drawn then)."""
    header = (
        f'<div class="polynb-header"><b>{escape(snapshot.name)}</b> ({escape(snapshot.kind)}) '
        f'<span class="polynb-status"><span style="color:{status_color(snapshot.status)}">●</span> '
        f"<b>{escape(snapshot.status)}</b></span>"
        f" · {_seconds(snapshot.elapsed)} · {_counts(snapshot.members) or 'no ops'} · "
        f'<code style="opacity:0.7">{snapshot.uuid[:12]}</code></div>'
    )
    parts = [header]
    if snapshot.links:
        parts.append(f'<div class="polynb-links" style="margin:2px 0">{links_html(snapshot)}</div>')
    # Why ops went wrong, where one looks first (the log may have scrolled on); a few, not a wall of them.
    problems = [op for op in snapshot.members if op.status in PROBLEMS]
    for op in problems[:PROBLEMS_SHOWN]:
        why = " — ".join(p for p in (op.reason, op.message) if p)
        parts.append(
            f'<div class="polynb-problem"><span style="color:{status_color(op.status)}">●</span> '
            f"<b>{escape(op.name)}</b> {escape(op.status)}" + (f": {escape(_clip(why, 200))}" if why else "") + "</div>"
        )
    if len(problems) > PROBLEMS_SHOWN:
        rest = problems[PROBLEMS_SHOWN:]
        parts.append(f'<div class="polynb-problem-more">… and {len(rest)} more ({_counts(rest)})</div>')
    for note in snapshot.notes:
        parts.append(f'<div class="polynb-note" style="color:var(--jp-warn-color0, #8d6e00)">⚠ {escape(note)}</div>')
    graph = snapshot.kind == "dag"
    if graph:
        nodes = [GraphNode(src.name, src.kind, source=True) for src in snapshot.sources]
        nodes += [GraphNode(op.name, op.kind, op.status) for op in snapshot.members]
        parts.append(f'<div style="margin:4px 0">{graph_svg(nodes, snapshot.edges)}</div>')
    if snapshot.sweep is not None:
        parts.append(sweep_html(snapshot.sweep))
    parts.append(op_sweeps_html(snapshot, selected))
    parts.append(timeline_svg(snapshot))
    parts.append(legend_html(snapshot, graph=graph))
    parts.append(log_html(snapshot))
    if snapshot.settled and snapshot.sweep is None:  # a sweep's outputs are in its table
        parts.append(outputs_html(snapshot))
    # The widget's line height (28px, for form controls) would spread every line of text far apart.
    body = "".join(p for p in parts if p)
    return f'<div class="polynb-run" style="line-height:1.4;color:{_INK}">{body}</div>'


def run_text(snapshot: RunSnapshot, *, as_submitted: bool = False) -> str:
    """Stable text: statuses only once the run is final (so an output saved while it ran never depends
    on timing), ops with their kinds and, when final, statuses and outputs; no uuids, times or ports.
    ``as_submitted``: the run as it was when submitted, whatever it is now (the cell that submits a run
    shows the same text whether the run ended before the cell's result was drawn or not)."""
    final = snapshot.is_final and not as_submitted
    if final:
        lines = [f"polynb run {snapshot.name} ({snapshot.kind}): {snapshot.status}"]
    else:
        lines = [f"polynb run {snapshot.name} ({snapshot.kind}): submitted — live status in the widget"]
    if snapshot.sweep is not None:
        # A sweep: the trials ranked by the metric once final (their count and order depend on timing before).
        return "\n".join([*lines, *(sweep_text(snapshot.sweep) if final else [])])
    members = snapshot.members if snapshot.kind == "dag" else snapshot.ops[1:]
    if not final:
        # Hook runs appear when their main op ends: listing them while running would depend on timing.
        members = tuple(op for op in members if op.role != "hook")
    width = max((len(_row_name(op)) for op in members), default=0)
    for op in members:
        row = f"  {_row_name(op).ljust(width)}  {op.kind:<7}"
        if final:
            row += f"  {op.status}"
            if op.outputs:
                row += "  " + ", ".join(f"{k}={_show(v)}" for k, v in op.outputs)
        lines.append(row.rstrip())
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- helpers


def _row_name(op: OpView) -> str:
    return f"↳ {op.name}" if op.role == "hook" else op.name


def _row_label(op: OpView) -> str:
    return f"  ↳ {op.name}" if op.role == "hook" else op.name


def _describe(op: OpView) -> str:
    if op.role == "source":
        return f"{op.name} ({op.kind}): {len(op.markers)} event{'s' * (len(op.markers) != 1)}"
    why = " — ".join(p for p in (op.reason, op.message) if p)
    return f"{op.name} ({op.kind}): {op.status}" + (f" — {why}" if why else "")


def _cap_edge(status: str) -> str:
    """A thin outline for caps as light as the bar's background could be (skipped, upstream failed)."""
    return "#616161" if ink_on(status_color(status)) != "#ffffff" else status_color(status)


def _tick(t: float) -> str:
    if t < 60:
        return f"{t:.1f}".rstrip("0").rstrip(".") + "s"
    return _seconds(t)


def _counts(ops: Iterable[OpView]) -> str:
    counts: dict[str, int] = {}
    for op in ops:
        counts[op.status] = counts.get(op.status, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _seconds(t: float) -> str:
    if t < 60:
        return f"{t:.1f}s"
    minutes, secs = divmod(int(t), 60)
    return f"{minutes}m{secs:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


# ------------------------------------------------------------------------------------------- sweeps

SWEEP_ROWS = 10
"""Trials listed in the sweep table (the best ones)."""
SWEEP_LINES = 200
"""Trials drawn in the parallel-coordinates plot (the best ones): more lines are ink, not information."""


def _metric_label(sweep: SweepView) -> str:
    if sweep.metric is None:
        return "metric"
    return f"{sweep.metric} ({'max' if sweep.maximize else 'min'})"


def sweep_table_html(sweep: SweepView, *, limit: int = SWEEP_ROWS) -> str:
    """The trials sorted by the metric, best first."""
    head = ("#", "trial", "status", *sweep.params, _metric_label(sweep))
    rows = []
    for rank, trial in enumerate(sweep.trials[:limit], start=1):
        params = dict(trial.params)
        rows.append((
            str(rank),
            escape(trial.name),
            f'<span style="color:{status_color(trial.status)}">●</span> {escape(trial.status)}',
            *(f"<code>{escape(_clip(_show(params.get(p, '')), 24))}</code>" for p in sweep.params),
            f"<b>{_show(trial.metric)}</b>" if trial.metric is not None else "-",
        ))  # fmt: skip
    if not rows:
        return ""
    more = len(sweep.trials) - limit
    tail = f'<div style="font-size:11px;opacity:0.7">… {more} more trials</div>' if more > 0 else ""
    return _table("polynb-sweep-trials", head, rows, nowrap=3) + tail


def best_so_far_svg(sweep: SweepView, *, width: int = 340, height: int = 150) -> str:
    """The best metric after each trial that ended, as a step line."""
    curve = sweep.best_so_far
    if not curve:
        return ""
    left, right, top, bottom = 52, 10, 18, 24
    n_max = max(curve[-1][0], 1)
    values = [v for _, v in curve]
    low, high = min(values), max(values)
    span = (high - low) or abs(high) or 1.0

    def x(n: float) -> float:
        return left + (width - left - right) * (n / n_max)

    def y(v: float) -> float:
        return top + (height - top - bottom) * (1 - (v - low) / span)

    points: list[str] = []
    for k, (n, v) in enumerate(curve):
        if k:
            points.append(f"{x(n):.1f},{y(curve[k - 1][1]):.1f}")
        points.append(f"{x(n):.1f},{y(v):.1f}")
    dots = "".join(f'<circle cx="{x(n):.1f}" cy="{y(v):.1f}" r="2.5" fill="#2e7d32"/>' for n, v in curve)
    return (
        f'<svg class="polynb-best-so-far" width="{width}" height="{height}" {_FONT} {_SVG_STYLE}>'
        f'<text x="{left}" y="12" font-weight="600">best {escape(_metric_label(sweep))} so far</text>'
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="currentColor" '
        f'stroke-opacity="0.4"/><line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="currentColor" '
        f'stroke-opacity="0.4"/>'
        f'<text x="{left - 4}" y="{y(high) + 4:.1f}" text-anchor="end">{_show(high)}</text>'
        f'<text x="{left - 4}" y="{y(low) + 4:.1f}" text-anchor="end">{_show(low)}</text>'
        f'<text x="{width - right}" y="{height - 6}" text-anchor="end">{n_max} trials ended</text>'
        f'<polyline points="{" ".join(points)}" fill="none" stroke="#2e7d32" stroke-width="2"/>{dots}</svg>'
    )


def _axis(values: Sequence[Any]) -> tuple[Any, list[str]]:
    """A function placing a value on [0, 1] for one axis, and the axis' labels (bottom, top)."""
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if values and len(numbers) == len(values):
        low, high = min(numbers), max(numbers)
        span = (high - low) or 1.0
        return (lambda v: (v - low) / span if high != low else 0.5), [_show(low), _show(high)]
    categories = sorted({_show(v) for v in values})
    slots = max(len(categories) - 1, 1)
    index = {c: i for i, c in enumerate(categories)}
    return (lambda v: index[_show(v)] / slots if len(categories) > 1 else 0.5), [categories[0], categories[-1]] if (
        categories
    ) else ["", ""]


def parallel_coordinates_svg(sweep: SweepView, *, width: int = 560, height: int = 200) -> str:
    """One line per trial with a metric through an axis per param, then the metric's; darker is better."""
    scored = [t for t in sweep.trials if t.metric is not None][:SWEEP_LINES]
    if not scored or not sweep.params:
        return ""
    names = [*sweep.params, _metric_label(sweep)]
    columns = [[dict(t.params).get(p) for t in scored] for p in sweep.params] + [[t.metric for t in scored]]
    axes = [_axis(col) for col in columns]
    left, right, top, bottom = 30, 30, 30, 22
    step = (width - left - right) / max(len(names) - 1, 1)

    def y(fraction: float) -> float:
        return top + (height - top - bottom) * (1 - fraction)

    lines = []
    for rank in range(len(scored) - 1, -1, -1):  # the best drawn last, on top
        shade = rank / max(len(scored) - 1, 1)
        color = f"hsl(125, 45%, {30 + 45 * shade:.0f}%)"
        points = " ".join(f"{left + k * step:.1f},{y(axes[k][0](columns[k][rank])):.1f}" for k in range(len(names)))
        lines.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-opacity="0.8" '
                     f'stroke-width="{2.5 if rank == 0 else 1.2}"/>')  # fmt: skip
    frame = []
    for k, name in enumerate(names):
        ax = left + k * step
        low, high = axes[k][1]
        frame.append(
            f'<line x1="{ax:.1f}" y1="{top}" x2="{ax:.1f}" y2="{height - bottom}" stroke="currentColor" '
            f'stroke-opacity="0.5"/><text x="{ax:.1f}" y="{top - 16}" text-anchor="middle" font-weight="600">'
            f'{escape(_clip(name, 18))}</text><text x="{ax:.1f}" y="{top - 4}" text-anchor="middle" font-size="10">'
            f'{escape(_clip(high, 12))}</text><text x="{ax:.1f}" y="{height - bottom + 14}" text-anchor="middle" '
            f'font-size="10">{escape(_clip(low, 12))}</text>'
        )
    return (
        f'<svg class="polynb-parallel-coordinates" width="{width}" height="{height}" {_FONT} {_SVG_STYLE}>'
        f"{''.join(lines)}{''.join(frame)}</svg>"
    )


def sweep_summary_html(sweep: SweepView) -> str:
    """One line: the sweep's kind, its trials done, its best trial so far."""
    done = sum(1 for t in sweep.trials if t.status in ("succeeded", "failed", "stopped", "skipped", "upstream_failed"))
    total = sweep.total if sweep.total is not None else len(sweep.trials)
    best = sweep.best
    summary = f"{sweep.kind} sweep · {done}/{total} trials done"
    if best is not None:
        params = ", ".join(f"{k}={_show(v)}" for k, v in best.params)
        summary += f" · best {escape(_metric_label(sweep))} <b>{_show(best.metric)}</b> ({escape(best.name)}: " \
                   f"<code>{escape(_clip(params, 160))}</code>)"  # fmt: skip
    return summary


def sweep_html(sweep: SweepView, *, title: str = "") -> str:
    """The sweep view: the best trial, best-so-far over time, params → metric, the trials best first."""
    charts = best_so_far_svg(sweep) + parallel_coordinates_svg(sweep)
    return (
        f'<div class="polynb-sweep" style="margin:4px 0"><div>{title}{sweep_summary_html(sweep)}</div>'
        f'<div style="display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start">{charts}</div>'
        f"{sweep_table_html(sweep)}</div>"
    )


def op_sweeps_html(snapshot: RunSnapshot, selected: str | None) -> str:
    """The ops of a DAG that sweep: a line each; the one ``selected`` in the widget's op list in full (its
    trials ranked, best so far, parallel coordinates), as a top-level sweep is drawn."""
    parts: list[str] = []
    for op in snapshot.op_sweeps:
        name = f"<b>{escape(op.name)}</b>: "
        if op.uuid == selected:
            parts.append(sweep_html(op.sweep, title=name))
        else:
            parts.append(
                f'<div class="polynb-op-sweep" style="margin:2px 0">▸ {name}{sweep_summary_html(op.sweep)} '
                f'<span style="opacity:0.7">(choose {escape(op.name)} in the op list for its trials)</span></div>'
            )
    return "".join(parts)


def sweep_text(sweep: SweepView, *, limit: int = SWEEP_ROWS) -> list[str]:
    """Stable lines for a final sweep: the best trial, then the best trials with params and metric."""
    lines = [f"  {sweep.kind} sweep: {len(sweep.trials)} trials, ranked by {_metric_label(sweep)}"]
    best = sweep.best
    if best is not None:
        lines.append(f"  best: {best.name}  " + ", ".join(f"{k}={_show(v)}" for k, v in best.params) +
                     f"  → {sweep.metric}={_show(best.metric)}")  # fmt: skip
    for rank, trial in enumerate(sweep.trials[:limit], start=1):
        params = ", ".join(f"{k}={_show(v)}" for k, v in trial.params)
        metric = f"  {sweep.metric}={_show(trial.metric)}" if trial.metric is not None else ""
        lines.append(f"  {rank:>3}. {trial.name}  {trial.status}  {params}{metric}")
    if len(sweep.trials) > limit:
        lines.append(f"  … {len(sweep.trials) - limit} more trials")
    return lines
