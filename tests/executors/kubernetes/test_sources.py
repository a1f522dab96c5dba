"""Where each Kubernetes setting comes from: defaults < config file < ``POLYNB_K8S_*`` < the caller (flags,
magics, ``polynb.run``), and bad values reported under their origin."""

from __future__ import annotations

import pytest

from polynb.config_file import parse_config
from polynb.executors.kubernetes.settings import SettingsError
from polynb.executors.kubernetes.sources import resolve

FILE = parse_config(
    "kubernetes:\n  artifacts_claim: from-file\n  security_profile: restricted\n  namespace: team\n", "config.yaml"
)


def test_each_layer_overrides_the_one_below() -> None:
    resolved = resolve(
        environ={"POLYNB_K8S_ARTIFACTS_CLAIM": "from-env", "POLYNB_K8S_KEEP_FINISHED": "1"},
        overrides={"artifacts_claim": "from-flag", "security_profile": None},
        overrides_origin="command line",
        config=FILE,
    )
    s = resolved.settings
    assert (s.artifacts_claim, s.keep_finished, s.security_profile, s.namespace) == (
        "from-flag",
        True,
        "restricted",  # None from the caller is "not given"
        "team",
    )
    assert resolved.origins == {
        "artifacts_claim": "--k8s-artifacts-claim",
        "keep_finished": "POLYNB_K8S_KEEP_FINISHED",
        "security_profile": "config.yaml:3:21",
        "namespace": "config.yaml:4:14",
    }
    assert resolved.origin("image_pull_grace") == "default" and s.image_pull_grace == 300


def test_without_overrides_the_environment_wins_over_the_file() -> None:
    resolved = resolve(environ={"POLYNB_K8S_ARTIFACTS_CLAIM": "from-env"}, config=FILE)
    assert resolved.settings.artifacts_claim == "from-env"


def test_a_bad_value_is_named_by_where_it_came_from() -> None:
    bad = parse_config("kubernetes:\n  artifacts_claim: Not_A_Name\n", "config.yaml")
    with pytest.raises(SettingsError, match=r"^config.yaml:2:20: 'Not_A_Name' is not a PersistentVolumeClaim name"):
        resolve(environ={}, config=bad)
    with pytest.raises(SettingsError, match=r"^%config PolynbMagics.kubernetes: security_profile: expected one of"):
        resolve(
            environ={},
            overrides={"security_profile": "strict"},
            overrides_origin="%config PolynbMagics.kubernetes",
            config=FILE,
        )


def test_an_unknown_setting_from_the_caller_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"polynb\.run: artifact_claim: unknown setting"):
        resolve(environ={}, overrides={"artifact_claim": "x"}, overrides_origin="polynb.run", config=FILE)


def test_an_artifacts_store_naming_a_claim_is_the_artifacts_claim() -> None:
    text = (
        "artifactsStore: shared\n"
        "connections:\n  - {name: shared, kind: volume_claim, schema: {claimName: team-artifacts, mountPath: /a}}\n"
    )
    resolved = resolve(environ={}, config=parse_config(text, "config.yaml"))
    assert resolved.settings.artifacts_claim == "team-artifacts"
    assert resolved.origin("artifacts_claim") == "config.yaml:1:17"
    both = parse_config(text + "kubernetes: {artifacts_claim: own}\n", "config.yaml")
    assert resolve(environ={}, config=both).settings.artifacts_claim == "own"
