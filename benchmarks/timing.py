"""Interleaved timing on a shared machine.

Each round calls every implementation in turn (round-robin), repeating a call
until the round lasts at least ``min_round_s`` so that short calls are timed
over many repetitions. The result per implementation is the median over
rounds.

On a machine shared with other jobs a round can be slowed by them. Linux
records, per thread, how long it was runnable but waiting for a CPU
(``/proc/<pid>/task/<tid>/schedstat``); a round during which this process's
threads waited for more than ``max_wait`` of its duration is set aside and
run again, up to ``max_rounds`` rounds in all. Only "clean" rounds enter the
median when at least ``rounds`` of them were collected; otherwise the
``rounds`` least disturbed ones do, and the report says so.
"""

from __future__ import annotations

import os
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


def _wait_ns() -> int:
    """Total time this process's threads have spent waiting on a run queue (ns)."""
    total = 0
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return 0
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                total += int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            pass
    return total


def measure(
    fns: dict[str, Callable[[], object]],
    *,
    rounds: int = 7,
    min_round_s: float = 0.2,
    max_wait: float = 0.1,
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
    for _ in range(max_rounds):
        if min(clean.values()) >= rounds:
            break
        for name, fn in fns.items():
            if clean[name] >= rounds:
                continue
            time.sleep(pause_s)  # let spinning worker threads of the previous one go idle
            wait0, start = _wait_ns(), time.perf_counter()
            for _ in range(reps[name]):
                fn()
            elapsed = time.perf_counter() - start
            waited = (_wait_ns() - wait0) * 1e-9 / elapsed
            samples[name].append((elapsed / reps[name] * 1e3, waited))
            clean[name] += waited <= max_wait
    out = {}
    for name, values in samples.items():
        good = [v for v in values if v[1] <= max_wait]
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
