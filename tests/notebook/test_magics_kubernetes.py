"""``%%polyaxon_dag --executor kubernetes`` in a kernel whose engine already runs local ops: the Kubernetes
executor is added on first use (configured from ``KUBECONFIG``), here against the API emulator."""

from __future__ import annotations

from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from k8s_emulator import Emulator, testkit
from k8s_emulator.testkit import wait_for

import polynb
from polynb.executors.kubernetes.executor import K8sSubmitError, KubernetesExecutor
from polynb.executors.registry import ExecutorSetupError
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


TB_DAG = """version: 1.1
kind: component
name: watch
run:
  kind: dag
  operations:
    - name: experiment
      component: {name: experiment, run: {kind: job, container: {image: emu/ok, command: [train]}}}
    - name: tensorboard
      dependencies: [experiment]
      params: {uuids: {ref: ops.experiment, value: globals.uuid}}
      component:
        name: tensorboard
        inputs: [{name: uuids, type: str}]
        run:
          kind: service
          ports: [6006]
          init: [{tensorboard: {uuids: "{{ uuids }}"}}]
          container: {image: emu/ok, command: [tensorboard]}
"""


def kubernetes_of(session: KernelSession) -> KubernetesExecutor:
    executor = session._executors["kubernetes"]
    assert isinstance(executor, KubernetesExecutor)
    return executor


def test_the_artifacts_claim_comes_from_config_and_from_polynb_run(
    ip: InteractiveShell, session: KernelSession, emulator: Emulator, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.scripts.update({"emu/ok": {"logs": ["training"]}})
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("POLYNB_K8S_PORT_FORWARD", "0")
    with pytest.raises(K8sSubmitError, match=r"%config PolynbMagics.kubernetes = \{'artifacts_claim'"):
        polynb.run(TB_DAG, executor="kubernetes")  # refused: per-pod emptyDirs
    ip.run_line_magic("config", "PolynbMagics.kubernetes = {'security_profile': 'restricted'}")
    handle = polynb.run(TB_DAG, executor="kubernetes", kubernetes={"artifacts_claim": "shared-artifacts"})
    executor = kubernetes_of(session)
    assert executor.settings.artifacts_claim == "shared-artifacts"
    assert executor.settings.security_profile == "restricted"  # the magics' setting, under the run's
    assert executor.origins["artifacts_claim"] == "polynb.run(kubernetes=...): artifacts_claim"
    wait_for(lambda: emulator.objects("jobs"), emulator, what="the experiment's Job")
    volumes = emulator.objects("jobs")[0]["spec"]["template"]["spec"]["volumes"]
    assert volumes[0]["persistentVolumeClaim"] == {"claimName": "shared-artifacts"}
    session.engine.stop(handle.uuid)


def test_a_setting_that_cannot_change_in_a_running_kernel_is_refused(
    session: KernelSession, emulator: Emulator, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.scripts.update({"emu/ok": {"logs": ["training"]}})
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("POLYNB_K8S_PORT_FORWARD", "0")
    spec = "version: 1.1\nkind: component\nname: train\nrun: {kind: job, container: {image: emu/ok, command: [x]}}\n"
    assert polynb.run(spec, executor="kubernetes").wait(timeout=GUARD) == "succeeded"
    with pytest.raises(ExecutorSetupError, match="namespace cannot change once the executor runs"):
        polynb.run(spec, executor="kubernetes", kubernetes={"namespace": "other"})
    with pytest.raises(ValueError, match="the run goes to executor 'local'"):
        polynb.run(spec, kubernetes={"keep_finished": True})
