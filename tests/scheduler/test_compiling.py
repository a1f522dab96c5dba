"""Compiling an op in the engine: what is rendered before the op is placed on its executor."""

from __future__ import annotations

import yaml
from support.execkit import wait_until
from support.schedkit import PY, Env, dag, describe, job, wait_flag

from polynb.lifecycle import Status
from polynb.spec.models import Component


def service(name: str, ports: str, out: str) -> str:
    """A service op whose ``ports`` is a template of its ``ports`` param: it writes the ports it was given, then
    serves on the first."""
    return f"""name: {name}
params: {{ports: {{value: {ports}}}}}
component:
  name: {name}
  inputs: [{{name: ports, type: any}}]
  run:
    kind: service
    ports: "{{{{ ports }}}}"
    container:
      command: [sh, -c, 'echo "$@" > {out}; exec "{PY}" -m http.server "$1" --bind 127.0.0.1', sh,
                "{{{{ globals.ports }}}}"]"""


def test_a_services_ports_written_as_a_template_are_rendered_before_it_is_placed(env: Env) -> None:
    out = env.tmp / "ports.txt"
    uuid = env.run(dag(service("board", "[8000, 8001]", str(out))))
    board = env.ops(uuid)["board"].uuid
    wait_until(lambda: out.exists() and out.read_text().strip() != "", f"{out}")
    # Two ports asked, two free ports given (the numbers written are placeholders, as for a literal list).
    given = out.read_text().split()
    assert len(given) == 2 and all(port.isdigit() for port in given)
    assert env.store.get_run(board).spec["placement"]["ports"] == [int(port) for port in given]
    env.engine.stop(board)
    assert env.wait(uuid, include_services=True) == "stopped", describe(env.store, uuid)


def test_a_ports_template_that_gives_no_list_of_ports_fails_the_op_unrun(env: Env) -> None:
    out = env.tmp / "ports.txt"
    uuid = env.run(dag(service("board", "eighty", str(out))))
    assert env.wait(uuid, include_services=True) == "failed"
    board = env.ops(uuid)["board"]
    assert (board.status, board.reason) == (Status.FAILED, "CompilationFailed")
    assert board.message == "run.ports: expected a list of port numbers; the template `{{ ports }}` gave 'eighty'"
    assert not out.exists()


def test_a_hooks_service_with_templated_ports_is_placed_with_the_hooks_params(env: Env) -> None:
    out = env.tmp / "ports.txt"
    # The op's text, as a hub component: a hook's `ports` renders with the hook's own params.
    body = yaml.safe_load(service("board", "[1, 2, 3]", str(out)))["component"]
    env.registry.register("board", Component.model_validate(body))
    uuid = env.run(dag(job("train", ["true"], extra="hooks: [{hubRef: board, params: {ports: {value: [1, 2, 3]}}}]\n")))
    assert env.wait(uuid, include_hooks=False) == "succeeded", describe(env.store, uuid)
    wait_until(lambda: out.exists() and out.read_text().strip() != "", f"{out}")
    assert len(out.read_text().split()) == 3  # three ports for the hook's three
    (hook,) = env.store.hooks_of(env.ops(uuid)["train"].uuid)
    env.engine.stop(hook.uuid)
    assert env.wait(uuid) == "succeeded", describe(env.store, uuid)  # its hooks final too
    assert env.store.get_run(hook.uuid).status == Status.STOPPED


def test_a_service_with_templated_ports_has_its_own_paths_in_its_params(env: Env) -> None:
    # Its ports render with its params before it is placed; its params then see what the placement gave.
    out = env.tmp / "seen.txt"
    op = f"""name: board
params: {{ports: {{value: [1, 2]}}, where: {{value: "{{{{ globals.run_outputs_path }}}}"}}}}
component:
  name: board
  inputs: [{{name: ports, type: any}}, {{name: where, type: str}}]
  run:
    kind: service
    ports: "{{{{ ports }}}}"
    container:
      command: [sh, -c, 'echo "$1" > {out}; exec "{PY}" -m http.server "$2" --bind 127.0.0.1', sh,
                "{{{{ where }}}}", "{{{{ globals.ports[0] }}}}"]"""
    uuid = env.run(dag(op))
    board = env.ops(uuid)["board"].uuid
    wait_until(lambda: out.exists() and out.read_text().strip() != "", f"{out}")
    placement = env.store.get_run(board).spec["placement"]
    assert out.read_text().strip() == placement["run_outputs_path"] and len(placement["ports"]) == 2
    env.engine.stop(board)
    assert env.wait(uuid, include_services=True) == "stopped", describe(env.store, uuid)


def _board(name: str, extra: str = "") -> str:
    """A service with two ports that would serve until stopped."""
    return f"""name: {name}
{extra}component:
  name: {name}
  run: {{kind: service, ports: [6006, 6007], container: {{command: [sleep, "600"]}}}}"""


def test_a_service_skipped_by_its_conditions_gives_its_ports_back(env: Env) -> None:
    # Placed (its ports reserved) before its conditions are read, it never runs: the ports are free again at once,
    # not held until the engine exits (a kernel's engine lives long and runs many pipelines).
    uuid = env.run(dag(_board("board", "conditions: '{{ false }}'\n"), job("a", ["true"])))
    assert env.wait(uuid) == "succeeded", describe(env.store, uuid)
    board = env.ops(uuid)["board"]
    assert (board.status, board.reason) == (Status.SKIPPED, "ConditionsNotMet")
    wait_until(lambda: env.executor.reserved_ports() == {}, "the skipped service's ports given back")


def test_a_service_stopped_in_its_dags_queue_gives_its_ports_back(env: Env) -> None:
    # Compiled and placed, it waits for a slot of its DAG (concurrency 1) when the DAG is stopped: it never runs.
    flag = env.tmp / "never"
    text = dag(job("a", wait_flag(flag)), _board("board")).replace("  kind: dag\n", "  kind: dag\n  concurrency: 1\n")
    uuid = env.run(text)
    wait_until(lambda: env.ops(uuid)["board"].status == Status.COMPILED, "board compiled, waiting for a slot")
    board = env.ops(uuid)["board"].uuid
    assert len(env.executor.reserved_ports().get(board, ())) == 2
    env.engine.stop(uuid)
    assert env.wait(uuid, include_services=True) == "stopped", describe(env.store, uuid)
    assert env.store.get_run(board).status == Status.STOPPED
    wait_until(lambda: env.executor.reserved_ports() == {}, "the stopped service's ports given back")


def test_a_service_upstream_failed_reserves_no_port(env: Env) -> None:
    # Decided before it is compiled: it is never placed.
    uuid = env.run(dag(job("a", ["false"]), _board("board", "dependencies: [a]\n")))
    assert env.wait(uuid) == "failed", describe(env.store, uuid)
    assert env.ops(uuid)["board"].status == Status.UPSTREAM_FAILED
    assert env.executor.reserved_ports() == {}
