"""The executing kubelet, through the official client: containers really run, from images that contain
only what the catalogue says (no polynb anywhere but in the image docker/Dockerfile builds, which the artifacts
store's sidecars run in), and fail as they would on a cluster."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from k8s_emulator import Emulator, Image, testkit
from k8s_emulator.images import CATALOGUE, POLYNB_IMAGE
from k8s_emulator.sandbox import SandboxUnavailable
from k8s_emulator.testkit import wait_pod

executing_emulator = testkit.executing_emulator


@pytest.fixture
def core(executing_emulator: Emulator) -> Iterator[Any]:
    assert executing_emulator.kubeconfig is not None
    api = config.new_client_from_config(str(executing_emulator.kubeconfig))
    yield client.CoreV1Api(api)
    api.close()


def pod(name: str, image: str, command: list[str] | None, **spec: Any) -> Any:
    """A Pod manifest (typed Any: the client takes dicts as well as its models)."""
    container: dict[str, Any] = {"name": "main", "image": image}
    if command is not None:
        container["command"] = command
    container.update(spec.pop("container", {}))
    return {
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "containers": [container], **spec},
    }


def main_state(p: Any) -> Any:
    return p.status.container_statuses[0].state


def test_a_python_pod_runs_and_its_output_is_the_log(core: Any) -> None:
    core.create_namespaced_pod(
        "default", pod("hello", "python:3.11", ["python3", "-c", "print('hello'); print(6 * 7)"])
    )
    done = wait_pod(core, "hello", "Succeeded")
    term = main_state(done).terminated
    assert (term.exit_code, term.reason) == (0, "Completed")
    assert term.started_at is not None and term.finished_at is not None
    assert done.spec.node_name in ("emu-node-1", "emu-node-2")
    assert {c.type: c.status for c in done.status.conditions}["PodScheduled"] == "True"
    assert core.read_namespaced_pod_log("hello", "default") == "hello\n42\n"


OP_IMAGES = sorted(name for name, image in CATALOGUE.items() if image.python and not image.polynb)


@pytest.mark.parametrize("image", OP_IMAGES)
def test_no_op_image_can_import_polynb(core: Any, image: str) -> None:
    core.create_namespaced_pod("default", pod("imports", image, ["python3", "-c", "import polynb"]))
    failed = wait_pod(core, "imports", "Failed")
    assert main_state(failed).terminated.exit_code == 1
    assert "ModuleNotFoundError: No module named 'polynb'" in core.read_namespaced_pod_log("imports", "default")


def test_the_polynb_image_has_polynb_and_its_dependencies_and_runs_as_user_1000(core: Any) -> None:
    # What docker/Dockerfile installs: polynb (this source tree) with s3fs, the store sync's bucket client.
    code = "import os, polynb.buckets, s3fs, pydantic, tensorboard; print(polynb.buckets.BUCKET_KINDS[0], os.getuid())"
    core.create_namespaced_pod("default", pod("store", POLYNB_IMAGE, ["python", "-c", code]))
    wait_pod(core, "store", "Succeeded")
    assert core.read_namespaced_pod_log("store", "default") == "s3 1000\n"


def test_the_tensorflow_image_has_tensorboard_and_numpy(core: Any) -> None:
    code = "import tensorboard, numpy; print(numpy.arange(3).sum())"
    core.create_namespaced_pod("default", pod("tf", "tensorflow/tensorflow:2.15.0", ["python3", "-c", code]))
    wait_pod(core, "tf", "Succeeded")
    assert core.read_namespaced_pod_log("tf", "default") == "3\n"


def test_a_slim_python_image_has_no_numpy(core: Any) -> None:
    core.create_namespaced_pod("default", pod("np", "python:3.11-slim", ["python3", "-c", "import numpy"]))
    wait_pod(core, "np", "Failed")
    assert "No module named 'numpy'" in core.read_namespaced_pod_log("np", "default")


def test_a_command_the_image_lacks_fails_to_start(core: Any) -> None:
    # containerd/runc: StartError, exit code 128, "executable file not found in $PATH".
    core.create_namespaced_pod("default", pod("nopy", "busybox:1.36", ["python3", "-c", "print(1)"]))
    term = main_state(wait_pod(core, "nopy", "Failed")).terminated
    assert (term.exit_code, term.reason) == (128, "StartError")
    assert 'exec: "python3": executable file not found in $PATH' in term.message


def test_a_shell_without_the_command_exits_127(core: Any) -> None:
    core.create_namespaced_pod("default", pod("sh127", "busybox:1.36", ["sh", "-c", "python3 -V"]))
    term = main_state(wait_pod(core, "sh127", "Failed")).terminated
    assert (term.exit_code, term.reason) == (127, "Error")
    assert "python3: not found" in core.read_namespaced_pod_log("sh127", "default")


def test_the_container_sees_its_image_only(core: Any) -> None:
    script = (
        "import os, socket; print(socket.gethostname()); print(os.path.exists('/work'), os.path.exists('/usr/bin/git'))"
    )
    core.create_namespaced_pod("default", pod("alone", "python:3.11-slim", ["python3", "-c", script]))
    wait_pod(core, "alone", "Succeeded")
    assert core.read_namespaced_pod_log("alone", "default").splitlines() == ["alone", "False False"]


def test_an_unknown_image_backs_off_then_runs_once_pushed(executing_emulator: Emulator, core: Any) -> None:
    core.create_namespaced_pod("default", pod("pull", "example.org/team/trainer:1", ["sh", "-c", "echo pulled"]))

    def waiting(reason: str) -> Any:
        def check(p: Any) -> bool:
            if not p.status.container_statuses:
                return False  # scheduled, not yet on its node
            state = main_state(p)
            return state.waiting is not None and state.waiting.reason == reason

        return check

    assert "example.org/team/trainer:1" in main_state(wait_pod(core, "pull", waiting("ErrImagePull"))).waiting.message
    wait_pod(core, "pull", waiting("ImagePullBackOff"))
    assert wait_pod(core, "pull", lambda p: True).status.phase == "Pending"
    executing_emulator.add_image("example.org/team/trainer:1", Image(commands=("sh", "echo")))
    wait_pod(core, "pull", "Succeeded")
    assert core.read_namespaced_pod_log("pull", "default") == "pulled\n"
    reasons = [e.reason for e in core.list_namespaced_event("default").items if e.involved_object.name == "pull"]
    assert "BackOff" in reasons and "Failed" in reasons


def test_a_followed_log_streams_while_the_container_runs_and_ends_with_it(
    executing_emulator: Emulator, core: Any
) -> None:
    code = (
        "import os, time\n"
        "print('first', flush=True)\n"
        "while not os.path.exists('/tmp/go'): time.sleep(0.05)\n"
        "print('second', flush=True)\n"
    )
    core.create_namespaced_pod("default", pod("tail", "python:3.11-slim", ["python3", "-c", code]))
    wait_pod(core, "tail", "Running")
    stream = core.read_namespaced_pod_log("tail", "default", follow=True, _preload_content=False)
    lines = stream.stream()
    assert next(lines) == b"first\n"
    assert executing_emulator.kubelet is not None
    worker = executing_emulator.kubelet.worker("default", "tail")
    assert worker is not None
    (worker.dir / "containers" / "main-0" / "rootfs" / "tmp" / "go").touch()  # the container's own /tmp
    assert b"".join(lines) == b"second\n"  # then the stream ends: the container exited
    wait_pod(core, "tail", "Succeeded")


def test_the_tensorflow_image_has_the_tensorboard_command(core: Any) -> None:
    core.create_namespaced_pod("default", pod("tbcmd", "tensorflow/tensorflow:2.15.0", ["tensorboard", "--version_tb"]))
    wait_pod(core, "tbcmd", "Succeeded")
    import tensorboard

    # (TensorFlow itself is not in the modelled image: TensorBoard says so, then prints its version)
    assert core.read_namespaced_pod_log("tbcmd", "default").splitlines()[-1] == tensorboard.__version__


def test_a_container_has_proc_dev_shm_and_dev_stdout(core: Any) -> None:
    code = (
        "import multiprocessing, os\n"
        "lock = multiprocessing.Lock()\n"  # a POSIX semaphore: needs /dev/shm
        "print(os.path.isdir('/proc/self'), flush=True)\n"
        "open('/dev/stdout', 'w').write('via /dev/stdout\\n')\n"
    )
    core.create_namespaced_pod("default", pod("devs", "python:3.11-slim", ["python3", "-c", code]))
    wait_pod(core, "devs", "Succeeded")
    assert core.read_namespaced_pod_log("devs", "default") == "True\nvia /dev/stdout\n"


def test_the_curl_image_runs_as_its_own_user(core: Any) -> None:
    core.create_namespaced_pod(
        "default",
        pod("curly", "curlimages/curl:8.10.1", ["id", "-u"], securityContext={"runAsNonRoot": True}),
    )
    wait_pod(core, "curly", "Succeeded")
    assert core.read_namespaced_pod_log("curly", "default") == "100\n"


def test_without_namespaces_the_executing_kubelet_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "unshare").write_text("#!/bin/sh\necho 'unshare: unshare failed: Operation not permitted' >&2\nexit 1\n")
    (fake / "unshare").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    with pytest.raises(SandboxUnavailable, match=r"CAP_SYS_ADMIN.*Operation not permitted"):
        Emulator(kubelet="exec", root=tmp_path / "cluster")
