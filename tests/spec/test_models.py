"""The models accept the v1.1 forms users write and reject what Polyaxon rejects, with clear reasons."""

from typing import Any

import pytest
from pydantic import ValidationError

from polynb.spec.models import (
    Component,
    Dag,
    EventKind,
    Job,
    Operation,
    Param,
    Service,
    Status,
    parse_polyaxonfile,
)

JOB = {"kind": "job", "container": {"image": "python:3.11", "command": ["python", "-c", "print(1)"]}}


def errors(data: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as info:
        parse_polyaxonfile(data)
    return [(e["loc"], e["msg"]) for e in info.value.errors()]


def test_all_32_event_kinds_and_20_statuses() -> None:
    assert len(EventKind) == 32
    assert len(Status) == 20
    assert EventKind.RUN_STATUS_RUNNING.status is Status.RUNNING
    assert EventKind.RUN_STATUS_DONE.status is Status.DONE
    assert EventKind.ALERT_INFO.status is None


def test_param_short_form_equals_value_form() -> None:
    op = parse_polyaxonfile({"kind": "operation", "dagRef": "x", "params": {"lr": 0.1, "cfg": {"a": 1}}})
    assert op.params is not None
    assert op.params["lr"] == Param(value=0.1)
    assert op.params["cfg"] == Param(value={"a": 1})


def test_param_flags_and_refs() -> None:
    op = parse_polyaxonfile(
        {
            "kind": "operation",
            "dagRef": "x",
            "params": {
                "uuid": {"ref": "ops.experiment", "value": "globals.uuid", "contextOnly": True},
                "token": {"value": "s3cr3t", "toEnv": "API_TOKEN"},
                "repo": {"value": {"url": "https://example.org/r.git"}, "toInit": True, "connection": "gh"},
            },
        }
    )
    assert op.params is not None
    uuid = op.params["uuid"]
    assert uuid.context_only is True
    assert uuid.parsed_ref is not None and uuid.parsed_ref.target == "experiment"
    assert str(uuid.value_path) == "globals.uuid"
    assert op.params["token"].to_env == "API_TOKEN"
    assert op.params["repo"].to_init is True


def test_component_dag_with_events_and_hooks() -> None:
    comp = parse_polyaxonfile(
        {
            "version": 1.1,
            "kind": "component",
            "name": "seed",
            "hooks": [{"hubRef": "webhook", "trigger": "failed", "params": {"url": "http://x"}}],
            "run": {
                "kind": "dag",
                "concurrency": 2,
                "operations": [
                    {"name": "experiment", "dagRef": "train"},
                    {
                        "name": "tensorboard",
                        "hubRef": "tensorboard",
                        "events": [{"ref": "ops.experiment", "kinds": ["run_status_running"]}],
                        "params": {"uuids": {"ref": "ops.experiment", "value": "globals.uuid"}},
                        "trigger": "all_done",
                        "skipOnUpstreamSkip": True,
                    },
                ],
                "components": [{"name": "train", "run": JOB}],
            },
        }
    )
    assert isinstance(comp, Component)
    assert isinstance(comp.run, Dag)
    tb = comp.run.operations[1]
    assert tb.events is not None and tb.events[0].kinds == [EventKind.RUN_STATUS_RUNNING]
    assert tb.skip_on_upstream_skip is True
    assert comp.hooks is not None and comp.hooks[0].hub_ref == "webhook"


def test_kindless_file_with_a_ref_is_an_operation() -> None:
    assert isinstance(parse_polyaxonfile({"hubRef": "tensorboard", "params": {"uuids": ["a"]}}), Operation)


def test_top_level_shortcuts_are_lowered_into_run() -> None:
    comp = parse_polyaxonfile(
        {
            "kind": "component",
            "container": {"image": "x", "command": ["serve"]},
            "ports": [6006],
            "env": {"A": "1"},
        }
    )
    assert isinstance(comp.run, Service)
    assert comp.run.ports == [6006]
    assert comp.run.container is not None and comp.run.container.env is not None
    assert comp.run.container.env[0].value == "1"


def test_shortcuts_are_polyaxons_cmd_a_script_env_a_mapping_resources_flat() -> None:
    """Polyaxon 2.18's forms: ``cmd`` runs under ``/bin/sh -c`` with ``set -e``, ``env`` maps names to strings,
    ``resources`` maps cpu/memory/gpu to a request (quantities) or request and limit (counts, ``a..b``)."""
    comp = parse_polyaxonfile(
        {
            "kind": "component",
            "container": {"image": "x", "env": [{"name": "A", "value": "old"}, {"name": "K", "value": "k"}],
                          "resources": {"limits": {"memory": "8Gi"}}},
            "cmd": ["pip install -r requirements.txt", "python train.py"],
            "env": {"A": "new", "B": "2"},
            "resources": {"cpu": "1..2", "memory": "4Gi", "gpu": 1},
        }
    )  # fmt: skip
    assert isinstance(comp.run, Job)
    container = comp.run.container
    assert container is not None
    assert container.command == ["/bin/sh", "-c"]
    assert container.args == ["set -e\npip install -r requirements.txt\npython train.py"]
    assert [(e.name, e.value) for e in container.env or ()] == [("K", "k"), ("A", "new"), ("B", "2")]
    assert container.resources is not None
    assert container.resources.requests == {"cpu": "1", "memory": "4Gi", "nvidia.com/gpu": 1}
    assert container.resources.limits == {"memory": "8Gi", "cpu": "2", "nvidia.com/gpu": 1}


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("env", [{"name": "A", "value": "1"}], "mapping of names to string values"),
        ("env", {"A": 1}, 'quote it: "1"'),
        ("resources", {"limits": {"cpu": 1}}, "unknown resource `limits`"),
        ("resources", {"nvidia.com/gpu": 1}, "spelled gpu"),
        ("resources", {"gpu": 0.5}, "integer count"),
        ("resources", {"cpu": "2..1"}, "request greater than its limit"),
        ("resources", {"memory": "4GB"}, "unsupported value `4GB`"),
        ("cmd", "  ", "must not be blank"),
        ("cmd", [], "must not be empty"),
    ],
)
def test_shortcut_mistakes_as_polyaxon_reports_them(field: str, value: Any, fragment: str) -> None:
    found = errors({"kind": "component", "container": {"image": "x"}, field: value})
    assert any(loc == (field,) and fragment in msg for loc, msg in found), found


def test_numbers_in_argument_lists_become_strings_and_a_string_is_one_argument() -> None:
    comp = parse_polyaxonfile({"kind": "component", "run": {"kind": "job", "container": {"args": ["--n", 3]}}})
    assert isinstance(comp.run, Job) and comp.run.container is not None and comp.run.container.args == ["--n", "3"]
    comp = parse_polyaxonfile({"kind": "component", "run": {"kind": "job", "container": {"command": "python a.py"}}})
    assert isinstance(comp.run, Job) and comp.run.container is not None
    assert comp.run.container.command == ["python a.py"]
    assert comp.run.container.written_as_string == {"command"}


@pytest.mark.parametrize(
    ("data", "loc", "fragment"),
    [
        ({"kind": "component", "nmae": "x", "run": JOB}, ("nmae",), "Extra inputs"),
        ({"kind": "component", "name": "a.b", "run": JOB}, ("name",), "not a valid name"),
        ({"kind": "component"}, (), "needs a `run` section"),
        ({"kind": "operation"}, (), "needs one of hubRef"),
        ({"kind": "operation", "hubRef": "a", "dagRef": "b"}, (), "at most one of"),
        ({"kind": "component", "run": {"kind": "dag", "operations": []}}, ("run", "dag", "operations"), "at least 1"),
        ({"kind": "component", "run": {"kind": "dag", "concurrency": 0, "operations": [{"dagRef": "x"}]}},
         ("run", "dag", "concurrency"), "greater than 0"),
        ({"kind": "operation", "dagRef": "x", "trigger": "all_sucess"}, ("trigger",), "all_succeeded"),
        ({"kind": "operation", "dagRef": "x", "hooks": [{"hubRef": "w", "trigger": "running"}]},
         ("hooks", 0, "trigger"), "succeeded"),
        ({"kind": "operation", "dagRef": "x", "hooks": [{"trigger": "done"}]}, ("hooks", 0, "hubRef"), "required"),
        ({"kind": "operation", "dagRef": "x", "events": [{"ref": "ops.a", "kinds": ["run_status_initializing"]}]},
         ("events", 0, "kinds", 0), "run_status_running"),
        ({"kind": "operation", "dagRef": "x", "events": [{"ref": "{{ ops.a }}", "kinds": ["run_status_done"]}]},
         ("events", 0, "ref"), "creates no dependency"),
        ({"kind": "operation", "dagRef": "x", "params": {"a": {"ref": "dag", "value": "outputs.y"}}},
         ("params", "a", "value"), "has no outputs"),
        ({"kind": "component", "inputs": [{"name": "lr", "type": "float", "value": "fast"}], "run": JOB},
         ("inputs", 0, "value"), "expected a number"),
        ({"kind": "component", "inputs": [{"name": "lr", "type": "floaty"}], "run": JOB},
         ("inputs", 0, "type"), "not an IO type"),
        ({"kind": "component", "inputs": [{"name": "a"}, {"name": "a"}], "run": JOB}, ("inputs", 1, "name"),
         "declares `a` twice"),
        ({"kind": "component", "run": {"kind": "job", "init": [{"git": {"url": "u"}, "file": {"content": "c"}}],
                                       "container": {}}},
         ("run", "job", "init", 0), "one kind"),
        ({"kind": "component", "version": 2, "run": JOB}, ("version",), "unsupported Polyaxonfile version"),
    ],
)  # fmt: skip
def test_invalid_documents(data: dict[str, Any], loc: tuple[Any, ...], fragment: str) -> None:
    found = errors(data)
    assert any(err_loc == loc and fragment in msg for err_loc, msg in found), found


def test_matrix_and_schedule_parse_so_they_can_be_refused_at_compile_time() -> None:
    op = parse_polyaxonfile(
        {
            "kind": "operation",
            "dagRef": "x",
            "matrix": {"kind": "grid", "params": {"lr": {"kind": "choice", "value": [0.1]}}},
            "schedule": {"kind": "cron", "cron": "0 * * * *"},
        }
    )
    assert op.matrix is not None and op.matrix.kind == "grid"
    assert op.schedule is not None and op.schedule.kind == "cron"


def test_shortcuts_of_a_dag_op_are_lowered_once() -> None:
    comp = parse_polyaxonfile(
        {
            "kind": "component",
            "run": {
                "kind": "dag",
                "operations": [
                    {
                        "name": "a",
                        "run": {"kind": "job", "container": {"command": ["true"]}},
                        "env": {"A": "1"},
                    }
                ],
            },
        }
    )
    assert isinstance(comp.run, Dag)
    op_run = comp.run.operations[0].run
    assert isinstance(op_run, Job) and op_run.container is not None
    assert [(e.name, e.value) for e in op_run.container.env or ()] == [("A", "1")]
