"""The kubelet's ``$(VAR)`` expansion and env resolution, without running anything."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from support.expansion_cases import CASES, ENV, ENV_ENTRIES

from k8s_emulator import podenv
from k8s_emulator.images import CATALOGUE


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_expansion_follows_kubernetes(text: str, expected: str) -> None:
    assert podenv.expand(text, ENV) == expected


@pytest.mark.parametrize(("entries", "expected"), ENV_ENTRIES)
def test_env_entries_see_the_ones_declared_before_them(
    entries: list[tuple[str, str]], expected: dict[str, str]
) -> None:
    container = {"env": [{"name": k, "value": v} for k, v in entries]}
    env = podenv.environment(pod(), container, CATALOGUE["busybox:1.36"], lambda p, n: None)
    assert {k: env[k] for k in expected} == expected


def pod(**meta: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u-1", **meta},
        "spec": {"nodeName": "emu-node-2"},
        "status": {"podIP": "127.1.0.9"},
    }


def test_env_from_then_env_with_later_values_winning() -> None:
    objects = {("configmaps", "cm"): {"data": {"A": "from-cm", "B": "b", "bad key": "x"}}}
    container = {
        "envFrom": [{"configMapRef": {"name": "cm"}}],
        "env": [
            {"name": "A", "value": "own"},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "TEAM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['team']"}}},
        ],
    }
    env = podenv.environment(
        pod(labels={"team": "ml"}), container, CATALOGUE["busybox:1.36"], lambda p, n: objects.get((p, n))
    )
    assert (env["A"], env["B"], env["IP"], env["TEAM"], env["HOSTNAME"]) == ("own", "b", "127.1.0.9", "ml", "p")
    assert "bad key" not in env


def test_a_missing_required_config_map_is_the_kubelets_error() -> None:
    container = {"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k"}}}]}
    with pytest.raises(podenv.ConfigError, match='configmap "gone" not found'):
        podenv.environment(pod(), container, CATALOGUE["busybox:1.36"], lambda p, n: None)


def test_command_replaces_the_entrypoint_and_args_the_cmd() -> None:
    git = CATALOGUE["alpine/git:2.45.2"]
    assert podenv.argv({}, git, {}) == ["git", "--help"]
    assert podenv.argv({"args": ["clone", "$(URL)"]}, git, {"URL": "u"}) == ["git", "clone", "u"]
    assert podenv.argv({"command": ["sh"]}, git, {}) == ["sh"]
    assert podenv.argv({"args": []}, git, {}) == ["git", "--help"]  # an empty list is no list (omitempty)


def test_service_variables_as_the_kubelet_writes_them() -> None:
    service = {
        "metadata": {"name": "tb-svc"},
        "spec": {"clusterIP": "10.96.3.4", "ports": [{"name": "http", "port": 6006, "protocol": "TCP"}]},
    }
    env = podenv.environment(pod(), {}, CATALOGUE["busybox:1.36"], lambda p, n: None, [service])
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1" and env["KUBERNETES_SERVICE_PORT"] == "443"
    assert env["KUBERNETES_PORT_443_TCP"] == "tcp://10.96.0.1:443"
    assert (env["TB_SVC_SERVICE_HOST"], env["TB_SVC_SERVICE_PORT"], env["TB_SVC_SERVICE_PORT_HTTP"]) == (
        "10.96.3.4",
        "6006",
        "6006",
    )
    assert env["TB_SVC_PORT_6006_TCP_ADDR"] == "10.96.3.4"
    no_links = {**pod(), "spec": {"enableServiceLinks": False}}
    assert "TB_SVC_SERVICE_HOST" not in podenv.environment(
        no_links, {}, CATALOGUE["busybox:1.36"], lambda p, n: None, [service]
    )


def test_only_the_kubelets_variables_are_references() -> None:
    # The kubelet expands against what it declares (service variables, envFrom, env); the image's ENV, HOSTNAME
    # and HOME are the runtime's, which the kubelet never sees: a reference to them stays as written.
    image = CATALOGUE["python:3.11"]
    container = {
        "command": ["run", "$(PATH)", "$(HOSTNAME)", "$(HOME)", "$(KUBERNETES_SERVICE_HOST)", "$(OWN)", "$(AFTER)"],
        "env": [{"name": "OWN", "value": "$(PATH):$(KUBERNETES_SERVICE_PORT)"}, {"name": "AFTER", "value": "a"}],
    }
    kubelet = podenv.declared(pod(), container, lambda p, n: None)
    env = podenv.environment(pod(), container, image, lambda p, n: None)
    assert podenv.argv(container, image, kubelet) == [
        "run",
        "$(PATH)",
        "$(HOSTNAME)",
        "$(HOME)",
        "10.96.0.1",
        "$(PATH):443",
        "a",
    ]
    assert env["OWN"] == "$(PATH):443" and env["HOSTNAME"] == "p" and env["PATH"] == image.env["PATH"]


def test_the_images_own_words_are_not_expanded() -> None:
    image = dataclasses.replace(CATALOGUE["busybox:1.36"], entrypoint=("echo", "$$(X)"), cmd=("$(X)",))
    assert podenv.argv({}, image, {"X": "1"}) == ["echo", "$$(X)", "$(X)"]
    assert podenv.argv({"args": ["$(X)", "$$"]}, image, {"X": "1"}) == ["echo", "$$(X)", "1", "$"]
