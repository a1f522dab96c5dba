"""What a restarted engine does with each unfinished run it adopts. Pure decision logic.

The invariant is **never submit an op twice**. The store's claim (``compiled``/``retrying`` → ``queued``)
happens before ``executor.submit`` (made by a submitter thread) and the handle record is written when
the engine thread hears back from it. So after a crash:

* a run with a handle record was submitted: re-attach to it (the executor replays what it missed);
* a run claimed (``queued`` or later) *without* a handle record may or may not have been started between
  the claim and the crash: the executor is asked to re-attach from what the run left behind (the local
  executor finds its shim in the run's folder); with no trace it is marked ``failed`` (reason
  ``SubmissionInterrupted``) and never resubmitted blindly — a stray duplicate process is worse than a
  clear failure the user can retry;
* a run not claimed yet is pending: it is scheduled as usual (a ``compiled`` one is compiled again, so
  it gets fresh ports); a ``retrying`` one is claimed and submitted again (its next attempt).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from enum import StrEnum

from polynb.executors.base import ExecutorUpdate
from polynb.lifecycle import Status, is_final

REASON_SUBMISSION_INTERRUPTED = "SubmissionInterrupted"
REASON_LOST = "Lost"


class Recovery(StrEnum):
    NOTHING = "nothing"
    PENDING = "pending"
    RESUBMIT = "resubmit"
    REATTACH = "reattach"
    INTERRUPTED = "interrupted"
    STOP_PENDING = "stop_pending"


PENDING = frozenset({Status.CREATED, Status.ON_SCHEDULE, Status.RESUMING, Status.COMPILED})


def classify(status: Status, *, has_handle: bool) -> Recovery:
    """The recovery action for a run found in ``status`` by a restarted engine."""
    if is_final(status):
        return Recovery.NOTHING
    if status in PENDING:
        return Recovery.PENDING
    if status == Status.RETRYING:
        return Recovery.RESUBMIT
    if has_handle:
        return Recovery.REATTACH
    if status == Status.STOPPING:
        return Recovery.STOP_PENDING
    return Recovery.INTERRUPTED


def observed_at(update: ExecutorUpdate) -> datetime | None:
    """When the executor saw ``update`` happen (None: unknown, the store uses the time of writing).

    A restarted engine hears of what happened while no engine ran only when it re-attaches: the status is
    recorded with the time the run's own record gives, never the replay's (an op that took 3 s must not
    show, nor hand its hooks, the 6 s until someone attached). Never in the future: clocks may differ.
    """
    if update.at <= 0:
        return None
    return datetime.fromtimestamp(min(update.at, time.time()), UTC)
