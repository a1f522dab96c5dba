"""The ``polynb`` command: ``app`` builds the parser; one module per command group (``check``, ``run``,
``runs``, ``attach``) and the helpers they share (``common``, ``progress``, ``follow``, ``tree``, ``detach``).

The CLI sits on top of the core (compiler, scheduler, executors, store); nothing in the core imports it.
"""

from __future__ import annotations

import atexit
import os
import sys

TYPE_CHECKING = False  # ``typing`` only for the type checker: a served command's client imports just this
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import NoReturn

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The console script and ``python -m polynb.cli``: run the command (:func:`app.main`, which returns its exit
    status and is what code calls in-process), then leave at once.

    From the command line (``argv`` not given) the command runs in the warm command server when one serves this
    interpreter and these sources (:mod:`polynb.cli.served`); otherwise here, and then a server is started for
    the next command."""
    if argv is None:
        from polynb.cli import served

        status = served.run(sys.argv[1:])
        if status is not None:
            exit_now(status)
        atexit.register(served.start_server)  # after the command's own output and clean-up
    from polynb.cli import app

    exit_now(app.main(argv))


def exit_now(status: int) -> NoReturn:
    """Exit without tearing the interpreter down: freeing every module's objects one by one costs a command tens
    of milliseconds, and nothing is left to do once the output is flushed and the ``atexit`` functions have run
    (``logging``'s flush among them). A normal exit where that could be wrong: output that cannot be flushed (a
    closed pipe reports as it always did), or a thread that is not a daemon still running."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(status)
    threading = sys.modules.get("threading")  # never imported: no thread was started through it
    if threading is not None:
        main_thread = threading.main_thread()
        if any(t is not main_thread and not t.daemon and t.is_alive() for t in threading.enumerate()):
            sys.exit(status)
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(status)
    os._exit(status)
