"""What ``run.connections`` adds to an op's main container on Kubernetes (Polyaxon's agent does the same).

A connection's ``secret``/``configMap`` with a ``mountPath`` is a volume there (its keys are files; ``items``: only
those keys), without one it is the container's ``envFrom``; its ``env`` entries are added (the op's own win); a
``host_path``/``volume_claim`` whose schema has a ``mountPath`` is mounted there (``readOnly`` from the schema).
See https://kubernetes.io/docs/concepts/configuration/secret/#using-secrets-as-files-from-a-pod and
https://kubernetes.io/docs/tasks/configure-pod-container/configure-pod-configmap/#configure-all-key-value-pairs-in-a-configmap-as-container-environment-variables
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from polynb.executors.kubernetes import names


@dataclass
class ConnectionMounts:
    volumes: list[dict[str, Any]] = field(default_factory=list)
    mounts: list[dict[str, Any]] = field(default_factory=list)
    env_from: list[dict[str, Any]] = field(default_factory=list)
    env: list[dict[str, Any]] = field(default_factory=list)


def _resource(kind: str, ref: Mapping[str, Any], volume: str, out: ConnectionMounts) -> None:
    source_key, name_key, env_key = (
        ("secret", "secretName", "secretRef") if kind == "secret" else ("configMap", "name", "configMapRef")
    )
    if not ref.get("mountPath"):
        out.env_from.append({env_key: {"name": ref["name"]}})
        return
    source: dict[str, Any] = {name_key: ref["name"]}
    if ref.get("items"):
        source["items"] = [{"key": key, "path": key} for key in ref["items"]]
    if ref.get("defaultMode") is not None:
        source["defaultMode"] = ref["defaultMode"]
    out.volumes.append({"name": volume, source_key: source})
    out.mounts.append({"name": volume, "mountPath": ref["mountPath"], "readOnly": True})


def connection_mounts(connections: Sequence[Mapping[str, Any]]) -> ConnectionMounts:
    out = ConnectionMounts()
    for connection in connections:
        name = str(connection["name"])
        schema = connection.get("schema") or {}
        if connection.get("secret"):
            _resource("secret", connection["secret"], names.dns_label(f"{name}-secret", prefix="cn"), out)
        if connection.get("configMap"):
            _resource("configMap", connection["configMap"], names.dns_label(f"{name}-config", prefix="cn"), out)
        if schema.get("mountPath") and connection.get("kind") in ("host_path", "volume_claim"):
            volume = names.dns_label(f"{name}-data", prefix="cn")
            source = (
                {"hostPath": {"path": schema["hostPath"]}}
                if connection["kind"] == "host_path"
                else {"persistentVolumeClaim": {"claimName": schema["claimName"]}}
            )
            out.volumes.append({"name": volume, **source})
            out.mounts.append({"name": volume, "mountPath": schema["mountPath"],
                               "readOnly": bool(schema.get("readOnly", False))})  # fmt: skip
        out.env += [{"name": str(e["name"]), "value": str(e.get("value", ""))} for e in connection.get("env") or ()]
    return out
