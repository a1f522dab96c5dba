"""Following a container's log across dropped connections without losing or repeating a line.

Lines are requested with ``timestamps=true``; after a drop the stream is opened again with
``sinceTime=<last timestamp>``, which replays the lines of that instant: :class:`Resume` skips as many of
them as were already delivered (the kubelet's timestamps have nanoseconds; two identical lines in the same
nanosecond are the one case it cannot tell apart, and it keeps both then only if they arrive together).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


def split_timestamp(raw: bytes | str) -> tuple[str, str]:
    """``"2024-05-01T10:00:00.123456789Z text"`` -> (timestamp, text); no timestamp -> ("", line)."""
    line = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    line = line.removesuffix("\r")
    head, sep, rest = line.partition(" ")
    if sep and len(head) >= 20 and head[4] == "-" and head[10] == "T":
        return head, rest
    return "", line


def ts_key(ts: str) -> tuple[str, int]:
    """An orderable key for an RFC 3339 timestamp with 0 to 9 fraction digits (the kubelet trims zeros)."""
    body = ts.rstrip("Z")
    whole, _, frac = body.partition(".")
    return whole, int((frac + "000000000")[:9]) if frac else 0


@dataclass
class Resume:
    """Where a followed log is: the last timestamp delivered and the lines delivered at that instant."""

    last: str = ""
    at_last: Counter[str] = field(default_factory=Counter)
    _replay: Counter[str] = field(default_factory=Counter)

    def reopen(self) -> str | None:
        """Call before reopening a stream: the ``sinceTime`` to ask for (None: from the start)."""
        self._replay = Counter(self.at_last)
        return self.last or None

    def accept(self, ts: str, text: str) -> bool:
        """True if the line is new (deliver it), False if it is a replay of a delivered one."""
        if not ts:
            return True
        if self.last:
            key, last = ts_key(ts), ts_key(self.last)
            if key < last:
                return False
            if key == last and self._replay[text] > 0:
                self._replay[text] -= 1
                return False
            if key > last:
                self._replay.clear()
                self.at_last.clear()
        self.last = ts
        self.at_last[text] += 1
        return True
