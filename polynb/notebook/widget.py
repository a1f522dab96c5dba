"""The run widget: ipywidgets 8 ``HTML`` + ``Button``s in a ``VBox``, no custom JavaScript.

It is created on the cell's thread with a first snapshot, then written only by the UI thread
(:meth:`RunWidget.show`, :meth:`RunWidget.show_logs`). Button handlers run on the kernel's main thread;
they only hand the action to the session (which runs it on the UI thread), so they never block.
The ``text/plain`` repr is :func:`render.run_text`: stable, without uuids or times (nbval compares it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as widgets  # type: ignore[import-untyped]

from polynb.notebook.model import RunSnapshot
from polynb.notebook.render import run_html, run_text

STOP_ALL = "(the whole run)"


class RunWidget(widgets.VBox):  # type: ignore[misc]  # ipywidgets is untyped
    """Live view of one top-level run; see the module docstring."""

    def __init__(
        self,
        snapshot: RunSnapshot,
        *,
        on_stop: Callable[[str], None],
        on_logs: Callable[[str], None],
        on_approve: Callable[[str], None] | None = None,
        on_select: Callable[[str], None] | None = None,
    ) -> None:
        """``on_select(root)``: an op was chosen in the op list; the widget is redrawn (by the UI thread,
        within its message rate) to show what it shows of that op (a sweeping op's trials)."""
        self._snapshot = snapshot
        self._on_stop = on_stop
        self._on_logs = on_logs
        self._on_approve = on_approve
        self._on_select = on_select
        self._closed = False
        self.body = widgets.HTML(value=run_html(snapshot))
        self.target = widgets.Dropdown(options=self._options(snapshot), value=snapshot.uuid, description="op",
                                       layout=widgets.Layout(width="280px"))  # fmt: skip
        self.stop_button = widgets.Button(description="Stop", icon="stop", button_style="danger",
                                          tooltip="stop the selected op, or the whole run")  # fmt: skip
        self.logs_button = widgets.Button(description="Logs", icon="file-text-o", tooltip="show the selected op's log")
        self.approve_button = widgets.Button(description="Approve", icon="check", button_style="success",
                                             tooltip="approve the selected op (the whole run: every op waiting "
                                             "for an approval, isApproved: false)")  # fmt: skip
        self.logs = widgets.HTML(value="")
        self.approve_button.on_click(self._approve_clicked)
        self.stop_button.on_click(self._stop_clicked)
        self.logs_button.on_click(self._logs_clicked)
        self._sync_controls(snapshot)
        self.target.observe(self._target_changed, names="value")
        controls = widgets.HBox([self.target, self.stop_button, self.approve_button, self.logs_button])
        super().__init__(children=[self.body, controls, self.logs])

    # -- main thread --------------------------------------------------------------------------------

    @property
    def root(self) -> str:
        return self._snapshot.uuid

    @property
    def alive(self) -> bool:
        return not self._closed

    @property
    def snapshot(self) -> RunSnapshot:
        return self._snapshot

    def close(self) -> None:
        self._closed = True
        super().close()

    def _stop_clicked(self, _button: Any) -> None:
        self._on_stop(str(self.target.value or self.root))

    def _approve_clicked(self, _button: Any) -> None:
        if self._on_approve is not None:
            self._on_approve(str(self.target.value or self.root))

    def _target_changed(self, _change: Any) -> None:
        if self._on_select is not None and self._snapshot.op_sweeps:
            self._on_select(self.root)  # only the UI thread writes the body

    def _logs_clicked(self, _button: Any) -> None:
        uuid = str(self.target.value or self.root)
        self._on_logs(uuid)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle: dict[str, Any] = super()._repr_mimebundle_(**kwargs) or {}
        bundle["text/plain"] = run_text(self._snapshot)  # ipywidgets would cut repr() at 110 characters
        return bundle

    def __repr__(self) -> str:
        return run_text(self._snapshot)

    # -- UI thread ----------------------------------------------------------------------------------

    def show(self, snapshot: RunSnapshot) -> None:
        self._snapshot = snapshot
        if self._closed:
            return
        self.body.value = run_html(snapshot, selected=str(self.target.value))  # traitlets sends only what changed
        self._sync_controls(snapshot)

    def show_logs(self, title: str, lines: list[str]) -> None:
        from html import escape

        text = "\n".join(lines) if lines else "(no output yet)"
        self.logs.value = (
            f"<details open><summary>{escape(title)}</summary><pre style='max-height:320px;overflow:auto;"
            f"font-size:11px'>{escape(text)}</pre></details>"
        )

    def _options(self, snapshot: RunSnapshot) -> list[tuple[str, str]]:
        options = [(STOP_ALL, snapshot.uuid)]
        options += [(("↳ " if op.role == "hook" else "") + op.name, op.uuid) for op in snapshot.members]
        return options

    def _sync_controls(self, snapshot: RunSnapshot) -> None:
        options = self._options(snapshot)
        if list(self.target.options) != options:
            value = self.target.value
            self.target.options = options
            self.target.value = value if value in {u for _, u in options} else snapshot.uuid
        disabled = snapshot.settled
        if self.stop_button.disabled != disabled:
            self.stop_button.disabled = disabled
        if self.approve_button.disabled != (disabled or self._on_approve is None):
            self.approve_button.disabled = disabled or self._on_approve is None
