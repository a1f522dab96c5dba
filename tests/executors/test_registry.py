"""The executor registry: executors by name, built on demand, with the reason when one cannot be built."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from k8s_emulator import testkit

from polynb.executors.base import Executor
from polynb.executors.kubernetes.executor import KubernetesExecutor
from polynb.executors.local.executor import LocalExecutor
from polynb.executors.registry import KNOWN, BuildOptions, ExecutorSetupError, LazyExecutors, build, default_name

emulator = testkit.emulator
kubeconfig = testkit.kubeconfig

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_local_is_built_without_importing_the_kubernetes_client() -> None:
    probe = (
        "import sys; from polynb.executors.registry import LazyExecutors, build;"
        "build('local').shutdown(); LazyExecutors()['local'].shutdown();"
        "import polynb.executors.kubernetes.settings;"
        "print(sorted(m for m in sys.modules if 'kubernetes' in m))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    assert out.stdout.strip() == "['polynb.executors.kubernetes', 'polynb.executors.kubernetes.settings']"


def test_local_takes_the_callers_folder_and_stop_grace(tmp_path: Path) -> None:
    executor = build("local", BuildOptions(base_dir=tmp_path, stop_grace=1.5))
    try:
        assert isinstance(executor, LocalExecutor) and isinstance(executor, Executor)
        assert (executor.base_dir, executor.stop_grace) == (tmp_path.resolve(), 1.5)
    finally:
        executor.shutdown()


def test_an_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ExecutorSetupError, match=r"^unknown executor 'docker'; available: local, kubernetes$"):
        build("docker")
    assert KNOWN == ("local", "kubernetes")


def test_the_default_is_polynb_executor_else_local() -> None:
    assert default_name({}) == "local"
    assert default_name({"POLYNB_EXECUTOR": ""}) == "local"
    assert default_name({"POLYNB_EXECUTOR": "kubernetes"}) == "kubernetes"


def test_kubernetes_that_cannot_be_built_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ExecutorSetupError) as exc:
        build("kubernetes", BuildOptions(environ={}))
    assert str(exc.value).startswith("executor kubernetes: cannot use kubeconfig")
    assert exc.value.reason == str(exc.value).removeprefix("executor kubernetes: ")
    with pytest.raises(ExecutorSetupError) as exc:
        build("kubernetes", BuildOptions(environ={"POLYNB_K8S_PORT_FORWARD": "sometimes"}))
    assert exc.value.reason == "POLYNB_K8S_PORT_FORWARD: expected 1 or 0 (true/false, yes/no, on/off), not 'sometimes'"


def test_kubernetes_is_configured_by_the_environment(kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    env = {"POLYNB_K8S_KERNEL_ID": "cli-1", "POLYNB_K8S_PORT_FORWARD": "0", "POLYNB_K8S_TOOLS_IMAGE": "tools:1"}
    executor = build("kubernetes", BuildOptions(environ=env))
    try:
        assert isinstance(executor, KubernetesExecutor)
        assert (executor.kernel_id, executor.port_forward, executor.config.tools_image) == ("cli-1", False, "tools:1")
    finally:
        executor.shutdown()


def test_lazy_executors_build_once_and_read_an_unbuildable_one_as_missing() -> None:
    executors = LazyExecutors(BuildOptions(environ={"POLYNB_K8S_NAMESPACE": "Not A Namespace"}))
    try:
        assert list(executors) == ["local", "kubernetes"]
        assert executors["local"] is executors["local"]
        assert executors.get("kubernetes") is None
        assert executors.get("docker") is None
    finally:
        executors.shutdown()
