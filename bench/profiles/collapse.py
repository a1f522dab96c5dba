"""Trim a py-spy ``--format raw`` recording to one thread's heaviest stacks, as text that diffs well.

    python bench/profiles/collapse.py RAW [--thread polynb-engine] [--top 40] > engine-x.txt

Prints a header (samples, the heaviest frames inclusive and self), then the ``top`` stacks in collapsed
form (``frame;frame;... count``, root first: what flamegraph.pl and speedscope read), heaviest first.
Frames are ``function (file)``, the thread's own start-up frames left out; only the innermost frame keeps
its line (which statement: a BEGIN or a COMMIT), so the rest of a stack reads the same across edits.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_LINE = re.compile(r" \(([^:()]*):\d+\)$")
_THREAD_START = re.compile(r"^Thread\.(_bootstrap|_bootstrap_inner|run) \(threading\.py:\d+\)$")


def frame_name(frame: str, *, line: bool = False) -> str:
    """``fn (pkg/file.py:12)`` (py-spy's short form) -> ``fn (pkg/file.py)``, or as it is with ``line``."""
    return frame if line else _LINE.sub(r" (\1)", frame)


def collapse(raw: str, thread: str) -> Counter[tuple[str, ...]]:
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not frames or thread not in frames[0]:
            continue
        frames = frames[1:]
        while frames and _THREAD_START.match(frames[0]):
            frames = frames[1:]
        if frames:
            inner = frame_name(frames[-1], line=True)
            stacks[(*(frame_name(f) for f in frames[:-1]), inner)] += int(count)
    return stacks


def report(stacks: Counter[tuple[str, ...]], thread: str, top: int) -> str:
    total = sum(stacks.values())
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for frames, count in stacks.items():
        for frame in set(frames):
            inclusive[frame] += count
        if frames:
            own[frames[-1]] += count
    lines = [f"# thread {thread}: {total} samples", "# heaviest frames, inclusive:"]
    lines += [f"#   {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(25)]
    lines.append("# heaviest frames, self:")
    lines += [f"#   {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(15)]
    kept = stacks.most_common(top)
    lines.append(f"# the {len(kept)} heaviest stacks ({100 * sum(n for _, n in kept) / total:.0f}% of the samples):")
    lines += [f"{';'.join(frames)} {count}" for frames, count in kept]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw", type=Path)
    parser.add_argument("--thread", default="polynb-engine")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    print(report(collapse(args.raw.read_text(), args.thread), args.thread, args.top), end="")


if __name__ == "__main__":
    main()
