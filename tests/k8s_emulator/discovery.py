"""Discovery documents: ``/version``, ``/api``, ``/apis``, resource lists and a minimal OpenAPI v3 that
tells kubectl the server validates fields itself (test-only emulator)."""

from __future__ import annotations

from typing import Any

from .store import RESOURCES

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
SUB_VERBS = {
    "status": ["get", "patch", "update"],
    "log": ["get"],
    "portforward": ["create", "get"],
    "eviction": ["create"],
}
VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-polynb-emulator",
    "gitCommit": "emulator",
    "gitTreeState": "clean",
    "buildDate": "2025-01-01T00:00:00Z",
    "goVersion": "go1.23",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def _groups() -> list[tuple[str, str]]:
    return sorted({(r.group, r.version) for r in RESOURCES.values()})


def resource_list(group: str, version: str) -> dict[str, Any]:
    resources: list[dict[str, Any]] = []
    for r in RESOURCES.values():
        if (r.group, r.version) != (group, version):
            continue
        entry: dict[str, Any] = {
            "name": r.plural,
            "singularName": r.kind.lower(),
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": VERBS,
        }
        if r.short:
            entry["shortNames"] = list(r.short)
        if r.plural in ("pods", "services", "jobs"):
            entry["categories"] = ["all"]
        resources.append(entry)
        for sub in r.subresources:
            entry = {
                "name": f"{r.plural}/{sub}",
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": "PodPortForwardOptions" if sub == "portforward" else r.kind,
                "verbs": SUB_VERBS[sub],
            }
            if sub == "eviction":
                # Its kind is of another group: kubectl drain reads group and version here (without them it
                # deletes the pods instead of evicting them).
                entry.update(kind="Eviction", group="policy", version="v1")
            resources.append(entry)
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}


def _openapi(group: str, version: str) -> dict[str, Any]:
    param = {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}}
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for r in RESOURCES.values():
        if (r.group, r.version) != (group, version):
            continue
        gvk = {"group": r.group, "version": r.version, "kind": r.kind}
        base = f"{prefix}/namespaces/{{namespace}}/{r.plural}" if r.namespaced else f"{prefix}/{r.plural}"
        ref = {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/emu.{r.kind}"}}}}
        op = {
            "parameters": [param],
            "responses": {"200": {"description": "OK", **ref}},
            "x-kubernetes-group-version-kind": gvk,
        }
        paths[base] = {"post": {**op, "requestBody": ref, "x-kubernetes-action": "post"}}
        paths[f"{base}/{{name}}"] = {
            "patch": {**op, "x-kubernetes-action": "patch"},
            "put": {**op, "requestBody": ref, "x-kubernetes-action": "put"},
        }
        schemas[f"emu.{r.kind}"] = {"type": "object", "x-kubernetes-group-version-kind": [gvk]}
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def answer(parts: list[str], port: int) -> dict[str, Any] | None:
    """The document at ``parts``, or None when the path is not a discovery path."""
    if parts == ["version"]:
        return VERSION
    if parts == ["api"]:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{port}"}],
        }
    if parts == ["api", "v1"]:
        return resource_list("", "v1")
    named = [(g, v) for g, v in _groups() if g]
    if parts == ["apis"]:
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": g,
                    "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
                    "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v},
                }
                for g, v in named
            ],
        }
    for g, v in named:
        if parts == ["apis", g]:
            return {
                "kind": "APIGroup",
                "apiVersion": "v1",
                "name": g,
                "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
                "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v},
            }
        if parts == ["apis", g, v]:
            return resource_list(g, v)
    if parts == ["openapi", "v3"]:
        return {
            "paths": {
                (f"apis/{g}/{v}" if g else f"api/{v}"): {
                    "serverRelativeURL": f"/openapi/v3/{f'apis/{g}/{v}' if g else f'api/{v}'}?hash=emu1"
                }
                for g, v in _groups()
            }
        }
    if parts[:2] == ["openapi", "v3"] and len(parts) > 2:
        rest = parts[2:]
        if rest[0] == "api" and len(rest) == 2:
            return _openapi("", rest[1])
        if rest[0] == "apis" and len(rest) == 3:
            return _openapi(rest[1], rest[2])
    return None
