"""Sidecars beside the main container, and services: ports, readiness, URL."""

from __future__ import annotations

import socket
from pathlib import Path

from support.execkit import PY, MakeExecutor, alive, container, make_op, read_pid
from support.recorder import UpdateRecorder

from polynb.executors.local.executor import LocalExecutor

# A tiny HTTP-less server: waits for a `go` file in its folder, then listens on the port it is given.
SERVER = """
import os, socket, sys, time
while not os.path.exists("go"):
    time.sleep(0.02)
server = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    conn, _ = server.accept()
    conn.close()
"""


def test_a_sidecar_runs_during_main_and_is_stopped_after_it(executor: LocalExecutor, workdir: Path) -> None:
    sidecar = container("sh", "-c", "echo $$$$ > sidecar.pid; exec sleep 1000", name="collector")
    main = container("sh", "-c", "while [ ! -s sidecar.pid ]; do sleep 0.02; done; kill -0 $(cat sidecar.pid)")
    recorder = UpdateRecorder()
    op = make_op(executor, main, sidecars=[sidecar])
    executor.submit(op, recorder)
    final = recorder.final()
    assert final.status == "succeeded", final.message  # main saw the sidecar alive
    assert not alive(read_pid(workdir / "sidecar.pid"))  # and it is gone once the run is final
    assert (Path(op.placement.run_artifacts_path) / "logs" / "sidecar-collector.log").exists()


def test_place_gives_distinct_free_ports_and_a_base_url(executor: LocalExecutor) -> None:
    placements = [executor.place(f"{i:032x}", "service", 2) for i in range(5)]
    ports = [p for placement in placements for p in placement.ports]
    assert len(set(ports)) == len(ports) == 10
    first = placements[0]
    assert first.base_url == f"http://127.0.0.1:{first.ports[0]}/"
    assert executor.place("f" * 32, "job", 0).ports == ()


def test_a_service_is_running_only_once_its_port_accepts_connections(executor: LocalExecutor, workdir: Path) -> None:
    recorder = UpdateRecorder()
    op = make_op(executor, container(PY, "-c", SERVER), kind="service", ports=1, port_args=True)
    executor.submit(op, recorder)
    assert recorder.next().status == "starting"
    # The server cannot listen before `go` exists, so nothing may claim it runs yet.
    assert recorder.empty()
    (workdir / "go").touch()
    running = recorder.until("running")
    assert running.reason == "PortReady"
    assert running.url == op.placement.base_url
    socket.create_connection(("127.0.0.1", op.placement.ports[0]), timeout=5).close()
    executor.stop(op.uuid, grace=5)
    assert recorder.final().status == "stopped"


def test_a_service_that_never_opens_its_port_is_not_ready(make_executor: MakeExecutor, workdir: Path) -> None:
    executor = make_executor(readiness_timeout=0.3, sidecar_grace=0.5)
    recorder = UpdateRecorder()
    main = container("sh", "-c", "echo waiting; echo $$$$ > service.pid; exec sleep 1000")
    op = make_op(executor, main, kind="service", ports=1)
    executor.submit(op, recorder)
    final = recorder.final()
    assert (final.status, final.reason) == ("failed", "ServiceNotReady")
    assert f"port {op.placement.ports[0]} did not accept connections within 0.3 s" in final.message
    assert "waiting" in final.message
    assert not alive(read_pid(workdir / "service.pid"))


def test_a_service_that_exits_before_its_port_is_ready_fails(executor: LocalExecutor) -> None:
    recorder = UpdateRecorder()
    op = make_op(executor, container("sh", "-c", "echo cannot bind >&2; exit 2"), kind="service", ports=1)
    executor.submit(op, recorder)
    final = recorder.final()
    assert (final.status, final.reason) == ("failed", "ExitCode")
    assert final.message.startswith("exit code 2 before port")
    assert "cannot bind" in final.message
    assert "running" not in recorder.statuses
