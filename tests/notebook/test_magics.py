"""The magics in an in-process IPython shell: registration, errors at the cell's lines, DAG runs, steps."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from polynb.notebook.handle import RunHandle
from polynb.notebook.session import KernelSession

GUARD = 60.0
"""Deadlock guard for waits (never a timing assertion)."""

HELLO = """%%polyaxon_component hello
version: 1.1
kind: component
inputs: [{name: who, type: str}]
outputs: [{name: n, type: int}]
run:
  kind: job
  container:
    image: python:3.11
    command: [python, -c, "import sys; from polynb.tracking import log_outputs; log_outputs(n=len(sys.argv[1]))"]
    args: ["{{ who }}"]
"""


def cell(ip: InteractiveShell, text: str) -> Any:
    result = ip.run_cell(text)
    if result.error_in_exec is not None:
        raise result.error_in_exec
    return result.result


def usage_error(ip: InteractiveShell, text: str, capsys: pytest.CaptureFixture[str]) -> str:
    result = ip.run_cell(text)
    assert isinstance(result.error_in_exec, UsageError)
    assert type(result.error_in_exec) is UsageError  # exactly: IPython shows it without a traceback
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return str(result.error_in_exec)


def test_component_cell_registers_it_for_hubref(ip: InteractiveShell, session: KernelSession) -> None:
    import polynb

    cell(ip, HELLO)
    assert "hello" in session.registry.registered()
    single = polynb.run("version: 1.1\nkind: operation\nhubRef: hello\nparams: {who: {value: ada}}\n")
    assert single.wait(timeout=GUARD) == "succeeded"
    assert single.outputs == {"hello": {"n": 3}}  # the run is named as the cell named the component
    handle = cell(ip, "%%polyaxon_dag greet -P who=ada\ninputs: [{name: who, type: str}]\noperations:\n"
                      "  - {name: hi, hubRef: hello, params: {who: {ref: dag, value: inputs.who}}}\n")  # fmt: skip
    assert isinstance(handle, RunHandle)
    assert handle.wait(timeout=GUARD) == "succeeded"
    assert handle.outputs == {"hi": {"n": 3}}


def test_yaml_error_points_at_the_cells_own_line_and_column(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "%%polyaxon_component broken\nversion: 1.1\nkind: component\nrun:\n  kind: jobb\n"
    message = usage_error(ip, text, capsys)
    # `kind: jobb` is line 5 of the cell (the %% line is line 1), its value at column 9.
    assert "<cell polyaxon_component broken>:5:9: run.kind" in message
    # A YAML syntax error names the line its construct started on: the cell's line too (the `[` on line 5).
    text = "%%polyaxon_component y2\nversion: 1.1\nkind: component\nrun:\n  command: [python, -c\n"
    message = usage_error(ip, text, capsys)
    assert "(the construct started at line 5)" in message, message
    text = "%%polyaxon_component dup\nversion: 1.1\nkind: component\nversion: 1.1\n"
    assert "first defined at line 2," in usage_error(ip, text, capsys)


def test_dag_body_errors_are_positioned_and_named_as_written(
    ip: InteractiveShell, session: KernelSession, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "%%polyaxon_dag d\noperations:\n  - name: a\n    hubRef: nope\n"
    message = usage_error(ip, text, capsys)
    assert "<cell polyaxon_dag d>:4:13: operations[0].hubRef: hubRef `nope`" in message
    assert not session.started  # nothing was submitted


def test_a_dag_cell_reports_every_problem_at_once_as_check_does(
    ip: InteractiveShell, session: KernelSession, capsys: pytest.CaptureFixture[str]
) -> None:
    job = "component: {run: {kind: job, container: {command: [echo]}}}"
    text = (
        f"%%polyaxon_dag g1\noperations:\n  - name: a\n    {job}\n  - name: b\n    dependencies: [zz]\n"
        f"    events: [{{ref: ops.a, kinds: [run_status_runing]}}]\n    {job}\n  - name: a\n    {job}\n"
    )
    message = usage_error(ip, text, capsys)
    assert "run_status_runing" in message  # the schema error
    assert "`zz` is not an op of this DAG" in message  # the graph's, found although the schema failed
    assert "several ops named `a`" in message and "(3 problems)" in message
    assert not session.started


def test_unknown_event_kind_is_rejected_before_anything_runs(
    ip: InteractiveShell, session: KernelSession, capsys: pytest.CaptureFixture[str]
) -> None:
    cell(ip, HELLO)
    text = (
        "%%polyaxon_dag d -P who=x\ninputs: [{name: who, type: str}]\noperations:\n"
        "  - {name: a, hubRef: hello, params: {who: {ref: dag, value: inputs.who}}}\n"
        "  - name: b\n    hubRef: hello\n    params: {who: {value: y}}\n"
        "    events: [{ref: ops.a, kinds: [run_status_runing]}]\n"
    )
    message = usage_error(ip, text, capsys)
    assert "<cell polyaxon_dag d>:8:35: operations[1].events[0].kinds[0]" in message
    assert "run_status_running" in message  # the suggestion
    assert not session.started


def test_magic_lines_are_quoted_as_a_shell_and_the_cli_quote_them(ip: InteractiveShell, session: KernelSession) -> None:
    cell(ip, HELLO)
    for line, expected in (('-P who="Ada Lovelace"', 12), ("-P 'who=Ada Lovelace'", 12), ("-P who='Ada'", 3)):
        handle = cell(ip, f"%%polyaxon_dag greet {line}\ninputs: [{{name: who, type: str}}]\noperations:\n"
                          "  - {name: hi, hubRef: hello, params: {who: {ref: dag, value: inputs.who}}}\n")  # fmt: skip
        assert handle.wait(timeout=GUARD) == "succeeded", line
        assert handle.outputs == {"hi": {"n": expected}}, line  # the length of what the op got: no quote in it


def test_a_template_that_cannot_render_is_refused_before_anything_runs(
    ip: InteractiveShell, session: KernelSession, capsys: pytest.CaptureFixture[str]
) -> None:
    import polynb
    from polynb.spec.errors import SpecErrors

    body = "operations:\n  - {name: a, run: {kind: job, container: {command: [echo, '{{ 1 + }}']}}}\n"
    message = usage_error(ip, f"%%polyaxon_dag broken\n{body}", capsys)
    assert "<cell polyaxon_dag broken>:3:" in message and "does not parse" in message, message
    text = "version: 1.1\nkind: component\nrun: {kind: job, container: {command: [echo, '{{ x | nofilter }}']}}\n"
    with pytest.raises(SpecErrors, match="no filter named `nofilter`"):
        polynb.run(text)
    # Every problem at once, as `polynb check` says them (a schema error and a template's).
    text = text.replace("kind: job", "kind: jobb")
    with pytest.raises(SpecErrors) as raised:
        polynb.run(text)
    assert len(raised.value.errors) == 2, raised.value.errors
    assert session.store.list_runs() == []  # nothing was submitted


def test_bad_magic_arguments_are_usage_errors(ip: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    usage_error(ip, "%%polyaxon_dag\noperations: []\n", capsys)
    usage_error(ip, "%%polyaxon_python step --input 1x:int\npass\n", capsys)
    usage_error(ip, "%%polyaxon_python step --input x:integer\npass\n", capsys)
    usage_error(ip, "%polyaxon nosuchcommand", capsys)
    assert "No closing quotation" in usage_error(ip, "%%polyaxon_dag d -P 'who=x\noperations: []\n", capsys)


def test_python_syntax_error_points_at_the_cell_line(ip: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    message = usage_error(ip, "%%polyaxon_python step\nx = 1\ny = (\n", capsys)
    assert "<cell polyaxon_python step>:3:" in message


def test_dry_run_shows_the_graph_and_submits_nothing(ip: InteractiveShell, session: KernelSession) -> None:
    cell(ip, HELLO)
    view = cell(
        ip,
        "%%polyaxon_dag d --dry-run\noperations:\n  - {name: a, hubRef: hello, params: {who: {value: x}}}\n"
        "  - name: tb\n    hubRef: tensorboard\n    params: {uuids: {ref: ops.a, value: globals.uuid}}\n"
        "    events: [{ref: ops.a, kinds: [run_status_running]}]\n",
    )
    bundle = view._repr_mimebundle_()
    assert bundle["text/plain"].splitlines() == [
        "DAG d: 2 ops (dry run, nothing submitted)",
        "  a   job",
        "  tb  service  after: a running",
    ]
    assert "<svg" in bundle["text/html"] and "polynb-edge-event" in bundle["text/html"]
    assert not session.started


def test_dry_run_shows_a_sweeping_op_as_the_matrix_run_it_will_be(ip: InteractiveShell, session: KernelSession) -> None:
    cell(ip, HELLO)
    view = cell(
        ip,
        "%%polyaxon_dag d --dry-run\noperations:\n  - name: a\n    hubRef: hello\n"
        "    matrix: {kind: grid, params: {who: {kind: choice, value: [x, y]}}}\n",
    )
    assert view._repr_mimebundle_()["text/plain"].splitlines()[1] == "  a  matrix"
    assert not session.started


def test_save_writes_yaml_the_cli_can_run(ip: InteractiveShell, tmp_path: Path) -> None:
    cell(ip, HELLO.replace("hello\n", "hello --save components/hello.yaml\n", 1))
    from polynb.spec.load import load

    assert load(tmp_path / "components" / "hello.yaml").inputs[0].name == "who"  # type: ignore[index]
    cell(ip, "%%polyaxon_dag d --dry-run --save d.yaml\noperations:\n  - {name: a, hubRef: tensorboard, "
             "params: {uuids: {value: [x]}}}\n")  # fmt: skip
    assert load(tmp_path / "d.yaml").run.kind == "dag"  # type: ignore[union-attr]


def test_python_step_gets_inputs_as_data_and_logs_outputs(ip: InteractiveShell) -> None:
    cell(ip, HELLO)
    # A value that would be code if it were spliced into the source: it must arrive as a plain string.
    cell(ip, "%%polyaxon_python shout --input text:str --input times:int=2 --output loud:str\n"
             "loud = (text.upper() + '!') * times\n")  # fmt: skip
    cell(ip, "%%polyaxon_python dbl --input n:int --output d:int\nd = n * 2\n")
    handle = cell(
        ip,
        "%%polyaxon_dag pipe\noperations:\n"
        "  - {name: hi, hubRef: hello, params: {who: {value: ada}}}\n"
        "  - name: shout\n    hubRef: shout\n"
        '    params: {text: {value: "x\'); import os; os._exit(3) #"}}\n'
        "    dependencies: [hi]\n"
        "  - {name: twice, hubRef: dbl, params: {n: {ref: ops.hi, value: outputs.n}}}\n",
    )
    assert handle.wait(timeout=GUARD) == "succeeded"
    assert handle.outputs["shout"] == {"loud": "X'); IMPORT OS; OS._EXIT(3) #!X'); IMPORT OS; OS._EXIT(3) #!"}
    assert handle.outputs["twice"] == {"d": 6}


def test_python_step_missing_output_fails_the_op_with_a_clear_message(ip: InteractiveShell) -> None:
    cell(ip, "%%polyaxon_python nothing --output result:int\nx = 1\n")
    handle = cell(ip, "%%polyaxon_dag d\noperations:\n  - {name: n, hubRef: nothing}\n")
    assert handle.wait(timeout=GUARD) == "failed"
    lines, _ = handle._session.logs(handle.ops["n"].uuid)
    assert any("declared output result not set" in line for line in lines)


def test_the_submitting_cell_shows_the_run_as_submitted_even_when_it_ended_first(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    """A saved notebook's output of a submitting cell must not depend on how fast the ops were: nbval failed
    on CI when a DAG had ended before the cell's result was drawn. A later cell shows the run as it is."""
    cell(ip, HELLO)
    body = "operations:\n  - {name: hi, hubRef: hello, params: {who: {value: bob}}}\n"
    capsys.readouterr()
    # Numbered cells, as a kernel runs a notebook's (a silent run_cell keeps one number for all).
    submit = f"run = get_ipython().run_cell_magic('polyaxon_dag', 'greet', {body!r})\nrun.wait({GUARD})\nrun"
    assert ip.run_cell(submit, store_history=True).success
    shown = capsys.readouterr().out
    assert "polynb run greet (dag): submitted — live status in the widget\n  hi  job\n" in shown
    assert "succeeded" not in shown
    assert ip.run_cell("run", store_history=True).success
    assert "polynb run greet (dag): succeeded\n  hi  job      succeeded  n=3" in capsys.readouterr().out


def test_polyaxon_line_commands(ip: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    cell(ip, HELLO)
    cell(ip, "%%polyaxon_dag greet\noperations:\n  - {name: hi, hubRef: hello, params: {who: {value: bob}}}\n")
    capsys.readouterr()
    cell(ip, "%polyaxon wait")
    expected = ["polynb run greet (dag): succeeded", "  hi  job      succeeded  n=3"]
    assert capsys.readouterr().out.splitlines() == expected
    cell(ip, "%polyaxon ls")
    out = capsys.readouterr().out
    assert "greet" in out and "succeeded" in out
    cell(ip, "%polyaxon events greet")
    out = capsys.readouterr().out
    assert "hi" in out and "succeeded" in out
    status = cell(ip, "%polyaxon status greet")
    assert isinstance(status, RunHandle) and status.status == "succeeded"
    assert "succeeded" in status.widget._repr_mimebundle_()["text/plain"]
    cell(ip, "%polyaxon stop greet")
    assert "already final" in capsys.readouterr().out


def test_polynb_run_api_from_yaml_text_and_file(ip: InteractiveShell, tmp_path: Path) -> None:
    import polynb

    text = "version: 1.1\nkind: component\nname: one\nrun: {kind: job, container: {image: x, command: ['true']}}\n"
    handle = polynb.run(text)
    assert handle.wait(timeout=GUARD) == "succeeded"
    assert handle.ops["one"].status == "succeeded"
    assert [e.kind for e in handle.events if e.run_uuid == handle.uuid][-1] == "run_status_done"
    (tmp_path / "one.yaml").write_text(text)
    assert polynb.run(tmp_path / "one.yaml").wait(timeout=GUARD) == "succeeded"


def test_stop_a_running_dag_from_the_widget_button(ip: InteractiveShell) -> None:
    handle = cell(ip, "%%polyaxon_dag slow\noperations:\n  - name: s\n    run: {kind: job, container: "
                      "{image: x, command: [sleep, '60']}}\n")  # fmt: skip
    widget = handle.widget
    widget.stop_button.click()  # what a click does: the UI thread stops the run
    assert handle.wait(timeout=GUARD, include_services=True) == "stopped"
    assert handle.ops["s"].status == "stopped"


def test_config_stop_grace_set_once_the_engine_runs_is_the_grace_of_a_stop(ip: InteractiveShell, home: Path) -> None:
    cell(ip, "%%polyaxon_dag first\noperations:\n  - {name: a, run: {kind: job, container: {command: ['true']}}}\n")
    ip.run_line_magic("config", "PolynbMagics.stop_grace = 0.7")  # the engine and its executor exist already
    handle = cell(ip, "%%polyaxon_dag stubborn\noperations:\n  - name: s\n    run: {kind: job, container: "
                      "{command: [sh, -c, 'trap \"\" TERM; sleep 60']}}\n")  # fmt: skip
    deadline = time.monotonic() + GUARD
    while handle.ops["s"].status != "running" and time.monotonic() < deadline:
        time.sleep(0.02)
    handle.stop()
    assert handle.ops["s"].status == "stopped"
    assert (home / "artifacts" / handle.ops["s"].uuid / ".executor" / "stop").read_text() == "0.7\n"


def test_the_default_executor_follows_polynb_executor_like_the_cli(
    session: KernelSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    from polynb.notebook.magics import PolynbMagics

    shell = InteractiveShell.instance()
    try:
        monkeypatch.setenv("POLYNB_EXECUTOR", "kubernetes")
        assert PolynbMagics(shell, session).default_executor == "kubernetes"
        assert session.config.default_executor == "kubernetes"
        monkeypatch.delenv("POLYNB_EXECUTOR")
        assert PolynbMagics(shell, session).default_executor == "local"
    finally:
        InteractiveShell.clear_instance()


NESTED = """%%polyaxon_dag outer
operations:
  - {name: a, hooks: [{hubRef: note}], run: {kind: job, container: {image: x, command: [sh, -c, 'echo from-a']}}}
  - name: nest
    component:
      run:
        kind: dag
        operations:
          - {name: inner, run: {kind: job, container: {image: x, command: [sh, -c, 'echo from-inner']}}}
  - name: sweep
    matrix: {kind: grid, params: {x: {kind: choice, value: [1, 2]}}}
    component:
      inputs: [{name: x, type: int}]
      run: {kind: job, container: {image: x, command: [sh, -c, 'echo from-trial-{{ x }}; echo second line >&2']}}
"""


def test_logs_and_events_of_a_dag_show_every_run_under_it_as_the_cli_does(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    cell(ip, "%%polyaxon_component note\nversion: 1.1\nkind: component\n"
             "run: {kind: job, container: {image: x, command: [sh, -c, 'echo from-hook']}}\n")  # fmt: skip
    handle = cell(ip, NESTED)
    assert handle.wait(timeout=GUARD) == "succeeded"
    capsys.readouterr()
    cell(ip, "%polyaxon logs outer")
    out = capsys.readouterr().out.splitlines()
    # The ops of the nested DAG, the sweep's trials and the hook runs, named as `polynb logs` names them.
    for head, line in [("── a (succeeded)", "from-a"), ("── a-note (succeeded)", "from-hook"),
                       ("── nest/inner (succeeded)", "from-inner"), ("── sweep/sweep-1 (succeeded)", "from-trial-1"),
                       ("── sweep/sweep-2 (succeeded)", "from-trial-2")]:  # fmt: skip
        assert head in out and out[out.index(head) + 1] == line, (head, out)
    cell(ip, "%polyaxon events outer")
    rows = capsys.readouterr().out.splitlines()
    succeeded = {row.split()[2] for row in rows if row.split()[3:4] == ["succeeded"]}
    assert succeeded == {"outer", "a", "a-note", "nest", "nest/inner", "sweep", "sweep/sweep-1", "sweep/sweep-2"}
    assert {e.run_uuid for e in handle.events} >= {op.uuid for op in handle.ops.values()}


def test_config_max_rate_reaches_a_running_session_and_nonsense_values_are_refused(
    ip: InteractiveShell, session: KernelSession, caplog: pytest.LogCaptureFixture
) -> None:
    one_op = "operations:\n  - {name: a, run: {kind: job, container: {command: ['true']}}}\n"
    cell(ip, "%%polyaxon_dag first\n" + one_op)
    cell(ip, "%config PolynbMagics.max_rate = 2")  # the UI thread runs already
    assert session.pump.min_interval == 0.5
    before = (session.config.max_rate, session.config.stop_grace)
    for line in ("PolynbMagics.max_rate = 0", "PolynbMagics.stop_grace = -1"):
        caplog.clear()
        cell(ip, f"%config {line}")  # %config logs what a configurable refuses (the cell shows it, as ERROR:)
        assert any(f"{line.split()[0]} must be" in r.getMessage() for r in caplog.records), line
    assert (session.config.max_rate, session.config.stop_grace) == before  # as they were
    handle = cell(ip, "%%polyaxon_dag second\n" + one_op)
    assert handle.wait(timeout=GUARD) == "succeeded"


def test_a_run_named_in_a_line_magic_is_this_kernel_s_before_another_process_s(
    ip: InteractiveShell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import subprocess
    import sys

    dag = "operations:\n  - {{name: hi, run: {{kind: job, container: {{command: [echo, {who}]}}}}}}\n"
    handle = cell(ip, "%%polyaxon_dag greet\n" + dag.format(who="from-this-kernel"))
    assert handle.wait(timeout=GUARD) == "succeeded"
    # Then a terminal (or another kernel) on the same store runs a DAG of the same name.
    (tmp_path / "greet.yaml").write_text("version: 1.1\nkind: component\nname: greet\nrun:\n  kind: dag\n  "
                                         + dag.format(who="from-a-terminal").replace("\n  -", "\n    -"))  # fmt: skip
    env = {**os.environ, "POLYNB_COMMAND_SERVER": "0"}
    cli = [sys.executable, "-m", "polynb.cli", "run", "-f", str(tmp_path / "greet.yaml")]
    assert subprocess.run(cli, env=env, capture_output=True, timeout=GUARD, check=False).returncode == 0
    capsys.readouterr()
    cell(ip, "%polyaxon logs greet")
    assert capsys.readouterr().out.splitlines() == ["── hi (succeeded)", "from-this-kernel"]
    cell(ip, "%polyaxon logs hi")  # an op of it by name, too
    assert capsys.readouterr().out.splitlines() == ["from-this-kernel"]
    assert cell(ip, "%polyaxon status greet").uuid == handle.uuid


def test_options_from_the_kernel_s_config_file_and_config_survive_reload_ext(session: KernelSession) -> None:
    from traitlets.config import Config

    config = Config()
    config.HistoryAccessor.enabled = False
    config.PolynbMagics.keep_runs_on_exit = True  # what ipython_kernel_config.py says
    config.PolynbMagics.stop_grace = 1.5
    shell = InteractiveShell.instance(config=config)
    try:
        shell.run_line_magic("load_ext", "polynb")
        assert (session.config.keep_runs_on_exit, session.config.stop_grace) == (True, 1.5)
        shell.run_line_magic("config", "PolynbMagics.stop_grace = 0.5")
        shell.run_line_magic("reload_ext", "polynb")  # a new PolynbMagics: the options stay as set
        assert (session.config.keep_runs_on_exit, session.config.stop_grace) == (True, 0.5)
        assert [type(c).__name__ for c in shell.configurables].count("PolynbMagics") == 1  # what %config lists
        shell.run_line_magic("unload_ext", "polynb")
    finally:
        assert shell.extension_manager is not None
        shell.extension_manager.loaded.discard("polynb")
        InteractiveShell.clear_instance()


def test_stop_says_how_a_run_no_engine_runs_was_stopped(
    ip: InteractiveShell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import subprocess
    import sys

    cell(ip, "%%polyaxon_dag first\noperations:\n  - {name: a, run: {kind: job, container: {command: ['true']}}}\n")
    # Then a terminal's `polynb run` leaves its service running when it exits (the README's TensorBoard); this
    # kernel's engine, started before, does not run it.
    (tmp_path / "svc.yaml").write_text(
        "version: 1.1\nkind: component\nname: served\nrun:\n  kind: dag\n  operations:\n"
        "    - {name: quick, run: {kind: job, container: {command: ['true']}}}\n"
        "    - name: page\n      termination: {timeout: 120}\n"
        "      run: {kind: service, ports: [8000], container: {command: [python, -m, http.server,"
        ' "{{ globals.ports[0] }}", --bind, 127.0.0.1]}}\n'
    )
    env = {**os.environ, "POLYNB_COMMAND_SERVER": "0"}
    cli = [sys.executable, "-m", "polynb.cli", "run", "-f", str(tmp_path / "svc.yaml")]

    def quiet(argv: list[str]) -> int:  # no pipe: the service the run leaves would hold it open
        null = subprocess.DEVNULL
        done = subprocess.run(argv, env=env, stdin=null, stdout=null, stderr=null, timeout=GUARD, check=False)
        return done.returncode

    try:
        assert quiet(cli) == 0
        capsys.readouterr()
        cell(ip, "%polyaxon stop page")
        assert capsys.readouterr().out == "page: stopped, stopped directly (no engine was running it)\n"
    finally:
        stop = [sys.executable, "-m", "polynb.cli", "stop", "page"]  # "already stopped" once the magic did it
        quiet(stop)
