"""``%%polyaxon_dag --executor kubernetes`` in a kernel whose engine already runs local ops: the Kubernetes
executor is added on first use (configured from ``KUBECONFIG``), here against the API emulator."""

from __future__ import annotations

from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from k8s_emulator import Emulator, testkit

import polynb
from polynb.notebook.handle import RunHandle
from polynb.notebook.session import KernelSession

emulator = testkit.emulator
kubeconfig = testkit.kubeconfig

GUARD = 60.0

DAG = """%%polyaxon_dag on-k8s --executor kubernetes
operations:
  - name: train
    component: {run: {kind: job, container: {image: emu/ok, command: [python, train.py]}}}
"""


def test_kubernetes_is_added_to_a_running_kernel_engine(
    ip: InteractiveShell, session: KernelSession, emulator: Emulator, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.scripts.update({"emu/ok": {"logs": ["training"]}})
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("POLYNB_K8S_PORT_FORWARD", "0")
    local = ip.run_cell(
        "%%polyaxon_dag local-first\noperations:\n  - {name: a, run: {kind: job, container: {command: ['true']}}}\n"
    )
    assert isinstance(local.result, RunHandle)
    assert local.result.wait(timeout=GUARD) == "succeeded"

    result = ip.run_cell(DAG)
    assert result.error_in_exec is None, result.error_in_exec
    handle = result.result
    assert isinstance(handle, RunHandle)
    assert handle.wait(timeout=GUARD) == "succeeded"
    assert "kubernetes" in session.executor_names()
    assert session.store.get_run(handle.uuid).executor == "kubernetes"


def test_a_kubernetes_executor_that_cannot_start_is_a_clear_usage_error(
    ip: InteractiveShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    result = ip.run_cell(DAG)
    assert type(result.error_in_exec) is UsageError
    assert "the kubernetes executor cannot start" in str(result.error_in_exec)


def test_a_bad_setting_is_a_usage_error_that_names_the_variable(
    ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLYNB_K8S_NAMESPACE", "ML team")
    result = ip.run_cell(DAG)
    assert type(result.error_in_exec) is UsageError
    message = str(result.error_in_exec)
    assert message.startswith("the kubernetes executor cannot start: POLYNB_K8S_NAMESPACE: 'ML team' is not")


def test_polynb_run_on_kubernetes_adds_the_executor_too(
    session: KernelSession, emulator: Emulator, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.scripts.update({"emu/ok": {"logs": ["training"]}})
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("POLYNB_K8S_PORT_FORWARD", "0")
    spec = "version: 1.1\nkind: component\nname: train\nrun: {kind: job, container: {image: emu/ok, command: [x]}}\n"
    handle = polynb.run(spec, executor="kubernetes")
    assert handle.wait(timeout=GUARD) == "succeeded"
    assert session.store.get_run(handle.uuid).executor == "kubernetes"
