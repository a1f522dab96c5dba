"""Validating admission of pods, as the API server runs it after validation and before storage: PodSecurity
(``restricted``) on namespaces that enforce it, and ResourceQuota on the number of pods.

Both refuse with ``403 Forbidden`` whoever creates the pod: a client (a service's Pod) gets the error, the
job controller gets it too and records a ``FailedCreate`` warning event on the Job, retrying later (see
``controllers``). Messages are worded as the API server words them:

* PodSecurity (https://kubernetes.io/docs/concepts/security/pod-security-admission/, level checks from
  https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted):
  ``pods "p" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false
  (container "main" must set securityContext.allowPrivilegeEscalation=false), ...``. The level is the
  namespace label ``pod-security.kubernetes.io/enforce`` (its version ``...-version``, default ``latest``).
  Only ``restricted`` (with the baseline checks it includes that polynb can meet) is modelled; ``baseline``
  and ``privileged`` admit every pod here, which is kinder than a cluster only for hostile pods.
* ResourceQuota (https://kubernetes.io/docs/concepts/policy/resource-quotas/): ``pods "p" is forbidden:
  exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2``; pods in a terminal phase do not
  count, pods being deleted still do (they hold their quota until they are gone).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from .errors import ApiError, details

ENFORCE_LABEL: Final = "pod-security.kubernetes.io/enforce"
ENFORCE_VERSION_LABEL: Final = "pod-security.kubernetes.io/enforce-version"
ALLOWED_VOLUMES: Final = frozenset(
    {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}
)


@dataclass
class Admission:
    quotas: dict[str, tuple[str, int]] = field(default_factory=dict)
    """namespace -> (ResourceQuota name, ``pods`` hard limit)."""

    def admit(self, objects: dict[Any, dict[str, Any]], plural: str, ns: str | None, obj: dict[str, Any]) -> None:
        """Raise the API server's 403 for a pod that admission refuses (``objects``: the store's, locked)."""
        if plural != "pods" or ns is None:
            return
        namespace = objects.get(("namespaces", None, ns)) or {}
        labels = (namespace.get("metadata") or {}).get("labels") or {}
        name = obj["metadata"].get("name", "")
        if labels.get(ENFORCE_LABEL) == "restricted":
            problems = restricted_problems(obj.get("spec") or {})
            if problems:
                version = labels.get(ENFORCE_VERSION_LABEL) or "latest"
                raise ApiError(
                    403,
                    "Forbidden",
                    f'pods "{name}" is forbidden: violates PodSecurity "restricted:{version}": ' + ", ".join(problems),
                    details(name, "pods", ""),
                )
        if ns in self.quotas:
            quota, limit = self.quotas[ns]
            used = sum(
                1
                for (p, n, _), pod in objects.items()
                if p == "pods" and n == ns and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
            )
            if used + 1 > limit:
                raise ApiError(
                    403,
                    "Forbidden",
                    f'pods "{name}" is forbidden: exceeded quota: {quota}, requested: pods=1, used: pods={used},'
                    f" limited: pods={limit}",
                    details(name, "pods", ""),
                )


def _names(containers: list[str]) -> str:
    quoted = ", ".join(f'"{c}"' for c in containers)
    return f"container {quoted}" if len(containers) == 1 else f"containers {quoted}"


def restricted_problems(spec: dict[str, Any]) -> list[str]:
    """The checks of the ``restricted`` level that a pod spec fails, in the API server's order and words."""
    containers = [
        c
        for key in ("initContainers", "containers", "ephemeralContainers")
        for c in spec.get(key) or ()
        if isinstance(c, dict)
    ]
    pod_ctx = spec.get("securityContext") or {}
    problems: list[str] = []

    def ctx(c: dict[str, Any]) -> dict[str, Any]:
        value = c.get("securityContext")
        return value if isinstance(value, dict) else {}

    if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
        used = [k for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k)]
        problems.append(f"host namespaces ({', '.join(f'{k}=true' for k in used)})")
    privileged = [c["name"] for c in containers if ctx(c).get("privileged")]
    if privileged:
        problems.append(f"privileged ({_names(privileged)} must not set securityContext.privileged=true)")
    escalating = [c["name"] for c in containers if ctx(c).get("allowPrivilegeEscalation") is not False]
    if escalating:
        problems.append(
            f"allowPrivilegeEscalation != false ({_names(escalating)} must set"
            " securityContext.allowPrivilegeEscalation=false)"
        )
    not_dropped = [
        c["name"]
        for c in containers
        if "ALL" not in ((ctx(c).get("capabilities") or {}).get("drop") or ())
        or set((ctx(c).get("capabilities") or {}).get("add") or ()) - {"NET_BIND_SERVICE"}
    ]
    if not_dropped:
        problems.append(
            f'unrestricted capabilities ({_names(not_dropped)} must set securityContext.capabilities.drop=["ALL"])'
        )
    volumes = [v for v in spec.get("volumes") or () if isinstance(v, dict)]
    bad_volumes = [v.get("name", "") for v in volumes if not (set(v) - {"name"}) <= ALLOWED_VOLUMES]
    if bad_volumes:
        listed = ", ".join(f'"{v}"' for v in bad_volumes)
        problems.append(f"restricted volume types (volume{'s' * (len(bad_volumes) > 1)} {listed})")
    pod_non_root = pod_ctx.get("runAsNonRoot") is True
    root = [
        c["name"]
        for c in containers
        if ctx(c).get("runAsNonRoot") is False or (not pod_non_root and ctx(c).get("runAsNonRoot") is not True)
    ]
    if root:
        problems.append(f"runAsNonRoot != true (pod or {_names(root)} must set securityContext.runAsNonRoot=true)")
    uid_zero = [c["name"] for c in containers if ctx(c).get("runAsUser") == 0]
    if uid_zero or pod_ctx.get("runAsUser") == 0:
        problems.append(f"runAsUser=0 (pod or {_names(uid_zero or ['*'])} must not set runAsUser=0)")
    pod_seccomp = (pod_ctx.get("seccompProfile") or {}).get("type") in ("RuntimeDefault", "Localhost")
    no_seccomp = [
        c["name"]
        for c in containers
        if (ctx(c).get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost")
        and not (pod_seccomp and "seccompProfile" not in ctx(c))
    ]
    if no_seccomp:
        problems.append(
            f"seccompProfile (pod or {_names(no_seccomp)} must set securityContext.seccompProfile.type to"
            ' "RuntimeDefault" or "Localhost")'
        )
    return problems
