"""The emulator's etcd and registries: objects, a global resourceVersion, watch history with compaction,
create/update/patch/delete with defaulting, validation, preconditions and deletion propagation.

Every write bumps one global resourceVersion (as etcd's revision) and appends to the watch history; a
no-op write does not. History older than ``history_limit`` events (or everything, on ``compact()``) is
gone, and a watch from before it gets ``410 Expired``. Writes are also queued for the controllers
(kubelet, job controller, garbage collector), which never miss one (they are not watches).
"""

from __future__ import annotations

import builtins
import copy
import hashlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import network, validation
from .clock import Clock
from .errors import ApiError, already_exists, invalid, not_found
from .selectors import Requirement, fields_match, labels_match


@dataclass(frozen=True)
class Resource:
    plural: str
    group: str
    version: str
    kind: str
    namespaced: bool
    short: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


RESOURCES: dict[str, Resource] = {
    r.plural: r
    for r in (
        Resource("namespaces", "", "v1", "Namespace", False, ("ns",), ("status",)),
        Resource("nodes", "", "v1", "Node", False, ("no",), ("status",)),
        Resource("pods", "", "v1", "Pod", True, ("po",), ("status", "log", "portforward", "eviction")),
        Resource("services", "", "v1", "Service", True, ("svc",), ("status",)),
        Resource("configmaps", "", "v1", "ConfigMap", True, ("cm",)),
        Resource("secrets", "", "v1", "Secret", True),
        Resource("persistentvolumeclaims", "", "v1", "PersistentVolumeClaim", True, ("pvc",), ("status",)),
        Resource("events", "", "v1", "Event", True, ("ev",)),
        Resource("jobs", "batch", "v1", "Job", True, (), ("status",)),
    )
}
JOB_ORPHAN_WARNING = (
    '299 - "child pods are preserved by default when jobs are deleted; set propagationPolicy=Background to '
    'remove them or set propagationPolicy=Orphan to suppress this warning"'
)

Key = tuple[str, str | None, str]


@dataclass(frozen=True)
class Change:
    rv: int
    plural: str
    type: str  # ADDED, MODIFIED, DELETED
    obj: dict[str, Any]
    prev: dict[str, Any] | None


class Store:
    def __init__(self, clock: Clock, *, history_limit: int = 100_000, namespaces: tuple[str, ...] = ("default",)):
        self.clock = clock
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.rv = 1000
        self.objects: dict[Key, dict[str, Any]] = {}
        self.history: list[Change] = []
        self.history_limit = history_limit
        self.compacted_rv = self.rv
        # Changes for the controllers, functions to run on their thread (``call``), None to stop them.
        self.feed: queue.Queue[Change | Callable[[], None] | None] = queue.Queue()
        self.logs: dict[tuple[str, str, str], list[tuple[str, str]]] = {}
        self._uids = 0
        self.admit: Callable[[dict[Key, dict[str, Any]], str, str | None, dict[str, Any]], None] | None = None
        """Validating admission (``admission.Admission.admit``), run on creates after validation."""
        for ns in ("kube-system", *namespaces):
            self.create("namespaces", None, {"metadata": {"name": ns}})

    # -- low level ------------------------------------------------------------------------------------

    def _uid(self, seed: str) -> str:
        self._uids += 1
        h = hashlib.sha1(f"{seed}/{self._uids}".encode()).hexdigest()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"

    def _next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def _record(self, plural: str, kind: str, obj: dict[str, Any], prev: dict[str, Any] | None) -> None:
        change = Change(
            int(obj["metadata"]["resourceVersion"]),
            plural,
            kind,
            copy.deepcopy(obj),
            copy.deepcopy(prev) if prev is not None else None,
        )
        self.history.append(change)
        if len(self.history) > self.history_limit:
            drop = len(self.history) - self.history_limit
            self.compacted_rv = self.history[drop - 1].rv
            del self.history[:drop]
        self.feed.put(change)
        self.cond.notify_all()

    def compact(self) -> int:
        """Forget the watch history, as an etcd compaction: watches from an older resourceVersion get 410."""
        with self.lock:
            self.compacted_rv = self.rv
            self.history.clear()
            self.cond.notify_all()
            return self.compacted_rv

    @staticmethod
    def resource(plural: str) -> Resource:
        try:
            return RESOURCES[plural]
        except KeyError:
            raise ApiError(404, "NotFound", "the server could not find the requested resource") from None

    def _key(self, plural: str, ns: str | None, name: str) -> Key:
        return (plural, ns if self.resource(plural).namespaced else None, name)

    # -- reads ----------------------------------------------------------------------------------------

    def get(self, plural: str, ns: str | None, name: str) -> dict[str, Any]:
        with self.lock:
            obj = self.objects.get(self._key(plural, ns, name))
            if obj is None:
                raise not_found(plural, self.resource(plural).group, name)
            return copy.deepcopy(obj)

    def find(self, plural: str, ns: str | None, name: str) -> dict[str, Any] | None:
        with self.lock:
            obj = self.objects.get(self._key(plural, ns, name))
            return copy.deepcopy(obj) if obj is not None else None

    def list(
        self,
        plural: str,
        ns: str | None,
        labels: list[Requirement] | None = None,
        fields: list[Requirement] | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        labels, fields = labels or [], fields or []
        with self.lock:
            items = [
                copy.deepcopy(o)
                for (p, n, _), o in sorted(self.objects.items(), key=lambda kv: (kv[0][0], kv[0][1] or "", kv[0][2]))
                if p == plural
                and (ns is None or n == ns)
                and labels_match(o["metadata"].get("labels"), labels)
                and fields_match(o, fields)
            ]
            return items, str(self.rv)

    # -- writes ---------------------------------------------------------------------------------------

    def create(self, plural: str, ns: str | None, body: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        res = self.resource(plural)
        with self.lock:
            obj = copy.deepcopy(body)
            if obj.get("kind") not in (None, res.kind) or obj.get("apiVersion") not in (None, res.api_version):
                raise ApiError(
                    400,
                    "BadRequest",
                    f"the API version in the data ({obj.get('apiVersion')}) does not "
                    f"match the expected API version ({res.api_version})",
                )
            obj["kind"], obj["apiVersion"] = res.kind, res.api_version
            meta = obj.setdefault("metadata", {})
            if res.namespaced:
                if meta.get("namespace") not in (None, "", ns):
                    raise ApiError(
                        400,
                        "BadRequest",
                        "the namespace of the provided object does not match the namespace sent on the request",
                    )
                meta["namespace"] = ns
                namespace = self.objects.get(("namespaces", None, ns or ""))
                if namespace is None:
                    raise ApiError(404, "NotFound", f'namespaces "{ns}" not found', {"name": ns, "kind": "namespaces"})
                if namespace["metadata"].get("deletionTimestamp"):
                    raise ApiError(
                        403,
                        "Forbidden",
                        f'{plural} "{meta.get("name") or ""}" is forbidden: unable to '
                        f"create new content in namespace {ns} because it is being terminated",
                    )
            if not meta.get("name"):
                if not meta.get("generateName"):
                    raise invalid(
                        res.kind,
                        "",
                        [
                            {
                                "field": "metadata.name",
                                "reason": "FieldValueRequired",
                                "message": "Required value: name or generateName is required",
                            }
                        ],
                    )
                meta["name"] = meta["generateName"] + self._uid(meta["generateName"]).replace("-", "")[:5]
            for f in (
                "uid",
                "resourceVersion",
                "creationTimestamp",
                "deletionTimestamp",
                "generation",
                "selfLink",
                "deletionGracePeriodSeconds",
            ):
                meta.pop(f, None)
            meta["uid"] = self._uid(f"{plural}/{ns}/{meta['name']}")
            meta["creationTimestamp"] = self.clock.iso()
            if plural in ("jobs", "services", "pods"):
                meta["generation"] = 1
            obj.pop("status", None)  # never taken from a create
            validation.default(
                plural,
                obj,
                uid=meta["uid"],
                cluster_ip=network.cluster_ip(),  # network: loopback addresses
            )
            if plural != "events":
                validation.validate(plural, res.kind, obj)
            if self.admit is not None:
                self.admit(self.objects, plural, ns, obj)
            key = self._key(plural, ns, meta["name"])
            if key in self.objects:
                raise already_exists(plural, res.group, meta["name"])
            if dry_run:
                return obj
            meta["resourceVersion"] = self._next_rv()
            self.objects[key] = obj
            self._record(plural, "ADDED", obj, None)
            return copy.deepcopy(obj)

    def update(
        self,
        plural: str,
        ns: str | None,
        name: str,
        new: dict[str, Any],
        *,
        subresource: str | None = None,
        internal: bool = False,
    ) -> dict[str, Any]:
        """PUT semantics (``internal``: a controller's write, which may set status and skips validation)."""
        res = self.resource(plural)
        with self.lock:
            key = self._key(plural, ns, name)
            old = self.objects.get(key)
            if old is None:
                raise not_found(plural, res.group, name)
            meta = new.get("metadata") or {}
            if meta.get("name") not in (None, name):
                raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL")
            want = meta.get("resourceVersion")
            if want and want != old["metadata"]["resourceVersion"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f"Operation cannot be fulfilled on {plural}"
                    f'{"." + res.group if res.group else ""} "{name}": the object has been modified; '
                    "please apply your changes to the latest version and try again",
                    {"name": name, "kind": plural},
                )
            obj = copy.deepcopy(old)
            if subresource == "status":
                obj["status"] = copy.deepcopy(new.get("status") or {})
            else:
                for f in ("labels", "annotations", "ownerReferences", "finalizers"):
                    if f in meta:
                        obj["metadata"][f] = copy.deepcopy(meta[f])
                    elif not internal:
                        obj["metadata"].pop(f, None)
                if internal and "deletionTimestamp" in meta:
                    obj["metadata"]["deletionTimestamp"] = meta["deletionTimestamp"]
                for f in ("spec", "data", "binaryData"):
                    if f in new:
                        obj[f] = copy.deepcopy(new[f])
                if plural == "pods" and "spec" in new:
                    validation.default_pod_spec(obj["spec"])
                if plural == "jobs" and "spec" in new:
                    for k in (
                        "selector",
                        "completionMode",
                        "podReplacementPolicy",
                        "backoffLimit",
                        "completions",
                        "parallelism",
                        "suspend",
                    ):
                        if k not in obj["spec"] and k in old["spec"]:
                            obj["spec"][k] = old["spec"][k]
                if internal and "status" in new:
                    obj["status"] = copy.deepcopy(new["status"])
                if not internal:
                    validation.validate(plural, res.kind, obj, old)
                if obj.get("spec") != old.get("spec") and "generation" in obj["metadata"]:
                    obj["metadata"]["generation"] += 1
            if obj == old:
                return copy.deepcopy(old)  # a no-op write does not bump the resourceVersion
            obj["metadata"]["resourceVersion"] = self._next_rv()
            if obj["metadata"].get("deletionTimestamp") and not obj["metadata"].get("finalizers") and plural != "pods":
                return self._remove(plural, key, obj)
            self.objects[key] = obj
            self._record(plural, "MODIFIED", obj, old)
            return copy.deepcopy(obj)

    def patch(
        self, plural: str, ns: str | None, name: str, content_type: str, body: Any, *, subresource: str | None = None
    ) -> dict[str, Any]:
        from .patches import apply_patch

        with self.lock:
            current = self.get(plural, ns, name)
            new = apply_patch(current, content_type, body)
            if not (isinstance(body, dict) and (body.get("metadata") or {}).get("resourceVersion")):
                new.setdefault("metadata", {}).pop("resourceVersion", None)  # unconditional unless it names one
            return self.update(plural, ns, name, new, subresource=subresource)

    def delete(self, plural: str, ns: str | None, name: str, opts: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Delete; returns (the object, whether it is gone already). Pods with a grace period terminate."""
        res = self.resource(plural)
        with self.lock:
            key = self._key(plural, ns, name)
            obj = self.objects.get(key)
            if obj is None:
                raise not_found(plural, res.group, name)
            pre = opts.get("preconditions") or {}
            for field, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
                if pre.get(field) and pre[field] != obj["metadata"][field]:
                    raise ApiError(
                        409,
                        "Conflict",
                        f'Operation cannot be fulfilled on {plural} "{name}": '
                        f"Precondition failed: {label} in precondition: {pre[field]}, {label} in "
                        f"object meta: {obj['metadata'][field]}",
                    )
            if opts.get("dryRun"):
                return copy.deepcopy(obj), False
            policy = self.policy(plural, opts)
            if obj["metadata"].get("deletionTimestamp"):
                return copy.deepcopy(obj), False  # already terminating
            if plural == "pods":
                grace = opts.get("gracePeriodSeconds")
                if grace is None:
                    grace = obj["spec"].get("terminationGracePeriodSeconds", 30)
                phase = (obj.get("status") or {}).get("phase")
                if grace and obj["spec"].get("nodeName") and phase not in ("Succeeded", "Failed"):
                    new = copy.deepcopy(obj)
                    new["metadata"]["deletionTimestamp"] = self.clock.iso()
                    new["metadata"]["deletionGracePeriodSeconds"] = int(grace)
                    new["metadata"]["resourceVersion"] = self._next_rv()
                    self.objects[key] = new
                    self._record(plural, "MODIFIED", new, obj)  # the kubelet kills it, then removes it
                    return copy.deepcopy(new), False
            if policy == "Orphan":
                self._orphan(obj["metadata"]["uid"])
            removed = self._remove(plural, key, obj)
            return removed, True

    @staticmethod
    def policy(plural: str, opts: dict[str, Any]) -> str:
        policy = opts.get("propagationPolicy")
        if policy is None and opts.get("orphanDependents") is not None:
            policy = "Orphan" if opts["orphanDependents"] else "Background"
        if policy is None:
            policy = "Orphan" if plural == "jobs" else "Background"  # batch/v1 Job's REST default
        if policy not in ("Orphan", "Background", "Foreground"):
            raise ApiError(
                422,
                "Invalid",
                f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: '
                f'Unsupported value: "{policy}": supported values: "Foreground", '
                '"Background", "Orphan", "nil"',
            )
        return str(policy)

    def evict(self, ns: str, name: str, body: Any) -> None:
        """The pods/eviction subresource (what ``kubectl drain`` posts), as the API server's eviction handler
        does it with no PodDisruptionBudget in the namespace (the emulator serves none): a pod that is not
        terminating yet gets the ``DisruptionTarget`` condition (reason ``EvictionByEvictionAPI``), then is
        deleted with the Eviction's ``deleteOptions``, gracefully as any deletion. Pod disruption conditions:
        https://kubernetes.io/docs/concepts/workloads/pods/disruptions/#pod-disruption-conditions"""
        # A body without kind and apiVersion is read as the endpoint's own (policy/v1 Eviction), as the API
        # server's decoder does: the official Python client sends none unless they are set.
        if not isinstance(body, dict) or body.get("kind", "Eviction") != "Eviction":
            raise ApiError(400, "BadRequest", "the body of a pods/eviction request must be an Eviction")
        if body.get("apiVersion", "policy/v1") not in ("policy/v1", "policy/v1beta1"):
            version = body.get("apiVersion")
            raise ApiError(400, "BadRequest", f'no kind "Eviction" is registered for version "{version}"')
        if (body.get("metadata") or {}).get("name") != name:
            raise ApiError(400, "BadRequest", "name in URL does not match name in Eviction object")
        opts = body.get("deleteOptions") or {}
        with self.lock:
            key = self._key("pods", ns, name)
            old = self.objects.get(key)
            if old is None:
                raise not_found("pods", "", name)
            if old["metadata"].get("deletionTimestamp"):
                return  # already going: nothing more to do
            if (old.get("status") or {}).get("phase") not in ("Succeeded", "Failed") and not opts.get("dryRun"):
                new = copy.deepcopy(old)
                conditions = new.setdefault("status", {}).setdefault("conditions", [])
                conditions[:] = [c for c in conditions if c.get("type") != "DisruptionTarget"]
                conditions.append(
                    {
                        "type": "DisruptionTarget",
                        "status": "True",
                        "lastProbeTime": None,
                        "lastTransitionTime": self.clock.iso(),
                        "reason": "EvictionByEvictionAPI",
                        "message": "Eviction API: evicting",
                    }
                )
                self.write(key, new, old)
            self.delete("pods", ns, name, opts)

    def finalize_pod(self, ns: str, name: str) -> None:
        """The kubelet is done with a terminating pod: remove it."""
        with self.lock:
            key = ("pods", ns, name)
            obj = self.objects.get(key)
            if obj is not None:
                self._remove("pods", key, obj)

    def _remove(self, plural: str, key: Key, obj: dict[str, Any]) -> dict[str, Any]:
        gone = copy.deepcopy(obj)
        gone["metadata"]["resourceVersion"] = self._next_rv()
        del self.objects[key]
        self._record(plural, "DELETED", gone, obj)
        return gone

    def dependents(self, uid: str) -> builtins.list[Key]:  # ``list`` is a method of this class
        return [
            k
            for k, o in self.objects.items()
            if any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or ())
        ]

    def _orphan(self, uid: str) -> None:
        for key in self.dependents(uid):
            old = self.objects[key]
            new = copy.deepcopy(old)
            refs = [r for r in new["metadata"]["ownerReferences"] if r.get("uid") != uid]
            new["metadata"]["ownerReferences"] = refs
            if not refs:
                new["metadata"].pop("ownerReferences")
            self.write(key, new, old)

    def write(self, key: Key, new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
        """A controller's direct write of a whole object (no validation)."""
        with self.lock:
            if new == old:
                return copy.deepcopy(old)
            new["metadata"]["resourceVersion"] = self._next_rv()
            self.objects[key] = new
            self._record(key[0], "MODIFIED", new, old)
            return copy.deepcopy(new)

    # -- logs -----------------------------------------------------------------------------------------

    def append_log(self, ns: str, pod: str, container: str, line: str) -> None:
        with self.lock:
            self.logs.setdefault((ns, pod, container), []).append((self.clock.iso_nano(), line))
            self.cond.notify_all()
