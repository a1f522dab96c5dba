"""Executors by name: the one place they are built (the CLI, the notebook and ``polynb stop`` ask here).

``local`` runs ops as processes on this machine; ``kubernetes`` runs them on the cluster of ``KUBECONFIG``,
configured by the configuration file, ``POLYNB_K8S_*`` and the caller's settings
(:mod:`.kubernetes.sources`). ``POLYNB_EXECUTOR`` names the default one.
Each factory imports its executor when called, so asking for ``local`` never imports the kubernetes client.
A factory that cannot build its executor here raises :class:`ExecutorSetupError` saying why.

Adding an executor: write a factory ``(BuildOptions) -> Executor`` and add it to :data:`FACTORIES`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from polynb.executors.base import Executor
from polynb.store.remote import StoreAccess

EXECUTOR_ENV: Final = "POLYNB_EXECUTOR"
DEFAULT: Final = "local"


class ExecutorSetupError(Exception):
    """An executor cannot be built here (unknown name, no cluster configuration, a bad setting, ...).

    ``str()`` names the executor (``executor kubernetes: ...``); ``reason`` is the cause alone.
    """

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message


@dataclass(frozen=True, slots=True)
class BuildOptions:
    """What the caller knows about where executors run; a factory takes what applies to it."""

    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    """Where settings are read (``POLYNB_K8S_*``)."""
    base_dir: str | os.PathLike[str] | None = None
    """The folder relative working dirs start from when an op has no base-dir label (default: the
    current folder when the executor is built)."""
    stop_grace: float | None = None
    """Seconds a stopped local op gets before it is killed (default: the executor's)."""
    kubernetes: Mapping[str, Any] = field(default_factory=dict)
    """Kubernetes settings given by the caller (flags, magics, ``polynb.run``): they win over ``POLYNB_K8S_*``
    and the configuration file (:mod:`.kubernetes.sources`)."""
    kubernetes_origin: str = "explicit settings"
    """What gave ``kubernetes``, for messages (``command line``, ``%config PolynbMagics.kubernetes``, ...)."""
    artifacts_root_of: Callable[[str], Path] | None = None
    """A run's artifacts root by uuid, as recorded when it was created (``Store.artifacts_root_of``): where the
    local executor puts and finds its folder. None: ``$POLYNB_HOME/artifacts`` for every run."""
    artifacts_store_of: Callable[[str], StoreAccess | None] | None = None
    """A run's bucket artifacts store by uuid, as recorded when it was created (``Store.artifacts_store_of``):
    where the local executor syncs the run's folder. None: no run is synced."""
    log_archive: Any = None
    """Where runs' logs are archived when they end (a :class:`~polynb.log_archive.LogArchive`); None: the store
    the configuration file's ``artifactsStore`` names, read when the executor is built."""
    archive_logs: bool = True
    """False: no run's logs are copied to a store (executors built only to look at runs or stop them)."""


Factory = Callable[[BuildOptions], Executor]


def _log_archive(options: BuildOptions) -> Any:
    if not options.archive_logs:
        return None
    if options.log_archive is not None:
        return options.log_archive
    from polynb.log_archive import configured_archive

    return configured_archive(options.environ)


def _local(options: BuildOptions) -> Executor:
    from polynb.executors.local.executor import LocalExecutor

    executor = LocalExecutor(
        base_dir=options.base_dir,
        artifacts_root_of=options.artifacts_root_of,
        artifacts_store_of=options.artifacts_store_of,
        log_archive=_log_archive(options),
    )
    if options.stop_grace is not None:
        executor.stop_grace = options.stop_grace
    return executor


def _kubernetes_settings(options: BuildOptions) -> Any:
    """The resolved settings (:class:`~.kubernetes.sources.Resolved`) of ``options``."""
    from polynb.executors.kubernetes.settings import SettingsError
    from polynb.executors.kubernetes.sources import resolve
    from polynb.spec.errors import SpecErrors

    try:
        return resolve(
            environ=options.environ, overrides=options.kubernetes, overrides_origin=options.kubernetes_origin
        )
    except (SettingsError, SpecErrors) as exc:
        raise ExecutorSetupError(f"executor kubernetes: {exc}", reason=str(exc)) from exc


def _kubernetes(options: BuildOptions) -> Executor:
    resolved = _kubernetes_settings(options)
    from polynb.executors.kubernetes.config import K8sConfigError
    from polynb.executors.kubernetes.executor import KubernetesExecutor

    try:
        return KubernetesExecutor(resolved.settings, origins=resolved.origins, log_archive=_log_archive(options))
    except K8sConfigError as exc:
        raise ExecutorSetupError(f"executor kubernetes: {exc}", reason=str(exc)) from exc


FACTORIES: Final[Mapping[str, Factory]] = MappingProxyType({"local": _local, "kubernetes": _kubernetes})
KNOWN: Final = tuple(FACTORIES)
"""The executor names, in the order they are offered."""


def reconfigure(name: str, executor: Executor, options: BuildOptions) -> None:
    """Give an executor built earlier the settings ``options`` resolve to now (the magics' ``%config`` or
    ``polynb.run(kubernetes=...)`` changed them): only what shapes the next runs may change
    (:meth:`~.kubernetes.executor.KubernetesExecutor.reconfigure`); :class:`ExecutorSetupError` otherwise."""
    apply = getattr(executor, "reconfigure", None)
    if name != "kubernetes" or apply is None:
        return
    resolved = _kubernetes_settings(options)
    try:
        apply(resolved.settings, resolved.origins)
    except ValueError as exc:
        raise ExecutorSetupError(f"executor kubernetes: {exc}", reason=str(exc)) from exc


def default_name(environ: Mapping[str, str] | None = None) -> str:
    """``POLYNB_EXECUTOR`` if set, else ``local`` (not checked: :func:`build` says when it is unknown)."""
    return (os.environ if environ is None else environ).get(EXECUTOR_ENV) or DEFAULT


def build(name: str, options: BuildOptions | None = None) -> Executor:
    """A new executor called ``name``; :class:`ExecutorSetupError` when it cannot be built."""
    factory = FACTORIES.get(name)
    if factory is None:
        raise ExecutorSetupError(f"unknown executor {name!r}; available: {', '.join(KNOWN)}")
    return factory(options or BuildOptions())


class LazyExecutors(Mapping[str, Executor]):
    """Every known executor by name, each built on first lookup; one that cannot be built reads as missing.

    For commands that look at runs or stop them, whatever executor ran them: nothing is built until a run
    needs it (the Kubernetes executor reads a kubeconfig and then talks to the cluster).
    """

    def __init__(self, options: BuildOptions | None = None) -> None:
        self.options = options or BuildOptions()
        self.made: dict[str, Executor] = {}

    def __getitem__(self, name: str) -> Executor:
        if name not in self.made:
            if name not in FACTORIES:
                raise KeyError(name)
            try:
                self.made[name] = build(name, self.options)
            except ExecutorSetupError as exc:
                raise KeyError(name) from exc
        return self.made[name]

    def __iter__(self) -> Iterator[str]:
        return iter(KNOWN)

    def __len__(self) -> int:
        return len(KNOWN)

    def shutdown(self) -> None:
        """Stop watching, never stopping runs: whoever asked only looked at runs or stopped them explicitly."""
        for executor in self.made.values():
            with contextlib.suppress(Exception):
                executor.shutdown(stop_running=False)
