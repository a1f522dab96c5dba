"""Hooks: runs of their own after the main run's final status, selected by trigger and conditions."""

from __future__ import annotations

import pytest
from support.schedkit import Env, component, dag, describe, job, wait_flag

from polynb.lifecycle import Status


@pytest.fixture
def notify(env: Env) -> Env:
    """A hub component ``notify`` that takes the main run's ``status`` as an optional input."""
    env.registry.register(
        "notify",
        component(
            "notify",
            ["true"],
            inputs=[{"name": "status", "type": "str", "value": "none", "isOptional": True}],
        ),
    )
    return env


def hooks_yaml(*triggers: str, extra: str = "") -> str:
    return "hooks:\n" + "".join(f"- {{hubRef: notify, trigger: {t}{extra}}}\n" for t in triggers)


ALL_TRIGGERS = ("succeeded", "failed", "stopped", "skipped", "upstream_failed", "done")


def test_hooks_run_for_the_matching_trigger_only(notify: Env) -> None:
    env = notify
    hooks = hooks_yaml(*ALL_TRIGGERS)
    uuid = env.run(
        dag(
            job("ok", ["true"], extra=hooks),
            job("bad", ["false"], extra=hooks),
            job("skip", ["true"], extra='conditions: "{{ false }}"\n' + hooks),
            job("blocked", ["true"], extra="dependencies: [bad]\n" + hooks),
        )
    )
    assert env.wait(uuid) == "failed", describe(env.store, uuid)
    ops = env.ops(uuid)
    expected = {
        "ok": {"succeeded", "done"},
        "bad": {"failed", "done"},
        "skip": {"skipped", "done"},
        "blocked": {"upstream_failed", "done"},
    }
    for name, triggers in expected.items():
        hook_runs = env.store.hooks_of(ops[name].uuid)
        assert {h.hook_trigger for h in hook_runs} == triggers, name
        # Six hooks of one component: each run has a name of its own, saying which hook it is.
        assert sorted(h.name for h in hook_runs) == sorted(f"{name}-notify-on-{t}" for t in triggers), name
        assert all(h.status == Status.SUCCEEDED for h in hook_runs), describe(env.store, uuid)
        # The hook started after the main run's final status, as a run of its own.
        for hook in hook_runs:
            assert env.seq(ops[name].uuid, "run_status_done") < env.seq(hook.uuid, "run_status_queued")
            assert hook.dag_uuid == uuid
            assert hook.hook_of == ops[name].uuid


def test_stopped_op_runs_its_stopped_hook(notify: Env) -> None:
    env = notify
    uuid = env.run(dag(job("long", wait_flag(env.tmp / "never"), extra=hooks_yaml("stopped", "succeeded"))))
    long_uuid = env.ops(uuid)["long"].uuid
    env.recorder.wait_for(lambda evs: any(e.run_uuid == long_uuid and e.kind == "run_status_running" for e in evs))
    env.engine.stop(long_uuid)
    assert env.wait(uuid) == "stopped"
    assert [h.hook_trigger for h in env.store.hooks_of(long_uuid)] == ["stopped"]


def test_hook_receives_the_main_run_context_by_default(notify: Env) -> None:
    env = notify
    uuid = env.run(dag(job("main", ["true"], extra=hooks_yaml("done"))))
    env.wait(uuid)
    (hook,) = env.store.hooks_of(env.ops(uuid)["main"].uuid)
    assert hook.inputs["status"] == "succeeded"


def test_disable_defaults_withholds_the_main_run_context(notify: Env) -> None:
    env = notify
    uuid = env.run(dag(job("main", ["true"], extra=hooks_yaml("done", extra=", disableDefaults: true"))))
    env.wait(uuid)
    (hook,) = env.store.hooks_of(env.ops(uuid)["main"].uuid)
    assert hook.status == Status.SUCCEEDED
    assert hook.inputs["status"] == "none"


def test_hook_conditions_select_hooks(notify: Env) -> None:
    env = notify
    hooks = (
        "hooks:\n"
        "- {hubRef: notify, trigger: done, conditions: '{{ loss < 1 }}'}\n"
        "- {hubRef: notify, trigger: done, conditions: '{{ loss > 1 }}'}\n"
    )
    from support.schedkit import write_outputs

    main = job("main", write_outputs(loss=0.5), extra="outputs: [{name: loss, type: float}]\n" + hooks)
    uuid = env.run(dag(main))
    env.wait(uuid)
    hooks_run = env.store.hooks_of(env.ops(uuid)["main"].uuid)
    assert len(hooks_run) == 1
    assert hooks_run[0].meta["hook"]["index"] == 0


def test_hook_conditions_error_is_a_failed_hook_run(notify: Env) -> None:
    env = notify
    hooks = "hooks:\n- {hubRef: notify, trigger: done, conditions: '{{ nope > 1 }}'}\n"
    uuid = env.run(dag(job("main", ["true"], extra=hooks)))
    env.wait(uuid)
    (hook,) = env.store.hooks_of(env.ops(uuid)["main"].uuid)
    assert hook.status == Status.FAILED
    assert hook.message is not None
    assert "nope" in hook.message


def test_hook_runs_once_after_the_last_retry(notify: Env) -> None:
    env = notify
    attempts = env.tmp / "attempts"
    flaky = job(
        "flaky",
        ["sh", "-c", f'echo x >> "{attempts}"; exit 1'],
        extra="termination: {maxRetries: 2}\n" + hooks_yaml("failed", "done"),
    )
    uuid = env.run(dag(flaky))
    assert env.wait(uuid) == "failed"
    op = env.ops(uuid)["flaky"]
    assert attempts.read_text().count("x") == 3
    assert op.attempt == 3
    kinds = env.kinds(op.uuid)
    assert kinds.count("run_status_retrying") == 2
    assert kinds.count("run_status_done") == 1
    hooks = env.store.hooks_of(op.uuid)
    assert sorted(h.hook_trigger or "" for h in hooks) == ["done", "failed"]
    assert all(env.seq(op.uuid, "run_status_done") < env.seq(h.uuid, "run_status_queued") for h in hooks)


def test_dag_level_hooks_run_after_the_dag_is_final(notify: Env) -> None:
    env = notify
    text = dag(job("a", ["true"]), extra=hooks_yaml("succeeded", "failed"))
    uuid = env.run(text)
    assert env.wait(uuid) == "succeeded"
    (hook,) = env.store.hooks_of(uuid)
    assert hook.hook_trigger == "succeeded"
    assert hook.status == Status.SUCCEEDED
    assert env.seq(uuid, "run_status_done") < env.seq(hook.uuid, "run_status_queued")


def test_a_hook_never_keeps_the_dag_alive(env: Env) -> None:
    flag = env.tmp / "release-hook"
    env.registry.register("slow", component("slow", wait_flag(flag)))
    uuid = env.run(dag(job("a", ["true"], extra="hooks: [{hubRef: slow}]\n")))
    assert env.wait(uuid, include_hooks=False) == "succeeded"
    (hook,) = env.store.hooks_of(env.ops(uuid)["a"].uuid)
    assert not env.store.get_run(hook.uuid).is_final
    assert env.store.get_run(uuid).status == Status.SUCCEEDED
    flag.touch()
    assert env.wait(uuid) == "succeeded"
    assert env.store.get_run(hook.uuid).status == Status.SUCCEEDED


def test_the_main_runs_final_status_is_logged_before_anything_of_its_hooks(notify: Env) -> None:
    """Issue 11 item 6: a hook's ``created`` (and a failed hook's ``failed``/``done``) came before the main
    run's ``succeeded``. The log, and what listeners see, must read in causal order."""
    env = notify
    hooks = (
        "hooks:\n"
        "- {hubRef: notify, trigger: succeeded}\n"
        "- {hubRef: notify, trigger: done, conditions: '{{ nope > 1 }}'}\n"
    )
    uuid = env.run(dag(job("main", ["true"], extra=hooks), extra=hooks))
    assert env.wait(uuid) == "succeeded", describe(env.store, uuid)
    for main in (env.ops(uuid)["main"].uuid, uuid):
        hook_runs = env.store.hooks_of(main)
        assert sorted(h.status for h in hook_runs) == [Status.FAILED, Status.SUCCEEDED], describe(env.store, uuid)
        final = env.seq(main, "run_status_succeeded")
        assert final < env.seq(main, "run_status_done")
        for hook in hook_runs:
            assert min(e.seq for e in env.store.events(run_uuid=hook.uuid)) > env.seq(main, "run_status_done")
            seen = [(e.run_uuid, e.kind) for e in env.recorder.events]
            assert seen.index((main, "run_status_done")) < seen.index((hook.uuid, "run_status_created"))


def test_a_hook_runs_the_hooks_of_its_own_component(env: Env) -> None:
    # Polyaxon: a hook run is a run like any other; its component's hooks run when it ends.
    env.registry.register("audit", component("audit", ["true"]))
    env.registry.register(
        "notify",
        component("notify", ["false"], hooks=[{"hubRef": "audit", "trigger": "failed"}, {"hubRef": "notify"}]),
    )
    uuid = env.run(job("train", ["true"], "hooks: [{hubRef: notify}]\n"))
    assert env.wait(uuid) == "succeeded"
    (notify_run,) = env.store.hooks_of(uuid)
    assert (notify_run.name, notify_run.status) == ("train-notify", Status.FAILED)
    # its own `notify` hook is left out (it would notify forever); its `audit` hook ran, as a hook of the hook
    (audit,) = env.store.hooks_of(notify_run.uuid)
    assert (audit.name, audit.status, audit.hook_trigger) == ("train-notify-audit", Status.SUCCEEDED, "failed")
    assert env.store.hooks_of(audit.uuid) == []
