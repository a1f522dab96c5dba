"""The four example notebooks, cell by cell and unchanged, in a kernel whose default executor is kubernetes
(``%config PolynbMagics.default_executor``), on the executing test cluster: every container really runs in a
catalogue image that has no polynb (``python:3.11-slim`` for ``%%polyaxon_python`` steps and the webhook,
``python:3.11`` for YAML components, ``tensorflow/tensorflow:2.15.0`` for the NumPy experiment and TensorBoard),
and outputs come back through the termination messages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from k8s_emulator import Emulator, testkit
from kubernetes import client, config

from polynb.executors.kubernetes.executor import KubernetesExecutor
from polynb.executors.kubernetes.settings import KubernetesSettings
from polynb.notebook.handle import RunHandle
from polynb.notebook.session import KernelSession, SessionConfig, set_session

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "04-params-and-outputs.ipynb"


CLAIM = "polynb-artifacts"
"""Shared artifacts (ReadWriteMany): TensorBoard in notebook 02 reads the experiment's outputs."""


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Emulator]:
    with testkit.executing(tmp_path) as emu:
        assert emu.kubeconfig is not None
        api = config.new_client_from_config(str(emu.kubeconfig))
        spec = {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}}
        claim: Any = {"metadata": {"name": CLAIM}, "spec": spec}
        client.CoreV1Api(api).create_namespaced_persistent_volume_claim("default", claim)
        api.close()
        yield emu


@pytest.fixture
def session(cluster: Emulator) -> Iterator[KernelSession]:
    assert cluster.kubeconfig is not None
    settings = KubernetesSettings(
        kubeconfig=str(cluster.kubeconfig),
        kernel_id="nb-e2e",
        port_forward=False,
        backoff=0.05,
        shutdown_wait=20.0,
        artifacts_claim=CLAIM,
    )
    config = SessionConfig(
        stop_grace=2.0, default_executor="kubernetes", executors={"kubernetes": KubernetesExecutor(settings)}
    )
    s = KernelSession(config)
    previous = set_session(s)
    if previous is not None:
        previous.shutdown()
    try:
        yield s
    finally:
        set_session(None)
        s.shutdown()


def code_cells(notebook: Path) -> list[tuple[str, bool]]:
    """The code cells' sources, and whether the saved notebook shows the cell failing (on purpose: an error,
    or the UsageError IPython prints for a magic)."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]

    def fails(outputs: list[dict[str, Any]]) -> bool:
        return any(
            o.get("output_type") == "error" or "".join(o.get("text") or ()).startswith("UsageError") for o in outputs
        )

    return [("".join(c["source"]), fails(c.get("outputs") or [])) for c in cells if c["cell_type"] == "code"]


def run_notebook(ip: InteractiveShell, notebook: Path) -> list[object]:
    ip.run_line_magic("config", "PolynbMagics.default_executor = 'kubernetes'")
    results = []
    for source, fails in code_cells(notebook)[1:]:  # %load_ext polynb: the `ip` fixture did it
        result = ip.run_cell(source)
        if not fails:
            assert result.error_in_exec is None and result.error_before_exec is None, (source, result)
        results.append(result.result)
    return results


def test_the_steps_notebook_runs_unchanged_on_stock_images(
    ip: InteractiveShell, session: KernelSession, cluster: Emulator
) -> None:
    results = run_notebook(ip, NOTEBOOK)
    stats = next(r for r in results if isinstance(r, RunHandle) and r.name == "stats")
    assert stats.status == "succeeded"
    line = stats.outputs["report"]["line"]
    assert line.startswith("dice: mean ")  # computed by steps in python:3.11-slim, reported from python:3.11
    assert results[-1] == ("succeeded", True)  # the tricky text came back unchanged: data, never code
    jobs = [r for r in session.store.list_runs() if r.kind == "job"]
    assert {r.executor for r in jobs} == {"kubernetes"}
    assert {(r.spec or {})["container"]["image"] for r in jobs} == {"python:3.11-slim", "python:3.11"}
    # The cells' code went to the cluster in ConfigMaps (the Jobs are deleted once their runs are done).
    shipped = [c for c in cluster.objects("configmaps") if c["metadata"]["name"].startswith("polynb-step-")]
    assert len(shipped) == 3  # prepare, summarize, echo


@pytest.mark.parametrize("name", ["01-quick-start", "02-experiment-tensorboard", "03-hooks-and-conditions"])
def test_the_other_notebooks_run_unchanged(
    ip: InteractiveShell, session: KernelSession, cluster: Emulator, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(NOTEBOOK.parent)  # as Jupyter runs them: 02 names `pipelines/…` relative to its folder
    results = run_notebook(ip, NOTEBOOK.parent / f"{name}.ipynb")
    runs = [r for r in session.store.list_runs() if r.kind in ("job", "service")]
    assert runs and {r.executor for r in runs} == {"kubernetes"}
    images = {r.spec["container"]["image"] for r in runs if r.spec and "container" in r.spec}  # ran or compiled
    assert cluster.counts(resource="jobs")["create"] >= 1  # they ran there
    if name == "02-experiment-tensorboard":
        # NumPy training and TensorBoard on the image that has them; the experiment learned (as saved: True).
        assert images == {"tensorflow/tensorflow:2.15.0"} and True in results
    else:
        assert images <= {"python:3.11", "python:3.11-slim"}
