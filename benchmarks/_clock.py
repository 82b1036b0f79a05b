"""Wall time, CPU time of this process and of every process it started (Ray's workers), load average.

CPU time is read from ``/proc/<pid>/stat`` (utime + stime) of this process and all its
descendants, so a local Ray cluster's raylet and worker processes count too; processes that
ended in between are missed (Ray keeps its workers alive until shutdown). Elsewhere than Linux
only this process's CPU time is counted.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> tuple[int, float] | None:
    """``(parent pid, CPU seconds)`` of a process, or ``None`` if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK


def tree_cpu() -> dict[int, float]:
    """CPU seconds of this process and each live descendant, by pid."""
    if not Path("/proc/self/stat").exists():
        return {os.getpid(): time.process_time()}
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            s = _stat(int(entry.name))
            if s is not None:
                stats[int(entry.name)] = s
    me, keep = os.getpid(), {os.getpid()}
    changed = True
    while changed:
        changed = False
        for pid, (parent, _) in stats.items():
            if parent in keep and pid not in keep:
                keep.add(pid)
                changed = True
    return {pid: stats[pid][1] for pid in keep if pid in stats} or {me: time.process_time()}


class Clock:
    """``with Clock() as c: ...`` then ``c.wall``, ``c.cpu`` (process tree), ``c.load`` (1-min, start/end)."""

    def __enter__(self) -> Clock:
        self._cpu0 = tree_cpu()
        self.load_start = os.getloadavg()[0]
        self._wall0 = time.perf_counter()
        return self

    def stop(self) -> None:
        self.wall = time.perf_counter() - self._wall0
        cpu1 = tree_cpu()
        self.cpu = sum(v - self._cpu0.get(pid, 0.0) for pid, v in cpu1.items())
        self.load_end = os.getloadavg()[0]

    def __exit__(self, *exc) -> None:
        if not hasattr(self, "wall"):
            self.stop()

    def record(self) -> dict[str, float]:
        return {
            "wall_s": round(self.wall, 4),
            "cpu_s": round(self.cpu, 4),
            "load_average_1min": [round(self.load_start, 2), round(self.load_end, 2)],
        }
