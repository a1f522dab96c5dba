"""Where each Kubernetes setting comes from, in one place.

Precedence, lowest first:

1. the defaults of :class:`~.settings.KubernetesSettings`;
2. the ``kubernetes:`` section of the configuration file (:mod:`polynb.config_file`);
3. the ``POLYNB_K8S_*`` variables (:data:`~.settings.ENV`);
4. what the caller passes: ``polynb run --k8s-...`` flags, ``%config PolynbMagics.kubernetes = {...}``,
   ``polynb.run(..., kubernetes={...})`` (one of them, whichever built the executor).

:func:`resolve` returns the settings and, for each setting that is not a default, where its value came from
(``config.yaml:3:20``, ``POLYNB_K8S_ARTIFACTS_CLAIM``, ``--k8s-artifacts-claim``), so messages can say which
knob to turn. A bad value is reported under that origin.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from polynb.buckets import BUCKET_KINDS
from polynb.config_file import ConfigFile, load_config
from polynb.executors.kubernetes.settings import ENV, BucketStore, KubernetesSettings, SettingsError

CLI_FLAGS: Final[Mapping[str, str]] = {
    "artifacts_claim": "--k8s-artifacts-claim",
    "security_profile": "--k8s-security-profile",
    "keep_finished": "--k8s-keep",
    "namespace": "--k8s-namespace",
}
"""The settings ``polynb run`` has flags for (the others: the config file or the variables)."""

FIELDS: Final = frozenset(f.name for f in dataclasses.fields(KubernetesSettings))


@dataclass(frozen=True)
class Resolved:
    settings: KubernetesSettings
    origins: Mapping[str, str] = field(default_factory=dict)
    """Setting name -> where its value came from; a setting absent here has its default."""

    def origin(self, name: str) -> str:
        return self.origins.get(name, "default")


def resolve(
    *,
    environ: Mapping[str, str],
    overrides: Mapping[str, Any] | None = None,
    overrides_origin: str = "explicit settings",
    config: ConfigFile | None = None,
    base: Mapping[str, Any] | None = None,
) -> Resolved:
    """The settings from every source (see the module docstring).

    ``overrides`` are keyed by setting name (``None`` values are ignored: "not given"); ``overrides_origin``
    names them in messages, unless a name has a flag in :data:`CLI_FLAGS` and the origin is ``"command line"``.
    ``config`` defaults to :func:`~polynb.config_file.load_config` of ``environ`` (``SpecErrors`` when bad).
    ``base`` are values below everything (tests). Raises :class:`SettingsError` naming each bad value's origin.
    """
    unknown = sorted(set(overrides or ()) - FIELDS)
    if unknown:
        raise SettingsError(
            [
                (f"{overrides_origin}: {name}", f"unknown setting; known: {', '.join(sorted(FIELDS))}")
                for name in unknown
            ]
        )
    config = load_config(environ) if config is None else config
    values: dict[str, Any] = dict(base or {})
    origins: dict[str, str] = {}
    store = next((c for c in config.connections if c["name"] == config.artifacts_store), None)
    if store is not None and store["kind"] == "volume_claim":
        # `artifactsStore` naming a claim is Polyaxon's way to say the artifacts claim; the section's own
        # `artifacts_claim`, below, wins when both are written.
        values["artifacts_claim"] = store["schema"]["claimName"]
        origins["artifacts_claim"] = config.where("artifactsStore")
    elif store is not None and store["kind"] in BUCKET_KINDS:
        # A bucket: every pod syncs its artifacts folder there through a sidecar (storesync.py).
        values["artifacts_store"] = BucketStore.of(store)
        origins["artifacts_store"] = config.where("artifactsStore")
        # One interval for both executors (validated by the config file: more than 0).
        values["store_sync_interval"] = config.artifacts_sync_interval
    for name, value in config.kubernetes.items():
        values[name] = value
        origins[name] = config.where("kubernetes", name)
    from_env = KubernetesSettings.from_env(environ)  # SettingsError names the variable
    for name, variable in ENV.items():
        if environ.get(variable, "").strip():
            values[name] = getattr(from_env, name)
            origins[name] = variable
    for name, value in (overrides or {}).items():
        if value is None:
            continue
        values[name] = value
        flag = CLI_FLAGS.get(name) if overrides_origin == "command line" else None
        origins[name] = flag or f"{overrides_origin}: {name}"
    try:
        settings = KubernetesSettings(**values)
    except SettingsError as exc:
        raise SettingsError([(origins.get(name, name), message) for name, message in exc.problems]) from None
    return Resolved(settings, origins)


def claim_hint() -> str:
    """How to set the artifacts claim, for a refusal message."""
    return (
        "set an artifacts claim (a ReadWriteMany PersistentVolumeClaim shared by the runs) with "
        "`polynb run --k8s-artifacts-claim NAME`, `artifacts_claim: NAME` in the `kubernetes:` section of "
        "$POLYNB_HOME/config.yaml, POLYNB_K8S_ARTIFACTS_CLAIM=NAME, `%config PolynbMagics.kubernetes = "
        "{'artifacts_claim': 'NAME'}` or `polynb.run(..., kubernetes={'artifacts_claim': 'NAME'})`"
    )
