"""Hooks: which ones a run's final status selects, the runs they become, and the default context a hook
receives from its main run.

A hook runs after its main run's final status (after the last retry) when its ``trigger`` matches that
status (``done`` or no trigger: any final status) and its ``conditions`` hold. :class:`HookFactory` selects
the hooks and writes their runs; ``Statuses.finish`` calls it inside the transaction that writes the main
run's final status, and submits them after.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from polynb.lifecycle import Status, is_final
from polynb.scheduler.compiling import REASON_CONDITIONS_ERROR, OpCompiler
from polynb.scheduler.plan import HookPlan
from polynb.scheduler.run_state import RunState
from polynb.scheduler.state import EngineState
from polynb.store import EventRecord, NewRun, RunRecord, Transition

HOOK_TRIGGERS: frozenset[Status] = frozenset(
    {Status.SUCCEEDED, Status.FAILED, Status.STOPPED, Status.SKIPPED, Status.UPSTREAM_FAILED, Status.DONE}
)

_PIPELINE_ROLES = frozenset({"dag", "sweep", "schedule"})
"""Roles of a top-level run with runs under it (``RunState.role``)."""
DEFAULT_CONTEXT_KEYS = ("name", "uuid", "kind", "status", "inputs", "outputs", "duration", "wait_time")


def trigger_matches(trigger: object, status: Status | str) -> bool:
    """Whether a hook with ``trigger`` (a status name, an enum of one, or None) runs for a final ``status``."""
    status = Status(status)
    if not is_final(status):
        return False
    if trigger is None:
        return True
    value = Status(str(getattr(trigger, "value", trigger)))
    return value == Status.DONE or value == status


class _NamedHook(Protocol):
    @property
    def hub_ref(self) -> str: ...
    @property
    def trigger(self) -> object: ...


def _trigger_name(hook: _NamedHook) -> str:
    trigger = hook.trigger
    return str(getattr(trigger, "value", trigger)) if trigger is not None else Status.DONE.value


def hook_run_name(main_name: str, hooks: Sequence[_NamedHook], index: int) -> str:
    """The name of the run of ``hooks[index]`` of the run ``main_name``: distinct among its hooks, and stable.

    ``<main>-<hub>`` (``hubRef`` without its tag, ``/`` as ``-``) when one hook uses that component; when several
    do, ``-on-<trigger>`` follows, and when they share the trigger too, their 1-based rank among those
    (``train-webhook-on-failed-2``). Only the op's hook list decides it, so a run keeps its name whichever hooks
    fire and whichever engine creates it.
    """

    def hub(hook: _NamedHook) -> str:
        return hook.hub_ref.split(":")[0].replace("/", "-")

    hook = hooks[index]
    name = f"{main_name}-{hub(hook)}"
    same_hub = [h for h in hooks if hub(h) == hub(hook)]
    if len(same_hub) == 1:
        return name
    trigger = _trigger_name(hook)
    name = f"{name}-on-{trigger}"
    if Counter(_trigger_name(h) for h in same_hub)[trigger] == 1:
        return name
    rank = sum(1 for h in hooks[:index] if hub(h) == hub(hook) and _trigger_name(h) == trigger) + 1
    return f"{name}-{rank}"


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


def default_context(
    *,
    name: str,
    uuid: str,
    kind: str,
    status: Status | str,
    inputs: Mapping[str, Any],
    outputs: Mapping[str, Any],
    created_at: datetime | None,
    started_at: datetime | None,
    finished_at: datetime | None,
) -> dict[str, Any]:
    """The main run's context passed to a hook (as context-only params) unless ``disableDefaults``.

    ``wait_time`` is created → started, ``duration`` started → finished (created → finished for a run that
    never started), both in seconds, like Polyaxon's ``set_started_at``/``set_finished_at``.
    """
    return {
        "name": name,
        "uuid": uuid,
        "kind": kind,
        "status": Status(status).value,
        "inputs": dict(inputs),
        "outputs": dict(outputs),
        "duration": seconds_between(started_at or created_at, finished_at),
        "wait_time": seconds_between(created_at, started_at),
    }


@dataclass(frozen=True, slots=True)
class NewHook:
    """A hook run to create and its plan; ``run.message`` holds the error of conditions that could not be
    evaluated (the hook run is then created ``failed``)."""

    run: NewRun
    plan: HookPlan


@dataclass(frozen=True, slots=True)
class WrittenHook:
    """A hook run as written: its record and ``created`` events, and its ``failed`` transition when its
    conditions could not be evaluated (it never runs)."""

    record: RunRecord
    plan: HookPlan
    created: list[EventRecord]
    failed: Transition | None


class HookFactory:
    """Selects the hooks of a main run's final status and writes their runs."""

    def __init__(self, state: EngineState, compiler: OpCompiler) -> None:
        self._state = state
        self._compiler = compiler

    def select(self, run: RunState, status: Status) -> list[NewHook]:
        """The hook runs ``status`` selects among ``run``'s hooks (trigger and conditions), not created
        yet. Reads only: called before the transaction that writes them."""
        if run.uuid in self._state.sweeps:  # a sweep (top-level, or an op of a DAG): the operation's hooks
            hooks = self._state.sweeps[run.uuid].hooks
        elif run.uuid in self._state.schedules:  # a schedule: the operation's hooks
            hooks = self._state.schedules[run.uuid].hooks
        elif run.role == "dag":
            hooks = self._state.dags[run.uuid].plan.hooks
        elif run.hook is not None:
            hooks = self._hooks_of_hook(run)
        elif run.plan is not None:
            hooks = run.plan.hooks
        else:
            return []
        if not hooks:
            return []
        store = self._state.store
        components = store.get_run(run.root).meta.get("hook_components", {})
        existing = {r.meta.get("hook", {}).get("index") for r in store.hooks_of(run.uuid)}
        main = store.get_run(run.uuid)
        selected: list[NewHook] = []
        for index, hook in enumerate(hooks):
            if index in existing or not trigger_matches(hook.trigger, status):
                continue
            selection = self._compiler.select_hook(hook, main=main, status=status, components=components)
            if selection is None:
                continue
            plan = HookPlan(hook=hook, component=selection.component, index=index)
            new = NewRun(
                name=hook_run_name(run.name, hooks, index),
                kind=str(getattr(selection.component.run, "kind", "job")),
                # A pipeline's own hooks are under it (a DAG's, a top-level sweep's or schedule's), as the
                # hooks of its ops are: `polynb events`/`logs`/`run` of the pipeline show them.
                dag_uuid=run.uuid if run.role in _PIPELINE_ROLES else run.dag_uuid,
                hook_of=run.uuid,
                hook_trigger=hook.trigger.value if hook.trigger is not None else "done",
                meta={"role": "hook", "hook": plan.to_meta()},
                executor=run.executor,
                message=selection.error,
            )
            selected.append(NewHook(new, plan))
        return selected

    def _hooks_of_hook(self, run: RunState) -> tuple[Any, ...]:
        """A hook run's own hooks: those of its component. A hook whose component is already running as a hook
        up the chain (a webhook whose component notifies with the webhook) is left out: it would never end."""
        assert run.hook is not None
        chain: set[str] = set()
        current: RunState | None = run
        while current is not None and current.hook is not None:
            chain.add(current.hook.hook.hub_ref)
            current = self._state.runs.get(current.hook_of or "")
        return tuple(h for h in run.hook.component.hooks or () if h.hub_ref not in chain)

    def write(self, hooks: list[NewHook]) -> list[WrittenHook]:
        """Create the hook runs (``created``); a hook whose conditions could not be evaluated is moved to
        ``failed`` at once, so a restarted engine never runs it. Meant to run inside ``Store.atomic``."""
        store = self._state.store
        written: list[WrittenHook] = []
        for new in hooks:
            (record,) = store.create_runs([new.run])
            created = store.events(run_uuid=record.uuid)
            failed = None
            if new.run.message:
                failed = store.set_status(
                    record.uuid, Status.FAILED, reason=REASON_CONDITIONS_ERROR, message=new.run.message
                )
            written.append(WrittenHook(record, new.plan, created, failed))
        return written
