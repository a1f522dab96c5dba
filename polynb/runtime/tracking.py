"""Helpers for code running inside a polynb run: where to write, and how to report outputs.

The executor sets ``POLYAXON_RUN_UUID``, ``POLYAXON_RUN_OUTPUTS_PATH`` and ``POLYAXON_RUN_ARTIFACTS_PATH``
(Polyaxon's names) for every container. ``log_outputs(accuracy=0.93)`` merges values into
``$POLYAXON_RUN_OUTPUTS_PATH/outputs.json``, which the executor reads when the run ends; downstream ops use
them as ``{ref: ops.train, value: outputs.accuracy}``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from pathlib import Path
from typing import Any

OUTPUTS_FILE = "outputs.json"
_LOCK_FILE = ".outputs.json.lock"


class NotInRunError(RuntimeError):
    """Raised when a helper needs the run's environment and the code is not running inside a run."""


def _env_path(name: str) -> Path:
    value = os.environ.get(name)
    if not value:
        raise NotInRunError(f"${name} is not set: this code is not running inside a polynb/Polyaxon run")
    return Path(value)


def run_uuid() -> str:
    """The uuid of the current run."""
    value = os.environ.get("POLYAXON_RUN_UUID")
    if not value:
        raise NotInRunError("$POLYAXON_RUN_UUID is not set: this code is not running inside a polynb run")
    return value


def outputs_path() -> Path:
    """The run's outputs folder (``outputs.json``, ``tensorboard/``, anything the run wants to keep)."""
    return _env_path("POLYAXON_RUN_OUTPUTS_PATH")


def artifacts_path() -> Path:
    """The run's artifacts folder (its outputs, logs and what init entries put there)."""
    return _env_path("POLYAXON_RUN_ARTIFACTS_PATH")


TERMINATION_LOG_ENV = "POLYNB_TERMINATION_LOG"
"""Set by the kubernetes executor in pods: where ``log_outputs`` also writes the merged outputs."""
TERMINATION_LIMIT_ENV = "POLYNB_TERMINATION_LOG_LIMIT"
"""Set beside it: the bytes the container's termination message may hold (the kubelet keeps no more)."""
TERMINATION_LIMIT = 4096
"""A container's termination message is cut at 4096 bytes, and a pod's at 12 KiB shared by its containers
("Customizing the termination message" in the Kubernetes documentation)."""
OUTPUTS_TOO_LARGE = "OutputsTooLarge"
"""The first word of the termination message of a container whose outputs did not fit (the run's reason)."""
OUTPUTS_VIA_STORE_ENV = "POLYNB_OUTPUTS_VIA_STORE"
"""Set (to ``1``) by the kubernetes executor when the pod's artifacts folder reaches a store the engine reads
(a bucket, through the sync sidecar): outputs that do not fit in the termination message stay in ``outputs.json``
and the message carries :data:`OUTPUTS_POINTER` instead."""
OUTPUTS_POINTER = "$polynb.outputs"
"""The one key of a termination message that points at the outputs in the store:
``{"$polynb.outputs": {"file": "outputs/outputs.json", "bytes": N, "sha256": H}}`` (the path is relative to the
run's folder in the store; the size and hash are the file's, so a stale or partial copy is never taken)."""


class OutputsTooLargeError(RuntimeError):
    """The outputs do not fit in the termination message that carries them out of a pod.

    Raised rather than letting the kubelet cut the JSON: a run never loses outputs silently.
    """

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            f"{OUTPUTS_TOO_LARGE}: the outputs are {size} bytes as JSON; a pod's termination message carries at "
            f"most {limit} bytes for this container, so they cannot leave the pod. Keep outputs small (numbers, "
            "short strings, paths) and write large results as files under the run's outputs folder, or use a "
            "bucket as the artifacts store (artifactsStore), through which outputs of any size travel"
        )


def tensorboard_path() -> Path:
    """Where to write TensorBoard event files: ``<outputs>/tensorboard`` (what the tensorboard init links)."""
    path = outputs_path() / "tensorboard"
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_outputs(**values: Any) -> dict[str, Any]:
    """Merge ``values`` into the run's ``outputs.json``; return the merged outputs.

    Safe with concurrent writers (processes or threads of one run): an exclusive lock on a lock file
    beside it serialises the read-merge-write, and the new file replaces the old one atomically, so a
    reader never sees half a file. Values must be JSON-serialisable; NumPy-like scalars and arrays
    (anything with ``.item()`` / ``.tolist()``) are converted.

    In a Kubernetes pod the merged outputs also become the container's termination message; when they do not
    fit (``$POLYNB_TERMINATION_LOG_LIMIT``, 4 KiB at most) and the pod syncs to a bucket store
    (``$POLYNB_OUTPUTS_VIA_STORE``), the message points at ``outputs.json`` instead, which the engine reads from the
    store; without a store it raises :class:`OutputsTooLargeError` and the run fails with reason
    ``OutputsTooLarge``, rather than lose them to the kubelet's cut.
    """
    encoded = json.loads(json.dumps(values, default=_to_json, allow_nan=False))
    folder = outputs_path()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / OUTPUTS_FILE
    with open(folder / _LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        merged = _read(target)
        merged.update(encoded)
        data = (json.dumps(merged, indent=2, sort_keys=True) + "\n").encode("utf-8")
        fd, tmp = tempfile.mkstemp(prefix=".outputs.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)  # mkstemp makes it private; outputs are not secrets
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        termination_log = os.environ.get(TERMINATION_LOG_ENV)
        if termination_log:
            _write_termination_message(Path(termination_log), merged, data)
    return merged


def outputs_pointer(data: bytes) -> dict[str, Any]:
    """The termination message that points at ``outputs.json`` holding ``data`` in the store."""
    import hashlib

    digest = hashlib.sha256(data).hexdigest()
    return {OUTPUTS_POINTER: {"file": f"outputs/{OUTPUTS_FILE}", "bytes": len(data), "sha256": digest}}


def _write_termination_message(path: Path, outputs: dict[str, Any], data: bytes) -> None:
    """On Kubernetes the outputs travel back in the container's termination message: a plain overwrite of
    that file (read once, after the container exits). Too large, they stay in ``outputs.json`` (``data``) for
    the engine to read from the store when the pod has one; without, the message says so and it raises."""
    text = json.dumps(outputs, sort_keys=True, separators=(",", ":")).encode("utf-8")
    try:
        limit = int(os.environ.get(TERMINATION_LIMIT_ENV) or TERMINATION_LIMIT)
    except ValueError:
        limit = TERMINATION_LIMIT
    if len(text) > limit and os.environ.get(OUTPUTS_VIA_STORE_ENV):
        text = json.dumps(outputs_pointer(data), sort_keys=True, separators=(",", ":")).encode("utf-8")
    if len(text) > limit:
        error = OutputsTooLargeError(len(text), limit)
        path.write_bytes(str(error).encode("utf-8")[:limit])
        raise error
    path.write_bytes(text)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON, not merging into it: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds a JSON {type(data).__name__}, not an object")
    return data


def _to_json(value: Any) -> Any:
    for method in ("tolist", "item"):
        convert = getattr(value, method, None)
        if callable(convert):
            return convert()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"output value {value!r} ({type(value).__name__}) is not JSON-serialisable")


# -- events an op emits while it runs ------------------------------------------------------------------

EVENTS_FILE = "events.jsonl"
"""In the outputs folder: one JSON object a line (``{"kind", "at", "payload"}``), appended by the helpers below
and read by the engine while the run lives (and once more when it ends, before its final status is decided,
so an event logged just before exiting is never missed)."""
ALERT_LEVELS = ("info", "warning", "critical")


EVENTS_STDOUT_ENV = "POLYNB_EVENTS_STDOUT"
"""Set (to ``1``) by the kubernetes executor in the pod of a run some op awaits events of: each event is also
written on stdout as one marker line, which the executor reads from the pod's log stream (the pod's files are
not reachable from the engine)."""
EVENT_MARKER = "\x1b_polynb-event\x1b\\"
"""Starts an event's line on stdout, compact JSON after: an APC control string (``ESC _ … ESC \\``), which no
normal output writes and terminals do not show; none of its characters ends a line for ``str.splitlines``."""
_SEQ_FILE = ".events.seq"


def _emit_event(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Append one event line; one ``write`` of one line under ``flock`` so concurrent writers never interleave
    and the engine never reads half a line as a whole one (it only takes lines ending in a newline).

    Each event of a run has a ``seq`` (1, 2, ...; kept beside the file under the same lock): a reader that sees
    an event twice (a log stream reopened after a drop) records it once."""
    import sys
    import time

    encoded = json.loads(json.dumps(payload, default=_to_json, allow_nan=False))
    folder = outputs_path()
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / EVENTS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        seq_path = folder / _SEQ_FILE
        try:
            seq = int(seq_path.read_text(encoding="ascii") or 0) + 1
        except (FileNotFoundError, ValueError):
            seq = 1
        seq_path.write_text(str(seq), encoding="ascii")
        line = {"kind": kind, "at": time.time(), "payload": encoded, "seq": seq}
        os.write(fd, (json.dumps(line, sort_keys=True) + "\n").encode("utf-8"))
        if os.environ.get(EVENTS_STDOUT_ENV):
            with contextlib.suppress(ValueError, OSError):
                sys.stdout.flush()  # what print() buffered goes first, not after (or inside) the marker line
            marker = EVENT_MARKER + json.dumps(line, sort_keys=True, separators=(",", ":")) + "\n"
            os.write(1, marker.encode("utf-8"))
    finally:
        os.close(fd)
    return line


def parse_marker(text: str) -> dict[str, Any] | None:
    """The event of a stdout line written by :func:`_emit_event` (the marker may follow unflushed output on
    the same line); None for any other line."""
    start = text.find(EVENT_MARKER)
    if start < 0:
        return None
    try:
        line = json.loads(text[start + len(EVENT_MARKER) :])
    except ValueError:
        return None
    return line if isinstance(line, dict) else None


def log_artifact(path: str | os.PathLike[str], *, kind: str = "file", name: str | None = None) -> dict[str, Any]:
    """Record that the run produced ``path`` (a checkpoint, a model, a report): emits ``run_new_artifacts``.

    A downstream op awaiting ``{ref: ops.<this op>, kinds: [run_new_artifacts]}`` starts on the first one and
    reads it as ``{ref: ops.<this op>, value: artifacts.latest}`` (or ``artifacts.<name>``; ``name`` defaults to
    the file's name). ``path`` is made absolute; the helper does not copy the file.
    """
    absolute = Path(path).expanduser().resolve()
    return _emit_event("run_new_artifacts", {"path": str(absolute), "kind": kind, "name": name or absolute.name})


def log_metrics(step: int | None = None, **metrics: Any) -> dict[str, Any]:
    """Record metric values (``log_metrics(step=3, loss=0.2)``): emits ``model_version_new_metric``.

    The values also reach downstream params as ``{ref: ops.<this op>, value: globals.metrics}`` (the latest
    value of each metric).
    """
    if not metrics:
        raise ValueError("log_metrics() needs at least one metric, e.g. log_metrics(loss=0.2)")
    return _emit_event("model_version_new_metric", {"metrics": metrics, "step": step})


def log_model_version(
    name: str, *, version: str | None = None, path: str | os.PathLike[str] | None = None, **metrics: Any
) -> dict[str, Any]:
    """Register a model version (its name, version, files and metrics): emits ``model_version_new_metric``."""
    payload: dict[str, Any] = {"model": name, "version": version, "metrics": metrics}
    if path is not None:
        payload["path"] = str(Path(path).expanduser().resolve())
    return _emit_event("model_version_new_metric", payload)


def alert(level: str, message: str, **details: Any) -> dict[str, Any]:
    """Raise an alert (``info``, ``warning`` or ``critical``): emits ``alert_<level>``."""
    if level not in ALERT_LEVELS:
        raise ValueError(f"alert level {level!r}: use one of {', '.join(ALERT_LEVELS)}")
    return _emit_event(f"alert_{level}", {"message": message, **details})


def emit(name: str, *, org: bool = False, **payload: Any) -> dict[str, Any]:
    """A custom event from inside an op: ``project_custom_event`` (``org_custom_event`` with ``org=True``),
    named ``name``, carrying ``payload``, on this run."""
    kind = "org_custom_event" if org else "project_custom_event"
    return _emit_event(kind, {"name": name, **payload})
