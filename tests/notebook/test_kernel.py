"""polynb in a real ipykernel (jupyter_client): live widget updates during a busy cell under the rate cap,
output isolation, the comm ``open`` when TensorBoard runs, and re-attaching after the kernel is killed."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.kernelkit import Kernel, Received, wait_until_no_process_mentions

from polynb.store import Store

MAX_RATE = 10.0
pytestmark = pytest.mark.slow


@pytest.fixture
def kernel(tmp_path: Path, home: Path) -> Iterator[Kernel]:
    k = Kernel(tmp_path, home)
    try:
        yield k
    finally:
        k.close()


def in_window(messages: list[Received], start: float, end: float) -> list[Received]:
    return [m for m in messages if start < m.at < end]


def test_widget_updates_arrive_during_a_busy_cell_and_stay_under_the_cap(kernel: Kernel) -> None:
    kernel.execute(
        "%load_ext polynb\nfrom polynb.notebook.session import get_session\nfrom support.fakes import ChattyExecutor\n"
        "get_session().config.executors['chatty'] = ChattyExecutor(rate=1000, duration=4.0)"
    )
    submit = kernel.execute(
        "%%polyaxon_dag chatter --executor chatty\noperations:\n"
        + "".join(f"  - {{name: op{i}, run: {{kind: job, container: {{image: x, command: [x]}}}}}}\n" for i in range(3))
    )
    assert any("chatter" in text for text in kernel.text(submit))  # the widget is shown at once
    busy = kernel.execute("import time\ntime.sleep(3)")
    updates = in_window(kernel.comm_messages(method="update"), busy.busy_at, busy.idle_at)
    assert updates, "no widget update reached the front end while the cell was busy"
    window = busy.idle_at - busy.busy_at
    per_widget = Counter(m.content["comm_id"] for m in updates)
    # The cap as a count bound over the measured window (+2: a refresh may fall on each edge).
    assert max(per_widget.values()) <= MAX_RATE * window + 2, (per_widget, window)
    assert busy.outputs == []  # nothing from the background landed in the busy cell
    done = kernel.execute("%polyaxon wait chatter")
    assert "polynb run chatter (dag): succeeded" in "".join(kernel.text(done))


def test_background_activity_never_prints_into_another_cell(kernel: Kernel) -> None:
    kernel.execute("%load_ext polynb")
    kernel.execute(
        "%%polyaxon_dag noisy\noperations:\n"
        "  - name: fails\n"
        "    run: {kind: job, container: {image: x, command: [sh, -c, 'echo out; echo err >&2; exit 3']}}\n"
        "  - {name: after, dependencies: [fails], run: {kind: job, container: {image: x, command: ['true']}}}\n"
    )
    # A warning logged on the UI thread (stopping a run that does not exist) must not print anywhere.
    kernel.execute("from polynb.notebook.session import get_session\nget_session().request_stop('0' * 32)")
    busy = kernel.execute("import time\ntime.sleep(2)")
    assert busy.outputs == []
    done = kernel.execute("%polyaxon wait noisy")
    assert kernel.text(done) == [
        "polynb run noisy (dag): failed\n  fails  job      failed\n  after  job      upstream_failed\n"
    ]
    streams = [m for m in kernel.messages if m.type == "stream"]
    assert all(m.parent_id == done.msg_id for m in streams), [m.content for m in streams]


FAKE_TENSORBOARD = """\
%%polyaxon_component tensorboard-fake
version: 1.1
kind: component
run:
  kind: service
  ports: [6006]
  container:
    image: x
    command: [python, -m, http.server, "{{ globals.ports[0] }}", --bind, 127.0.0.1]
"""


def open_message(kernel: Kernel) -> Received:
    return kernel.wait_for(lambda m: m.type == "comm_msg" and m.content["data"].get("type") == "open")


def test_cell_errors_reach_the_lab_as_diagnostics_for_that_cell(kernel: Kernel) -> None:
    kernel.execute("%load_ext polynb")
    bad = kernel.execute("%%polyaxon_dag d\noperations:\n  - name: a\n    hubRef: nope\n", allow_errors=True)
    assert bad.reply["ename"] == "UsageError"
    message = kernel.wait_for(lambda m: m.type == "comm_msg" and m.content["data"].get("type") == "diagnostics")
    data = message.content["data"]
    assert data["cell_id"] == bad.cell_id and data["magic"] == "polyaxon_dag"  # the request's metadata.cellId
    assert [(e["line"], e["column"]) for e in data["errors"]] == [(4, 13)]
    assert "hubRef `nope`" in data["errors"][0]["message"]


def test_the_comm_opens_a_tensorboard_tab_when_the_service_runs(kernel: Kernel) -> None:
    kernel.execute("%load_ext polynb")
    kernel.execute(FAKE_TENSORBOARD)
    kernel.execute(
        "%%polyaxon_dag watch\noperations:\n"
        "  - name: train\n    run: {kind: job, container: {image: x, command: [sleep, '2']}}\n"
        "  - name: tensorboard\n    hubRef: tensorboard-fake\n    termination: {timeout: 60}\n"
        "    events: [{ref: ops.train, kinds: [run_status_running]}]\n"
    )
    opened = kernel.wait_for(lambda m: m.type == "comm_open" and m.content["target_name"] == "polynb")
    assert opened.content["data"]["type"] == "hello"
    message = open_message(kernel)
    data = message.content["data"]
    assert message.content["comm_id"] == opened.content["comm_id"]
    port = data["direct_url"].rsplit(":", 1)[1].strip("/")
    assert data["url"] == f"/proxy/{port}/"  # jupyter-server-proxy is installed: same-origin link
    assert data["reuse_key"] == f"tensorboard:{data['run_uuid']}" and data["kind"] == "tensorboard"
    assert data["title"] == "TensorBoard · watch"
    kernel.execute("%polyaxon stop tensorboard")
    kernel.execute("%polyaxon wait watch --services")
    assert len(kernel.comm_messages(kind="open")) == 1  # once per service run


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="TensorBoard is not installed")
def test_the_real_hub_tensorboard_opens_over_a_finished_run(kernel: Kernel) -> None:
    kernel.execute("%load_ext polynb")
    kernel.execute(
        "import polynb\nh = polynb.run('version: 1.1\\nkind: component\\nname: writer\\nrun: {kind: job, container: "
        '{image: x, command: [python, -c, "from polynb.examples.tbwriter import ScalarWriter; '
        "from polynb.tracking import tensorboard_path; w = ScalarWriter(tensorboard_path()); "
        "w.add_scalar(\\'loss\\', 1.0, 1); w.close()\"]}}\\n')\nh.wait()"
    )
    kernel.execute("tb = %polyaxon tensorboard writer")
    data = open_message(kernel).content["data"]
    assert data["kind"] == "tensorboard" and "/proxy/" in data["url"]
    kernel.execute("tb.stop()")


CHILD_DAG = """\
%%polyaxon_dag survive
operations:
  - {{name: a, run: {{kind: job, container: {{image: x, command: [sh, -c, 'echo a >> {log}']}}}}}}
  - name: b
    dependencies: [a]
    run:
      kind: job
      container: {{image: x, command: [sh, -c, 'echo b >> {log}; while [ ! -e {release} ]; do sleep 0.05; done']}}
  - {{name: c, dependencies: [b], run: {{kind: job, container: {{image: x, command: [sh, -c, 'echo c >> {log}']}}}}}}
"""


@pytest.fixture
def stop_survive(tmp_path: Path, home: Path) -> Iterator[None]:
    """Teardown: ``polynb stop survive`` (a failure before the release leaves ``b`` blocked, its shim alive with
    no kernel to stop it), then no process of this test (a shim or an op: their arguments name ``tmp_path``)
    may be left."""
    yield
    stop = [sys.executable, "-m", "polynb.cli", "stop", "--grace", "2", "survive"]
    subprocess.run(stop, capture_output=True, check=False, timeout=120)  # "nothing to stop" once it succeeded
    assert wait_until_no_process_mentions(str(tmp_path)) == []


@pytest.mark.usefixtures("stop_survive")
def test_a_killed_kernel_s_dag_is_finished_by_the_next_kernel_with_no_double_submission(
    tmp_path: Path, home: Path
) -> None:
    log, release = tmp_path / "ran.txt", tmp_path / "release"
    first = Kernel(tmp_path, home)
    try:
        first.execute("%load_ext polynb")
        first.execute(textwrap.dedent(CHILD_DAG).format(log=log, release=release))
        first.execute(
            "from polynb.notebook.session import get_session\nimport time\ns = get_session()\n"
            "deadline = time.monotonic() + 60\n"
            "while s.store.find_by_prefix('b').status.value != 'running' and time.monotonic() < deadline:\n"
            "    time.sleep(0.05)"
        )
    finally:
        first.kill()
    second = Kernel(tmp_path, home)
    try:
        second.execute("%load_ext polynb")  # re-attaches: the engine adopts the dead kernel's runs
        shown = second.execute("h = %polyaxon status survive\nh.widget")
        assert "survive" in "".join(second.text(shown))
        release.touch()
        done = second.execute("%polyaxon wait survive")
        assert "".join(second.text(done)).splitlines() == [
            "polynb run survive (dag): succeeded",
            "  a  job      succeeded",
            "  b  job      succeeded",
            "  c  job      succeeded",
        ]
    finally:
        second.close()
    assert sorted(log.read_text().split()) == ["a", "b", "c"]  # each op ran exactly once
    with Store(home / "polynb.db") as store:
        dag = store.find_by_prefix("survive")
        queued = Counter(e.run_uuid for e in store.events(dag_uuid=dag.uuid) if e.kind == "run_status_queued")
        assert sorted(queued.values()) == [1, 1, 1]  # no op was claimed twice
        kinds = [e.kind for e in store.events(run_uuid=dag.uuid)]
        assert kinds.count("run_status_succeeded") == 1


ADOPTED_DAG = """\
%%polyaxon_dag adopted
operations:
  - name: train
    run: {{kind: job, container: {{image: x, command: [sh, -c, 'while [ ! -e {release} ]; do sleep 0.05; done']}}}}
  - name: tensorboard
    hubRef: tensorboard-fake
    termination: {{timeout: 120}}
    events: [{{ref: ops.train, kinds: [run_status_succeeded]}}]
"""


def test_a_restarted_kernel_follows_the_runs_it_adopted_as_its_own(kernel: Kernel, tmp_path: Path) -> None:
    release = tmp_path / "release"
    kernel.execute("%load_ext polynb\n%config PolynbMagics.keep_runs_on_exit = True")
    kernel.execute(FAKE_TENSORBOARD)
    kernel.execute(ADOPTED_DAG.format(release=release))
    kernel.restart()  # while `train` runs: the kernel releases the DAG at its exit
    try:
        kernel.execute("%load_ext polynb")  # adopts it
        release.touch()
        done = kernel.execute("%polyaxon wait")  # this kernel's last run: the one it goes on with
        assert "".join(kernel.text(done)).splitlines()[0] == "polynb run adopted (dag): succeeded"
        # The TensorBoard that starts now opens in a Lab tab, as one of a run started in this kernel does,
        # and the Lab's runs panel lists the run.
        assert open_message(kernel).content["data"]["title"] == "TensorBoard · adopted"
        listed = kernel.execute("from polynb.notebook.session import get_session\n"
                                "[r['name'] for r in get_session().runs_summary()]")  # fmt: skip
        assert kernel.text(listed) == ["['adopted']"]
    finally:
        release.touch()
        kernel.execute("%polyaxon stop adopted\n%polyaxon wait adopted --services", allow_errors=True)
    assert wait_until_no_process_mentions(str(tmp_path)) == []  # no op, no shim left


@pytest.mark.usefixtures("stop_survive")
def test_a_kernel_waiting_on_a_dag_whose_kernel_died_goes_on_with_it(tmp_path: Path, home: Path) -> None:
    log, release = tmp_path / "ran.txt", tmp_path / "release"
    first, second = Kernel(tmp_path, home), Kernel(tmp_path, home)
    killed = False
    try:
        first.execute("%load_ext polynb")
        first.execute(textwrap.dedent(CHILD_DAG).format(log=log, release=release))
        second.execute("%load_ext polynb")  # its engine starts (the store has a run going): the first one's
        first.execute(
            "from polynb.notebook.session import get_session\nimport time\ns = get_session()\n"
            "deadline = time.monotonic() + 60\n"
            "while s.store.find_by_prefix('b').status.value != 'running' and time.monotonic() < deadline:\n"
            "    time.sleep(0.05)"
        )
        first.kill()  # the DAG's engine is gone; the second kernel's was started before
        killed = True
        release.touch()
        done = second.execute("%polyaxon wait survive --timeout 60", allow_errors=True)  # a deadlock guard
        assert "".join(second.text(done)).splitlines() == [
            "polynb run survive (dag): succeeded",
            "  a  job      succeeded",
            "  b  job      succeeded",
            "  c  job      succeeded",
        ]
    finally:
        if not killed:
            first.kill()
        second.close()
    assert sorted(log.read_text().split()) == ["a", "b", "c"]  # each op ran exactly once


@pytest.mark.usefixtures("stop_survive")
def test_stopping_an_op_of_a_dag_whose_kernel_died_ends_the_dag(tmp_path: Path, home: Path) -> None:
    log, release = tmp_path / "ran.txt", tmp_path / "release"
    first, second = Kernel(tmp_path, home), Kernel(tmp_path, home)
    killed = False
    try:
        first.execute("%load_ext polynb")
        first.execute(textwrap.dedent(CHILD_DAG).format(log=log, release=release))
        second.execute("%load_ext polynb")  # its engine starts while the first kernel's runs the DAG
        first.execute(
            "from polynb.notebook.session import get_session\nimport time\ns = get_session()\n"
            "deadline = time.monotonic() + 60\n"
            "while s.store.find_by_prefix('b').status.value != 'running' and time.monotonic() < deadline:\n"
            "    time.sleep(0.05)"
        )
        first.kill()
        killed = True
        second.execute("%polyaxon stop b")
        # Its DAG ends (nothing else would end it: no engine runs it), as if its own kernel had stopped it.
        ended = second.execute(
            "from polynb.notebook.session import get_session\nimport time\ns = get_session()\n"
            "deadline = time.monotonic() + 60\n"  # a deadlock guard
            "while not s.store.find_by_prefix('survive').is_final and time.monotonic() < deadline:\n"
            "    time.sleep(0.05)\nprint(s.handle(s.store.find_by_prefix('survive').uuid).text())"
        )
        assert "".join(second.text(ended)).splitlines() == [
            "polynb run survive (dag): stopped",
            "  a  job      succeeded",
            "  b  job      stopped",
            "  c  job      upstream_failed",
        ]
    finally:
        release.touch()
        if not killed:
            first.kill()
        second.close()


STUBBORN_DAG = """\
%%polyaxon_dag stubborn
operations:
  - name: hold
    run:
      kind: job
      container: {{image: x, command: [sh, -c, "trap '' TERM; while true; do sleep 0.1; done # {mark}"]}}
"""


def test_a_kernel_shut_down_by_jupyter_records_the_ops_it_stopped(tmp_path: Path, home: Path) -> None:
    """Jupyter asks a kernel to shut down, SIGTERMs it 2.5 s later and SIGKILLs it at 5 s: an op that ignores
    SIGTERM takes the whole grace (3 s) before its shim kills it, and the kernel records its end before it goes."""
    mark = tmp_path.name
    kernel = Kernel(tmp_path, home)
    try:
        kernel.execute("%load_ext polynb")
        kernel.execute(textwrap.dedent(STUBBORN_DAG).format(mark=mark))
        kernel.execute(
            "from polynb.notebook.session import get_session\nimport time\ns = get_session()\n"
            "deadline = time.monotonic() + 60\n"
            "while s.store.find_by_prefix('hold').status.value != 'running' and time.monotonic() < deadline:\n"
            "    time.sleep(0.05)"
        )
    finally:
        kernel.close()  # shutdown_kernel(now=False), as JupyterLab's "Shut Down Kernel"
    with Store(home / "polynb.db") as store:
        hold, dag = store.find_by_prefix("hold"), store.find_by_prefix("stubborn")
        assert (hold.status.value, dag.status.value) == ("stopped", "stopped"), (hold.reason, dag.reason)
    assert wait_until_no_process_mentions(mark) == []
