"""What a ``403 Forbidden`` from the API server means: the same status code is given by the RBAC
authorizer, by admission (ResourceQuota, PodSecurity) and for a namespace being deleted, and each wants a
different fix. Pure: the Status message is parsed as the API server words it.

* RBAC (https://kubernetes.io/docs/reference/access-authn-authz/rbac/):
  ``jobs.batch is forbidden: User "u" cannot create resource "jobs" in API group "batch" in the namespace "ns"``;
* ResourceQuota (https://kubernetes.io/docs/concepts/policy/resource-quotas/):
  ``pods "p" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2``;
* PodSecurity (https://kubernetes.io/docs/concepts/security/pod-security-admission/):
  ``pods "p" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (...)``;
* a terminating namespace: ``... is forbidden: unable to create new content in namespace ns because it is
  being terminated``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

Kind = Literal["rbac", "quota", "podsecurity", "terminating", "other"]

_RBAC: Final = re.compile(
    r'cannot (?P<verb>[a-z]+) resource "(?P<resource>[^"]+)"(?: in API group "(?P<group>[^"]*)")?'
    r'(?: in the namespace "(?P<namespace>[^"]+)"| at the cluster scope)?'
)
_QUOTA: Final = re.compile(r"exceeded quota: (?P<quota>[^,]+)(?P<rest>.*)")
_PODSECURITY: Final = re.compile(r'violates PodSecurity "(?P<level>[^"]+)": (?P<what>.*)', re.DOTALL)


@dataclass(frozen=True, slots=True)
class Forbidden:
    kind: Kind
    what: str
    """A sentence saying what was denied and what to do about it."""


def explain(message: str, *, namespace: str, security_hint: str, rbac_hint: str) -> Forbidden:
    """Classify a 403's message and say what to do (``*_hint``: the caller's words for the fixes)."""
    if m := _QUOTA.search(message):
        return Forbidden(
            "quota",
            f"ResourceQuota {m['quota']!r} of namespace {namespace!r} is exhausted{m['rest']} (not a permission"
            " problem: wait for other runs to end, or ask for a larger quota)",
        )
    if m := _PODSECURITY.search(message):
        return Forbidden(
            "podsecurity",
            f"the PodSecurity admission of namespace {namespace!r} refuses the pod at level {m['level']}:"
            f" {m['what']} (not a permission problem: {security_hint})",
        )
    if "because it is being terminated" in message:
        return Forbidden("terminating", f"namespace {namespace!r} is being deleted: choose another one")
    if m := _RBAC.search(message):
        group = m["group"]
        resource = f"{m['resource']}.{group}" if group else m["resource"]
        scope = f"in namespace {m['namespace']!r}" if m["namespace"] else "at the cluster scope"
        return Forbidden(
            "rbac",
            f"RBAC denies verb {m['verb']!r} on resource {resource!r} {scope} ({rbac_hint})",
        )
    return Forbidden("other", f"forbidden: {message}")
