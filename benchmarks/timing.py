"""Interleaved timing on a shared machine.

Each round calls every implementation in turn (round-robin), repeating a call
until the round lasts at least ``min_round_s`` so that short calls are timed
over many repetitions. The result per implementation is the median over
rounds.

On a machine shared with other jobs a round can be slowed by them. The CPU
time that *other* processes (and, on a virtual machine, the hypervisor) took
during a round is the machine's busy time from ``/proc/stat`` less this
process's own CPU time (``getrusage``). A round during which others took more
than ``max_other`` of one core is set aside and run again, up to
``max_rounds`` rounds in all. Only "clean" rounds enter the median when at
least ``rounds`` of them were collected; otherwise the ``rounds`` least
disturbed ones do, and the report says so.

Waits among this process's own threads are not interference: an
implementation that runs more threads than there are cores pays for that in
its time, and every round it runs counts alike.
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Stats:
    median_ms: float
    min_ms: float
    clean: int  # rounds with little interference
    used: int  # rounds that entered the median
    reps: int  # calls per round


def _idle_cpu_s() -> tuple[float, int] | None:
    """(idle CPU-seconds of the whole machine since boot, number of CPUs), or None."""
    try:
        with open("/proc/stat") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    fields = lines[0].split()
    if fields[0] != "cpu" or len(fields) < 6:
        return None
    cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    ticks = int(fields[4]) + int(fields[5])  # idle + iowait
    return ticks / os.sysconf("SC_CLK_TCK"), cpus


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _OtherLoad:
    """CPU time taken by other processes over an interval, in cores (0 = none).

    ``/proc/stat`` counts in clock ticks (10 ms), so a single reading is good
    to about 10 ms of CPU time; over a 0.2 s round that is 0.05 of a core.
    Without ``/proc/stat`` every round reads 0.
    """

    def start(self) -> None:
        self._idle = _idle_cpu_s()
        self._own = _own_cpu_s()
        self._t = time.perf_counter()

    def stop(self) -> float:
        elapsed = time.perf_counter() - self._t
        idle = _idle_cpu_s()
        if self._idle is None or idle is None:
            return 0.0
        busy = idle[1] * elapsed - (idle[0] - self._idle[0])
        return max(0.0, busy - (_own_cpu_s() - self._own)) / elapsed


def measure(
    fns: dict[str, Callable[[], object]],
    *,
    rounds: int = 7,
    min_round_s: float = 0.2,
    max_other: float = 0.1,
    max_rounds: int | None = None,
    pause_s: float = 0.02,
) -> dict[str, Stats]:
    """Time each zero-argument function (already compiled/warmed up)."""
    max_rounds = max_rounds or 4 * rounds
    reps = {}
    for name, fn in fns.items():
        fn()  # warm
        start = time.perf_counter()
        fn()
        once = time.perf_counter() - start
        reps[name] = max(1, round(min_round_s / max(once, 1e-6)))
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in fns}
    clean = dict.fromkeys(fns, 0)
    load = _OtherLoad()
    for _ in range(max_rounds):
        if min(clean.values()) >= rounds:
            break
        for name, fn in fns.items():
            if clean[name] >= rounds:
                continue
            time.sleep(pause_s)  # let spinning worker threads of the previous one go idle
            load.start()
            start = time.perf_counter()
            for _ in range(reps[name]):
                fn()
            elapsed = time.perf_counter() - start
            other = load.stop()
            samples[name].append((elapsed / reps[name] * 1e3, other))
            clean[name] += other <= max_other
    out = {}
    for name, values in samples.items():
        good = [v for v in values if v[1] <= max_other]
        chosen = good if len(good) >= rounds else sorted(values, key=lambda v: v[1])[:rounds]
        times = [v[0] for v in chosen]
        out[name] = Stats(
            statistics.median(times), min(times), clean[name], len(chosen), reps[name]
        )
    return out


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"
