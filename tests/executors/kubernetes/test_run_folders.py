"""The run's folders in the pod's manifest: ``<uuid>/``, ``outputs/`` and ``outputs/tensorboard/`` are made before
any init entry and the main container start, by the first init entry when it runs in the tools image, else by an
init container of their own (its script is run here too). On the executing kubelet: test_code_in_pods.py."""

from __future__ import annotations

import dataclasses
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from k8s_emulator.admission import restricted_problems

from polynb.compiler.types import CompiledOp, ContainerSpec, InitStep
from polynb.executors.kubernetes import manifests
from polynb.executors.kubernetes.init import FOLDERS_CONTAINER, FOLDERS_SCRIPT

CFG = manifests.ManifestConfig(namespace="ml", kernel_label="k1", kernel_id="k1")
RESTRICTED = dataclasses.replace(CFG, security_profile="restricted")
UUID = "0123456789abcdef0123456789abcdef"
RUN_DIR = f"/plx-context/artifacts/{UUID}"
FOLDERS = [RUN_DIR, f"{RUN_DIR}/outputs", f"{RUN_DIR}/outputs/tensorboard"]
PREPARE = InitStep(kind="container", container=ContainerSpec(name="prepare", image="busybox:1.36", command=("true",)))


def op(**kw: Any) -> CompiledOp:
    return CompiledOp(
        uuid=UUID,
        name="train",
        kind=kw.pop("kind", "job"),
        container=kw.pop("container", ContainerSpec(name="main", command=("python", "t.py"))),
        placement=manifests.placement(UUID, "job", 0, CFG),
        **kw,
    )


def limit(container: dict[str, Any]) -> int:
    return int({e["name"]: e.get("value") for e in container["env"]}["POLYNB_TERMINATION_LOG_LIMIT"])


@pytest.mark.parametrize("kind", ["job", "service"])
def test_a_pod_without_init_entries_makes_its_folders_first_with_paths_as_arguments(kind: str) -> None:
    spec = manifests.pod_spec(op(kind=kind), CFG)
    [folders] = spec["initContainers"]
    assert folders["name"] == FOLDERS_CONTAINER and folders["image"] == CFG.tools_image
    assert folders["command"] == ["python3", "-c", FOLDERS_SCRIPT, *FOLDERS]  # no shell, nothing spliced in
    assert folders["volumeMounts"] == [{"name": manifests.ARTIFACTS_VOLUME, "mountPath": manifests.ARTIFACTS_ROOT}]
    assert "securityContext" not in folders and "resources" not in folders


def test_they_come_before_an_init_entry_that_cannot_make_them() -> None:
    spec = manifests.pod_spec(op(init=(PREPARE, InitStep(kind="git", spec={"url": "https://h/r.git"}))), CFG)
    assert [c["name"] for c in spec["initContainers"]] == [FOLDERS_CONTAINER, "init-0-container", "init-1-git"]


@pytest.mark.parametrize("first", [
    InitStep(kind="file", spec={"content": "hi", "filename": "a.txt"}),
    InitStep(kind="tensorboard", spec={"uuids": ["a" * 32]}),
    InitStep(kind="paths", spec={"paths": ["data"]}),
])  # fmt: skip
def test_a_first_init_entry_in_the_tools_image_makes_them_no_container_more(first: InitStep) -> None:
    spec = manifests.pod_spec(op(init=(first, PREPARE)), CFG)
    names = [c["name"] for c in spec["initContainers"]]
    assert names == [f"init-0-{first.kind}", "init-1-container"]
    made = spec["initContainers"][0]
    assert made["command"][:2] == ["python3", "-c"] and made["command"][3:] == FOLDERS
    assert limit(spec["containers"][0]) == 4096


def test_a_later_tools_entry_leaves_them_to_the_first_container() -> None:
    spec = manifests.pod_spec(op(init=(PREPARE, InitStep(kind="file", spec={"content": "x"}))), CFG)
    folders, _, file = spec["initContainers"]
    assert folders["name"] == FOLDERS_CONTAINER and len(file["command"]) == 3


def test_the_folders_container_counts_in_the_pods_termination_messages() -> None:
    # The kubelet shares 12 KiB among the pod's containers, init containers included (status_manager.go,
    # normalizeStatus): 3 entries, the folders' container and the main container are 5, 2457 bytes each.
    spec = manifests.pod_spec(op(init=(PREPARE, PREPARE, PREPARE)), CFG)
    every = [*spec["initContainers"], *spec["containers"]]
    assert len(every) == 5 and limit(spec["containers"][0]) == 12 * 1024 // 5


def test_under_the_restricted_profile_they_are_made_by_a_non_root_user() -> None:
    spec = manifests.pod_spec(op(init=(PREPARE,)), RESTRICTED)
    assert restricted_problems(spec) == []
    folders = spec["initContainers"][0]
    assert folders["securityContext"] == {**manifests.RESTRICTED, "runAsUser": manifests.NOBODY}
    # The pod's own user (the main container's, as a rule) makes them when the pod names one.
    pod_user = manifests.pod_spec(op(environment={"securityContext": {"runAsUser": 1000}}), RESTRICTED)
    assert "runAsUser" not in pod_user["initContainers"][0]["securityContext"]
    assert restricted_problems(pod_user) == []


def test_a_pod_demanding_a_non_root_user_gets_one_for_them_under_the_default_profile() -> None:
    non_root = manifests.pod_spec(op(environment={"securityContext": {"runAsNonRoot": True}}), CFG)
    assert non_root["initContainers"][0]["securityContext"] == {"runAsUser": manifests.NOBODY}
    both = {"securityContext": {"runAsNonRoot": True, "runAsUser": 1000}}
    assert "securityContext" not in manifests.pod_spec(op(environment=both), CFG)["initContainers"][0]


def test_they_ask_for_the_main_containers_cpu_and_memory() -> None:
    # A ResourceQuota on cpu or memory refuses a pod any of whose containers names none; an init container's
    # requests add nothing to the pod's when they are the main container's.
    resources = {
        "requests": {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": 1},
        "limits": {"cpu": "lots", "memory": "8Gi", "nvidia.com/gpu": 1},
    }
    main = ContainerSpec(name="main", command=("t",), k8s={"resources": resources})
    folders = manifests.pod_spec(op(container=main), CFG)["initContainers"][0]
    assert folders["resources"] == {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "8Gi"}}


# -- the script, here ------------------------------------------------------------------------------------


def run_script(*folders: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", FOLDERS_SCRIPT.replace("/dev/termination-log", os.devnull), *map(str, folders)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_script_makes_the_folders_writable_by_any_user_and_leaves_existing_ones(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "outputs").mkdir(parents=True, mode=0o700)  # a retry's, on a claim
    (run / "outputs" / "model.pt").write_text("kept")
    done = run_script(run, run / "outputs", run / "outputs" / "tensorboard")
    assert (done.returncode, done.stderr) == (0, "")
    assert stat.S_IMODE((run / "outputs").stat().st_mode) == 0o700  # left as it is
    assert stat.S_IMODE((run / "outputs" / "tensorboard").stat().st_mode) == 0o777
    assert (run / "outputs" / "model.pt").read_text() == "kept"


def test_a_folder_that_cannot_be_made_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "root"
    blocker.write_text("a file where the artifacts root should be")
    done = run_script(blocker / "run", blocker / "run" / "outputs")
    assert done.returncode == 0
    assert done.stderr.startswith(f"polynb: warning: cannot create the run's folder {blocker / 'run'} (")
    assert "the op must create it before writing there" in done.stderr
    assert not (blocker / "run").exists()
