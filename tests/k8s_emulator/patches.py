"""JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch for the lists polynb and
kubectl touch (merged by their ``patchMergeKey``) — test-only emulator."""

from __future__ import annotations

import copy
from typing import Any

from .errors import ApiError

MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "conditions": "type",
    "ownerReferences": "uid",
    "containerStatuses": "name",
    "initContainerStatuses": "name",
}


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            out.pop(key, None)
        elif isinstance(value, list) and key in MERGE_KEYS and isinstance(out.get(key), list):
            merge_key = MERGE_KEYS[key]
            items = [copy.deepcopy(x) for x in out[key]]
            for item in value:
                if isinstance(item, dict) and item.get("$patch") == "delete":
                    items = [x for x in items if x.get(merge_key) != item.get(merge_key)]
                    continue
                for i, existing in enumerate(items):
                    if (
                        isinstance(existing, dict)
                        and isinstance(item, dict)
                        and existing.get(merge_key) == item.get(merge_key)
                    ):
                        items[i] = strategic_merge_patch(existing, item)
                        break
                else:
                    items.append(copy.deepcopy(item))
            out[key] = items
        else:
            out[key] = strategic_merge_patch(out.get(key), value)
    return out


def json_patch(doc: Any, ops: list[dict[str, Any]]) -> Any:
    doc = copy.deepcopy(doc)
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in str(op.get("path", "")).split("/")[1:]]
        try:
            parent = doc
            for part in parts[:-1]:
                parent = parent[int(part)] if isinstance(parent, list) else parent[part]
            last = parts[-1]
            kind = op["op"]
            if isinstance(parent, list):
                index = len(parent) if last == "-" else int(last)
                if kind == "add":
                    parent.insert(index, op["value"])
                elif kind == "remove":
                    parent.pop(index)
                elif kind == "replace":
                    parent[index] = op["value"]
                elif kind == "test" and parent[index] != op["value"]:
                    raise ApiError(422, "Invalid", f"the server rejected our request: test failed at {op['path']}")
            else:
                if kind in ("add", "replace"):
                    if kind == "replace" and last not in parent:
                        raise KeyError(last)
                    parent[last] = op["value"]
                elif kind == "remove":
                    del parent[last]
                elif kind == "test" and parent.get(last) != op["value"]:
                    raise ApiError(422, "Invalid", f"testing value {op['path']} failed")
        except ApiError:
            raise
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise ApiError(
                422, "Invalid", f"the server rejected our request due to an error in our request: {op} ({exc})"
            ) from None
    return doc


def apply_patch(current: dict[str, Any], content_type: str, body: Any) -> dict[str, Any]:
    kind = content_type.split(";")[0].strip()
    if kind == "application/json-patch+json":
        result = json_patch(current, body)
    elif kind == "application/merge-patch+json":
        result = merge_patch(current, body)
    elif kind == "application/strategic-merge-patch+json":
        result = strategic_merge_patch(current, body)
    else:
        raise ApiError(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted "
            "media types include: application/json-patch+json, application/merge-patch+json, "
            f"application/apply-patch+yaml, application/strategic-merge-patch+json (got {content_type})",
        )
    if not isinstance(result, dict):
        raise ApiError(400, "BadRequest", "the patch did not produce an object")
    return result
