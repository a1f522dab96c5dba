"""Distributed run kinds, build, plugins, dockerfile init and cache: checked field by field, refused at run
with the reason where polynb does not execute them."""

from __future__ import annotations

import pytest

from polynb.compiler.check import check
from polynb.compiler.pipeline import build_pipeline
from polynb.spec.errors import SpecErrors
from polynb.spec.load import load_text

TF = """\
kind: component
name: dist
run:
  kind: tfjob
  cleanPodPolicy: All
  schedulingPolicy: {minAvailable: 2}
  chief: {replicas: 1, container: {image: tf, command: [python, train.py]}}
  worker:
    replicas: 2
    environment: {nodeSelector: {gpu: "true"}}
    container: {image: tf, command: [python, train.py], resources: {limits: {nvidia.com/gpu: 1}}}
"""


@pytest.mark.parametrize(
    "run",
    [
        TF.split("run:\n", 1)[1],
        "  kind: pytorchjob\n  elasticPolicy: {minReplicas: 1, maxReplicas: 4}\n  nProcPerNode: 2\n"
        "  master: {replicas: 1, container: {image: pt, command: [torchrun, train.py]}}\n",
        "  kind: mpijob\n  slotsPerWorker: 1\n  launcher: {container: {image: h, command: [mpirun, python, t.py]}}\n",
        "  kind: daskcluster\n  minReplicas: 1\n  scheduler: {container: {image: d, command: [dask-scheduler]}}\n",
        "  kind: raycluster\n  entrypoint: python t.py\n  head: {container: {image: r}, rayStartParams: {a: b}}\n"
        "  workers: {small: {replicas: 1, maxReplicas: 3, container: {image: r}}}\n",
    ],
)
def test_distributed_runs_check_and_are_refused_with_the_reason(run: str) -> None:
    text = "kind: component\nname: dist\nrun:\n" + run
    result = check(text)
    assert result.valid, result.errors
    [refusal] = result.unsupported
    assert refusal.path == "run.kind" and "runs no Kubeflow, Dask or Ray operator" in refusal.message
    with pytest.raises(SpecErrors, match="not supported yet"):
        build_pipeline(load_text(text))


@pytest.mark.parametrize(
    ("text", "line", "path", "fragment"),
    [
        (TF.replace("cleanPodPolicy: All", "cleanPodPolicy: all"), 5, "run.cleanPodPolicy", "did you mean 'All'"),
        (TF.replace("  worker:\n", "  workers:\n"), 8, "run.workers", "did you mean 'worker'"),
        (TF.replace("replicas: 2", "replicas: '2'"), 9, "run.worker.replicas", "expected an integer"),
        (TF.replace("kind: tfjob", "kind: xgbjob"), 4, "run.kind", "dropped the XGBoost operator"),
        (TF.replace("kind: tfjob", "kind: rayjob"), 4, "run.kind", "`kind: raycluster`"),
    ],
)
def test_distributed_mistakes_are_positioned(text: str, line: int, path: str, fragment: str) -> None:
    result = check(text)
    assert not result.valid
    first = result.errors[0]
    assert (first.line, first.path) == (line, path) and fragment in first.message, result.errors


JOB = "run: {kind: job, container: {image: x, command: [echo]}}\n"


def test_build_is_checked_and_refused() -> None:
    text = (
        "kind: operation\nname: op\nbuild:\n  hubRef: kaniko\n  params: {destination: {value: img}}\ncomponent:\n  "
        + JOB
    )
    result = check(text)
    assert result.valid and "builds no container images" in result.unsupported[0].message
    result = check("kind: operation\nname: op\nbuild: {connection: registry}\ncomponent:\n  " + JOB)
    assert [e.path for e in result.errors] == ["build.hubRef"]


def test_plugins_are_checked_refused_or_warned() -> None:
    text = (
        "kind: component\nplugins: {collectLogs: true, auth: true, ssh: true,"
        " notifications: [{connections: [slack], trigger: failed}]}\n" + JOB
    )
    result = check(text)
    assert result.valid
    assert sorted(e.path for e in result.unsupported) == ["plugins.notifications", "plugins.ssh"]
    warned = [w.path for w in result.warnings if w not in result.unsupported]
    assert warned == ["plugins.auth"]  # collectLogs: true is what polynb does anyway
    result = check("kind: component\nplugins: {collectLog: false}\n" + JOB)
    assert "did you mean 'collectLogs'" in result.errors[0].message
    result = check("kind: component\nplugins: {notifications: [{connections: [s], trigger: finished}]}\n" + JOB)
    assert result.errors[0].path == "plugins.notifications[0].trigger"


def test_a_dockerfile_init_is_checked_field_by_field_and_runs() -> None:
    init = "  - dockerfile: {image: 'python:3.11', env: {A: '1'}, run: ['pip install x'], copy: ['.', /code]}\n"
    text = "kind: component\nrun:\n  kind: job\n  init:\n" + init + "  container: {image: x, command: [echo]}\n"
    result = check(text)
    assert result.valid and result.unsupported == []
    bad = text.replace("image: 'python:3.11', ", "")
    assert check(bad).errors[0].path == "run.init[0].dockerfile.image"
    bad = text.replace("run: ['pip install x']", "run: pip install x")
    assert "expected a list" in check(bad).errors[0].message


def test_cache_is_checked() -> None:
    ok = check("kind: component\ncache: {ttl: 3600, io: [lr], sections: [containers, init]}\n" + JOB)
    assert ok.valid and ok.warnings == []  # applied (compiler.cache)
    on_dag = check("kind: component\ncache: {ttl: 60}\nrun: {kind: dag, operations: [{name: a, hubRef: webhook, "
                   "params: {url: {value: 'http://x'}}}]}\n")  # fmt: skip
    assert on_dag.valid and "`cache` on a DAG is not applied" in on_dag.warnings[0].message
    bad = check("kind: component\ncache: {sections: [outputs]}\n" + JOB)
    assert bad.errors[0].path == "cache.sections[0]"


def test_service_fields_polynb_does_not_apply_are_warned() -> None:
    service = "kind: component\nrun:\n  kind: service\n  ports: [8000]\n  container: {image: x, command: [serve]}\n"
    assert check(service).warnings == []
    ok = check(service + "  replicas: 1\n  rewritePath: true\n  isExternal: false\n")
    assert ok.valid and ok.warnings == []  # one replica, served from its own address: what polynb does
    more = check(service + "  replicas: 3\n  isExternal: true\n")
    assert more.valid
    assert [(w.path, w.line) for w in more.warnings] == [("run.replicas", 6), ("run.isExternal", 7)]
    assert "replicas 3 is not applied: polynb runs one replica" in more.warnings[0].message
    templated = check(service.replace("kind: component\n", "kind: component\ninputs: [{name: n, type: int}]\n")
                      + "  replicas: '{{ n }}'\n")  # fmt: skip
    assert "replicas '{{ n }}' is not applied" in templated.warnings[0].message


NOT_APPLIED = """\
kind: component
name: idle
template: {enabled: true, description: set the bucket first, fields: [inputs, run.connections]}
mount: [data]
inputs: [{name: lr, type: float, value: 0.1, validation: {gt: 0}}]
outputs: [{name: loss, type: float, validation: {lt: 1}}]
termination:
  timeout: 60
  culling: {timeout: 3600}
  probe: {http: {path: /api/status, port: 8888}}
  podFailurePolicy: {rules: [{action: Ignore, onPodConditions: [{type: DisruptionTarget}]}]}
run: {kind: job, container: {image: x, command: [echo, "{{ lr }}"]}}
"""


def test_fields_no_executor_applies_are_warned_where_they_are_written() -> None:
    """They used to be read as free mappings and dropped without a word."""
    result = check(NOT_APPLIED)
    assert result.valid and result.unsupported == []
    assert [(w.path, w.line, w.column) for w in result.warnings] == [
        ("template", 3, 11),
        ("mount", 4, 8),
        ("inputs[0].validation", 5, 58),
        ("outputs[0].validation", 6, 49),
        ("termination.culling", 9, 12),
        ("termination.probe", 10, 10),
        ("termination.podFailurePolicy", 11, 21),
    ]
    messages = [w.message for w in result.warnings]
    assert messages[0].endswith("description: set the bucket first; fields: inputs, run.connections")
    assert "`validation` of `lr` is not applied" in messages[2]
    assert messages[4].startswith("`termination.culling` is not applied: polynb's executors never stop a run")
    assert "activity probe of culling" in messages[5]
    assert "`termination.podFailurePolicy` is not applied" in messages[6]
    plain = check(NOT_APPLIED.replace("enabled: true", "enabled: false").split("mount:")[0] + "run: {kind: job, "
                  "container: {image: x, command: [echo]}}\n")  # fmt: skip
    assert plain.valid and plain.warnings == []


def test_an_ops_own_termination_fields_are_warned_in_a_dag() -> None:
    text = ("kind: component\nrun:\n  kind: dag\n  operations:\n    - name: a\n"
            "      termination: {culling: {timeout: 9}}\n"
            "      component: {run: {kind: job, container: {image: x, command: [echo]}}}\n")  # fmt: skip
    result = check(text)
    assert result.valid
    assert [(w.path, w.line) for w in result.warnings] == [("run.operations[0].termination.culling", 6)]


def test_termination_cache_and_plugins_may_be_written_as_one_template() -> None:
    """Polyaxon 2.18's ``Union[V1X, RefField]``: rendered when the op compiles (``compiler.compile``), so ``check``
    takes them; plugins get a warning (none is applied), a DAG's own termination an error (never rendered)."""
    job = "run: {kind: job, container: {image: x, command: [echo]}}\n"
    text = ("kind: component\ninputs: [{name: s, type: dict, value: {}}]\ntermination: '{{ s }}'\n"
            "cache: '{{ s }}'\nplugins: '{{ s }}'\n" + job)  # fmt: skip
    result = check(text)
    assert result.valid and result.unsupported == []
    assert [(w.path, w.line) for w in result.warnings] == [("plugins", 5)]
    assert "plugins written as one template are rendered when the op compiles" in result.warnings[0].message
    assert "expected a mapping" in check(text.replace("'{{ s }}'", "'s'", 1)).errors[0].message
    dag = check("kind: component\ntermination: '{{ s }}'\nrun: {kind: dag, operations: [{name: a, component: {"
                + job.strip() + "}}]}\n")  # fmt: skip
    assert dag.errors[0].path == "termination"
    assert dag.errors[0].message.startswith("a DAG's own termination is not rendered")
