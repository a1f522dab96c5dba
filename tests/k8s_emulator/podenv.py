"""A container's environment and argv, resolved as the kubelet does (test-only emulator).

``envFrom`` first (ConfigMaps/Secrets, with ``prefix``), then ``env`` in order (``value`` with ``$(VAR)``
expansion against what is defined so far and the service variables, ``valueFrom`` field/configMap/secret refs);
a missing required ConfigMap, Secret or key fails the start with ``CreateContainerConfigError`` and the kubelet's
message. ``command``/``args`` expand ``$(VAR)`` against the result (the kubelet's variables: the service ones,
``envFrom`` and ``env``; never the image's ``ENV``, ``HOSTNAME`` or ``HOME``, which the runtime adds and the kubelet
does not see; the image's ENTRYPOINT and CMD are not expanded); ``$$`` escapes; an undefined reference stays as
written. See https://kubernetes.io/docs/tasks/inject-data-application/define-interdependent-environment-variables/
and https://kubernetes.io/docs/tasks/inject-data-application/define-command-argument-container/.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

from .images import Image

Lookup = Callable[[str, str], dict[str, Any] | None]
"""(plural, name) -> the object in the pod's namespace, or None."""

ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


class ConfigError(Exception):
    """CreateContainerConfigError: the message is the kubelet's."""


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion (``k8s.io/kubernetes/third_party/forked/golang/expansion``)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2 : end]
                    out.append(env[name] if name in env else text[i : end + 1])
                    i = end + 1
                    continue
        out.append(text[i])
        i += 1
    return "".join(out)


def _data(obj: dict[str, Any], plural: str) -> dict[str, str]:
    if plural == "secrets":
        return {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in (obj.get("data") or {}).items()}
    return {str(k): str(v) for k, v in (obj.get("data") or {}).items()}


KINDS = {"configmaps": ("configmap", "ConfigMap"), "secrets": ("secret", "Secret")}


def _ref(lookup: Lookup, ns: str, plural: str, ref: dict[str, Any]) -> str | None:
    lower, kind = KINDS[plural]
    obj = lookup(plural, ref.get("name", ""))
    optional = bool(ref.get("optional"))
    if obj is None:
        if optional:
            return None
        raise ConfigError(f'{lower} "{ref.get("name", "")}" not found')
    data = _data(obj, plural)
    if ref["key"] not in data:
        if optional:
            return None
        raise ConfigError(f"couldn't find key {ref['key']} in {kind} {ns}/{ref.get('name', '')}")
    return data[ref["key"]]


def _field(pod: dict[str, Any], path: str) -> str:
    meta = pod["metadata"]
    status = pod.get("status") or {}
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": pod["spec"].get("nodeName", ""),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", ""),
        "status.podIP": status.get("podIP", ""),
        "status.hostIP": status.get("hostIP", ""),
    }
    if path in simple:
        return str(simple[path])
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if match:
        return str((meta.get(match[1]) or {}).get(match[2], ""))
    if path in ("metadata.labels", "metadata.annotations"):
        items = meta.get(path.split(".")[1]) or {}
        return "\n".join(f'{k}="{v}"' for k, v in sorted(items.items()))
    raise ConfigError(f"unsupported fieldRef {path}")


def declared(
    pod: dict[str, Any],
    container: dict[str, Any],
    lookup: Lookup,
    services: list[dict[str, Any]] | None = None,
) -> dict[str, str]:
    """What the kubelet gives the runtime (``makeEnvironmentVariables``), and expands ``command``/``args``
    against: the service variables, ``envFrom``, then ``env``."""
    ns = pod["metadata"]["namespace"]
    services_env = service_env(pod, services)
    defined: dict[str, str] = {}
    for source in container.get("envFrom") or ():
        prefix = source.get("prefix", "")
        for plural, key in (("configmaps", "configMapRef"), ("secrets", "secretRef")):
            ref = source.get(key)
            if ref is None:
                continue
            obj = lookup(plural, ref.get("name", ""))
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'{KINDS[plural][0]} "{ref.get("name", "")}" not found')
            for k, v in _data(obj, plural).items():
                if ENV_NAME.match(prefix + k):  # invalid names are skipped (an event says which)
                    defined[prefix + k] = v
    for item in container.get("env") or ():
        name = item["name"]
        if "valueFrom" not in item:
            defined[name] = expand(str(item.get("value", "")), {**services_env, **defined})
            continue
        source = item["valueFrom"]
        value: str | None
        if "fieldRef" in source:
            value = _field(pod, source["fieldRef"]["fieldPath"])
        elif "configMapKeyRef" in source:
            value = _ref(lookup, ns, "configmaps", source["configMapKeyRef"])
        elif "secretKeyRef" in source:
            value = _ref(lookup, ns, "secrets", source["secretKeyRef"])
        elif "resourceFieldRef" in source:
            value = "0"
        else:
            value = ""
        if value is not None:
            defined[name] = value
    return {**services_env, **defined}


def environment(
    pod: dict[str, Any],
    container: dict[str, Any],
    image: Image,
    lookup: Lookup,
    services: list[dict[str, Any]] | None = None,
    kubelet: dict[str, str] | None = None,
) -> dict[str, str]:
    """The process's environment, as the runtime makes it: the image's ``ENV``, ``HOSTNAME``, the kubelet's
    variables (``kubelet``: :func:`declared`, computed here when not given), ``HOME`` if still unset."""
    env: dict[str, str] = {
        "PATH": image.env.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    }
    env.update(image.env)
    env["HOSTNAME"] = pod["metadata"]["name"]
    env.update(declared(pod, container, lookup, services) if kubelet is None else kubelet)
    env.setdefault("HOME", "/root")
    return env


API_SERVICE_IP = "10.96.0.1"


def _service_vars(name: str, ip: str, ports: list[dict[str, Any]]) -> dict[str, str]:
    prefix = re.sub(r"[^A-Z0-9]", "_", name.upper())
    out = {f"{prefix}_SERVICE_HOST": ip}
    for i, port in enumerate(ports):
        number, proto = port.get("port"), str(port.get("protocol", "TCP")).lower()
        if i == 0:
            out[f"{prefix}_SERVICE_PORT"] = str(number)
            out[f"{prefix}_PORT"] = f"{proto}://{ip}:{number}"
        if port.get("name"):
            out[f"{prefix}_SERVICE_PORT_{re.sub(r'[^A-Z0-9]', '_', str(port['name']).upper())}"] = str(number)
        base = f"{prefix}_PORT_{number}_{proto.upper()}"
        out.update({base: f"{proto}://{ip}:{number}", f"{base}_PROTO": proto, f"{base}_PORT": str(number)})
        out[f"{base}_ADDR"] = ip
    return out


def service_env(pod: dict[str, Any], services: list[dict[str, Any]] | None) -> dict[str, str]:
    """What the kubelet adds for Services: the API server's ``KUBERNETES_*`` in every pod, and with
    ``enableServiceLinks`` (the default) the Docker-links-style variables of each Service of the pod's
    namespace that has a cluster IP.
    https://kubernetes.io/docs/concepts/services-networking/service/#environment-variables"""
    out = _service_vars("kubernetes", API_SERVICE_IP, [{"name": "https", "port": 443, "protocol": "TCP"}])
    if pod["spec"].get("enableServiceLinks", True):
        for svc in services or ():
            spec = svc.get("spec") or {}
            ip = spec.get("clusterIP")
            if ip and ip != "None":
                out.update(_service_vars(svc["metadata"]["name"], ip, list(spec.get("ports") or ())))
    return out


def argv(container: dict[str, Any], image: Image, env: dict[str, str]) -> list[str]:
    """``command`` replaces the image's ENTRYPOINT (and drops its CMD), ``args`` replace its CMD; ``command``
    and ``args`` are expanded against ``env``, the kubelet's variables (:func:`declared`), the image's words
    are not (``ExpandContainerCommandAndArgs``)."""
    command = [expand(str(w), env) for w in container.get("command") or ()]
    # An empty list is no list: `args: []` is dropped when the API server stores the pod (omitempty), and the
    # runtime looks at lengths (containerd's CRI: the image's ENTRYPOINT and CMD unless command or args is given).
    args = [expand(str(w), env) for w in container["args"]] if container.get("args") else None
    if command:
        return [*command, *(args or [])]
    if args is not None:
        return [*image.entrypoint, *args]
    return [*image.entrypoint, *image.cmd]


def identity(pod: dict[str, Any], container: dict[str, Any], image: Image) -> tuple[int, int]:
    """(uid, gid) from the container's then the pod's ``securityContext``, else the image's ``USER``, with
    the kubelet's ``runAsNonRoot`` check (``verifyRunAsNonRoot``) before the container is created."""
    pod_ctx = pod["spec"].get("securityContext") or {}
    own = container.get("securityContext") or {}

    def pick(key: str) -> Any:
        return own[key] if own.get(key) is not None else pod_ctx.get(key)

    uid, gid = pick("runAsUser"), pick("runAsGroup")
    if pick("runAsNonRoot"):
        meta = pod["metadata"]
        where = f'(pod: "{meta["name"]}_{meta["namespace"]}({meta["uid"]})", container: {container["name"]})'
        if uid == 0:
            raise ConfigError(f"container's runAsUser breaks non-root policy {where}")
        if uid is None and image.user == 0:
            raise ConfigError(f"container has runAsNonRoot and image will run as root {where}")
    return (image.user if uid is None else int(uid)), (
        int(gid) if gid is not None else (image.group if uid is None else 0)
    )
