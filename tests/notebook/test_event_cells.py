"""Events from a notebook: an op's checkpoints start its evaluation, a cell's ``polynb.emit`` starts an op
awaiting ``ref: dag``, an approval from the run handle or the widget's Approve button."""

from __future__ import annotations

from typing import Any

from IPython.core.interactiveshell import InteractiveShell

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
