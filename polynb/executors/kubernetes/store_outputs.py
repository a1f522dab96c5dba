"""Outputs too large for a termination message, read from the bucket artifacts store.

In a pod that syncs to a bucket (:mod:`.storesync`), ``polynb.tracking.log_outputs`` keeps outputs that do not fit
in the termination message in ``outputs.json`` only, and the message carries a pointer
(:data:`~polynb.runtime.tracking.OUTPUTS_POINTER`: the file, its size and SHA-256). The executor reports the run's
final status once the sidecar's last sync has ended, so the file is in the bucket then; it reads it here (through
fsspec, :mod:`polynb.buckets`, with this machine's credentials) and checks it is the one the pod wrote.

A volume claim is the cluster's: this machine cannot read it, so pods with only a claim get no pointer and outputs
that do not fit fail as without a store (``OutputsTooLarge``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from time import sleep as _sleep
from typing import Any, Final

from polynb.buckets import BucketError, bucket_of
from polynb.executors.kubernetes.settings import BucketStore
from polynb.runtime.tracking import OUTPUTS_POINTER

OUTPUTS_UNREADABLE: Final = "OutputsUnreadable"
"""The reason of a run whose outputs were left in the store and could not be read back from it."""
ATTEMPTS: Final = 3
"""Reads tried before the outputs count as unreadable (a missing object or refused credentials: one)."""
RETRY_WAIT: Final = 0.5
"""Seconds before the second read; doubled before each later one."""
MAX_BYTES: Final = 64 * 2**20
"""Outputs larger than this are not read (they belong in files, not in the run's record)."""


class OutputsUnreadableError(Exception):
    """The outputs the pointer names could not be read from the store (the message says where and why)."""


def pointer(outputs: dict[str, Any] | None) -> dict[str, Any] | None:
    """The pointer a termination message carries instead of the outputs, else None (outputs themselves)."""
    if not outputs or set(outputs) != {OUTPUTS_POINTER}:
        return None
    value = outputs[OUTPUTS_POINTER]
    return value if isinstance(value, dict) else None


def read_outputs(
    store: BucketStore, run_uuid: str, where: dict[str, Any], *, sleep: Callable[[float], None] = _sleep
) -> dict[str, Any]:
    """The outputs ``where`` (a :func:`pointer`) names in ``store``'s folder of the run, checked against the
    pointer's size and hash (a failed read is tried again, :data:`ATTEMPTS` in all); :class:`OutputsUnreadableError`
    otherwise."""
    file = str(where.get("file") or "")
    if not file or file.startswith("/") or ".." in file.split("/"):
        raise OutputsUnreadableError(f"the termination message points at {file!r}, not a file of the run's folder")
    url = f"{store.url}/{run_uuid}/{file}"
    size, digest = where.get("bytes"), where.get("sha256")
    if isinstance(size, int) and size > MAX_BYTES:
        raise OutputsUnreadableError(f"{url} is {size} bytes; outputs are read up to {MAX_BYTES} bytes")
    try:
        bucket = bucket_of(store.connection)
        fs = bucket.filesystem()
    except (BucketError, ValueError) as exc:
        raise OutputsUnreadableError(f"{url}: {exc}") from None
    data: bytes | None = None
    wait = RETRY_WAIT
    for attempt in range(ATTEMPTS):
        try:
            data = fs.cat_file(f"{bucket.root}/{run_uuid}/{file}")
            break
        except Exception as exc:  # any failure of the client (network, credentials, a missing object)
            problem = bucket.describe(exc).replace(f"{bucket.scheme}://{bucket.root}", url)
            final = isinstance(exc, FileNotFoundError | PermissionError) or "credentials" in problem.lower()
            if final or attempt == ATTEMPTS - 1:
                raise OutputsUnreadableError(problem) from None
            sleep(wait)  # a store that hiccups (a timeout, a 503) is asked again
            wait *= 2
    assert data is not None
    if (isinstance(size, int) and len(data) != size) or (
        isinstance(digest, str) and hashlib.sha256(data).hexdigest() != digest
    ):
        raise OutputsUnreadableError(
            f"{url} is not the file the run wrote ({len(data)} bytes, the run wrote {size}): its last sync did not "
            "reach the store, or the file was changed after log_outputs"
        )
    try:
        outputs = json.loads(data)
    except ValueError as exc:
        raise OutputsUnreadableError(f"{url} is not JSON: {exc}") from None
    if not isinstance(outputs, dict):
        raise OutputsUnreadableError(f"{url} holds a JSON {type(outputs).__name__}, not an object")
    return outputs


def unreadable_message(store: BucketStore, problem: str) -> str:
    """The failure message of a run whose outputs could not be read back."""
    hint = (
        " (give this machine the bucket's credentials in the connection's env or the environment: "
        "AWS_ACCESS_KEY_ID, ...; the cluster's Secret is not read from here)"
        if "credentials" in problem.lower()
        else ""
    )
    return (
        f"the outputs did not fit in the termination message and were left in the artifacts store "
        f"{store.name!r}, but they cannot be read from this machine: {problem}{hint}"
    )
