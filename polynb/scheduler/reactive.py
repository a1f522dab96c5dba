"""Loading a reactive pipeline for ``polynb watch``: its top-level ``events`` on connections become sources,
the rest is the pipeline run once per event (``watch``).

``events: [{ref: connections.repo, kinds: [connection_git_commit]}]`` names a connection of
``$POLYNB_HOME/config.yaml``; several triggers are alternatives (each event runs the pipeline once). An event
reaches the pipeline through its inputs (``watch.event_params``): an input named like a payload key (``sha``,
``path``, ``tag``, ...) gets that value, an input named ``event`` the whole payload; ops read them as usual
(``{ref: dag, value: inputs.sha}``, then ``{{ sha }}`` in their templates).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polynb.compiler.pipeline import Pipeline, build_pipeline
from polynb.compiler.registry import ComponentRegistry
from polynb.scheduler.sources.external import Source
from polynb.scheduler.sources.kinds import source_for
from polynb.scheduler.watch import event_params
from polynb.spec.models import Component, Operation
from polynb.store.watches import WatchEvent


class ReactiveError(ValueError):
    """The file is not a reactive pipeline, or names connections that cannot be watched; the message says why."""


@dataclass
class ReactivePipeline:
    path: Path
    spec: Component | Operation
    """The pipeline without its top-level connection events (what runs once per event)."""
    sources: list[Source]
    params: dict[str, Any]
    """``-P`` values given to every run (an event's values win)."""

    @property
    def name(self) -> str:
        return (
            self.spec.name
            or (self.spec.component.name if isinstance(self.spec, Operation) and self.spec.component else None)
            or self.path.stem
        )

    @property
    def inputs(self) -> list[Any]:
        if isinstance(self.spec, Component):
            return list(self.spec.inputs or ())
        component = self.spec.component
        return list(component.inputs or ()) if component is not None else []

    def build(self, event: WatchEvent) -> Pipeline:
        params = {**self.params, **event_params(event, self.inputs)}
        return build_pipeline(
            self.spec, params=params, registry=ComponentRegistry(), base_dir=self.path.parent, source=str(self.path)
        )


def load_reactive(
    path: Path, spec: Component | Operation, connections: Sequence[Mapping[str, Any]], params: Mapping[str, Any]
) -> ReactivePipeline:
    """The sources and the runnable rest of ``spec`` (loaded from ``path``)."""
    triggers = [e for e in spec.events or () if e.connection is not None]
    if not triggers:
        raise ReactiveError(
            f"{path}: no top-level `events` on a connection (e.g. `events: [{{ref: connections.repo, kinds: "
            "[connection_git_commit]}]`): nothing to watch; run it with `polynb run`"
        )
    others = [e.ref for e in spec.events or () if e.connection is None]
    if others:
        raise ReactiveError(
            f"{path}: top-level events on runs ({', '.join(others)}) cannot be watched with connections"
        )
    by_name = {str(c.get("name")): c for c in connections}
    sources: list[Source] = []
    for trigger in triggers:
        name = str(trigger.connection)
        connection = by_name.get(name)
        if connection is None:
            known = ", ".join(sorted(by_name)) or "none"
            raise ReactiveError(
                f"{path}: `{trigger.ref}`: no connection named {name} in the `connections:` of the config file "
                f"($POLYNB_CONFIG, else $POLYNB_HOME/config.yaml; known: {known})"
            )
        try:
            source = source_for(connection)
        except ValueError as exc:
            raise ReactiveError(str(exc)) from None
        kinds = {k.value for k in trigger.kinds}
        if source.kind not in kinds:
            raise ReactiveError(
                f"{path}: `{trigger.ref}` is a {connection.get('kind')} connection: it emits {source.kind}, "
                f"not {', '.join(sorted(kinds))}"
            )
        if all(s.name != source.name for s in sources):
            sources.append(source)
    runnable = spec.model_copy(update={"events": None})
    return ReactivePipeline(path=path, spec=runnable, sources=sources, params=dict(params))
