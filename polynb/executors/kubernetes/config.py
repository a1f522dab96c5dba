"""Where the cluster is: kubeconfig (explicit path, ``KUBECONFIG`` with ``:``-merged files, ``~/.kube/config``)
or the in-cluster service account, and the namespace of the chosen context.

Order: an explicit ``kubeconfig`` path; else ``KUBECONFIG``; else ``~/.kube/config`` if it exists; else the
in-cluster config when ``KUBERNETES_SERVICE_HOST`` is set. ``in_cluster=True`` forces the service account.
Unlike ``kubernetes.config.load_config`` nothing is printed (the notebook would show it); every failure is
a :class:`K8sConfigError` naming what was tried.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from kubernetes import client as k8s
from kubernetes import config as _config

k8s_config: Any = _config  # the config loaders are not annotated

SA_DIR: Final = "/var/run/secrets/kubernetes.io/serviceaccount"


class K8sConfigError(Exception):
    """No usable cluster configuration; the message says what was tried and how to fix it."""


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    configuration: Any
    """A ``kubernetes.client.Configuration``."""
    namespace: str
    context: str | None
    in_cluster: bool
    source: str
    """Where it came from (a kubeconfig path or ``in-cluster``), for messages."""


def load(
    *,
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
    namespace: str | None = None,
    in_cluster: bool | None = None,
    sa_dir: str = SA_DIR,
) -> ClusterConfig:
    """The configuration to use; ``namespace`` overrides the context's (or the service account's)."""
    path = str(kubeconfig) if kubeconfig else os.environ.get("KUBECONFIG") or ""
    default = Path("~/.kube/config").expanduser()
    if not path and default.exists():
        path = str(default)
    if in_cluster is None:
        in_cluster = not path and bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    if in_cluster:
        return _in_cluster(namespace, sa_dir)
    if not path:
        raise K8sConfigError(
            "no Kubernetes configuration: set KUBECONFIG, create ~/.kube/config (kind, k3d and minikube do),"
            " or run inside a cluster"
        )
    configuration = k8s.Configuration()
    try:
        k8s_config.load_kube_config(config_file=path, context=context, client_configuration=configuration)
        contexts, active = k8s_config.list_kube_config_contexts(config_file=path)
    except (k8s_config.ConfigException, OSError, ValueError, TypeError, KeyError) as exc:
        raise K8sConfigError(f"cannot use kubeconfig {path}: {exc}") from exc
    chosen = active
    if context is not None:
        chosen = next((c for c in contexts or () if c.get("name") == context), None)
        if chosen is None:
            raise K8sConfigError(f"kubeconfig {path} has no context {context!r}")
    ctx_ns = ((chosen or {}).get("context") or {}).get("namespace")
    return ClusterConfig(
        configuration=configuration,
        namespace=namespace or ctx_ns or "default",
        context=(chosen or {}).get("name"),
        in_cluster=False,
        source=path,
    )


def _in_cluster(namespace: str | None, sa_dir: str) -> ClusterConfig:
    configuration = k8s.Configuration()
    try:
        k8s_config.incluster_config.InClusterConfigLoader(
            token_filename=f"{sa_dir}/token", cert_filename=f"{sa_dir}/ca.crt"
        ).load_and_set(configuration)
    except (k8s_config.ConfigException, OSError) as exc:
        raise K8sConfigError(f"cannot use the in-cluster service account ({sa_dir}): {exc}") from exc
    if namespace is None:
        try:
            namespace = Path(sa_dir, "namespace").read_text().strip() or None
        except OSError:
            namespace = None
    return ClusterConfig(
        configuration=configuration,
        namespace=namespace or "default",
        context=None,
        in_cluster=True,
        source="in-cluster",
    )
