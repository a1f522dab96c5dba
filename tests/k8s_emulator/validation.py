"""Defaulting and validation of the objects polynb creates (test-only emulator).

The apiserver's order is decode -> default -> admission -> validate; messages follow
``pkg/apis/core/validation/validation.go`` and ``pkg/apis/batch/validation/validation.go``.
Only the rules the executor can trip are modelled: names, label values, containers (name, image,
uniqueness, restartPolicy), the Job's restartPolicy and name length, Service ports, quantities.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from .errors import invalid

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
QUANTITY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)(e[+-]?\d+|[numkMGTPE]i?|Ki|Mi|Gi|Ti|Pi|Ei)?$")

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
    "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
    "validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)

Cause = dict[str, str]


def default_pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)
    for group in ("initContainers", "containers"):
        for c in spec.get(group) or ():
            image = str(c.get("image") or "")
            tag = image.rsplit("/", 1)[-1]
            latest = ":" not in tag or tag.endswith(":latest")
            c.setdefault("imagePullPolicy", "Always" if latest and "@" not in image else "IfNotPresent")
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            c.setdefault("resources", {})
            for port in c.get("ports") or ():
                port.setdefault("protocol", "TCP")


def default(plural: str, obj: dict[str, Any], *, uid: str, cluster_ip: str) -> None:
    meta = obj["metadata"]
    if plural == "pods":
        default_pod_spec(obj.setdefault("spec", {}))
        obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
    elif plural == "jobs":
        spec = obj.setdefault("spec", {})
        for key, value in (
            ("backoffLimit", 6),
            ("completions", 1),
            ("parallelism", 1),
            ("completionMode", "NonIndexed"),
            ("suspend", False),
            ("podReplacementPolicy", "TerminatingOrFailed"),
            ("manualSelector", None),
        ):
            spec.setdefault(key, value)
        spec.pop("manualSelector")
        extra = {
            "batch.kubernetes.io/controller-uid": uid,
            "batch.kubernetes.io/job-name": meta["name"],
            "controller-uid": uid,
            "job-name": meta["name"],
        }
        spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
        template = spec.setdefault("template", {})
        template.setdefault("metadata", {}).setdefault("labels", {}).update(extra)
        meta.setdefault("labels", {}).update(
            {
                "batch.kubernetes.io/controller-uid": uid,
                "batch.kubernetes.io/job-name": meta["name"],
                "controller-uid": uid,
                "job-name": meta["name"],
            }
        )
        default_pod_spec(template.setdefault("spec", {}))
        obj["status"] = {}
    elif plural == "secrets":
        # stringData is write-only: merged into data (base64) on write, never stored.
        import base64

        for key, value in (obj.pop("stringData", None) or {}).items():
            obj.setdefault("data", {})[key] = base64.b64encode(str(value).encode()).decode()
        obj.setdefault("type", "Opaque")
    elif plural == "persistentvolumeclaims":
        # A default StorageClass with immediate binding: the claim is Bound to a new volume at once.
        spec = obj.setdefault("spec", {})
        spec.setdefault("volumeMode", "Filesystem")
        spec.setdefault("storageClassName", "standard")
        spec.setdefault("volumeName", f"pvc-{uid}")
        storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
        obj["status"] = {
            "phase": "Bound",
            "accessModes": list(spec.get("accessModes") or ()),
            "capacity": {"storage": storage},
        }
    elif plural == "namespaces":
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj["status"] = {"phase": "Active"}
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
    elif plural == "services":
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("clusterIP", cluster_ip)
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        for port in spec.get("ports") or ():
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
        obj["status"] = {"loadBalancer": {}}


def _meta_causes(plural: str, obj: dict[str, Any]) -> list[Cause]:
    meta = obj.get("metadata") or {}
    name = meta.get("name") or ""
    causes: list[Cause] = []
    if plural == "services" or plural == "namespaces":
        pattern, msg = (DNS1035_LABEL, DNS1035_MSG) if plural == "services" else (DNS1123_LABEL, LABEL_MSG)
        if not pattern.match(name) or len(name) > 63:
            causes.append({"field": "metadata.name", "message": f'Invalid value: "{name}": {msg}'})
    elif not DNS1123_SUBDOMAIN.match(name) or len(name) > 253:
        causes.append({"field": "metadata.name", "message": f'Invalid value: "{name}": {SUBDOMAIN_MSG}'})
    for value in (meta.get("labels") or {}).values():
        if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
            detail = "must be no more than 63 characters" if isinstance(value, str) and len(value) > 63 else VALUE_MSG
            causes.append({"field": "metadata.labels", "message": f'Invalid value: "{value}": {detail}'})
    return causes


def _container_causes(spec: dict[str, Any], where: str) -> list[Cause]:
    causes: list[Cause] = []
    if not spec.get("containers"):
        causes.append({"field": f"{where}.containers", "reason": "FieldValueRequired", "message": "Required value"})
    seen: set[str] = set()
    for group in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(group) or ()):
            at = f"{where}.{group}[{i}]"
            name = c.get("name") or ""
            if not name:
                causes.append({"field": f"{at}.name", "reason": "FieldValueRequired", "message": "Required value"})
            elif not DNS1123_LABEL.match(name) or len(name) > 63:
                causes.append({"field": f"{at}.name", "message": f'Invalid value: "{name}": {LABEL_MSG}'})
            elif name in seen:
                causes.append(
                    {"field": f"{at}.name", "reason": "FieldValueDuplicate", "message": f'Duplicate value: "{name}"'}
                )
            seen.add(name)
            if not c.get("image"):
                causes.append({"field": f"{at}.image", "reason": "FieldValueRequired", "message": "Required value"})
            policy = c.get("restartPolicy")
            if group == "containers" and policy is not None:
                causes.append(
                    {
                        "field": f"{at}.restartPolicy",
                        "reason": "FieldValueForbidden",
                        "message": "Forbidden: may not be set for non-init containers",
                    }
                )
            if group == "initContainers" and policy not in (None, "Always"):
                causes.append(
                    {
                        "field": f"{at}.restartPolicy",
                        "reason": "FieldValueNotSupported",
                        "message": f'Unsupported value: "{policy}": supported values: "Always"',
                    }
                )
            for kind in ("limits", "requests"):
                for res, qty in ((c.get("resources") or {}).get(kind) or {}).items():
                    if not QUANTITY.match(str(qty)):
                        causes.append(
                            {
                                "field": f"{at}.resources.{kind}[{res}]",
                                "message": f'Invalid value: "{qty}": must match the regex '
                                "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$",
                            }
                        )
            for j, env in enumerate(c.get("env") or ()):
                if not env.get("name"):
                    causes.append(
                        {"field": f"{at}.env[{j}].name", "reason": "FieldValueRequired", "message": "Required value"}
                    )
    policy = spec.get("restartPolicy")
    if policy not in ("Always", "OnFailure", "Never"):
        causes.append(
            {
                "field": f"{where}.restartPolicy",
                "reason": "FieldValueNotSupported",
                "message": f'Unsupported value: "{policy}": supported values: "Always", "OnFailure", "Never"',
            }
        )
    return causes


def _pod_update_view(spec: dict[str, Any]) -> dict[str, Any]:
    view = copy.deepcopy(spec)
    for group in ("containers", "initContainers"):
        for c in view.get(group) or ():
            c.pop("image", None)
    for key in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds", "nodeName"):
        view.pop(key, None)
    return view


def validate(plural: str, kind: str, obj: dict[str, Any], old: dict[str, Any] | None = None) -> None:
    name = (obj.get("metadata") or {}).get("name") or ""
    causes = _meta_causes(plural, obj)
    if plural == "pods":
        causes += _container_causes(obj.get("spec") or {}, "spec")
        if old is not None and _pod_update_view(old.get("spec") or {}) != _pod_update_view(obj.get("spec") or {}):
            causes.append(
                {
                    "field": "spec",
                    "reason": "FieldValueForbidden",
                    "message": "Forbidden: pod updates may not change fields other than "
                    "`spec.containers[*].image`,`spec.initContainers[*].image`,"
                    "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to "
                    "existing tolerations),`spec.terminationGracePeriodSeconds`",
                }
            )
    elif plural == "jobs":
        if len(name) > 63:
            causes.append(
                {"field": "metadata.name", "message": f'Invalid value: "{name}": must be no more than 63 characters'}
            )
        spec = obj.get("spec") or {}
        template = (spec.get("template") or {}).get("spec") or {}
        causes += _container_causes(template, "spec.template.spec")
        policy = template.get("restartPolicy")
        if policy not in ("Never", "OnFailure"):
            causes.append(
                {
                    "field": "spec.template.spec.restartPolicy",
                    "reason": "FieldValueNotSupported",
                    "message": f'Unsupported value: "{policy}": supported values: "OnFailure", "Never"',
                }
            )
        if int(spec.get("backoffLimit", 0)) < 0:
            causes.append(
                {
                    "field": "spec.backoffLimit",
                    "message": f"Invalid value: {spec['backoffLimit']}: must be greater than or equal to 0",
                }
            )
        if old is not None and (old.get("spec") or {}).get("template") != spec.get("template"):
            causes.append({"field": "spec.template", "message": "Invalid value: field is immutable"})
    elif plural == "persistentvolumeclaims":
        spec = obj.get("spec") or {}
        if not spec.get("accessModes"):
            causes.append(
                {
                    "field": "spec.accessModes",
                    "reason": "FieldValueRequired",
                    "message": "Required value: at least 1 access mode is required",
                }
            )
        for mode in spec.get("accessModes") or ():
            if mode not in ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"):
                causes.append(
                    {
                        "field": "spec.accessModes",
                        "reason": "FieldValueNotSupported",
                        "message": f'Unsupported value: "{mode}": supported values: "ReadOnlyMany", '
                        '"ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"',
                    }
                )
        if not ((spec.get("resources") or {}).get("requests") or {}).get("storage"):
            causes.append(
                {"field": "spec.resources[storage]", "reason": "FieldValueRequired", "message": "Required value"}
            )
    elif plural == "services":
        for i, port in enumerate((obj.get("spec") or {}).get("ports") or ()):
            number = port.get("port")
            if not isinstance(number, int) or not 0 < number < 65536:
                causes.append(
                    {
                        "field": f"spec.ports[{i}].port",
                        "message": f"Invalid value: {number}: must be between 1 and 65535, inclusive",
                    }
                )
    if causes:
        raise invalid(kind, name, causes)
