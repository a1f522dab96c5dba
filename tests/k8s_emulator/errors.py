"""``metav1.Status`` errors as the apiserver words them (test-only emulator)."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def group_resource(plural: str, group: str) -> str:
    return f"{plural}.{group}" if group else plural


def details(name: str, plural: str, group: str) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "kind": plural}
    if group:
        out["group"] = group
    return out


def not_found(plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        404, "NotFound", f'{group_resource(plural, group)} "{name}" not found', details(name, plural, group)
    )


def already_exists(plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        409, "AlreadyExists", f'{group_resource(plural, group)} "{name}" already exists', details(name, plural, group)
    )


def invalid(kind: str, name: str, causes: list[dict[str, str]]) -> ApiError:
    """422 as ``apierrors.NewInvalid``: ``Kind "name" is invalid: field: message, ...``."""
    text = ", ".join(f"{c['field']}: {c['message']}" for c in causes)
    return ApiError(
        422,
        "Invalid",
        f'{kind} "{name}" is invalid: {text}',
        {
            "name": name,
            "kind": kind,
            "causes": [
                {"reason": c.get("reason", "FieldValueInvalid"), "message": c["message"], "field": c["field"]}
                for c in causes
            ],
        },
    )


def forbidden(user: str, verb: str, plural: str, group: str, namespace: str | None, name: str = "") -> ApiError:
    """403 as the RBAC authorizer words it."""
    where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
    what = f'{plural} "{name}"' if name else plural
    grp = f' in API group "{group}"'
    return ApiError(
        403,
        "Forbidden",
        f'{what} is forbidden: User "{user}" cannot {verb} resource "{plural}"{grp}{where}',
        details(name, plural, group),
    )
