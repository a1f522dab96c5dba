"""Which executors the commands use: ``local`` (default) or ``kubernetes`` (configured by ``POLYNB_K8S_*``).

``--executor`` wins over ``POLYNB_EXECUTOR``, which wins over ``local``. Executors are made only when a
command needs them (the Kubernetes one reads a kubeconfig and talks to the cluster on first use).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping

from polynb.executors.base import Executor

EXECUTOR_ENV = "POLYNB_EXECUTOR"
KNOWN = ("local", "kubernetes")


class ExecutorSetupError(Exception):
    """An executor cannot be made here (no cluster configuration, ...); the message says why."""


def default_executor() -> str:
    return os.environ.get(EXECUTOR_ENV) or "local"


def make_executor(name: str) -> Executor:
    """A new executor called ``name``; ``ExecutorSetupError`` when it cannot be made."""
    if name == "local":
        from polynb.executors.local.executor import LocalExecutor  # imported on use: `ls` never needs it

        return LocalExecutor()
    if name == "kubernetes":
        from polynb.executors.kubernetes.config import K8sConfigError
        from polynb.executors.kubernetes.executor import KubernetesExecutor

        try:
            return KubernetesExecutor.from_env()
        except K8sConfigError as exc:
            raise ExecutorSetupError(f"executor kubernetes: {exc}") from exc
    raise ExecutorSetupError(f"unknown executor {name!r}; available: {', '.join(KNOWN)}")


class LazyExecutors(Mapping[str, Executor]):
    """The known executors by name, each made on first lookup (a failure reads as a missing one)."""

    def __init__(self) -> None:
        self.made: dict[str, Executor] = {}

    def __getitem__(self, name: str) -> Executor:
        if name not in self.made:
            if name not in KNOWN:
                raise KeyError(name)
            try:
                self.made[name] = make_executor(name)
            except ExecutorSetupError as exc:
                raise KeyError(name) from exc
        return self.made[name]

    def __iter__(self) -> Iterator[str]:
        return iter(KNOWN)

    def __len__(self) -> int:
        return len(KNOWN)

    def shutdown(self) -> None:
        """Stop watching, never stopping runs: these commands only look at runs or stop them explicitly."""
        for executor in self.made.values():
            with contextlib.suppress(Exception):
                executor.shutdown(stop_running=False)
