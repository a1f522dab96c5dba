"""Where events beyond statuses come from, on the engine's side.

* ``run_files`` — the events an op appends to ``outputs/events.jsonl`` (``polynb.tracking.log_artifact``,
  ``log_metrics``, ``alert``, ``emit``): a watcher thread notices a file grew and wakes the engine, which
  reads the new lines on its own thread.

Approvals and custom events from a cell or a terminal need no watcher: they arrive through the engine's
API (``Engine.emit``, ``Engine.approve``) or its control socket (``polynb approve``, ``polynb emit``).
"""
