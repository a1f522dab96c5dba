"""Kubernetes names and labels for polynb runs: deterministic, valid, and traceable to the run.

Object names are DNS-1035 labels (a Service's name must be one; Jobs and Pods accept it too): lower case
alphanumerics and ``-``, starting with a letter, at most 63 characters. Label values are at most 63
characters of ``[A-Za-z0-9._-]`` starting and ending alphanumeric. Values that do not fit are shortened
with a hash suffix (so two long names never collide) and the full text goes into an annotation.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Final

MANAGED_BY: Final = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE: Final = "polynb"
APP_NAME: Final = "app.kubernetes.io/name"
RUN: Final = "polynb.io/run"
DAG: Final = "polynb.io/dag"
KERNEL: Final = "polynb.io/kernel"
ATTEMPT: Final = "polynb.io/attempt"
KIND: Final = "polynb.io/kind"
ROLE: Final = "polynb.io/role"
"""``run`` on a run's objects, ``kernel`` on a kernel's heartbeat ConfigMap."""

NAME_ANNOTATION: Final = "polynb.io/name"
DAG_ANNOTATION: Final = "polynb.io/dag-uuid"
KERNEL_ANNOTATION: Final = "polynb.io/kernel-id"
HEARTBEAT_ANNOTATION: Final = "polynb.io/heartbeat"
LEASE_ANNOTATION: Final = "polynb.io/lease-seconds"
RELEASED_ANNOTATION: Final = "polynb.io/released"
LABELS_ANNOTATION: Final = "polynb.io/labels"
"""JSON of the op's labels that are not valid Kubernetes labels (e.g. ``polynb.io/base-dir``: a path)."""

MAX_NAME: Final = 63
_HASH_LEN: Final = 8
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:_HASH_LEN]


def slug(text: str) -> str:
    """``text`` as lower-case alphanumerics joined by single dashes (may be empty)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def dns_label(text: str, *, max_len: int = MAX_NAME, prefix: str = "op") -> str:
    """A DNS-1035 label from ``text``: slugged, starting with a letter, hashed when shortened."""
    value = slug(text)
    if not value or not value[0].isalpha():
        value = f"{prefix}-{value}".rstrip("-")
    if len(value) > max_len:
        value = f"{value[: max_len - _HASH_LEN - 1].rstrip('-')}-{_digest(text)}"
    return value


def resource_name(op_name: str, run_uuid: str, attempt: int = 1) -> str:
    """The name of a run's Job/Pod/Service: ``<op slug>-<uuid[:8]>`` (``-a<n>`` from the 2nd attempt on).

    Deterministic, so submitting the same attempt twice hits 409 AlreadyExists instead of a second run.
    """
    suffix = f"-{run_uuid[:8].lower()}" + (f"-a{attempt}" if attempt > 1 else "")
    head = dns_label(op_name, max_len=MAX_NAME - len(suffix))
    return f"{head}{suffix}"


def kernel_configmap_name(kernel_label: str) -> str:
    """The heartbeat ConfigMap of a kernel (its label value is already valid and at most 63 characters)."""
    return dns_label(f"polynb-kernel-{kernel_label}", max_len=MAX_NAME)


def is_label_value(value: str) -> bool:
    return len(value) <= MAX_NAME and bool(_LABEL_VALUE.match(value))


def label_value(text: str) -> str:
    """``text`` if it is a valid label value, else a valid one derived from it (with a hash suffix)."""
    if is_label_value(text):
        return text
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text)
    head = cleaned[: MAX_NAME - _HASH_LEN - 1]
    head = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", head)
    return f"{head}-{_digest(text)}" if head else _digest(text)


def is_label_key(key: str) -> bool:
    """``[prefix/]name``: a DNS subdomain prefix of at most 253 characters, a name of at most 63."""
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= MAX_NAME and bool(_LABEL_NAME.match(name))


def split_labels(labels: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """User labels that are valid Kubernetes labels, and the others (kept in an annotation)."""
    valid: dict[str, str] = {}
    other: dict[str, str] = {}
    for key, value in labels.items():
        if is_label_key(key) and is_label_value(str(value)):
            valid[key] = str(value)
        else:
            other[key] = str(value)
    return valid, other


def selector(labels: Mapping[str, str]) -> str:
    """An equality label selector (``a=b,c=d``) in a stable order."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
