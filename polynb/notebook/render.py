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

from polynb.notebook.model import EdgeView, OpView, RunSnapshot

MAX_GRAPH_NODES = 80
"""Bigger graphs are not drawn (the timeline and the counts still are)."""
MAX_TIMELINE_ROWS = 40
LOG_SHOWN = 12

_PENDING = "#c5cad3"
STATUS_COLORS: dict[str, str] = {
    "created": _PENDING,
    "on_schedule": _PENDING,
    "resuming": _PENDING,
    "compiled": "#b0bec5",
    "queued": "#90a4ae",
    "scheduled": "#90caf9",
    "starting": "#64b5f6",
    "running": "#1e88e5",
    "processing": "#1e88e5",
    "warning": "#fbc02d",
    "unknown": "#fbc02d",
    "unschedulable": "#fbc02d",
    "retrying": "#ffa000",
    "stopping": "#ba68c8",
    "stopped": "#8e24aa",
    "succeeded": "#43a047",
    "failed": "#e53935",
    "upstream_failed": "#ef9a9a",
    "skipped": "#9e9e9e",
}
_FONT = 'font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="12"'


def status_color(status: str) -> str:
    return STATUS_COLORS.get(status, "#757575")


@dataclass(frozen=True, slots=True)
class GraphNode:
    name: str
    kind: str = "job"
    status: str = ""
    """Empty for a graph that did not run (``--dry-run``)."""


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


def graph_svg(nodes: Sequence[GraphNode], edges: Sequence[EdgeView]) -> str:
    """The DAG: ops as boxes coloured by status, dependency edges solid, event edges dashed and labelled
    with the awaited kinds, hook edges dotted and labelled with the trigger."""
    if not nodes:
        return ""
    if len(nodes) > MAX_GRAPH_NODES:
        return f'<div class="polynb-graph-omitted">graph of {len(nodes)} ops not drawn (see the timeline)</div>'
    node_w, node_h, gap_x, gap_y, pad = 150, 26, 70, 14, 8
    by_name = {n.name: n for n in nodes}
    columns = layers([n.name for n in nodes], edges)
    pos: dict[str, tuple[float, float]] = {}
    for c, column in enumerate(columns):
        for r, name in enumerate(column):
            pos[name] = (pad + c * (node_w + gap_x), pad + r * (node_h + gap_y))
    width = pad * 2 + len(columns) * node_w + (len(columns) - 1) * gap_x
    height = pad * 2 + max(len(c) for c in columns) * (node_h + gap_y) - gap_y
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="polynb-graph" width="{width}" height="{height}" {_FONT}>',
        '<defs><marker id="polynb-arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L8,4 L0,8 z" fill="#607d8b"/></marker></defs>',
    ]
    for edge in edges:
        if edge.src not in pos or edge.dst not in pos:
            continue
        (x0, y0), (x1, y1) = pos[edge.src], pos[edge.dst]
        sx, sy, ex, ey = x0 + node_w, y0 + node_h / 2, x1, y1 + node_h / 2
        mid = (sx + ex) / 2
        dash = {"event": ' stroke-dasharray="6,4"', "hook": ' stroke-dasharray="2,3"'}.get(edge.kind, "")
        title = f"{edge.src} → {edge.dst}: {edge.kind}" + (f" ({edge.label})" if edge.label else "")
        out.append(
            f'<path class="polynb-edge polynb-edge-{edge.kind}" d="M{sx:.0f},{sy:.0f} C{mid:.0f},{sy:.0f} '
            f'{mid:.0f},{ey:.0f} {ex - 2:.0f},{ey:.0f}" fill="none" stroke="#607d8b" stroke-width="1.3"{dash} '
            f'marker-end="url(#polynb-arrow)"><title>{escape(title)}</title></path>'
        )
        if edge.label:
            label = ("on " if edge.kind == "hook" else "") + edge.label
            out.append(
                f'<text x="{mid:.0f}" y="{(sy + ey) / 2 - 4:.0f}" text-anchor="middle" font-size="10" '
                f'fill="#455a64">{escape(label)}</text>'
            )
    for name, (x, y) in pos.items():
        node = by_name[name]
        fill = status_color(node.status) if node.status else "#eceff1"
        text = "#fff" if node.status in ("running", "succeeded", "failed", "stopped", "processing") else "#263238"
        stroke = ' stroke-dasharray="3,2"' if node.kind == "service" else ""
        title = f"{name} ({node.kind})" + (f": {node.status}" if node.status else "")
        out.append(
            f'<g class="polynb-node"><rect x="{x}" y="{y}" width="{node_w}" height="{node_h}" rx="5" '
            f'fill="{fill}" stroke="#546e7a"{stroke}/><text x="{x + 8}" y="{y + 17}" fill="{text}">'
            f"{escape(_clip(name, 20))}</text><title>{escape(title)}</title></g>"
        )
    out.append("</svg>")
    return "".join(out)


def graph_text(nodes: Sequence[GraphNode], edges: Sequence[EdgeView]) -> str:
    """The graph as text: one line per op with what it waits for (stable: no times, no uuids)."""
    incoming: dict[str, list[str]] = {}
    for edge in edges:
        if edge.kind == "event":
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


def timeline_svg(snapshot: RunSnapshot, *, width: int = 760) -> str:
    """A bar per op (the run itself first): status segments, a cap in the final status' colour, diamond
    markers for events other ops waited for and triangles for hooks; a dashed line marks now."""
    ops = list(snapshot.ops[:MAX_TIMELINE_ROWS])
    label_w, row_h, top, bottom = 170, 18, 4, 18
    span = max(snapshot.elapsed, max((s.start for op in ops for s in op.segments), default=0.0), 1.0)
    scale = (width - label_w - 10) / span
    height = top + len(ops) * row_h + bottom

    def x(t: float) -> float:
        return label_w + max(0.0, t) * scale

    svg = f'<svg xmlns="http://www.w3.org/2000/svg" class="polynb-timeline" width="{width}" height="{height}" {_FONT}>'
    out = [svg]
    for i, op in enumerate(ops):
        y = top + i * row_h
        indent = "  ↳ " if op.role == "hook" else ""
        weight = ' font-weight="bold"' if op.role == "dag" else ""
        out.append(f'<text x="2" y="{y + 13}"{weight}>{escape(indent + _clip(op.name, 24))}</text>')
        for seg in op.segments:
            if seg.end is not None and seg.end == seg.start:
                out.append(
                    f'<rect x="{x(seg.start) - 1:.1f}" y="{y + 2}" width="4" height="{row_h - 5}" '
                    f'fill="{status_color(seg.status)}"><title>{escape(op.name)}: {seg.status}</title></rect>'
                )
                continue
            end = seg.end if seg.end is not None else snapshot.elapsed
            w = max(x(end) - x(seg.start), 1.0)
            out.append(
                f'<rect x="{x(seg.start):.1f}" y="{y + 4}" width="{w:.1f}" height="{row_h - 9}" '
                f'fill="{status_color(seg.status)}"><title>{escape(op.name)}: {seg.status} '
                f"({_seconds(seg.start)} → {_seconds(end)})</title></rect>"
            )
        for marker in op.markers:
            mx, my = x(marker.at), y + row_h / 2
            if marker.kind == "event":  # a diamond
                points = f"M{mx:.1f},{my - 5:.1f} L{mx + 5:.1f},{my:.1f} L{mx:.1f},{my + 5:.1f} L{mx - 5:.1f},{my:.1f}z"
            else:  # a triangle
                points = f"M{mx:.1f},{my - 5:.1f} L{mx + 5:.1f},{my + 5:.1f} L{mx - 5:.1f},{my + 5:.1f} z"
            shape = f'<path class="polynb-marker-{marker.kind}" d="{points}"'
            out.append(f'{shape} fill="#fff" stroke="#263238" stroke-width="1.2"><title>{escape(marker.label)} '
                       f"at {_seconds(marker.at)}</title></path>")  # fmt: skip
    axis_y = top + len(ops) * row_h
    now_x = x(snapshot.elapsed)
    if not snapshot.settled:
        out.append(
            f'<line class="polynb-now" x1="{now_x:.1f}" y1="0" x2="{now_x:.1f}" y2="{axis_y}" stroke="#37474f" '
            'stroke-dasharray="3,3"/>'
        )
    out.append(f'<line x1="{label_w}" y1="{axis_y}" x2="{width - 10}" y2="{axis_y}" stroke="#b0bec5"/>')
    out.append(f'<text x="{label_w}" y="{axis_y + 13}" fill="#546e7a">0s</text>')
    out.append(f'<text x="{width - 10}" y="{axis_y + 13}" text-anchor="end" fill="#546e7a">{_seconds(span)}</text>')
    out.append("</svg>")
    more = len(snapshot.ops) - len(ops)
    if more > 0:
        out.append(f'<div class="polynb-more">… and {more} more ({_counts(snapshot.ops[len(ops) :])})</div>')
    return "".join(out)


# ------------------------------------------------------------------------------------------ html, text


def log_html(snapshot: RunSnapshot, *, limit: int = LOG_SHOWN) -> str:
    rows = []
    for line in snapshot.log[-limit:]:
        why = " — ".join(p for p in (line.reason, line.message) if p)
        rows.append(
            f"<tr><td>+{_seconds(line.at)}</td><td>{escape(line.name)}</td>"
            f'<td><span style="color:{status_color(line.status)}">●</span> {escape(line.status)}</td>'
            f"<td>{escape(_clip(why, 120))}</td></tr>"
        )
    if not rows:
        return ""
    return (
        '<table class="polynb-log" style="font-size:12px;border-collapse:collapse">'
        "<tr><th align=left>t</th><th align=left>run</th><th align=left>status</th><th align=left>why</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def outputs_html(snapshot: RunSnapshot) -> str:
    rows = [
        f"<tr><td>{escape(op.name)}</td><td><code>{escape(key)}</code></td><td><code>{escape(_show(value))}</code></td></tr>"
        for op in snapshot.ops
        for key, value in op.outputs
    ]
    if not rows:
        return ""
    return '<table class="polynb-outputs" style="font-size:12px"><tr><th align=left>op</th><th align=left>output</th>' \
        "<th align=left>value</th></tr>" + "".join(rows) + "</table>"  # fmt: skip


def links_html(snapshot: RunSnapshot) -> str:
    parts = []
    for link in snapshot.links:
        direct = (
            f' <a href="{escape(link.direct_url)}" target="_blank" rel="noopener">(direct)</a>'
            if link.direct_url != link.url
            else ""
        )
        parts.append(
            f'<a class="polynb-link" href="{escape(link.url)}" target="_blank" rel="noopener">'
            f"<b>{escape(link.title)} ↗</b></a>{direct}"
        )
    return " · ".join(parts)


def run_html(snapshot: RunSnapshot) -> str:
    """The whole widget body: header, links, notes, graph, timeline, event log, outputs."""
    header = (
        f'<div class="polynb-header"><b>{escape(snapshot.name)}</b> ({escape(snapshot.kind)}) '
        f'<span style="color:{status_color(snapshot.status)}">● {escape(snapshot.status)}</span>'
        f" · {_seconds(snapshot.elapsed)} · {_counts(snapshot.members) or 'no ops'} · "
        f"<code>{snapshot.uuid[:12]}</code></div>"
    )
    parts = [header]
    if snapshot.links:
        parts.append(f'<div class="polynb-links">{links_html(snapshot)}</div>')
    for note in snapshot.notes:
        parts.append(f'<div class="polynb-note" style="color:#8d6e00">⚠ {escape(note)}</div>')
    if snapshot.kind == "dag":
        nodes = [GraphNode(op.name, op.kind, op.status) for op in snapshot.members]
        parts.append(graph_svg(nodes, snapshot.edges))
    parts.append(timeline_svg(snapshot))
    parts.append(log_html(snapshot))
    if snapshot.settled:
        parts.append(outputs_html(snapshot))
    return "".join(p for p in parts if p)


def run_text(snapshot: RunSnapshot) -> str:
    """Stable text: statuses only once the run is final (so an output saved while it ran never depends
    on timing), ops with their kinds and, when final, statuses and outputs; no uuids, times or ports."""
    if snapshot.is_final:
        lines = [f"polynb run {snapshot.name} ({snapshot.kind}): {snapshot.status}"]
    else:
        lines = [f"polynb run {snapshot.name} ({snapshot.kind}): submitted — live status in the widget"]
    members = snapshot.members if snapshot.kind == "dag" else snapshot.ops[1:]
    if not snapshot.is_final:
        # Hook runs appear when their main op ends: listing them while running would depend on timing.
        members = tuple(op for op in members if op.role != "hook")
    width = max((len(_row_name(op)) for op in members), default=0)
    for op in members:
        row = f"  {_row_name(op).ljust(width)}  {op.kind:<7}"
        if snapshot.is_final:
            row += f"  {op.status}"
            if op.outputs:
                row += "  " + ", ".join(f"{k}={_show(v)}" for k, v in op.outputs)
        lines.append(row.rstrip())
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- helpers


def _row_name(op: OpView) -> str:
    return f"↳ {op.name}" if op.role == "hook" else op.name


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
