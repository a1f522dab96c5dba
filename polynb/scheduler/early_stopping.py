"""A DAG's ``earlyStopping``: its ops' metrics or failures stop the DAG (Polyaxon's ``V1Dag.earlyStopping``).

Pure rules, read by ``evaluation`` each time the DAG's ops moved:

* ``metric_early_stopping``: an op that ``succeeded`` with the output ``metric`` at or beyond ``value``
  (``>=`` to maximize, ``<=`` to minimize) stops the DAG. An op's metric is read once, when it is final.
* ``failure_early_stopping``: once ``percent`` of the DAG's ops have ``failed``, the DAG stops.

A DAG stopped early has its ops still pending or running stopped (reason ``EarlyStopping``) and ends, once
they are final, ``succeeded`` if none of its ops failed and ``failed`` otherwise, reason ``EarlyStopping``:
the policy met is what the DAG was for, as with a sweep's early stopping. It is not retried.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from polynb.spec.matrix import FailureEarlyStopping, MetricEarlyStopping

REASON_EARLY_STOPPING = "EarlyStopping"


def metric_reached(
    policies: Sequence[MetricEarlyStopping | FailureEarlyStopping], op: str, outputs: Mapping[str, Any]
) -> str | None:
    """What a succeeded op's outputs meet of the metric policies, as a message, or None."""
    for policy in policies:
        if not isinstance(policy, MetricEarlyStopping) or isinstance(policy.value, str):
            continue
        value = outputs.get(policy.metric)
        if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
            continue
        maximize = policy.optimization == "maximize"
        if (value >= policy.value) if maximize else (value <= policy.value):
            return f"op {op} reached {policy.metric} = {value:g} ({'>=' if maximize else '<='} {policy.value:g})"
    return None


def failures_reached(
    policies: Sequence[MetricEarlyStopping | FailureEarlyStopping], failed: int, total: int
) -> str | None:
    """What the DAG's failed ops meet of the failure policies, as a message, or None."""
    for policy in policies:
        if not isinstance(policy, FailureEarlyStopping) or isinstance(policy.percent, str):
            continue
        if total and failed and failed * 100.0 / total >= policy.percent:
            return f"{failed} of {total} ops failed (>= {policy.percent:g}%)"
    return None
