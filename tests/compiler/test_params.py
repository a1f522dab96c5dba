"""Param resolution: every ref and value form, binding to declared inputs, types, defaults, toEnv/toInit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from polynb.compiler.errors import ParamError
from polynb.compiler.params import RunView, param_env, param_inits, resolve_params
from polynb.spec.models import Component, Operation

TRAIN_UUID = "0de53b5bf8b04a219d12a39c6b92bcce"
OLD_UUID = "fcc462d764104eb698d3cca509f34154"


@dataclass(frozen=True)
class Op:
    name: str
    operation: Operation
    component: Component


def make_op(inputs: str, params: str, *, name: str = "op", outputs: str = "[]", strict: bool = False) -> Op:
    component = Component.model_validate(
        {
            "kind": "component",
            "name": name,
            "strictParams": strict or None,
            "inputs": yaml.safe_load(inputs),
            "outputs": yaml.safe_load(outputs),
            "run": {"kind": "job", "container": {"command": ["true"]}},
        }
    )
    operation = Operation.model_validate({"kind": "operation", "hubRef": name, "params": yaml.safe_load(params)})
    return Op(name, operation, component)


TRAIN = RunView(
    uuid=TRAIN_UUID,
    name="train",
    status="succeeded",
    inputs={"lr": 0.1},
    outputs={"loss": 0.0, "acc": 0.9, "ok": False, "note": "", "items": [], "model": "m.pt"},
    globals={"uuid": TRAIN_UUID, "name": "train", "created_at": "2026-01-01T00:00:00"},
    artifacts={"checkpoints": "0de53b5bf8b04a219d12a39c6b92bcce/outputs/ckpt"},
)
OLD = RunView(uuid=OLD_UUID, name="old", status="succeeded", outputs={"best": 0.5})


def resolve(op: Op, **kw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    defaults: dict[str, Any] = {
        "dag_inputs": {"data": "/data", "epochs": 3},
        "dag_globals": {"uuid": "d" * 32, "name": "pipeline"},
        "upstream": {"train": TRAIN},
        "lookup_run": {OLD_UUID: OLD}.get,
    }
    defaults.update(kw)
    return resolve_params(op, **defaults)


# ------------------------------------------------------------------------------------------ refs


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("outputs.acc", 0.9),
        ("{{ outputs.acc }}", 0.9),
        ("inputs.lr", 0.1),
        ("inputs", {"lr": 0.1}),
        ("globals.uuid", TRAIN_UUID),
        ("globals.name", "train"),
        ("globals.status", "succeeded"),
        ("globals.created_at", "2026-01-01T00:00:00"),
        ("artifacts.base", TRAIN_UUID),
        ("artifacts.outputs", f"{TRAIN_UUID}/outputs"),
        ("artifacts.tensorboard", f"{TRAIN_UUID}/outputs/tensorboard"),
        ("artifacts.checkpoints", f"{TRAIN_UUID}/outputs/ckpt"),
    ],
)
def test_ops_ref_value_forms(value: str, expected: Any) -> None:
    op = make_op("[]", f"x: {{ref: ops.train, value: '{value}'}}")
    _, contexts = resolve(op)
    assert contexts == {"x": expected}


def test_io_and_whole_outputs_and_artifacts() -> None:
    op = make_op(
        "[]",
        "io: {ref: ops.train, value: io}\nout: {ref: ops.train, value: outputs}\n"
        "art: {ref: ops.train, value: artifacts}",
    )
    _, contexts = resolve(op)
    assert contexts["io"]["inputs"] == {"lr": 0.1}
    assert contexts["io"]["outputs"] == TRAIN.outputs
    assert contexts["io"]["artifacts"]["base"] == TRAIN_UUID
    assert contexts["out"] == TRAIN.outputs
    assert contexts["art"]["outputs"] == f"{TRAIN_UUID}/outputs"


@pytest.mark.parametrize("key", ["loss", "ok", "note", "items"])
def test_falsy_upstream_outputs_are_substituted(key: str) -> None:
    op = make_op("[]", f"x: {{ref: ops.train, value: outputs.{key}}}")
    assert resolve(op)[1] == {"x": TRAIN.outputs[key]}


def test_missing_output_names_what_the_run_reported() -> None:
    run = RunView(uuid=TRAIN_UUID, name="train", status="succeeded", outputs={"acc": 1, "f1": 2})
    op = make_op("[]", "x: {ref: ops.train, value: outputs.loss}")
    with pytest.raises(ParamError) as info:
        resolve(op, upstream={"train": run})
    assert info.value.message == "param `x`: run `train` has no output `loss` (it reported: acc, f1)"


def test_missing_output_of_a_running_run_says_so() -> None:
    run = RunView(uuid=TRAIN_UUID, name="train", status="running")
    with pytest.raises(ParamError, match=r"no output `loss` yet \(it is running\) \(it reported: none\)"):
        resolve(make_op("[]", "x: {ref: ops.train, value: outputs.loss}"), upstream={"train": run})


def test_missing_input_and_global() -> None:
    op = make_op("[]", "a: {ref: ops.train, value: inputs.nope}\nb: {ref: ops.train, value: globals.nope}")
    with pytest.raises(ParamError) as info:
        resolve(op)
    assert "param `a`: run `train` has no input `nope` (it has: lr)" in info.value.message
    assert "param `b`: run `train` has no globals `nope`" in info.value.message


def test_dag_ref_inputs_and_globals() -> None:
    op = make_op(
        "[{name: data, type: path}, {name: epochs, type: int}]",
        "data: {ref: dag, value: inputs.data}\nepochs: {ref: dag, value: inputs.epochs}\n"
        "dag_uuid: {ref: dag, value: globals.uuid}\ndag_id: {ref: dag, value: globals.id}",
    )
    inputs, contexts = resolve(op)
    assert inputs == {"data": "/data", "epochs": 3}
    assert contexts == {"dag_uuid": "d" * 32, "dag_id": "d" * 32}


def test_runs_ref_uses_lookup() -> None:
    op = make_op("[{name: best, type: float}]", f"best: {{ref: runs.{OLD_UUID}, value: outputs.best}}")
    assert resolve(op)[0] == {"best": 0.5}


def test_runs_ref_not_found() -> None:
    other = "a" * 32
    op = make_op("[]", f"best: {{ref: runs.{other}, value: outputs.best}}")
    with pytest.raises(ParamError, match=f"param `best`: run `{other}` .*was not found"):
        resolve(op)


def test_ops_ref_without_upstream_run() -> None:
    op = make_op("[]", "x: {ref: ops.eval, value: outputs.acc}")
    with pytest.raises(ParamError, match=r"`ops\.eval` has no run upstream of `op`"):
        resolve(op)


# --------------------------------------------------------------------------------------- binding


def test_wrong_type_from_upstream_is_rejected() -> None:
    op = make_op("[{name: epochs, type: int}]", "epochs: {ref: ops.train, value: outputs.model}")
    with pytest.raises(ParamError) as info:
        resolve(op)
    message = info.value.message
    assert "param `epochs`: `outputs.model` of `ops.train` is 'm.pt'" in message
    assert "does not fit input `epochs` (int)" in message


def test_defaults_required_and_optional() -> None:
    op = make_op(
        "[{name: lr, type: float, value: 0.01}, {name: seed, type: int, isOptional: true}, {name: data, type: str}]",
        "data: /d",
    )
    assert resolve(op)[0] == {"lr": 0.01, "seed": None, "data": "/d"}
    op = make_op("[{name: data, type: str}, {name: n, type: int}]", "{}")
    with pytest.raises(ParamError) as info:
        resolve(op)
    assert "input `data` of `op` is required" in info.value.message
    assert "input `n` of `op` is required" in info.value.message


def test_values_are_converted_to_the_declared_type() -> None:
    op = make_op(
        "[{name: lr, type: float}, {name: n, type: int}, {name: enabled, type: bool}]", "lr: 1\nn: '4'\nenabled: 'true'"
    )
    assert resolve(op)[0] == {"lr": 1.0, "n": 4, "enabled": True}


def test_options_are_enforced() -> None:
    op = make_op("[{name: opt, type: str, options: [adam, sgd]}]", "opt: rmsprop")
    with pytest.raises(ParamError, match="not one of the options"):
        resolve(op)


def test_single_uuid_into_a_list_input_becomes_a_list() -> None:
    op = make_op("[{name: uuids, type: str, isList: true}]", "uuids: {ref: ops.train, value: globals.uuid}")
    assert resolve(op)[0] == {"uuids": [TRAIN_UUID]}
    op = make_op("[{name: uuids, type: 'List[str]'}]", "uuids: {ref: ops.train, value: globals.uuid}")
    assert resolve(op)[0] == {"uuids": [TRAIN_UUID]}


def test_undeclared_params_become_contexts_and_declared_wins_over_context_only() -> None:
    op = make_op("[{name: lr, type: float}]", "lr: {value: 0.2, contextOnly: true}\ntag: x")
    assert resolve(op) == ({"lr": 0.2}, {"tag": "x"})


def test_strict_params() -> None:
    op = make_op("[{name: lr, type: float}]", "lr: 0.2\ntag: x\nok: {value: 1, contextOnly: true}", strict=True)
    with pytest.raises(ParamError, match="param `tag` is not an input of `op` \\(strictParams\\)"):
        resolve(op)
    op = make_op("[]", "n: {value: 1, contextOnly: false}")
    with pytest.raises(ParamError, match="contextOnly: false"):
        resolve(op)


def test_overrides_replace_params_and_are_converted() -> None:
    op = make_op("[{name: lr, type: float}]", "lr: 0.2")
    assert resolve(op, overrides={"lr": "0.5", "extra": "e"}) == ({"lr": 0.5}, {"extra": "e"})


# ------------------------------------------------------------------------------ templated literals


def test_templated_literal_values_render_against_the_op_context() -> None:
    op = make_op(
        "[{name: run_id, type: str}, {name: n, type: int}]",
        "run_id: '{{ globals.uuid }}'\nn: '{{ base * 2 }}'\nbase: 4\nlabel: '{{ globals.name }}-{{ epochs }}'",
    )
    inputs, contexts = resolve(op, globals_={"uuid": "u-op", "name": "op"})
    assert inputs == {"run_id": "u-op", "n": 8}
    assert contexts == {"base": 4, "label": "op-3"}


def test_templated_literal_error_names_the_param() -> None:
    op = make_op("[]", "x: '{{ nope }}'")
    with pytest.raises(ParamError, match="param `x`: template `\\{\\{ nope \\}\\}`: 'nope' is undefined"):
        resolve(op)


def test_templated_input_default_is_rendered() -> None:
    op = make_op("[{name: out, type: str, value: '{{ globals.uuid }}/x'}]", "{}")
    assert resolve(op, globals_={"uuid": "u1"})[0] == {"out": "u1/x"}


def test_upstream_values_are_never_rendered() -> None:
    run = RunView(uuid=TRAIN_UUID, name="train", status="succeeded", outputs={"text": "{{ globals.uuid }}"})
    op = make_op("[]", "x: {ref: ops.train, value: outputs.text}")
    assert resolve(op, upstream={"train": run}, globals_={"uuid": "u"})[1] == {"x": "{{ globals.uuid }}"}


# -------------------------------------------------------------------------------- toEnv and toInit


def test_to_env_from_param_and_io() -> None:
    op = make_op(
        "[{name: lr, type: float}, {name: key, type: str, toEnv: API_KEY}, {name: cfg, type: dict}]",
        "lr: {value: 0.1, toEnv: LR}\nkey: k; rm -rf /\ncfg: {value: {a: 1}, toEnv: CFG}\n"
        "flag: {value: true, toEnv: FLAG}",
    )
    inputs, contexts = resolve(op)
    env = param_env(op.component, op.operation.params, {**contexts, **inputs})
    assert env == {"LR": "0.1", "API_KEY": "k; rm -rf /", "CFG": '{"a": 1}', "FLAG": "true"}


def test_to_init_git_artifacts_path() -> None:
    op = make_op(
        "[{name: repo, type: git}, {name: files, type: artifacts}, {name: data, type: path}, {name: n, type: int}]",
        "repo: {value: 'https://github.com/org/repo.git', toInit: true}\n"
        "files: {toInit: true, value: [{files: [a.txt]}, {dirs: [d1, d2]}]}\n"
        "data: {value: some/dir, toInit: true}\nn: 1",
    )
    inputs, contexts = resolve(op)
    inits = param_inits(op.component, op.operation.params, {**contexts, **inputs})
    assert [i.kind for i in inits] == ["git", "artifacts", "paths"]
    assert inits[0].git is not None and inits[0].git.url == "https://github.com/org/repo.git"
    assert inits[1].artifacts is not None and inits[1].artifacts.dirs == ["d1", "d2"]
    assert inits[2].paths == ["some/dir"]


def test_to_init_of_other_types_is_refused() -> None:
    op = make_op("[{name: n, type: int}]", "n: {value: 1, toInit: true}")
    inputs, contexts = resolve(op)
    with pytest.raises(ParamError, match="toInit needs an input of type git, artifacts, path or dockerfile"):
        param_inits(op.component, op.operation.params, {**contexts, **inputs})
