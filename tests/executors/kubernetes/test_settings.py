"""The Kubernetes executor's settings: read from ``POLYNB_K8S_*``, checked when made, each bad one named."""

from __future__ import annotations

import dataclasses

import pytest

from polynb.executors.kubernetes.settings import ENV, KubernetesSettings, SettingsError


def test_every_variable_is_read() -> None:
    env = {
        "POLYNB_K8S_NAMESPACE": "ml-team",
        "POLYNB_K8S_CONTEXT": "kind-dev",
        "POLYNB_K8S_KERNEL_ID": "laptop-1",
        "POLYNB_K8S_IMAGE": "python:3.12",
        "POLYNB_K8S_TOOLS_IMAGE": "tools:1",
        "POLYNB_K8S_GIT_IMAGE": "git:2",
        "POLYNB_K8S_STORE_IMAGE": "registry.example/polynb:1.2",
        "POLYNB_K8S_ARTIFACTS_CLAIM": "shared-artifacts",
        "POLYNB_K8S_PORT_FORWARD": "no",
        "POLYNB_K8S_NATIVE_SIDECARS": "0",
        "POLYNB_K8S_SECURITY_PROFILE": "restricted",
        "POLYNB_K8S_KEEP_FINISHED": "yes",
        "POLYNB_K8S_SERVICE_PORT": "8888",
    }
    assert set(env) == set(ENV.values())
    assert KubernetesSettings.from_env(env) == KubernetesSettings(
        namespace="ml-team",
        context="kind-dev",
        kernel_id="laptop-1",
        default_image="python:3.12",
        tools_image="tools:1",
        git_image="git:2",
        store_image="registry.example/polynb:1.2",
        artifacts_claim="shared-artifacts",
        port_forward=False,
        native_sidecars=False,
        security_profile="restricted",
        keep_finished=True,
        service_port_base=8888,
    )


def test_empty_or_missing_variables_keep_the_defaults() -> None:
    assert KubernetesSettings.from_env({"POLYNB_K8S_NAMESPACE": "", "POLYNB_K8S_PORT_FORWARD": " "}) == (
        KubernetesSettings()
    )


@pytest.mark.parametrize(("text", "value"), [("1", True), ("TRUE", True), ("on", True), ("off", False), ("No", False)])
def test_switches_take_the_usual_spellings(text: str, value: bool) -> None:
    assert KubernetesSettings.from_env({"POLYNB_K8S_PORT_FORWARD": text}).port_forward is value


def test_bad_variables_are_named_all_at_once() -> None:
    with pytest.raises(SettingsError) as exc:
        KubernetesSettings.from_env({"POLYNB_K8S_PORT_FORWARD": "maybe", "POLYNB_K8S_NATIVE_SIDECARS": "2"})
    assert str(exc.value) == (
        "POLYNB_K8S_PORT_FORWARD: expected 1 or 0 (true/false, yes/no, on/off), not 'maybe'; "
        "POLYNB_K8S_NATIVE_SIDECARS: expected 1 or 0 (true/false, yes/no, on/off), not '2'"
    )
    with pytest.raises(SettingsError) as exc:
        KubernetesSettings.from_env({"POLYNB_K8S_NAMESPACE": "ML_Team", "POLYNB_K8S_IMAGE": "python 3"})
    assert [name for name, _ in exc.value.problems] == ["POLYNB_K8S_NAMESPACE", "POLYNB_K8S_IMAGE"]
    assert "'ML_Team' is not a namespace name (lower-case letters, digits and '-'" in str(exc.value)


def test_bad_settings_in_code_are_named_by_field() -> None:
    with pytest.raises(SettingsError) as exc:
        KubernetesSettings(
            namespace="x" * 64,
            kernel_id="",
            artifacts_claim="Shared",
            service_port_base=70000,
            watch_timeout=0,
            backoff=-1.0,
            sweep="yes",  # type: ignore[arg-type]
        )
    assert dict(exc.value.problems) == {
        "namespace": f"{'x' * 64!r} is not a namespace name (lower-case letters, digits and '-', starting and"
        " ending with a letter or digit, at most 63)",
        "kernel_id": "expected a non-empty string or None, not ''",
        "artifacts_claim": "'Shared' is not a PersistentVolumeClaim name (lower-case letters, digits and '-',"
        " starting and ending with a letter or digit; dots allowed)",
        "sweep": "expected True or False, not 'yes'",
        "service_port_base": "expected a port number, 1 to 65535, not 70000",
        "watch_timeout": "expected whole seconds, 1 or more, not 0",
        "backoff": "expected seconds, 0 or more, not -1.0",
    }


def test_a_lease_shorter_than_the_heartbeat_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"lease_seconds: 30 is shorter than heartbeat_interval \(60\)"):
        KubernetesSettings(lease_seconds=30)
    settings = KubernetesSettings(lease_seconds=60, heartbeat_interval=60)
    with pytest.raises(SettingsError, match="lease_seconds"):
        dataclasses.replace(settings, lease_seconds=10)  # a change is checked too


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        KubernetesSettings().namespace = "other"  # type: ignore[misc]
