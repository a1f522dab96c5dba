"""Events from a notebook: an op's checkpoints start its evaluation, a cell's ``polynb.emit`` starts an op
awaiting ``ref: dag``, an approval from the run handle or the widget's Approve button."""

from __future__ import annotations

from typing import Any

from IPython.core.interactiveshell import InteractiveShell
from support.execkit import wait_until

from polynb.notebook.handle import RunHandle

GUARD = 60.0
"""Deadlock guard for waits (never a timing assertion)."""


def cell(ip: InteractiveShell, text: str) -> Any:
    result = ip.run_cell(text)
    if result.error_in_exec is not None:
        raise result.error_in_exec
    return result.result


def test_an_evaluation_starts_on_a_checkpoint_a_python_step_logs(ip: InteractiveShell) -> None:
    cell(ip, "%%polyaxon_python train\nfrom polynb import tracking\nopen('ckpt-1.pt', 'w').write('weights')\n"
             "tracking.log_artifact('ckpt-1.pt', kind='model')\n")  # fmt: skip
    cell(ip, "%%polyaxon_python evaluate --input ckpt:str --output size:int\nsize = len(open(ckpt).read())\n")
    handle: RunHandle = cell(
        ip,
        "%%polyaxon_dag pipe\noperations:\n  - {name: train, hubRef: train}\n"
        "  - name: evaluate\n    hubRef: evaluate\n"
        "    events: [{ref: ops.train, kinds: [run_new_artifacts]}]\n"
        "    params: {ckpt: {ref: ops.train, value: artifacts.latest}}\n",
    )
    assert handle.wait(timeout=GUARD) == "succeeded"
    assert handle.outputs["evaluate"] == {"size": 7}
    assert [e.kind for e in handle.events if e.kind == "run_new_artifacts"] == ["run_new_artifacts"]
    # The widget's event log shows it with its payload, beside the status changes (the widget is redrawn on
    # the UI thread, at most max_rate times a second: the run may end before its last redraw).
    wait_until(lambda: handle.widget.snapshot.status == "succeeded", "the widget's last redraw")
    (line,) = [line for line in handle.widget.snapshot.log if line.status == "run_new_artifacts"]
    assert line.name == "train" and line.message is not None and "name=ckpt-1.pt" in line.message
    # ... and the timeline marks on train's bar the moment evaluate's trigger fired.
    train = next(op for op in handle.widget.snapshot.ops if op.name == "train")
    assert [m.label for m in train.markers if m.kind == "event"] == ["→ evaluate"]


def test_a_cell_calling_emit_starts_the_op_awaiting_a_custom_event(ip: InteractiveShell) -> None:
    cell(ip, "%%polyaxon_python hold\nimport os, time\nwhile not os.path.exists('released'): time.sleep(0.02)\n")
    cell(ip, "%%polyaxon_python ship --input version:int --output shipped:int\nshipped = version\n")
    handle: RunHandle = cell(
        ip,
        "%%polyaxon_dag release\noperations:\n  - {name: hold, hubRef: hold}\n"
        "  - name: ship\n    hubRef: ship\n"
        "    events: [{ref: dag, kinds: [project_custom_event]}]\n"
        "    params: {version: {value: 1}}\n",
    )
    seqs = cell(ip, "import polynb\npolynb.emit('release', version=2)")
    assert len(seqs) == 1
    cell(ip, "open('released', 'w').close()")
    assert handle.wait(timeout=GUARD) == "succeeded"
    assert handle.ops["ship"].status == "succeeded"
    (event,) = [e for e in handle.events if e.kind == "project_custom_event"]
    assert event.payload == {"name": "release", "version": 2}


def test_the_handle_and_the_widgets_approve_button_start_waiting_ops(ip: InteractiveShell) -> None:
    cell(ip, "%%polyaxon_python noop\npass\n")
    handle: RunHandle = cell(
        ip,
        "%%polyaxon_dag gated\noperations:\n"
        "  - {name: first, hubRef: noop, isApproved: false}\n"
        "  - {name: second, hubRef: noop, isApproved: false, dependencies: [first]}\n",
    )
    handle.approve("first", actor="alice")
    widget = handle.widget
    widget.target.value = handle.ops["second"].uuid
    widget.approve_button.click()  # handled on the UI thread
    assert handle.wait(timeout=GUARD) == "succeeded"
    approvals = [e for e in handle.events if e.kind == "run_approved_actor"]
    assert [e.payload.get("actor") for e in approvals] == ["alice", None]


def test_polyaxon_watch_runs_a_pipeline_per_new_file_in_a_folder(ip: InteractiveShell, tmp_path: Any) -> None:
    import json
    import sys

    folder = tmp_path / "incoming"
    folder.mkdir()
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "config.yaml").write_text(
        f"connections:\n  - {{name: incoming, kind: host_path, schema: {{hostPath: {json.dumps(str(folder))}}}}}\n"
    )
    code = "import sys; from polynb.tracking import log_outputs; log_outputs(rows=len(open(sys.argv[1]).readlines()))"
    (tmp_path / "ingest.yaml").write_text(
        "kind: component\nname: ingest\n"
        "events: [{ref: connections.incoming, kinds: [connection_dataset_version]}]\n"
        "inputs: [{name: path, type: str}]\n"
        f"run: {{kind: job, container: {{command: [{json.dumps(sys.executable)}, -c, {json.dumps(code)}, "
        '"{{ path }}"]}}\n'
    )
    watch = cell(ip, "%polyaxon watch -f ingest.yaml --max-runs 1")
    live = watch.widget()  # the live list a front end with widgets shows
    assert "no event yet" in live.value
    bundle = watch._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and bundle["text/plain"] == watch.text()
    import time

    deadline = time.monotonic() + GUARD
    while not watch.events:  # the baseline (an empty folder) is taken: armed
        assert time.monotonic() < deadline
        time.sleep(0.01)
    (folder / "day-1.csv").write_text("a\nb\nc\n")
    assert watch.wait(timeout=GUARD)
    (uuid,) = watch.runs
    from polynb.notebook.session import get_session

    assert get_session().wait(uuid, timeout=GUARD) == "succeeded"
    assert get_session().store.get_run(uuid).outputs == {"rows": 3}
    assert "incoming day-1.csv submitted -> ingest succeeded" in watch.text()
    # The live list followed the event and its run to the end, without being displayed again.
    wait_until(lambda: "day-1.csv" in live.value and "succeeded" in live.value, "the live list's last redraw")
    assert "relative_path=day-1.csv" in live.value and "ingest" in live.value
    watch.stop()
    wait_until(lambda: "stopped" in live.value, "the live list says the watch stopped")


def test_approve_and_emit_magics(ip: InteractiveShell) -> None:
    cell(ip, "%%polyaxon_python noop\npass\n")
    handle: RunHandle = cell(
        ip,
        "%%polyaxon_dag gated2\noperations:\n"
        "  - {name: gate, hubRef: noop, isApproved: false}\n"
        "  - name: after\n    hubRef: noop\n    events: [{ref: dag, kinds: [project_custom_event]}]\n",
    )
    cell(ip, f"%polyaxon approve {handle.ops['gate'].uuid}")
    cell(ip, "%polyaxon emit go n=1")
    assert handle.wait(timeout=GUARD) == "succeeded"
    assert {op.name: op.status for op in handle.ops.values()} == {"gate": "succeeded", "after": "succeeded"}
