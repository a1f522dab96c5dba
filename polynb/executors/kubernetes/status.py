"""From a Pod (or a Job) as the API returns it to a Polyaxon status, a reason and a message. Pure.

Rules (in order):

* the pod ``Failed`` with a reason of its own (``Evicted``, ``DeadlineExceeded``): ``failed`` with it;
* the main container terminated: ``succeeded`` (exit 0, outputs from its termination message) or
  ``failed`` with the container's reason (``OOMKilled``, ``Error``, ...) and exit code; that is final even
  while native sidecars are still being stopped. Outputs that did not fit in the message fail it with
  ``OutputsTooLarge``: refused by ``polynb.tracking`` (the message says so), or a JSON object the kubelet cut
  at the container's limit (:func:`termination_limit`);
* an init entry (not a sidecar) terminated with a non-zero code: ``failed`` (``InitFailed``);
* a container waiting for a reason that will not resolve by itself (``InvalidImageName``,
  ``CreateContainerConfigError``, ...): ``failed`` with that reason — the executor then deletes the run,
  since Kubernetes would wait forever; ``ErrImagePull``/``ImagePullBackOff`` (registries recover; the
  executor fails the run after its ``image_pull_grace``) and a crash-looping sidecar are ``warning``;
* the pod ``Failed`` or ``Succeeded`` without a main-container state (evicted, deadline exceeded): that;
* (:func:`interpret_disruption`) a pod deleted with a ``DisruptionTarget`` condition (a drain, a preemption):
  ``failed`` with the condition's reason, not ``stopped`` as a pod deleted by hand;
* the main container ``running``: ``running`` — only then, not when the pod is scheduled;
* ``PodScheduled=False`` with reason ``Unschedulable``: ``unschedulable`` with the scheduler's message;
* scheduled, containers being created or init entries running: ``starting``; else ``scheduled``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

FATAL_WAITING: Final = frozenset(
    {
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
WARNING_WAITING: Final = frozenset({"ErrImagePull", "ImagePullBackOff", "CrashLoopBackOff", "ContainerStatusUnknown"})
IMAGE_PULL: Final = frozenset({"ErrImagePull", "ImagePullBackOff"})
"""Pull failures a registry recovers from (rate limits, a late push): the executor fails the run only after
its ``image_pull_grace``."""
MAX_MESSAGE: Final = 2000
OUTPUTS_TOO_LARGE: Final = "OutputsTooLarge"
"""The reason of a run whose outputs did not fit in its termination message (``polynb.tracking`` starts the
message with it; the same word as ``polynb.runtime.tracking.OUTPUTS_TOO_LARGE``)."""
TERMINATION_LIMIT: Final = 4096
POD_TERMINATION_LIMIT: Final = 12 * 1024


def termination_limit(container_count: int) -> int:
    """Bytes of termination message the kubelet keeps per container: 4096, and 12 KiB per pod shared equally
    among its containers, init containers included ("Customizing the termination message", Kubernetes docs)."""
    return min(TERMINATION_LIMIT, POD_TERMINATION_LIMIT // max(1, container_count))


@dataclass(frozen=True, slots=True)
class Observed:
    """What a pod says about its run."""

    status: str
    reason: str
    message: str = ""
    outputs: dict[str, Any] | None = None
    ready: bool = False
    """The main container runs and the pod is Ready (a service's URL may be given)."""
    at: float | None = None
    """When it happened, from the pod (container start/finish time), else None."""
    started_at: float | None = None
    """When the main container started (to report ``running`` before a final status seen first)."""

    @property
    def final(self) -> bool:
        return self.status in ("succeeded", "failed", "stopped")


def parse_time(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c.get("type", ""): c for c in (obj.get("status") or {}).get("conditions") or () if isinstance(c, dict)}


def parse_outputs(message: str) -> tuple[dict[str, Any] | None, str]:
    """A termination message as outputs (a JSON object), else None and the text (a log tail, a note)."""
    text = message.strip()
    if not text:
        return {}, ""
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return None, text
        if isinstance(data, dict):
            return data, ""
    return None, text


def _short(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_MESSAGE else "..." + text[-MAX_MESSAGE:]


def _terminated(name: str, state: dict[str, Any], *, init: bool) -> tuple[str, str]:
    code = state.get("exitCode")
    reason = str(state.get("reason") or ("Completed" if code == 0 else "Error"))
    what = f"init container {name}" if init else f"container {name}"
    message = f"{what} exited with code {code}" + (f" ({reason})" if reason not in ("Completed", "Error") else "")
    if state.get("signal"):
        message += f", signal {state['signal']}"
    return reason, message


def interpret_pod(pod: dict[str, Any], main: str) -> Observed:
    """The status of a run from its pod; ``main`` is the main container's name."""
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    spec = pod.get("spec") or {}
    sidecars = {c.get("name") for c in spec.get("initContainers") or () if c.get("restartPolicy") == "Always"}
    inits = [s for s in status.get("initContainerStatuses") or () if isinstance(s, dict)]
    mains = [s for s in status.get("containerStatuses") or () if isinstance(s, dict)]
    main_status = next((s for s in mains if s.get("name") == main), None)
    main_state = (main_status or {}).get("state") or {}
    started_at = parse_time((main_state.get("running") or main_state.get("terminated") or {}).get("startedAt"))
    if not started_at:
        # A container the runtime could not start (StartError: no such executable, a bad mount) is reported
        # terminated with exit 128 and startedAt at the zero time (1970-01-01T00:00:00Z): it never ran, so
        # an op awaiting its `running` must be skipped, not started.
        started_at = None

    if phase == "Failed" and status.get("reason"):
        # The pod was failed as a whole (evicted, activeDeadlineSeconds): that is the reason, not exit 143.
        return Observed("failed", str(status["reason"]), str(status.get("message") or ""), started_at=started_at)

    if "terminated" in main_state:
        term = main_state["terminated"]
        at = parse_time(term.get("finishedAt"))
        raw = str(term.get("message") or "")
        outputs, text = parse_outputs(raw)
        if text.startswith(OUTPUTS_TOO_LARGE + ":"):
            # polynb.tracking refused outputs that would not fit: loud, never a cut JSON object.
            return Observed("failed", OUTPUTS_TOO_LARGE, _short(text), at=at, started_at=started_at)
        count = len(spec.get("initContainers") or ()) + len(spec.get("containers") or ())
        cut = outputs is None and text.startswith("{") and len(raw.encode("utf-8")) >= termination_limit(count)
        if cut and term.get("exitCode") == 0:  # (a failed container's message may be a log tail of JSON lines)
            return Observed(
                "failed",
                OUTPUTS_TOO_LARGE,
                f"container {main}: its termination message was cut by the kubelet at "
                f"{termination_limit(count)} bytes, so its outputs are lost; write outputs with "
                "polynb.tracking.log_outputs (which refuses outputs that do not fit) and keep them small",
                at=at,
                started_at=started_at,
            )
        if term.get("exitCode") == 0:
            note = f"outputs: the termination message is not a JSON object: {_short(text)}" if text else ""
            return Observed("succeeded", "Completed", note, outputs, at=at, started_at=started_at)
        reason, message = _terminated(main, term, init=False)
        if text:
            message += "\n" + _short(text)
        return Observed("failed", reason, message, at=at, started_at=started_at)

    for s in inits:
        name, state = s.get("name"), s.get("state") or {}
        term = state.get("terminated")
        if name not in sidecars and term and term.get("exitCode") not in (0, None):
            reason, message = _terminated(str(name), term, init=True)
            detail = str(term.get("message") or "")
            return Observed("failed", "InitFailed", message + (f"\n{_short(detail)}" if detail else ""))

    warning: Observed | None = None
    for s in [*inits, *mains]:
        waiting = (s.get("state") or {}).get("waiting") or {}
        reason = str(waiting.get("reason") or "")
        detail = str(waiting.get("message") or "")
        where = f"container {s.get('name')}: {reason}" + (f": {detail}" if detail else "")
        if reason in FATAL_WAITING:
            return Observed("failed", reason, where)
        if reason in WARNING_WAITING and warning is None:
            warning = Observed("warning", reason, where)

    if phase in ("Failed", "Succeeded"):
        reason = str(status.get("reason") or ("Completed" if phase == "Succeeded" else "PodFailed"))
        message = str(status.get("message") or f"pod {phase.lower()}")
        return Observed("succeeded" if phase == "Succeeded" else "failed", reason, message)

    if warning is not None:
        return warning

    conditions = _conditions(pod)
    if "running" in main_state:
        ready = conditions.get("Ready", {}).get("status") == "True"
        return Observed("running", "ContainerStarted", "", ready=ready, at=started_at, started_at=started_at)

    scheduled = conditions.get("PodScheduled", {})
    if scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        return Observed("unschedulable", "Unschedulable", str(scheduled.get("message") or ""))
    if scheduled.get("status") == "True" or spec.get("nodeName"):
        if inits and conditions.get("Initialized", {}).get("status") != "True":
            return Observed("starting", "Initializing", "running init containers")
        return Observed("starting", "ContainerCreating", "")
    return Observed("scheduled", "PodCreated", "")


def interpret_restarted(pod: dict[str, Any], main: str) -> Observed | None:
    """The failure of a main container the kubelet restarted in place (``restartPolicy: OnFailure``), from its
    ``lastState``: what the run ended with when its Job failed at that restart and deleted the pod."""
    status = pod.get("status") or {}
    for cs in status.get("containerStatuses") or ():
        if not isinstance(cs, dict) or cs.get("name") != main or not int(cs.get("restartCount") or 0):
            continue
        last = (cs.get("lastState") or {}).get("terminated")
        if not last or last.get("exitCode") in (0, None):
            return None
        before = {**pod, "status": {**status, "phase": "Running", "reason": None,
                                    "containerStatuses": [{**cs, "state": {"terminated": last}}]}}  # fmt: skip
        return interpret_pod(before, main)
    return None


def interpret_disruption(pod: dict[str, Any]) -> Observed | None:
    """A pod deleted by a disruption (a drain's eviction, a preemption, a taint, the kubelet's node
    shutdown): ``failed`` with the reason of its ``DisruptionTarget`` condition, which Kubernetes adds before
    such a deletion ("Pod disruption conditions", Kubernetes docs); None for a pod deleted by hand. The run did
    not end by itself, but it did not end on anyone's request to stop it either: its ``maxRetries`` apply."""
    cond = _conditions(pod).get("DisruptionTarget")
    if not cond or cond.get("status") != "True":
        return None
    reason = str(cond.get("reason") or "DisruptionTarget")
    name = (pod.get("metadata") or {}).get("name", "")
    node = (pod.get("spec") or {}).get("nodeName")
    where = f" from node {node}" if node else ""
    detail = str(cond.get("message") or "").strip()
    return Observed("failed", reason, f"pod {name} was evicted{where} ({reason}" + (f": {detail})" if detail else ")"))


def interpret_job(job: dict[str, Any]) -> Observed | None:
    """A final status from a Job's conditions (``Complete``/``Failed``), or None while it is not final."""
    conditions = _conditions(job)
    for kind, status in (("Failed", "failed"), ("FailureTarget", "failed"), ("Complete", "succeeded")):
        cond = conditions.get(kind)
        if cond and cond.get("status") == "True":
            return Observed(status, str(cond.get("reason") or kind), str(cond.get("message") or ""))
    return None
