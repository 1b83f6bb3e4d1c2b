"""How many threads an answer gets: the cores that other work leaves free, measured just now.

llama.cpp's threads meet at a barrier after every step, so an answer runs at the pace of its
slowest thread: one thread that shares its core with another program stalls them all (beside one
busy process, an answer took 20x longer with 2 threads than with 1), even when that program runs
at the lowest priority (nice 19: 12x). A `LoadMeter` samples the machine's CPU time in the
background, and `threads_for` gives the answer one thread per core that was free over the last
second, never fewer than one.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SAMPLE_EVERY_S = 0.25
WINDOW_S = 1.0
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True, slots=True)
class CpuSample:
    """CPU seconds busy machine-wide and in citeqa's own processes, at `at`."""

    at: float
    busy: float
    excluded: float


def usable_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def read_busy_seconds(stat: Path = Path("/proc/stat")) -> float | None:
    """CPU seconds spent machine-wide on any work, niced included (all but idle and waiting for
    disks); None where /proc/stat is missing."""
    try:
        first = stat.read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    # cpu user nice system idle iowait irq softirq steal ...
    values = [int(v) for v in first[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return (user + nice + system + irq + softirq + steal) / _TICK


def read_process_seconds(pid: int | None) -> float:
    """CPU seconds used so far by process `pid` (0 when it is gone or unknown)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    # After the command name: state is field 3, utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / _TICK


def threads_for(others_busy: float, cores: int, limit: int) -> int:
    """One thread per core that other work left free (a core counts as taken when it was more
    than a quarter busy), at least 1 and at most `limit`."""
    free = cores - others_busy
    return max(1, min(limit, int(free + 0.25)))


class LoadMeter:
    """Samples the machine's load every quarter second in a background thread, leaving out the
    CPU time of this process (finding the passages comes before the answer, not beside it) and
    of one more (the model worker's own answering)."""

    def __init__(self, cores: int | None = None):
        self.cores = cores or usable_cores()
        self.excluded_pid: int | None = None
        self.samples: collections.deque[CpuSample] = collections.deque(
            maxlen=int(WINDOW_S / SAMPLE_EVERY_S) + 1
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def exclude(self, pid: int | None) -> None:
        """Leave out process `pid` from now on (earlier samples counted another one)."""
        self.excluded_pid = pid
        self.samples.clear()

    def sample(self) -> CpuSample | None:
        busy = read_busy_seconds()
        if busy is None:
            return None
        own = read_process_seconds(os.getpid()) + read_process_seconds(self.excluded_pid)
        return CpuSample(time.monotonic(), busy, own)

    def start(self) -> None:
        if self._thread is None and read_busy_seconds() is not None:
            self._thread = threading.Thread(target=self._run, name="citeqa-load", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            taken = self.sample()
            if taken is not None:
                self.samples.append(taken)

    def others_busy(self) -> float:
        """Cores kept busy by other work over the last second (0 when not measurable)."""
        now = self.sample()
        if now is None or not self.samples:
            return 0.0
        then = self.samples[0]
        span = now.at - then.at
        if span < SAMPLE_EVERY_S:
            return 0.0
        others = (now.busy - then.busy) - (now.excluded - then.excluded)
        return max(0.0, others / span)

    def threads(self, limit: int) -> int:
        """Threads for the next answer: the free cores, within 1..`limit`."""
        return threads_for(self.others_busy(), self.cores, limit)
