"""The ``polynb`` command: ``app`` builds the parser; one module per command group (``check``, ``run``,
``runs``, ``attach``) and the helpers they share (``common``, ``progress``, ``follow``, ``tree``, ``detach``).

The CLI sits on top of the core (compiler, scheduler, executors, store); nothing in the core imports it.
"""

from __future__ import annotations

from polynb.cli.app import main

__all__ = ["main"]
