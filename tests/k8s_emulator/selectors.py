"""Label and field selectors with the apiserver's grammar and error messages (test-only emulator).

Label selectors: ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k``, ``!k``
(``k8s.io/apimachinery/pkg/labels/selector.go``). Field selectors: ``f=v``, ``f==v``, ``f!=v`` on the
fields each resource supports (``pkg/registry/core/pod/strategy.go`` ``ToSelectableFields`` and friends);
any other field is a 400 ``field label not supported``.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import ApiError

Requirement = tuple[str, str, Any]

_SET = re.compile(r"^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$")
_EQ = re.compile(r"^([\w./-]+)\s*(==|!=|=)\s*([\w./-]*)$")
_EXISTS = re.compile(r"^(!?)([\w./-]+)$")

FIELDS: dict[str, set[str]] = {
    "pods": {
        "metadata.name",
        "metadata.namespace",
        "status.phase",
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.podIP",
        "status.nominatedNodeName",
    },
    "events": {
        "metadata.name",
        "metadata.namespace",
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    },
    "jobs": {"metadata.name", "metadata.namespace", "status.successful"},
    "namespaces": {"metadata.name", "status.phase"},
}
DEFAULT_FIELDS = {"metadata.name", "metadata.namespace"}


def _split(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def parse_labels(text: str) -> list[Requirement]:
    reqs: list[Requirement] = []
    for part in _split(text or ""):
        if m := _SET.match(part):
            reqs.append((m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",") if v.strip()}))
        elif m := _EQ.match(part):
            reqs.append((m.group(1), "!=" if m.group(2) == "!=" else "=", m.group(3)))
        elif m := _EXISTS.match(part):
            reqs.append((m.group(2), "!exists" if m.group(1) else "exists", None))
        else:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {part!r}")
    return reqs


def labels_match(labels: dict[str, str] | None, reqs: list[Requirement]) -> bool:
    labels = labels or {}
    for key, op, value in reqs:
        have = key in labels
        if (
            (op == "=" and labels.get(key) != value)
            or (op == "!=" and have and labels[key] == value)
            or (op == "in" and (not have or labels[key] not in value))
            or (op == "notin" and have and labels[key] in value)
            or (op == "exists" and not have)
            or (op == "!exists" and have)
        ):
            return False
    return True


def parse_fields(plural: str, text: str) -> list[Requirement]:
    reqs: list[Requirement] = []
    allowed = FIELDS.get(plural, DEFAULT_FIELDS)
    for part in _split(text or ""):
        m = re.match(r"^([\w.]+)\s*(==|!=|=)\s*(.*)$", part)
        if not m:
            raise ApiError(400, "BadRequest", f"invalid field selector: {part!r}")
        if m.group(1) not in allowed:
            raise ApiError(400, "BadRequest", f"field label not supported: {m.group(1)}")
        reqs.append((m.group(1), "!=" if m.group(2) == "!=" else "=", m.group(3)))
    return reqs


def field_value(obj: dict[str, Any], dotted: str) -> str:
    current: Any = obj
    for key in dotted.split("."):
        current = current.get(key) if isinstance(current, dict) else None
    if dotted == "source" and isinstance(current, dict):
        current = current.get("component")
    return "" if current is None else str(current)


def fields_match(obj: dict[str, Any], reqs: list[Requirement]) -> bool:
    return all((field_value(obj, f) == v) == (op == "=") for f, op, v in reqs)
