"""The distributed run kinds of Polyaxon 2.18, parsed and checked field by field.

``tfjob``, ``pytorchjob`` and ``mpijob`` (Kubeflow's training operator), ``daskcluster`` and ``raycluster``.
Each has replicas (``worker``, ``chief``, ``master``, ``launcher``, ``head``...), each replica a job's fields
(``container``, ``init``, ``sidecars``, ``environment``, ``volumes``, ``connections``) and a ``replicas`` count.
Polyaxon 1.x kinds that 2.18 no longer has (``xgbjob``, ``mxjob``, ``paddlejob``, and ``daskjob``/``rayjob`` of
early 2.x) are refused with the kind to use instead (``polynb.spec.load``).

polynb checks these runs and refuses to run them ("not supported yet"): it runs no operators.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import field_validator

from polynb.spec.base import Model, SharedModel, int_or_template
from polynb.spec.containers import Container, Environment, Init, check_volume


def _int_or_ref(value: Any, info: Any) -> Any:
    return None if value is None else int_or_template(value, f"`{info.field_name}`")


class Replica(SharedModel):
    """One group of identical pods of a distributed run."""

    replicas: int | str | None = None
    environment: Environment | None = None
    connections: list[str] | None = None
    volumes: list[dict[str, Any]] | None = None
    init: list[Init] | None = None
    sidecars: list[Container] | None = None
    container: Container | None = None

    _replicas = field_validator("replicas", mode="before")(_int_or_ref)
    _volumes = field_validator("volumes")(check_volume)


class SchedulingPolicy(SharedModel):
    min_available: int | str | None = None
    queue: str | None = None
    min_resources: int | str | None = None
    priority_class: str | None = None
    schedule_timeout_seconds: int | str | None = None

    _ints = field_validator("min_available", "min_resources", "schedule_timeout_seconds", mode="before")(_int_or_ref)


CleanPodPolicy = Literal["All", "Running", "None"]


class _Distributed(Model):
    """The kinds' shared base: their fields are all in the replicas (Polyaxon's ``BaseRun``)."""


class TFJob(_Distributed):
    kind: Literal["tfjob"]
    clean_pod_policy: CleanPodPolicy | None = None
    scheduling_policy: SchedulingPolicy | None = None
    enable_dynamic_worker: bool | None = None
    success_policy: str | None = None
    chief: Replica | None = None
    ps: Replica | None = None
    worker: Replica | None = None
    evaluator: Replica | None = None


class PytorchElasticPolicy(Model):
    min_replicas: int | str | None = None
    max_replicas: int | str | None = None
    rdvz_backend: str | None = None
    rdvz_port: int | str | None = None
    rdvz_host: str | None = None
    rdvz_id: str | None = None
    rdvz_conf: list[dict[str, Any]] | None = None
    standalone: bool | str | None = None
    n_proc_per_node: int | str | None = None
    max_restarts: int | str | None = None

    _ints = field_validator("min_replicas", "max_replicas", "rdvz_port", "n_proc_per_node", "max_restarts",
                            mode="before")(_int_or_ref)  # fmt: skip


class PytorchJob(_Distributed):
    kind: Literal["pytorchjob"]
    clean_pod_policy: CleanPodPolicy | None = None
    scheduling_policy: SchedulingPolicy | None = None
    elastic_policy: PytorchElasticPolicy | None = None
    n_proc_per_node: int | str | None = None
    master: Replica | None = None
    worker: Replica | None = None

    _n_proc = field_validator("n_proc_per_node", mode="before")(_int_or_ref)


class MPIJob(_Distributed):
    kind: Literal["mpijob"]
    clean_pod_policy: CleanPodPolicy | None = None
    scheduling_policy: SchedulingPolicy | None = None
    slots_per_worker: int | str | None = None
    launcher: Replica | None = None
    worker: Replica | None = None

    _slots = field_validator("slots_per_worker", mode="before")(_int_or_ref)


class DaskCluster(_Distributed):
    kind: Literal["daskcluster"]
    worker: Replica | None = None
    scheduler: Replica | None = None
    min_replicas: int | str | None = None
    max_replicas: int | str | None = None

    _ints = field_validator("min_replicas", "max_replicas", mode="before")(_int_or_ref)


class RayReplica(Replica):
    min_replicas: int | str | None = None
    max_replicas: int | str | None = None
    ray_start_params: dict[str, str | int | float | bool] | None = None

    _bounds = field_validator("min_replicas", "max_replicas", mode="before")(_int_or_ref)


class RayAutoscalerOptions(Model):
    upscaling_mode: str | None = None
    image_pull_policy: str | None = None
    resources: dict[str, Any] | None = None


class RayCluster(_Distributed):
    kind: Literal["raycluster"]
    entrypoint: str | None = None
    runtime_env: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    ray_version: str | None = None
    head: RayReplica | None = None
    workers: dict[str, RayReplica] | None = None
    enable_in_tree_autoscaling: bool | None = None
    autoscaler_options: RayAutoscalerOptions | None = None


DISTRIBUTED_KINDS = ("tfjob", "pytorchjob", "mpijob", "daskcluster", "raycluster")
DistributedRun = TFJob | PytorchJob | MPIJob | DaskCluster | RayCluster


def replicas(run: DistributedRun) -> list[tuple[tuple[str, ...], Replica]]:
    """Every replica of a run with its path under ``run`` (``("worker",)``, ``("workers", "gpu")``)."""
    out: list[tuple[tuple[str, ...], Replica]] = []
    for name in ("chief", "ps", "worker", "evaluator", "master", "launcher", "scheduler", "head"):
        replica = getattr(run, name, None)
        if isinstance(replica, Replica):
            out.append(((name,), replica))
    if isinstance(run, RayCluster):
        out.extend((("workers", key), replica) for key, replica in (run.workers or {}).items())
    return out
