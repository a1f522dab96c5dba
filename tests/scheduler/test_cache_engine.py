"""``cache``: an op whose cache key matches a run that succeeded (within ``ttl``) reuses its outputs unrun."""

from __future__ import annotations

import json
from pathlib import Path

from support.schedkit import PY, Env, describe

from polynb.lifecycle import Status


def counting_job(counter: Path, *, cache: str, lr: float = 0.1) -> str:
    """A single job that appends a line to ``counter`` each time it really runs and reports ``loss``."""
    code = (
        "import json, os, sys; "
        f"open({str(counter)!r}, 'a').write('ran\\n'); "
        "path = os.path.join(os.environ['POLYAXON_RUN_OUTPUTS_PATH'], 'outputs.json'); "
        "json.dump({'loss': float(sys.argv[1]) / 2}, open(path, 'w'))"
    )
    return f"""
version: 1.1
kind: operation
name: train
params: {{lr: {{value: {lr}}}}}
{cache}
component:
  name: train
  inputs: [{{name: lr, type: float}}]
  outputs: [{{name: loss, type: float}}]
  run:
    kind: job
    container:
      command: {json.dumps([PY, "-c", code])}
      args: ["{{{{ lr }}}}", "--out={{{{ globals.run_outputs_path }}}}"]
"""


def runs_of(counter: Path) -> int:
    return len(counter.read_text().splitlines()) if counter.exists() else 0


def test_a_second_identical_run_reuses_the_first_ones_outputs(env: Env) -> None:
    counter = env.tmp / "count.txt"
    first = env.run(counting_job(counter, cache="cache: {ttl: 3600}"))
    assert env.wait(first) == "succeeded"
    second = env.run(counting_job(counter, cache="cache: {ttl: 3600}"))
    assert env.wait(second) == "succeeded"
    assert runs_of(counter) == 1  # the second did not run, although its output path differs (its own uuid)
    record = env.store.get_run(second)
    assert (record.reason, record.outputs) == ("Cached", {"loss": 0.05})
    assert first in (record.message or "")
    assert env.store.get_run(first).meta["cache_key"] == record.meta["cache_key"]


def test_other_params_disable_or_no_cache_section_run_again(env: Env) -> None:
    counter = env.tmp / "count.txt"
    for cache, lr in (("cache: {}", 0.1), ("cache: {}", 0.2), ("cache: {disable: true}", 0.1), ("", 0.1)):
        uuid = env.run(counting_job(counter, cache=cache, lr=lr))
        assert env.wait(uuid) == "succeeded", describe(env.store, uuid)
        assert env.store.get_run(uuid).reason != "Cached"
    assert runs_of(counter) == 4


def test_io_limits_the_inputs_that_count(env: Env) -> None:
    counter = env.tmp / "count.txt"
    # The container's args carry `lr`, so leave out the containers section: only the io listed counts.
    cache = "cache: {io: [], sections: [init]}"
    assert env.wait(env.run(counting_job(counter, cache=cache, lr=0.1))) == "succeeded"
    second = env.run(counting_job(counter, cache=cache, lr=0.4))
    assert env.wait(second) == "succeeded"
    assert runs_of(counter) == 1 and env.store.get_run(second).reason == "Cached"


def test_a_hit_older_than_the_ttl_is_not_reused(env: Env) -> None:
    counter = env.tmp / "count.txt"
    assert env.wait(env.run(counting_job(counter, cache="cache: {}"))) == "succeeded"
    # ttl: 0 -> only a run finished at this very instant or later would do
    later = env.run(counting_job(counter, cache="cache: {ttl: 0}"))
    assert env.wait(later) == "succeeded"
    assert runs_of(counter) == 2
    assert env.store.get_run(later).status == Status.SUCCEEDED


def templated_cache_job(counter: Path, *, no_cache: str, ttl: str = '"{{ keep }}"') -> str:
    """A job whose ``cache`` fields are templates of its own inputs (Polyaxon renders them when it compiles)."""
    code = f"open({str(counter)!r}, 'a').write('ran\\n')"
    return f"""
version: 1.1
kind: operation
name: train
params: {{no_cache: {{value: {no_cache}}}, keep: {{value: 3600}}}}
cache: {{disable: "{{{{ no_cache }}}}", ttl: {ttl}}}
component:
  name: train
  inputs: [{{name: no_cache, type: bool}}, {{name: keep, type: int}}]
  run: {{kind: job, container: {{command: {json.dumps([PY, "-c", code])}}}}}
"""


def test_cache_fields_written_as_templates_are_rendered_with_the_ops_inputs(env: Env) -> None:
    counter = env.tmp / "count.txt"
    # `disable: "{{ no_cache }}"` with no_cache true: every run runs (the template is not a truthy string).
    for _ in range(2):
        uuid = env.run(templated_cache_job(counter, no_cache="true"))
        assert env.wait(uuid) == "succeeded", describe(env.store, uuid)
        assert env.store.get_run(uuid).reason != "Cached"
    assert runs_of(counter) == 2
    # With no_cache false the section applies, `ttl` rendered from `keep`: the second run reuses the first.
    first = env.run(templated_cache_job(counter, no_cache="false"))
    assert env.wait(first) == "succeeded", describe(env.store, first)
    second = env.run(templated_cache_job(counter, no_cache="false"))
    assert env.wait(second) == "succeeded", describe(env.store, second)
    assert runs_of(counter) == 3
    assert env.store.get_run(second).reason == "Cached"


def test_a_cache_template_that_renders_to_the_wrong_type_fails_the_op_unrun(env: Env) -> None:
    counter = env.tmp / "count.txt"
    uuid = env.run(templated_cache_job(counter, no_cache="false", ttl='"{{ no_cache }}"'))
    assert env.wait(uuid) == "failed"
    record = env.store.get_run(uuid)
    assert "cache.ttl: expected a number of seconds" in (record.message or ""), describe(env.store, uuid)
    assert runs_of(counter) == 0
