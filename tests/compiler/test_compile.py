"""Compiling a resolved op (and a hook) into a CompiledOp."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from polynb.compiler.compile import (
    compile_hook,
    compile_op,
    hook_condition_context,
    hook_params,
    op_kind,
    port_count,
)
from polynb.compiler.context import run_globals
from polynb.compiler.errors import CompileError, ParamError
from polynb.compiler.params import RunView
from polynb.compiler.templates import evaluate_conditions
from polynb.compiler.types import CompiledOp, Placement, TerminationSpec
from polynb.spec.models import Component, Hook, Operation

UUID = "11111111111111111111111111111111"
TRAIN_UUID = "0de53b5bf8b04a219d12a39c6b92bcce"
OTHER_UUID = "fcc462d764104eb698d3cca509f34154"


def component(text: str) -> Component:
    return Component.model_validate({"kind": "component", **yaml.safe_load(text)})


def placement(*ports: int, base_url: str | None = None) -> Placement:
    return Placement(
        artifacts_path="/polynb-home/artifacts",
        run_artifacts_path=f"/polynb-home/artifacts/{UUID}",
        run_outputs_path=f"/polynb-home/artifacts/{UUID}/outputs",
        ports=ports,
        base_url=base_url,
    )


def build(comp: Component, *, inputs: dict[str, Any] | None = None, **kw: Any) -> CompiledOp:
    args: dict[str, Any] = {
        "uuid": UUID,
        "name": "train",
        "component": comp,
        "inputs": inputs or {},
        "contexts": {},
        "placement": placement(),
        "globals_": run_globals(uuid=UUID, name="train", project_name="exp"),
    }
    args.update(kw)
    return compile_op(**args)


JOB = """
name: train
inputs:
  - {name: lr, type: float}
  - {name: note, type: str}
  - {name: verbose, type: bool, isFlag: true, value: false}
termination: {maxRetries: 2, timeout: 60}
run:
  kind: job
  environment: {labels: {team: ml}}
  container:
    image: "python:{{ '3.11' }}"
    command: [python, "-c", "import sys; print(sys.argv)"]
    args: ["--lr={{ lr }}", "{{ note }}", "{{ params.verbose.as_arg }}", "", "{{ params.as_args }}"]
    workingDir: "{{ globals.run_artifacts_path }}"
    env:
      - {name: RUN, value: "{{ globals.run_info }}"}
      - {name: N, value: 3}
"""


def test_job_container_is_rendered_as_argv() -> None:
    op = build(component(JOB), inputs={"lr": 0.1, "note": "a b; rm -rf / && echo $HOME", "verbose": False})
    assert op.kind == "job"
    assert op.container.name == "main"
    assert op.container.image == "python:3.11"
    assert op.container.command == ("python", "-c", "import sys; print(sys.argv)")
    # The value with shell metacharacters is one argv element; the unset flag is dropped, the literal "" kept,
    # and the single-expression list is spliced element by element.
    assert op.container.args == (
        "--lr=0.1",
        "a b; rm -rf / && echo $HOME",
        "",
        "--lr=0.1",
        "--note=a b; rm -rf / && echo $HOME",
    )
    assert op.container.working_dir == f"/polynb-home/artifacts/{UUID}"
    assert dict(op.container.env) == {"RUN": f"local.exp.runs.{UUID}", "N": "3"}
    assert op.termination == TerminationSpec(max_retries=2, timeout=60.0, ttl=None)
    assert op.labels == {"team": "ml"}
    assert op.inputs == {"lr": 0.1, "note": "a b; rm -rf / && echo $HOME", "verbose": False}


OPTIONAL = """
inputs: [{name: n, type: int, isOptional: true}]
run:
  kind: job
  container: {command: [prog, "{{ n }}", "--n={{ n }}", "{{ 'None' }}", "None"], args: ["{{ n }}"]}
"""


def test_an_item_that_renders_none_is_left_out_as_in_polyaxon() -> None:
    """Polyaxon 2.18 omits a command/args item whose template renders the text None (an optional input given no
    value); a literal None and None inside a longer item stay (tests/spec/test_polyaxon_argv.py)."""
    op = build(component(OPTIONAL), inputs={"n": None})
    assert op.container.command == ("prog", "--n=None", "None")
    assert op.container.args == ()


def test_a_working_dir_or_env_value_that_renders_none_is_not_set_as_in_polyaxon() -> None:
    """Polyaxon 2.18 compiles `workingDir: "{{ d }}"` and an env value `"{{ d }}"` of an optional input given no
    value to None (no workingDir; a variable without a value, empty on Kubernetes), not to the text None: a
    local op ran in a folder named None."""
    spec = component(
        """
inputs: [{name: d, type: str, isOptional: true}]
run:
  kind: job
  container: {workingDir: "{{ d }}", env: [{name: D, value: "{{ d }}"}, {name: E, value: "x{{ d }}"}], command: [c]}
"""
    )
    unset = build(spec, inputs={"d": None})
    assert unset.container.working_dir is None
    assert dict(unset.container.env)["D"] == "" and dict(unset.container.env)["E"] == "xNone"
    given = build(spec, inputs={"d": "/data"})
    assert given.container.working_dir == "/data" and dict(given.container.env)["D"] == "/data"


def test_set_flag_is_passed() -> None:
    op = build(component(JOB), inputs={"lr": 0.1, "note": "n", "verbose": True})
    assert op.container.args[2] == "--verbose"


def test_a_flag_by_bare_name_is_its_option_or_nothing_as_in_polyaxon() -> None:
    # Polyaxon's fixture typing/inputs_delayed_validation.yml writes `{{ flag }}` in a shell line: Polyaxon
    # renders an isFlag input by bare name as `--flag` when true and `` when false (ParamSpec.get_display_value).
    flags = component(
        """
inputs:
  - {name: flag, type: bool, isFlag: true}
  - {name: quiet, type: bool, isFlag: true}
  - {name: steps, type: int}
run:
  kind: job
  container:
    command: ["/bin/sh", "-c"]
    args: ["train --steps={{ steps }} {{ flag }} {{ quiet }}", "{{ flag }}", "{{ quiet }}", "{{ params.flag.value }}"]
"""
    )
    op = build(flags, inputs={"flag": True, "quiet": False, "steps": 3})
    assert op.container.args == ("train --steps=3 --flag ", "--flag", "True")


def test_compiled_op_round_trips_through_json() -> None:
    op = build(component(JOB), inputs={"lr": 0.1, "note": "n", "verbose": True}, labels={"polynb.io/run": UUID})
    assert CompiledOp.from_dict(json.loads(json.dumps(op.to_dict()))) == op


def test_template_error_says_where() -> None:
    comp = component("run: {kind: job, container: {command: [echo, '{{ nope }}']}}")
    with pytest.raises(
        CompileError, match=r"run\.container\.command\[1\]: template `\{\{ nope \}\}`: 'nope' is undefined"
    ):
        build(comp)


def test_env_precedence_to_env_and_value_from() -> None:
    comp = component(
        """
inputs: [{name: key, type: str, toEnv: API_KEY}, {name: lr, type: float}]
run: {kind: job, container: {command: [env], env: [{name: API_KEY, value: base}, {name: KEEP, value: k}]}}
"""
    )
    operation = Operation.model_validate(
        {"hubRef": "x", "params": {"key": "secret", "lr": {"value": 0.5, "toEnv": "LR"}}}
    )
    op = build(comp, inputs={"key": "secret", "lr": 0.5}, operation=operation, env={"KEEP": "scheduler"})
    assert dict(op.container.env) == {"API_KEY": "secret", "KEEP": "scheduler", "LR": "0.5"}
    # valueFrom reads the cluster: it goes with the Kubernetes fields (the local executor refuses it).
    secret = component("run: {kind: job, container: {command: [env], env: [{name: X, valueFrom: {secretKeyRef: {}}}]}}")
    op = build(secret)
    assert dict(op.container.env) == {} and op.container.k8s["env"] == [
        {"name": "X", "valueFrom": {"secretKeyRef": {}}}
    ]


def test_operation_termination_overrides_the_component() -> None:
    operation = Operation.model_validate({"hubRef": "x", "termination": {"timeout": 5, "ttl": 30}})
    op = build(component(JOB), inputs={"lr": 0.1, "note": "n", "verbose": False}, operation=operation)
    assert op.termination == TerminationSpec(max_retries=2, timeout=5.0, ttl=30.0)
    explicit = TerminationSpec(max_retries=0, timeout=1.0)
    assert (
        build(component(JOB), inputs={"lr": 0.1, "note": "n", "verbose": False}, termination=explicit).termination
        == explicit
    )


TEMPLATED_TERMINATION = """
inputs: [{name: n, type: any}, {name: m, type: any}]
termination: {maxRetries: "{{ n }}", timeout: "{{ m }}0", ttl: 5}
run: {kind: job, container: {command: ["true"]}}
"""


@pytest.mark.parametrize(
    ("n", "m", "expected"),
    [(2, 3, TerminationSpec(max_retries=2, timeout=30.0, ttl=5.0)),
     (" 3 ", " 4", TerminationSpec(max_retries=3, timeout=40.0, ttl=5.0)),  # Polyaxon reads the text " 3 " as 3
     (0, 0, TerminationSpec(max_retries=0, timeout=None, ttl=5.0))],  # "00" seconds: no timeout, as a written 0
)  # fmt: skip
def test_termination_templates_render_with_the_ops_inputs(n: Any, m: Any, expected: TerminationSpec) -> None:
    assert build(component(TEMPLATED_TERMINATION), inputs={"n": n, "m": m}).termination == expected


@pytest.mark.parametrize("n", [1.5, 2.0, True, "two", -1, None])
def test_a_termination_template_that_gives_no_whole_number_is_a_compile_error(n: Any) -> None:
    # Polyaxon refuses these too (a StrictInt after rendering), except a negative number: polynb refuses a
    # negative written number, and a rendered one alike.
    with pytest.raises(CompileError, match=r"^termination\.maxRetries: expected a whole number, 0 or more; "
                       r"the template `\{\{ n \}\}` gave "):  # fmt: skip
        build(component(TEMPLATED_TERMINATION), inputs={"n": n, "m": 1})


WHOLE_SECTIONS = """
inputs: [{name: t, type: any, isOptional: true}, {name: c, type: any, isOptional: true},
         {name: p, type: any, isOptional: true}]
termination: "{{ t }}"
cache: "{{ c }}"
plugins: "{{ p }}"
run: {kind: job, container: {command: ["true"]}}
"""


@pytest.mark.parametrize(
    ("t", "expected"),
    [({"maxRetries": 2, "timeout": 30}, TerminationSpec(max_retries=2, timeout=30.0)),
     ('{"ttl": 5, "timeout": "60"}', TerminationSpec(max_retries=0, timeout=60.0, ttl=5.0)),  # the JSON text of one
     (None, TerminationSpec(max_retries=0))],  # an optional param given no value: no termination
)  # fmt: skip
def test_a_termination_written_as_one_template_renders_with_the_ops_params(t: Any, expected: TerminationSpec) -> None:
    """As Polyaxon 2.18 renders ``termination: "{{ t }}"`` when the op compiles; polynb refused the file."""
    assert build(component(WHOLE_SECTIONS), inputs={"t": t, "c": None, "p": None}).termination == expected
    operation = Operation.model_validate({"hubRef": "x", "termination": "{{ t }}"})
    over = build(component(JOB.replace("lr}}", "lr }}")), inputs={"lr": 0.1, "note": "n", "verbose": False, "t": t},
                 operation=operation)  # fmt: skip
    assert over.termination.timeout == (expected.timeout if t is not None else 60.0)  # the operation's wins


@pytest.mark.parametrize(
    ("t", "message"),
    [(3, r"^termination: expected a mapping; the template `\{\{ t \}\}` gave 3$"),
     ({"timeout": "{{ x }}"}, r"^termination: the template .* holds a template: what a template gives is not "),
     ({"timeot": 5}, r"^termination\.timeot: unexpected key 'timeot'; did you mean 'timeout'\? \(the template "),
     ({"timeout": -1}, r"^termination\.timeout: expected a number of at least 0, got -1 \(the template ")],
)  # fmt: skip
def test_a_whole_termination_template_that_gives_no_termination_fails_the_op(t: Any, message: str) -> None:
    with pytest.raises(CompileError, match=message):
        build(component(WHOLE_SECTIONS), inputs={"t": t, "c": None, "p": None})


def test_plugins_written_as_one_template_fail_the_op_when_they_ask_for_what_polynb_refuses() -> None:
    inputs = {"t": None, "c": None, "p": {"auth": True, "collectLogs": False}}
    assert build(component(WHOLE_SECTIONS), inputs=inputs).termination == TerminationSpec(max_retries=0)
    with pytest.raises(CompileError, match=r"^plugins: plugin `docker` is not supported yet: polynb mounts no Docker "):
        build(component(WHOLE_SECTIONS), inputs={**inputs, "p": {"docker": True}})


def test_a_cache_written_as_one_template_renders_with_the_ops_params() -> None:
    from polynb.compiler.cache import cache_of, rendered_cache
    from polynb.compiler.context import op_context

    comp = component(WHOLE_SECTIONS)
    cache = cache_of(None, comp)
    assert cache is not None and cache.whole_template == "{{ c }}"

    def rendered(c: Any) -> Any:
        context = op_context(comp, inputs={"t": None, "c": c, "p": None}, contexts={}, globals_={})
        return rendered_cache(cache, context)

    got = rendered({"ttl": 60, "io": ["t"]})
    assert (got.ttl, got.io, got.whole_template) == (60, ["t"], None)
    assert rendered({"disable": True}) is None
    assert rendered(None) is None
    with pytest.raises(CompileError, match=r"^cache\.sections\[0\]: 'outputs' is not an allowed value"):
        rendered({"sections": ["outputs"]})


TEMPLATED_SERVICE = """
inputs: [{name: p, type: any}, {name: r, type: any, value: 1, isOptional: true},
         {name: ext, type: any, value: false, isOptional: true}]
run: {kind: service, ports: "{{ p }}", replicas: "{{ r }}", isExternal: "{{ ext }}", container: {command: [x]}}
"""


@pytest.mark.parametrize(("p", "count"), [([6006, 6007], 2), ("[6006, 6007, 6008]", 3), ([], 1)])
def test_a_services_ports_template_renders_with_the_ops_params_before_placement(p: Any, count: int) -> None:
    # A list, or the text of one as Polyaxon reads it; none: the default port, as for a written `ports: []`.
    assert port_count(component(TEMPLATED_SERVICE), {"p": p}) == count
    inputs = {"p": p, "r": 2, "ext": " True "}
    assert build(component(TEMPLATED_SERVICE), inputs=inputs, placement=placement(*range(count))).kind == "service"


@pytest.mark.parametrize(
    ("inputs", "message"),
    [({"p": "6006"}, "run.ports: expected a list of port numbers; the template `{{ p }}` gave 6006"),
     ({"p": [True]}, "run.ports: expected a list of port numbers; the template `{{ p }}` gave [True]"),
     ({"p": [1], "r": -1}, "run.replicas: expected a whole number, 0 or more; the template `{{ r }}` gave -1"),
     ({"p": [1], "ext": "maybe"}, "run.isExternal: expected true or false; the template `{{ ext }}` gave 'maybe'")],
)  # fmt: skip
def test_a_service_template_that_gives_what_the_field_cannot_be_is_a_compile_error(
    inputs: dict[str, Any], message: str
) -> None:
    with pytest.raises(CompileError) as caught:
        build(component(TEMPLATED_SERVICE), inputs={"r": 1, "ext": False, **inputs}, placement=placement(1))
    assert caught.value.message == message


INIT = """
inputs: [{name: uuids, type: str, isList: true}, {name: branch, type: str, value: main}]
run:
  kind: job
  init:
    - file: {content: "lr={{ branch }}\\n", filename: config.ini, chmod: "0644"}
    - git: {url: "https://github.com/org/repo.git", revision: "{{ branch }}"}
      path: code
    - artifacts: {dirs: ["{{ uuids[0] }}/outputs", "{{ uuids[1] }}/outputs"], files: ["{{ uuids[0] }}/x.txt"]}
    - paths: ["{{ uuids[0] }}/outputs"]
    - tensorboard: {uuids: "{{ uuids }}", useNames: true, port: "{{ globals.ports[0] }}", plugins: "a, b"}
    - tensorboard: {uuids: "0DE53B5B-F8B0-4A21-9D12-A39C6B92BCCE, fcc462d764104eb698d3cca509f34154"}
    - container: {name: prep, command: [python, -c, "print('{{ branch }}')"]}
  sidecars:
    - {name: watcher, command: [sh, -c, "echo {{ globals.uuid }}"]}
    - {command: [sleep, "{{ 1 + 1 }}"]}
  container: {command: ["true"]}
"""


def test_init_entries_and_sidecars() -> None:
    comp = component(INIT)
    op = build(comp, inputs={"uuids": [TRAIN_UUID, OTHER_UUID], "branch": "dev"}, placement=placement(7000))
    kinds = [step.kind for step in op.init]
    assert kinds == ["file", "git", "artifacts", "paths", "tensorboard", "tensorboard", "container"]
    file_, git, artifacts, paths, tb, tb2, container = op.init
    assert file_.spec == {"content": "lr=dev\n", "filename": "config.ini", "chmod": "0644"}
    assert git.spec == {"url": "https://github.com/org/repo.git", "revision": "dev"}
    assert git.path == "code"
    assert artifacts.spec == {
        "dirs": [f"{TRAIN_UUID}/outputs", f"{OTHER_UUID}/outputs"],
        "files": [f"{TRAIN_UUID}/x.txt"],
    }
    assert paths.spec == {"paths": [f"{TRAIN_UUID}/outputs"]}
    assert tb.spec["uuids"] == [TRAIN_UUID, OTHER_UUID]
    assert tb.spec["use_names"] is True and tb.spec["useNames"] is True
    assert tb.spec["port"] == 7000
    assert tb.spec["plugins"] == ["a", "b"]
    assert tb2.spec["uuids"] == [TRAIN_UUID, OTHER_UUID]
    assert tb2.spec["use_names"] is False
    assert container.spec == {}
    assert container.container is not None
    assert container.container.argv == ("python", "-c", "print('dev')")
    assert [s.name for s in op.sidecars] == ["watcher", "sidecar-1"]
    assert op.sidecars[0].args == () and op.sidecars[0].command == ("sh", "-c", f"echo {UUID}")
    assert op.sidecars[1].command == ("sleep", "2")


def test_init_lists_written_as_one_template_render_to_lists() -> None:
    """As Polyaxon's hub tensorboard writes them: the list is the template's value, rendered with the op."""
    comp = component(
        "inputs: [{name: uuids, type: str, isList: true}]\n"
        "run:\n  kind: job\n  init:\n"
        "    - artifacts: {dirs: '{{ uuids | map(\"map_format\", \"%s/outputs\") | list }}', files: '{{ uuids }}'}\n"
        '    - paths: \'{{ uuids | map("map_format", "%s/logs") | list }}\'\n'
        "    - {git: {url: 'https://github.com/org/repo.git', flags: '{{ [\"--depth\", \"1\"] }}'}}\n"
        "  container: {command: ['true']}\n"
    )
    artifacts, paths, git = build(comp, inputs={"uuids": [TRAIN_UUID, OTHER_UUID]}).init
    assert artifacts.spec == {
        "dirs": [f"{TRAIN_UUID}/outputs", f"{OTHER_UUID}/outputs"],
        "files": [TRAIN_UUID, OTHER_UUID],
    }
    assert paths.spec == {"paths": [f"{TRAIN_UUID}/logs", f"{OTHER_UUID}/logs"]}
    assert git.spec["flags"] == ["--depth", "1"]


def test_tensorboard_init_refuses_non_uuids() -> None:
    comp = component("run: {kind: job, init: [{tensorboard: {uuids: '../../etc'}}], container: {command: ['true']}}")
    with pytest.raises(CompileError, match=r"tensorboard\.uuids: `\.\./\.\./etc` is not a run uuid"):
        build(comp)


DOCKERFILE_JOB = """
inputs: [{name: torch, type: str}]
run:
  kind: job
  init:
    - dockerfile:
        image: "python:{{ '3.11' }}"
        env: {PYTHONUNBUFFERED: "1"}
        path: [/opt/tools/bin]
        copy: [requirements.txt, [src, /code/src]]
        run: ["pip install -r requirements.txt", "pip install torch=={{ torch }}"]
        langEnv: en_US.UTF-8
        uid: 1000
        gid: 1000
        filename: Dockerfile.train
        workdir: /code
      path: build
  container: {command: ['true']}
"""


def test_a_dockerfile_init_writes_polyaxons_dockerfile_at_its_path_and_in_outputs() -> None:
    op = build(component(DOCKERFILE_JOB), inputs={"torch": "2.3.0"})
    assert [(s.kind, s.path, s.spec["filename"]) for s in op.init] == [
        ("file", "build", "Dockerfile.train"),
        ("file", "outputs", "Dockerfile.train"),
    ]
    assert op.init[0].spec["content"] == op.init[1].spec["content"]
    assert op.init[0].spec["content"].splitlines() == [
        "FROM python:3.11",
        "",
        "ENV LC_ALL en_US.UTF-8",
        "ENV LANG en_US.UTF-8",
        "ENV LANGUAGE en_US.UTF-8",
        "ENV SHELL /bin/bash",
        'ENV PATH="${PATH}:/opt/tools/bin"',
        "ENV PYTHONUNBUFFERED 1",
        "",
        "WORKDIR /code",
        "",
        "COPY requirements.txt /code",
        "COPY src /code/src",
        "RUN pip install -r requirements.txt",
        "RUN pip install torch==2.3.0",
        "# Drop root: run as a user of its own",
        "RUN groupadd -g 1000 -r polyaxon && useradd -r -m -g polyaxon -u 1000 polyaxon",
    ]


def test_a_dockerfile_param_with_to_init_is_written_too() -> None:
    comp = component(
        "inputs: [{name: image, type: dockerfile, toInit: true}]\nrun: {kind: job, container: {command: [x]}}"
    )
    op = build(comp, inputs={"image": {"image": "python:3.11", "run": ["pip install x"]}})
    assert [(s.kind, s.path) for s in op.init] == [("file", None), ("file", "outputs")]
    assert "RUN pip install x" in op.init[0].spec["content"]


def test_a_minimal_dockerfile_init_uses_polyaxons_defaults() -> None:
    op = build(component("run: {kind: job, init: [{dockerfile: {image: 'python:3.11'}}], container: {command: [x]}}"))
    first, copy = op.init
    assert (first.path, copy.path, first.spec["filename"]) == (None, "outputs", "Dockerfile")
    assert first.spec["content"] == "FROM python:3.11\n\nENV SHELL /bin/bash\n\nWORKDIR /code\n"
    bad = component("run: {kind: job, init: [{dockerfile: {image: x, filename: ../D}}], container: {command: [x]}}")
    with pytest.raises(CompileError, match=r"run\.init\[0\]\.dockerfile\.filename: `\.\./D` must be a file name"):
        build(bad)


@pytest.mark.parametrize(
    ("init", "message"),
    [
        ("{modelRef: m}", "`modelRef` init is not supported yet"),
        ("{git: {url: 'https://x/y'}, connection: gh}", r"run\.init\[0\]\.connection: no connection named gh"),
    ],
)
def test_unsupported_init_entries(init: str, message: str) -> None:
    comp = component(f"run: {{kind: job, init: [{init}], container: {{command: ['true']}}}}")
    with pytest.raises(CompileError, match=message):
        build(comp)


def test_to_init_params_become_init_steps() -> None:
    comp = component("inputs: [{name: repo, type: git}]\nrun: {kind: job, container: {command: ['true']}}")
    operation = Operation.model_validate(
        {"hubRef": "x", "params": {"repo": {"value": "https://x/r.git", "toInit": True}}}
    )
    op = build(comp, inputs={"repo": "https://x/r.git"}, operation=operation)
    assert [(s.kind, s.spec) for s in op.init] == [("git", {"url": "https://x/r.git"})]


SERVICE = """
name: tensorboard
inputs: [{name: uuid, type: str}]
run:
  kind: service
  ports: [6006]
  container:
    command: [tensorboard]
    args:
      - "--logdir={{ globals.artifacts_path }}/{{ uuid }}/outputs/tensorboard"
      - "--port={{ globals.ports[0] }}"
      - "--path_prefix={{ globals.base_url }}"
"""


def test_service_ports_and_base_url() -> None:
    comp = component(SERVICE)
    assert op_kind(comp) == "service"
    assert port_count(comp) == 1
    op = build(comp, inputs={"uuid": TRAIN_UUID}, placement=placement(51234, base_url="/proxy/51234/"))
    assert op.kind == "service"
    assert op.container.args == (
        f"--logdir=/polynb-home/artifacts/{TRAIN_UUID}/outputs/tensorboard",
        "--port=51234",
        "--path_prefix=/proxy/51234/",
    )
    assert op.placement.ports == (51234,)
    with pytest.raises(CompileError, match=r"needs 1 port\(s\), the placement has 0"):
        build(comp, inputs={"uuid": TRAIN_UUID})


def test_service_without_ports_gets_one() -> None:
    assert port_count(component("run: {kind: service, container: {command: [x]}}")) == 1
    assert port_count(component("run: {kind: job, container: {command: [x]}}")) == 0


@pytest.mark.parametrize(
    ("run", "kind"),
    [
        ("{kind: notifier, container: {command: [x]}}", "notifier"),
        ("{kind: tfjob}", "tfjob"),
        ("{kind: dag, operations: [{name: a, hubRef: x}]}", "dag"),
    ],
)
def test_other_run_kinds_are_not_supported_yet(run: str, kind: str) -> None:
    with pytest.raises(CompileError, match=f"run kind `{kind}` is not supported yet"):
        build(component(f"run: {run}"))


# ------------------------------------------------------------------------------------------ hooks

MAIN = RunView(
    uuid=TRAIN_UUID,
    name="train",
    status="failed",
    inputs={"lr": 0.1},
    outputs={"loss": 2.5},
    globals={"duration": 12.5, "wait_time": 1.0},
)


def test_hook_params_defaults_and_disable_defaults() -> None:
    hook = Hook.model_validate(
        {"hubRef": "notify", "params": {"channel": "#ml", "msg": "{{ globals.name }}: {{ loss }}"}}
    )
    values = hook_params(hook, MAIN, main_kind="job")
    assert values == {
        "name": "train",
        "uuid": TRAIN_UUID,
        "kind": "job",
        "status": "failed",
        "inputs": {"lr": 0.1},
        "outputs": {"loss": 2.5},
        "duration": 12.5,
        "wait_time": 1.0,
        "channel": "#ml",
        "msg": "train: 2.5",
    }
    bare = Hook.model_validate(
        {"hubRef": "tb", "disableDefaults": True, "params": {"uuid": {"value": "{{ globals.uuid }}"}}}
    )
    assert hook_params(bare, MAIN) == {"uuid": TRAIN_UUID}


def test_hook_param_refs() -> None:
    hook = Hook.model_validate(
        {
            "hubRef": "x",
            "disableDefaults": True,
            "params": {
                "loss": {"ref": "ops.train", "value": "outputs.loss"},
                "other": {"ref": f"runs.{OTHER_UUID}", "value": "globals.name"},
            },
        }
    )
    other = RunView(uuid=OTHER_UUID, name="old", status="succeeded")
    assert hook_params(hook, MAIN, lookup_run={OTHER_UUID: other}.get) == {"loss": 2.5, "other": "old"}
    bad = Hook.model_validate({"hubRef": "x", "params": {"v": {"ref": "ops.eval", "value": "outputs.a"}}})
    with pytest.raises(ParamError, match=r"`ops\.eval` is not available to a hook"):
        hook_params(bad, MAIN)


def test_hook_conditions_context() -> None:
    context = hook_condition_context(MAIN)
    assert evaluate_conditions("{{ loss > 1 and lr < 1 }}", context) is True
    assert evaluate_conditions("{{ status == 'failed' and globals.status == 'failed' }}", context) is True
    assert evaluate_conditions("{{ globals.uuid == '" + TRAIN_UUID + "' }}", context) is True


def test_compile_hook_binds_defaults_to_declared_inputs() -> None:
    hook = Hook.model_validate({"hubRef": "tensorboard:single-run", "trigger": "succeeded"})
    op = compile_hook(
        hook=hook,
        component=component(SERVICE),
        main=MAIN,
        main_kind="job",
        uuid=UUID,
        placement=placement(6010, base_url="/p/"),
        globals_=run_globals(uuid=UUID, name="ignored"),
    )
    assert op.name == "train-tensorboard"
    assert op.inputs["uuid"] == TRAIN_UUID  # the default `uuid` filled the declared input
    assert op.inputs["status"] == "failed"  # the rest are context values
    assert op.container.args[0].endswith(f"/{TRAIN_UUID}/outputs/tensorboard")


def test_compile_hook_without_defaults_needs_its_required_inputs() -> None:
    hook = Hook.model_validate({"hubRef": "tensorboard", "disableDefaults": True})
    with pytest.raises(ParamError, match="input `uuid` of `train-tensorboard` is required"):
        compile_hook(
            hook=hook,
            component=component(SERVICE),
            main=MAIN,
            uuid=UUID,
            placement=placement(6010),
            globals_={},
        )


def test_kubernetes_fields_environment_and_volumes_reach_the_compiled_op() -> None:
    comp = component(
        """
run:
  kind: job
  environment:
    nodeSelector: {gpu: "true"}
    tolerations: [{key: gpu, operator: Exists}]
    serviceAccountName: trainer
  volumes: [{name: data, persistentVolumeClaim: {claimName: datasets}}]
  container:
    image: python:3.11
    imagePullPolicy: IfNotPresent
    command: [python, train.py]
    resources: {limits: {cpu: 2, memory: 4Gi}}
    volumeMounts: [{name: data, mountPath: /data}]
"""
    )
    op = build(comp)
    assert op.container.k8s == {
        "imagePullPolicy": "IfNotPresent",
        "resources": {"limits": {"cpu": 2, "memory": "4Gi"}},
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    assert op.environment == {
        "nodeSelector": {"gpu": "true"},
        "tolerations": [{"key": "gpu", "operator": "Exists"}],
        "serviceAccountName": "trainer",
    }
    assert op.volumes == ({"name": "data", "persistentVolumeClaim": {"claimName": "datasets"}},)
    assert CompiledOp.from_dict(json.loads(json.dumps(op.to_dict()))) == op


def test_services_bind_the_host_the_placement_gives() -> None:
    comp = component(
        """
run: {kind: service, ports: [6006], container: {command: [serve, "--host={{ globals.host }}"]}}
"""
    )
    local = build(comp, placement=placement(7001))
    assert local.container.args == ()
    assert local.container.command == ("serve", "--host=127.0.0.1")
    pod = Placement(artifacts_path="/a", run_artifacts_path="/a/x", run_outputs_path="/a/x/outputs",
                    ports=(6006,), host="0.0.0.0")  # fmt: skip
    assert build(comp, placement=pod).container.command == ("serve", "--host=0.0.0.0")


def test_a_string_command_or_args_is_one_argument_as_in_polyaxon() -> None:
    """Polyaxon hands a string to Kubernetes whole (``to_list``): never split, never given to a shell."""
    comp = component(
        "run:\n  kind: job\n  container:\n    command: [/bin/bash, -c]\n"
        "    args: 'pip install -r requirements.txt && python train.py --lr={{ lr }}'\n"
        "inputs: [{name: lr, type: float, value: 0.1}]\n"
    )
    op = build(comp, inputs={"lr": 0.1})
    assert op.container.command == ("/bin/bash", "-c")
    assert op.container.args == ("pip install -r requirements.txt && python train.py --lr=0.1",)
    op = build(component("run: {kind: job, container: {command: 'python train.py'}}"))
    assert op.container.command == ("python train.py",)
