"""What pods get so that stock images run polynb's code: the runtime bundle (a ConfigMap on ``PYTHONPATH``) and
a ``%%polyaxon_python`` step's code (a ConfigMap of its own), in manifests and as the executor creates them."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from k8s_emulator import Emulator, testkit
from k8s_emulator.testkit import MakeExecutor, make_op
from support.recorder import UpdateRecorder

from polynb.compiler.types import CompiledOp, ContainerSpec, InitStep
from polynb.executors.kubernetes import bundle, manifests, stepcode
from polynb.executors.kubernetes.executor import K8sSubmitError, KubernetesExecutor

emulator = testkit.emulator
kubeconfig = testkit.kubeconfig
make_executor = testkit.make_executor
executor = testkit.executor

CFG = manifests.ManifestConfig(namespace="ml", kernel_label="k1", kernel_id="k1")
UUID = "0123456789abcdef0123456789abcdef"
CONFIGMAP_KEY = re.compile(r"[-._a-zA-Z0-9]+")


def write_bundle(folder: Path) -> Path:
    for path, text in bundle.runtime_bundle().files.items():
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return folder


def stdlib_only_python(bundle_dir: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python3 -I -S`` (no ``site``: no site-packages, no ``.pth`` hooks) with the bundle as the only other
    entry of ``sys.path``: what a stock image with python3 gives the bundle."""
    prelude = f"import sys; sys.path[:] = [{str(bundle_dir)!r}, *(p for p in sys.path if p)]\n"
    return subprocess.run(
        [sys.executable, "-I", "-S", "-c", prelude + code],
        capture_output=True,
        text=True,
        cwd=bundle_dir,
        env={"PATH": os.environ.get("PATH", ""), **env},
        timeout=60,
    )


# -- the bundle -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", sorted(bundle.SHIPPED))
def test_every_shipped_module_imports_with_the_standard_library_alone(tmp_path: Path, module: str) -> None:
    folder = write_bundle(tmp_path)
    check = f"""
import json, sys
try:
    import {module}
except ModuleNotFoundError as exc:
    print(json.dumps({{"missing": exc.name}}))
    raise SystemExit(0)
outside = sorted(
    name for name, mod in sys.modules.items()
    if name.split(".")[0] not in {*sys.stdlib_module_names, "polynb", "__main__"}
)
files = sorted({{getattr(m, "__file__", None) or "" for m in list(sys.modules.values())}} - {{""}})
print(json.dumps({{"outside": outside, "files": files, "path": sys.path}}))
"""
    result = stdlib_only_python(folder, check)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    needs = bundle.SHIPPED[module]
    if "missing" in found:
        # Only a package the module declares it needs to run (its component names an image that has it).
        assert found["missing"] in needs, f"{module} imports {found['missing']}, which is not in the standard library"
        return
    assert found["outside"] == []
    assert not [p for p in found["path"] if "-packages" in p]
    assert not [f for f in found["files"] if "-packages" in f]  # every file from the stdlib or the bundle
    assert str(folder / module.replace(".", "/")) + ".py" in found["files"]


def test_train_is_shipped_and_needs_numpy_only(tmp_path: Path) -> None:
    # The seed experiment's program: NumPy is why it runs on tensorflow/tensorflow:2.15.0, not python:3.11.
    result = stdlib_only_python(write_bundle(tmp_path), "import polynb.examples.train")
    assert "No module named 'numpy'" in result.stderr


def test_the_package_layout_is_minimal(tmp_path: Path) -> None:
    files = bundle.runtime_bundle().files
    # No polynb/__init__.py: a namespace portion, so an image with polynb installed keeps its own package.
    assert "polynb/__init__.py" not in files
    for path, text in files.items():
        if path.endswith("__init__.py"):
            body = ast.parse(text).body
            assert len(body) == 1 and isinstance(body[0], ast.Expr), f"{path} does more than document itself"
    shipped = {p.removesuffix(".py").replace("/", ".") for p in files if not p.endswith("__init__.py")}
    assert shipped == set(bundle.SHIPPED)


def test_the_bundle_fits_in_a_configmap_and_is_named_by_its_content() -> None:
    built = bundle.runtime_bundle()
    assert built.size < bundle.CONFIGMAP_LIMIT == 1024 * 1024
    body = built.configmap()
    assert re.fullmatch(r"polynb-runtime-[0-9a-f]{16}", body["metadata"]["name"])
    assert body["immutable"] is True and all(CONFIGMAP_KEY.fullmatch(k) for k in body["data"])
    items = {i["key"]: i["path"] for i in built.volume()["configMap"]["items"]}
    assert {items[k]: v for k, v in body["data"].items()} == dict(built.files)
    assert bundle.make_bundle(dict(built.files)).name == built.name
    changed = {**built.files, "polynb/tracking.py": built.files["polynb/tracking.py"] + "# changed\n"}
    assert bundle.make_bundle(changed).name != built.name


def test_a_bundle_over_the_configmap_limit_is_refused() -> None:
    with pytest.raises(bundle.BundleTooLargeError, match=r"is \d+ bytes; a ConfigMap holds at most 1048576"):
        bundle.make_bundle({"polynb/big.py": "x" * (1024 * 1024)})


def test_the_step_runner_from_the_bundle_runs_a_step_with_python_alone(tmp_path: Path) -> None:
    folder = write_bundle(tmp_path / "bundle")
    script = tmp_path / "step.py"
    script.write_text("total = sum(values) * factor\nlabel = f'{{total}}'\n")
    termination = tmp_path / "termination-log"
    result = stdlib_only_python(
        folder,
        "import runpy; runpy.run_module('polynb.runtime.step_runner', run_name='__main__')",
        POLYNB_STEP_SCRIPT=str(script),
        POLYNB_STEP_INPUTS=json.dumps({"values": [1, 2, 3], "factor": 2}),
        POLYNB_STEP_OUTPUTS=json.dumps(["total", "label"]),
        POLYAXON_RUN_OUTPUTS_PATH=str(tmp_path / "outputs"),
        POLYNB_TERMINATION_LOG=str(termination),
        POLYNB_TERMINATION_LOG_LIMIT="4096",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(termination.read_text()) == {"total": 12, "label": "{total}"}


# -- manifests ------------------------------------------------------------------------------------------


def compiled(**kw: Any) -> CompiledOp:
    return CompiledOp(
        uuid=UUID,
        name="train",
        kind="job",
        container=kw.pop("container", ContainerSpec(name="main", command=("python3", "t.py"))),
        placement=manifests.placement(UUID, "job", 0, CFG),
        **kw,
    )


def test_every_generated_container_mounts_the_bundle_on_its_pythonpath() -> None:
    op = compiled(
        init=(InitStep(kind="file", spec={"content": "hi", "filename": "a.txt"}),),
        sidecars=(ContainerSpec(name="side", image="busybox", env=(("PYTHONPATH", "/opt/mine"),)),),
    )
    spec = manifests.pod_spec(op, CFG)
    containers = [*spec["initContainers"], *spec["containers"]]
    assert len(containers) == 3
    for container in containers:
        mount = next(m for m in container["volumeMounts"] if m["name"] == bundle.VOLUME)
        assert mount == {"name": "polynb-runtime", "mountPath": "/polynb-runtime", "readOnly": True}
        env = {e["name"]: e["value"] for e in container["env"]}
        expected = "/opt/mine:/polynb-runtime" if container["name"] == "side" else "/polynb-runtime"
        assert env["PYTHONPATH"] == expected  # the container's own entries first
        assert env["POLYNB_TERMINATION_LOG_LIMIT"] == "4096"  # 12 KiB / 3 containers is more
    volume = next(v for v in spec["volumes"] if v["name"] == bundle.VOLUME)
    assert volume == bundle.runtime_bundle().volume()


def step_op(tmp_path: Path, code: str = "result = 6 * 7\n") -> CompiledOp:
    script = tmp_path / "answer-0123456789abcdef.py"
    script.write_text(code)
    container = ContainerSpec(
        name="main",
        image="python:3.11-slim",
        command=("python3", "-m", "polynb.runtime.step_runner"),
        env=(("POLYNB_STEP_SCRIPT", str(script)), ("POLYNB_STEP_OUTPUTS", '["result"]')),
    )
    return compiled(container=container)


def test_a_step_mounts_its_code_and_names_it_in_the_pod(tmp_path: Path) -> None:
    op = step_op(tmp_path)
    step = stepcode.step_code(op)
    assert step is not None and step.name == f"polynb-step-{step.digest}" and len(step.digest) == 16
    assert step.configmap()["data"] == {"answer-0123456789abcdef.py": "result = 6 * 7\n"}
    assert step.configmap()["immutable"] is True
    spec = manifests.pod_spec(op, CFG, step)
    main = spec["containers"][0]
    env = {e["name"]: e["value"] for e in main["env"]}
    assert env["POLYNB_STEP_SCRIPT"] == "/polynb-step/answer-0123456789abcdef.py"  # not the kernel's disk
    assert {"name": "polynb-step", "mountPath": "/polynb-step", "readOnly": True} in main["volumeMounts"]
    assert main["command"] == ["python3", "-m", "polynb.runtime.step_runner"] and main["image"] == "python:3.11-slim"
    assert {"name": "polynb-step", "configMap": {"name": step.name, "defaultMode": 0o444}} in spec["volumes"]
    assert stepcode.step_code(compiled()) is None  # any other op carries no step code


def test_a_step_whose_code_is_not_on_this_machine_is_refused(tmp_path: Path) -> None:
    op = step_op(tmp_path)
    Path(dict(op.container.env)["POLYNB_STEP_SCRIPT"]).unlink()
    with pytest.raises(ValueError, match=r"cannot be read on this machine.*run the %%polyaxon_python cell again"):
        stepcode.step_code(op)


# -- the executor ---------------------------------------------------------------------------------------


def as_step(op: CompiledOp, tmp_path: Path) -> CompiledOp:
    return dataclasses.replace(op, container=dataclasses.replace(step_op(tmp_path).container, k8s={}))


def test_the_executor_ships_the_bundle_and_step_code_once(
    emulator: Emulator, make_executor: MakeExecutor, tmp_path: Path
) -> None:
    first, second = make_executor(), make_executor()
    for executor in (first, first, second):  # a second kernel meets 409 on both: already there, as good
        op = as_step(make_op(executor, script={"main": {"message": json.dumps({"result": 42})}}), tmp_path)
        rec = UpdateRecorder()
        executor.submit(op, rec)
        final = rec.final()
        assert (final.status, final.outputs) == ("succeeded", {"result": 42})
    maps = {c["metadata"]["name"]: c for c in emulator.objects("configmaps")}
    step = stepcode.step_code(step_op(tmp_path))
    assert step is not None
    assert maps[bundle.runtime_bundle().name]["data"] == bundle.runtime_bundle().items()
    assert maps[step.name]["data"] == step.configmap()["data"] and maps[step.name]["immutable"] is True
    # Per executor: its kernel's ConfigMap, the bundle, the step (the second submit of `first` posts none).
    assert emulator.counts(resource="configmaps")["create"] == 3 + 3


def test_a_missing_step_script_submits_nothing(
    emulator: Emulator, executor: KubernetesExecutor, tmp_path: Path
) -> None:
    op = as_step(make_op(executor), tmp_path)
    Path(dict(op.container.env)["POLYNB_STEP_SCRIPT"]).unlink()
    with pytest.raises(K8sSubmitError, match="cannot be read on this machine"):
        executor.submit(op, UpdateRecorder())
    assert emulator.objects("jobs") == []
