"""schedule: cron, interval and datetime, as Polyaxon 2.18 reads them, with the cron expression checked; a
schedule of a job runs (``scheduler.schedules``) on the top-level operation or component and on an op of a
DAG; on a component an operation runs, over a DAG or with a matrix it is refused where written."""

from __future__ import annotations

import pytest

from polynb.compiler.check import check
from polynb.compiler.pipeline import build_pipeline
from polynb.spec.errors import SpecErrors
from polynb.spec.load import load_text
from polynb.spec.schedule import cron_problem

HEAD = "kind: component\nname: nightly\nrun: {kind: job, container: {command: [python, retrain.py]}}\nschedule:\n"


def schedule(*lines: str) -> str:
    return HEAD + "".join(f"  {line}\n" for line in lines)


@pytest.mark.parametrize(
    "lines",
    [
        ("kind: cron", "cron: '0 2 * * *'", "startAt: '2024-07-01T00:00:00Z'", "endAt: '2024-12-01T00:00:00Z'",
         "maxRuns: 30", "dependsOnPast: false"),
        ("kind: cron", "cron: '@daily'"),
        ("kind: cron", "cron: '*/15 9-17 * jan-jun mon-fri'"),
        ("kind: interval", "frequency: 3600", "maxRuns: 3"),
        ("kind: interval", "frequency: PT1H"),
        ("kind: interval", "frequency: '1 day'", "dependsOnPast: 'yes'"),
        ("kind: datetime", "startAt: '2024-07-01 10:00'"),
    ],
)  # fmt: skip
def test_top_level_schedules_check_and_run(lines: tuple[str, ...]) -> None:
    text = schedule(*lines)
    result = check(text)
    assert result.valid and not result.unsupported, (result.errors, result.unsupported)
    pipeline = build_pipeline(load_text(text))
    assert pipeline.kind == "single"
    assert pipeline.schedule is not None and pipeline.schedule.kind == lines[0].split(": ")[1]


_JOB = "run: {kind: job, container: {command: [python, retrain.py]}}"
_DAILY = "schedule: {kind: cron, cron: '0 2 * * *'}"


def test_a_schedule_on_an_op_of_a_dag_checks_and_runs() -> None:
    text = ("kind: component\nname: d\nrun:\n  kind: dag\n  operations:\n  - name: a\n    " + _DAILY + "\n"
            "    component: {name: c, " + _JOB + "}\n  - {name: b, dependencies: [a], component: {name: e, "
            + _JOB + "}}\n")  # fmt: skip
    result = check(text)
    assert result.valid and not result.unsupported, (result.errors, result.unsupported)
    # Polyaxon 2.18 refuses it ("DAG node `a` cannot define a schedule"): check says the file is not portable.
    (warning,) = [w for w in result.warnings if "Polyaxon" in w.message]
    assert warning.path == "run.operations[0].schedule" and "DAG node `a` cannot define a schedule" in warning.message
    pipeline = build_pipeline(load_text(text))
    assert pipeline.schedule is None  # not the pipeline's: its op's
    assert pipeline.ops["a"].operation.schedule is not None


@pytest.mark.parametrize(
    ("text", "path", "fragment"),
    [
        (schedule("kind: cron", "cron: '{{ params.when }}'"), "schedule.cron", "a templated `cron`"),
        (f"kind: component\nname: d\n{_DAILY}\nrun:\n  kind: dag\n  operations:\n  - name: a\n"
         f"    component: {{name: c, {_JOB}}}\n", "schedule", "over a DAG"),
        (f"kind: component\nname: m\n{_JOB}\n{_DAILY}\n"
         "matrix: {kind: grid, params: {a: {kind: choice, value: [1]}}}\n", "schedule", "with a `matrix`"),
        (f"kind: operation\ncomponent:\n  name: c\n  {_JOB}\n  {_DAILY}\n", "component.schedule",
         "on the component of an operation"),
        ("kind: component\nname: d\nrun:\n  kind: dag\n  operations:\n  - name: a\n    component: {name: c, "
         + _JOB + ", " + _DAILY + "}\n", "run.operations[0].component.schedule", "on the component of an operation"),
        ("kind: component\nname: d\nrun:\n  kind: dag\n  operations:\n  - name: a\n    " + _DAILY + "\n"
         "    component: {name: c, run: {kind: dag, operations: [{name: i, component: {name: j, " + _JOB + "}}]}}\n",
         "run.operations[0].schedule", "over a DAG"),
        ("kind: component\nname: d\nrun:\n  kind: dag\n  operations:\n  - name: a\n    " + _DAILY + "\n"
         "    matrix: {kind: grid, params: {a: {kind: choice, value: [1]}}}\n"
         "    component: {name: c, " + _JOB + "}\n", "run.operations[0].schedule", "with a `matrix`"),
    ],
)  # fmt: skip
def test_schedules_polynb_cannot_run_are_refused_where_written(text: str, path: str, fragment: str) -> None:
    result = check(text)
    assert result.valid, result.errors
    assert [(w.path, fragment in w.message) for w in result.unsupported] == [(path, True)], result.unsupported
    with pytest.raises(SpecErrors, match="not supported"):
        build_pipeline(load_text(text))


@pytest.mark.parametrize(
    ("lines", "line", "path", "fragment"),
    [
        (("kind: cron", "cron: '0 25 * * *'"), 6, "schedule.cron", "hour 25 is out of range 0-23"),
        (("kind: cron", "cron: 'every day'"), 6, "schedule.cron", "five fields"),
        (("kind: cron", "startAt: '2024-07-01'"), 4, "schedule.cron", "missing required field 'cron'"),
        (("kind: cron", "cron: '0 * * * *'", "startAt: tomorrow"), 7, "schedule.startAt", "expected a datetime"),
        (("kind: cron", "cron: '0 * * * *'", "maxRuns: '3'"), 7, "schedule.maxRuns", "expected an integer"),
        (("kind: cron", "cron: '0 * * * *'", "startAt: '2024-07-02'", "endAt: '2024-07-01'"), 4, "schedule",
         "would never run"),
        (("kind: interval", "maxRuns: 3"), 4, "schedule.frequency", "missing required field 'frequency'"),
        (("kind: interval", "frequency: '3600'"), 6, "schedule.frequency", "expected a duration"),
        (("kind: datetime", "startAt: '2024-07-01'", "maxRuns: 1"), 7, "schedule.maxRuns", "unexpected key"),
        (("kind: crontab", "cron: '0 * * * *'"), 5, "schedule.kind", "did you mean 'cron'"),
    ],
)  # fmt: skip
def test_schedule_mistakes_are_positioned(lines: tuple[str, ...], line: int, path: str, fragment: str) -> None:
    result = check(schedule(*lines))
    assert not result.valid
    first = result.errors[0]
    assert (first.line, first.path) == (line, path) and fragment in first.message, result.errors
    assert first.column is not None and first.column >= 1  # file:line:col


@pytest.mark.parametrize(
    ("expression", "ok"),
    [("0 2 * * *", True), ("@hourly", True), ("0 0 1,15 * 7", True), ("0 0 * * sun", True), ("*/0 * * * *", False),
     ("60 * * * *", False), ("0 0 0 * *", False), ("0 0 * 13 *", False), ("0 0 * * 8", False), ("0 0 * *", False)],
)  # fmt: skip
def test_cron_expressions(expression: str, ok: bool) -> None:
    assert (cron_problem(expression) is None) == ok


def test_an_endless_schedule_in_a_dag_is_warned_about() -> None:
    text = ("kind: component\nname: d\nrun:\n  kind: dag\n  operations:\n  - name: a\n    " + _DAILY + "\n"
            "    component: {name: c, " + _JOB + "}\n")  # fmt: skip
    result = check(text)
    assert result.valid and not result.unsupported
    assert any("has no end" in w.message and w.path == "run.operations[0].schedule" for w in result.warnings)
    bounded = text.replace("'0 2 * * *'}", "'0 2 * * *', maxRuns: 3}")
    assert not any("has no end" in w.message for w in check(bounded).warnings)
