"""Summarise a ``py-spy record --format raw --threads`` profile: where the samples are.

    .venv/bin/python bench/pyspy_top.py bench/results/profiles/local-64m-seau-upload.txt

Prints, per thread kind (the event loop, worker threads), the functions with the
most samples on top of the stack ("self") and anywhere in the stack ("total"),
as a share of that thread kind's samples.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
# "function (path/to/module.py:123)"; the line number is kept only for "self".
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<path>[^():]*?)(?::(?P<line>\d+))?\)$")


def _short(frame: str, *, with_line: bool) -> str:
    match = _FRAME.match(frame)
    if match is None:
        return frame
    path = match["path"]
    for marker in ("site-packages/", "src/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    line = f":{match['line']}" if with_line and match["line"] else ""
    return f"{match['function']} ({path}{line})"


def _thread_kind(first: str) -> str:
    # py-spy --threads starts each stack with "thread (TID): NAME".
    name = first.split(": ", 1)[1] if ": " in first else first
    if name == "MainThread":
        return "event loop (MainThread)"
    if name.startswith("asyncio_"):
        return "asyncio.to_thread workers"
    if "_connection_worker_thread" in name:
        return "aiosqlite connection threads"
    return f"other threads ({name.split(' ', 1)[0]})"


def summarise(lines: Iterable[str], *, top: int = 25) -> str:
    totals: Counter[str] = Counter()
    selfs: dict[str, Counter[str]] = {}
    inclusive: dict[str, Counter[str]] = {}
    for line in lines:
        match = _LINE.match(line.strip())
        if match is None:
            continue
        count = int(match["count"])
        frames = [f for f in match["stack"].split(";") if f]
        stack = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not stack:
            continue
        kind = _thread_kind(frames[0])
        totals[kind] += count
        selfs.setdefault(kind, Counter())[_short(stack[-1], with_line=True)] += count
        for name in {_short(f, with_line=False) for f in stack}:
            inclusive.setdefault(kind, Counter())[name] += count
    out: list[str] = []
    for kind, total in totals.most_common():
        out.append(f"== {kind}: {total} samples")
        out.append("-- self (top of stack):")
        for name, count in selfs[kind].most_common(top):
            out.append(f"{100 * count / total:6.1f}%  {name}")
        out.append("-- total (anywhere in the stack):")
        for name, count in inclusive[kind].most_common(top):
            out.append(f"{100 * count / total:6.1f}%  {name}")
        out.append("")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    with args.profile.open() as lines:
        print(summarise(lines, top=args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
