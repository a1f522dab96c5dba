"""The Kubernetes executor on the official client: manifests (``manifests``, ``init``, ``names``), one
list+watch per namespace (``watch``), statuses from pods and Jobs (``status``), logs, port-forwards, the
kernel lease (``kernel``), cluster configuration (``config``) and the executor's settings (``settings``);
``executor`` ties them together.

Import ``polynb.executors.kubernetes.executor`` for :class:`KubernetesExecutor` (this ``__init__`` stays
empty, so the local executor never pays for the kubernetes client).
"""
