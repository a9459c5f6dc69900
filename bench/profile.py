"""Hot spots from a py-spy recording: ``python -m bench.profile FILE [--top N]``.

py-spy's ``raw`` format is one collapsed stack per line (``frame;frame;...
count``, each frame ``function (file:line)``). Two views answer different
questions: *self* time (the innermost frame: where CPU is burnt) and
*inclusive* time (every function on the stack: which of our calls leads
there). Line numbers are dropped so one function is one row.

py-spy decides "idle" from the OS thread state, and misses threads blocked
inside a C call that holds no GIL-visible wait: aiosqlite's worker in
``SimpleQueue.get()``, a thread pool's ``queue.get()``, the event loop in
``select()``. A stack whose innermost line is such a wait is counted apart
as idle rather than as a hot spot.

Throughput is bounded by the event-loop thread (the GIL lets the SQLite
threads overlap with it only inside SQLite's C code), so a third view lists
self time on the main thread alone: stacks rooted in ``Thread._bootstrap``
are the worker threads, every other stack is the loop.
"""

from __future__ import annotations

import argparse
import linecache
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Profile", "load_profile", "render_profile"]

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_WAIT = re.compile(r"\.(get|select|poll|wait|acquire)\(")
"""A blocking call on the innermost line: the thread is waiting, not working."""


@dataclass(frozen=True)
class Profile:
    total: int
    idle: int
    self_time: Counter[str]
    inclusive: Counter[str]
    loop_total: int
    loop_self: Counter[str]


def _short(path: str) -> str:
    """Paths relative to site-packages, the stdlib or this repository."""
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1]
    stdlib = re.search(r"/lib/python3\.\d+/", path)
    if stdlib is not None:
        return path[stdlib.end():]
    return path.removeprefix(str(Path(__file__).resolve().parent.parent) + "/")


def _frame(raw: str) -> str:
    match = _FRAME.match(raw.strip())
    if match is None:
        return raw.strip()
    return f"{match['func']} ({_short(match['file'])})"


def _waiting(raw_leaf: str) -> bool:
    match = _FRAME.match(raw_leaf.strip())
    if match is None or match["line"] is None:
        return False
    return bool(_WAIT.search(linecache.getline(match["file"], int(match["line"]))))


def load_profile(path: Path) -> Profile:
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    loop_self: Counter[str] = Counter()
    total = idle = loop_total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        raw = stack.split(";")
        if _waiting(raw[-1]):
            idle += n
            continue
        frames = [_frame(f) for f in raw]
        total += n
        self_time[frames[-1]] += n
        for name in set(frames):
            inclusive[name] += n
        if not frames[0].startswith("Thread._bootstrap"):
            loop_total += n
            loop_self[frames[-1]] += n
    return Profile(total, idle, self_time, inclusive, loop_total, loop_self)


def render_profile(profile: Profile, top: int = 25) -> str:
    """Two Markdown tables: top functions by self samples and by inclusive samples."""
    if not profile.total:
        return "(no samples)"
    out = [f"{profile.total} busy samples at 100 Hz (and {profile.idle} more of threads "
           "blocked in a C-level wait, left out). Percentages are of the busy samples.", "",
           "| self % | function (file) |", "| --- | --- |"]
    out += [f"| {n / profile.total:.1%} | `{name}` |"
            for name, n in profile.self_time.most_common(top)]
    out += ["", "| inclusive % | function (file) |", "| --- | --- |"]
    out += [f"| {n / profile.total:.1%} | `{name}` |"
            for name, n in profile.inclusive.most_common(top)]
    if profile.loop_total:
        out += ["", f"Event-loop thread: {profile.loop_total / profile.total:.0%} of the busy "
                "samples; its own hot spots:", "", "| self % of loop | function (file) |",
                "| --- | --- |"]
        out += [f"| {n / profile.loop_total:.1%} | `{name}` |"
                for name, n in profile.loop_self.most_common(top)]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("file", type=Path, help="py-spy record --format raw output")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    sys.stdout.write(render_profile(load_profile(args.file), args.top) + "\n")


if __name__ == "__main__":
    main()
