"""The ``polynb`` comm bridge (with fake comms) and the proxy-aware service links."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from polynb.lifecycle import Status
from polynb.notebook.comm import PROTOCOL, LabBridge
from polynb.notebook.links import links_for, normalize_base_url, proxied_url, service_link
from polynb.notebook.model import Link
from polynb.store import RunRecord

UUID = "ab" * 16


class FakeComm:
    def __init__(self, comm_id: str = "c1", **kwargs: Any) -> None:
        self.comm_id = comm_id
        self.open_data: dict[str, Any] = kwargs.get("data") or {}  # what the kernel opened it with
        self.sent: list[dict[str, Any]] = []
        self.msg_cb: Any = None
        self.close_cb: Any = None

    def send(self, data: Any = None, metadata: Any = None, buffers: Any = None) -> None:
        self.sent.append(data)

    def on_msg(self, callback: Any) -> None:
        self.msg_cb = callback

    def on_close(self, callback: Any) -> None:
        self.close_cb = callback

    def receive(self, data: dict[str, Any]) -> None:
        self.msg_cb({"content": {"data": data}})


def bridge(**kwargs: Any) -> tuple[LabBridge, list[FakeComm], list[str]]:
    made: list[FakeComm] = []
    stopped: list[str] = []

    def create(**kw: Any) -> FakeComm:
        made.append(FakeComm(f"c{len(made)}", **kw))
        return made[-1]

    b = LabBridge(on_stop=stopped.append, runs_snapshot=lambda: [{"uuid": UUID}], create_comm=create, **kwargs)
    return b, made, stopped


def test_kernel_opens_the_comm_once_with_its_hello() -> None:
    b, made, _ = bridge()
    b.ensure_open()
    b.ensure_open()
    assert len(made) == 1
    assert made[0].open_data["type"] == "hello" and made[0].open_data["protocol"] == PROTOCOL


def test_the_comm_is_opened_again_once_a_front_end_without_the_extension_closed_it() -> None:
    b, made, _ = bridge()
    b.ensure_open()
    made[0].close_cb({})  # classic front end: no `polynb` target, the comm is closed at once
    b.ensure_open()  # the next run, now in a page with the extension
    assert len(made) == 2
    assert b.connected


def test_logs_requests_are_answered_with_the_runs_log_tail() -> None:
    lines = [f"line {i}" for i in range(2500)]
    b, made, _ = bridge(read_logs=lambda uuid: lines if uuid == UUID else [])
    b.ensure_open()
    comm = made[0]
    assert "logs" in comm.open_data["features"]
    comm.receive({"type": "logs_request", "uuid": UUID})
    reply = comm.sent[-1]
    assert reply["type"] == "logs" and reply["uuid"] == UUID and reply["truncated"] is True
    assert reply["text"].splitlines() == lines[-2000:]


def test_a_logs_request_that_fails_is_answered_with_an_error() -> None:
    def boom(uuid: str) -> list[str]:
        raise LookupError(f"no run {uuid}")

    b, made, _ = bridge(read_logs=boom)
    b.ensure_open()
    made[0].receive({"type": "logs_request", "uuid": "x"})
    assert made[0].sent[-1] == {"type": "error", "request": "logs_request", "message": "no run x"}


def test_lab_hello_state_request_stop_and_opened() -> None:
    b, made, stopped = bridge()
    b.ensure_open()
    comm = made[0]
    comm.receive({"type": "hello", "protocol": PROTOCOL, "features": ["open"], "base_url": "/user/ada/"})
    assert b.features == {"open"} and b.base_url == "/user/ada/"
    comm.receive({"type": "state_request"})
    assert comm.sent[-1] == {"type": "runs", "runs": [{"uuid": UUID}]}
    comm.receive({"type": "stop", "uuid": UUID})
    assert stopped == [UUID]
    comm.receive({"type": "opened", "reuse_key": "tensorboard:x", "where": "lab-tab"})
    assert "tensorboard:x" in b.opened
    comm.receive({"type": "something-new"})  # ignored


def test_a_failed_stop_is_answered_with_an_error_message() -> None:
    def refuse(uuid: str) -> None:
        raise LookupError(f"no run {uuid}")

    b = LabBridge(on_stop=refuse, runs_snapshot=list)
    comm = FakeComm()
    b._accept(comm, {"content": {"data": {"type": "stop", "uuid": "x"}}})  # a lab-opened comm
    assert comm.sent == [{"type": "error", "request": "stop", "message": "no run x"}]


def test_open_is_sent_once_per_reuse_key_on_every_open_comm() -> None:
    b, made, _ = bridge()
    b.ensure_open()
    lab_opened = FakeComm("lab")
    b._accept(lab_opened, {"content": {"data": {}}})
    link = Link("TensorBoard · x", "/proxy/6006/", "http://127.0.0.1:6006/", UUID, "tensorboard")
    assert b.open_page(link)
    assert not b.open_page(link)
    for comm in (made[0], lab_opened):
        (message,) = [m for m in comm.sent if m["type"] == "open"]
        assert message == {"type": "open", "reuse_key": f"tensorboard:{UUID}", "title": "TensorBoard · x",
                           "url": "/proxy/6006/", "direct_url": "http://127.0.0.1:6006/", "run_uuid": UUID,
                           "kind": "tensorboard"}  # fmt: skip


def test_closed_comms_get_nothing_and_updates_need_a_comm() -> None:
    b, made, _ = bridge()
    b.run_update({"uuid": UUID})  # nothing open yet: dropped
    b.ensure_open()
    made[0].close_cb({})
    assert not b.connected
    b.run_update({"uuid": UUID})
    assert made[0].sent == []


def test_diagnostics_need_a_cell_id() -> None:
    b, made, _ = bridge()
    b.diagnostics(None, "polyaxon_dag", [{"line": 2}])
    assert made == []
    b.diagnostics("cell-1", "polyaxon_dag", [{"line": 2}])
    expected = {"type": "diagnostics", "cell_id": "cell-1", "magic": "polyaxon_dag", "errors": [{"line": 2}]}
    assert made[0].sent == [expected]


@pytest.mark.parametrize(
    ("url", "base", "expected"),
    [
        ("http://127.0.0.1:6006/", "/", "/proxy/6006/"),
        ("http://localhost:8080/x/", "/user/ada", "/user/ada/proxy/8080/x/"),
        ("http://10.0.0.5:6006/", "/", None),  # not on the proxy's allow list
        ("http://127.0.0.1/", "/", None),  # no port
    ],
)
def test_proxied_url(url: str, base: str, expected: str | None) -> None:
    assert proxied_url(url, base) == expected


def test_normalize_base_url() -> None:
    assert normalize_base_url("") == "/" and normalize_base_url("user/x") == "/user/x/"


def service(name: str, status: Status, url: str | None, command: list[str]) -> RunRecord:
    now = datetime.now(UTC)
    return RunRecord(UUID, name, "service", status, None, None, None, None, None, {"container": {"command": command}},
                     {}, {}, {}, "local", None, 1, url, now, now, now, None, None, None)  # fmt: skip


def test_tensorboard_links_proxied_or_direct() -> None:
    tb = service("tb", Status.RUNNING, "http://127.0.0.1:6006/", ["tensorboard"])
    (link,) = links_for([tb], "pipe", base_url="/", mode="always")
    assert (link.url, link.direct_url, link.kind, link.title) == (
        "/proxy/6006/", "http://127.0.0.1:6006/", "tensorboard", "TensorBoard · pipe"
    )  # fmt: skip
    direct = service_link(tb, "x", base_url="/", mode="never")
    assert direct is not None and direct.url == "http://127.0.0.1:6006/"
    assert links_for([replace(tb, status=Status.STOPPED)], "pipe", base_url="/", mode="always") == []
    other = service("web", Status.RUNNING, "http://127.0.0.1:7000/", ["python", "-m", "http.server"])
    (plain,) = links_for([other], "pipe", base_url="/", mode="always")
    assert plain.kind == "service"


def test_approve_and_invalidate_from_the_lab_reach_the_session_and_a_failure_comes_back_as_an_error() -> None:
    asked: list[tuple[str, bool]] = []

    def approve(uuid: str, approved: bool, on_error: Any) -> None:
        asked.append((uuid, approved))
        if uuid == "gone":
            on_error("no run gone")

    b = LabBridge(on_stop=lambda uuid: None, runs_snapshot=list, on_approve=approve)
    comm = FakeComm()
    b._accept(comm, {"content": {"data": {"type": "hello", "protocol": PROTOCOL}}})
    comm.receive({"type": "approve", "uuid": UUID})
    comm.receive({"type": "approve", "uuid": UUID, "approved": False})
    comm.receive({"type": "approve", "uuid": "gone"})
    assert asked == [(UUID, True), (UUID, False), ("gone", True)]
    assert comm.sent[-1] == {"type": "error", "request": "approve", "message": "no run gone"}
    assert "approve" in comm.sent[0]["features"]
