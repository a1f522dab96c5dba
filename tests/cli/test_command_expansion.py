"""The same Polyaxon file gives the same command on the laptop and on a cluster: ``$(VAR_NAME)`` in ``command`` and
``args`` is expanded by Kubernetes' rule against the container's declared ``env`` (``$$`` is ``$``, an undefined
reference stays as written) by ``polynb run`` on the local executor, as the kubelet does on a cluster."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from k8s_emulator.testkit import executing
from support.clikit import Cli

SCRIPT = "import json, os, sys; print('ARGV', json.dumps([sys.argv[1:], os.environ['OUT'], os.environ['PASS']]))"

JOB = f"""
version: 1.1
kind: component
name: argv
inputs: [{{name: lr, type: float, value: 0.1, isOptional: true}}]
run:
  kind: job
  container:
    image: python:3.11
    env:
      - {{name: LR, value: "{{{{ lr }}}}"}}
      - {{name: OUT, value: "$(LR)-$(LATER)"}}
      - {{name: LATER, value: later}}
      - {{name: PASS, value: "p$$w"}}
    command: [python3, -c, "{SCRIPT}"]
    args: ["$(LR)", "--lr=$(LR)", "$$(LR)", "$(UNDEFINED)", "$(OUT)", "$(POLYAXON_RUN_UUID)", "pid:$$", "$HOME",
           "$(HOME)", "$(PATH)"]
"""


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    kit = Cli(tmp_path)
    yield kit
    kit.cleanup()


def _argv(cli: Cli, *flags: str) -> tuple[str, Any]:
    """Run the file, and read back from its log what the op got: (the run's uuid, [argv, $OUT, $PASS])."""
    code, out = cli.run_json("run", "-f", str(cli.write("job.yaml", JOB)), "--json", *flags)
    assert code == 0, out
    uuid = str(out["uuid"])
    logs = cli.run("logs", uuid)
    assert logs.returncode == 0, logs.stderr
    lines = [line.split("ARGV ", 1)[1] for line in logs.stdout.splitlines() if "ARGV " in line]
    assert len(lines) == 1, logs.stdout
    return uuid, json.loads(lines[0])


def test_the_local_executor_expands_command_and_args_as_kubernetes_does(cli: Cli) -> None:
    uuid, (argv, out, password) = _argv(cli)
    assert argv == [
        "0.1",
        "--lr=0.1",
        "$(LR)",
        "$(UNDEFINED)",
        "0.1-$(LATER)",  # an env value sees the entries declared before it
        uuid,  # a variable polynb declares for the container on both executors
        "pid:$",
        "$HOME",
        "$(HOME)",  # the process has HOME and PATH, but they are not declared for the container
        "$(PATH)",
    ]
    assert (out, password) == ("0.1-$(LATER)", "p$w")


def test_the_same_file_gives_the_same_argv_locally_and_on_a_cluster(cli: Cli, tmp_path: Path) -> None:
    local_uuid, local = _argv(cli)
    with executing(tmp_path / "k8s") as emulator:
        assert emulator.kubeconfig is not None
        cli.extra_env.update({"KUBECONFIG": str(emulator.kubeconfig), "POLYNB_K8S_PORT_FORWARD": "0"})
        cluster_uuid, cluster = _argv(cli, "--executor", "kubernetes")
    assert json.loads(json.dumps(cluster).replace(cluster_uuid, local_uuid)) == local
