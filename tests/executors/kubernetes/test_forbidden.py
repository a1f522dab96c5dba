"""403s as the API server words them, told apart: RBAC, ResourceQuota, PodSecurity, a terminating namespace."""

from __future__ import annotations

import pytest

from polynb.executors.kubernetes.forbidden import explain

HINTS = {"namespace": "ml", "security_hint": "use the restricted profile", "rbac_hint": "grant the Role"}


@pytest.mark.parametrize(
    ("message", "kind", "says"),
    [
        (
            'jobs.batch is forbidden: User "system:serviceaccount:ml:nb" cannot create resource "jobs" in API group'
            ' "batch" in the namespace "ml"',
            "rbac",
            "RBAC denies verb 'create' on resource 'jobs.batch' in namespace 'ml' (grant the Role)",
        ),
        (
            'namespaces "ml" is forbidden: User "u" cannot get resource "namespaces" in API group "" at the'
            " cluster scope",
            "rbac",
            "RBAC denies verb 'get' on resource 'namespaces' at the cluster scope",
        ),
        (
            'pods "tb-1" is forbidden: exceeded quota: team, requested: pods=1, used: pods=4, limited: pods=4',
            "quota",
            "ResourceQuota 'team' of namespace 'ml' is exhausted, requested: pods=1, used: pods=4, limited: pods=4",
        ),
        (
            'pods "tb-1" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false'
            ' (container "main" must set securityContext.allowPrivilegeEscalation=false)',
            "podsecurity",
            "refuses the pod at level restricted:latest: allowPrivilegeEscalation != false",
        ),
        (
            'jobs.batch "x" is forbidden: unable to create new content in namespace ml because it is being terminated',
            "terminating",
            "namespace 'ml' is being deleted",
        ),
    ],
)
def test_each_kind_of_403_is_named(message: str, kind: str, says: str) -> None:
    verdict = explain(message, **HINTS)
    assert verdict.kind == kind
    assert says in verdict.what
    if kind in ("quota", "podsecurity"):
        assert "not a permission problem" in verdict.what and "Role" not in verdict.what
