"""Metric logs: JSON lines in the workdir and a tqdm progress bar.

Each line of ``metrics.jsonl`` is one record, ``{"step": 500, "split": "train",
"loss": 0.12, ...}``, where ``step`` counts the updates done so far. A resumed
run first drops the records past its checkpoint, so the file reads as if the
run had never stopped.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm


def _plain(value):
    """A JSON-friendly number: Python float/int, NaN and inf as strings."""
    value = np.asarray(value).item() if not isinstance(value, int | float | str) else value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class MetricsWriter:
    """Append-only JSON-lines log of metric records."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def truncate_after(self, step: int) -> None:
        """Drop records with ``step > step`` (left by a run that stopped after its
        last checkpoint)."""
        if not self.path.exists():
            return
        kept = [r for r in read_metrics(self.path) if r["step"] <= step]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        tmp.replace(self.path)

    def write(self, step: int, split: str, metrics: dict) -> dict:
        """Append one record; return it."""
        record = {"step": int(step), "split": split, **{k: _plain(v) for k, v in metrics.items()}}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        return record


def read_metrics(path: str | Path) -> list[dict]:
    """All records of a ``metrics.jsonl`` file (a torn last line is skipped)."""
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a killed run
    return records


class Progress:
    """A tqdm bar over the run's steps, showing the loss, steps/s and the last evaluation.

    Off when stderr is not a terminal; then each log line goes to stdout instead,
    so that a run's output in a file still shows its progress.
    """

    def __init__(self, start: int, total: int, *, enabled: bool | None = None):
        enabled = sys.stderr.isatty() if enabled is None else enabled
        self._bar = tqdm(
            initial=start,
            total=total,
            disable=not enabled,
            dynamic_ncols=True,
            unit="step",
            leave=True,
        )
        self.enabled = enabled
        self._postfix: dict[str, str] = {}

    def update(self, n: int) -> None:
        self._bar.update(n)

    def show(self, step: int, record: dict, *, keys: tuple[str, ...]) -> None:
        """Show a record's ``keys`` on the bar (or print them when the bar is off)."""
        shown = {k: record[k] for k in keys if k in record}
        if self.enabled:  # the bar keeps the latest train loss and the latest evaluation
            prefix = "" if record["split"] == "train" else f"{record['split']}_"
            shown.pop("steps_per_sec", None)  # tqdm shows its own rate
            self._postfix.update({prefix + k: _format(v) for k, v in shown.items()})
            self._bar.set_postfix(self._postfix, refresh=False)
        else:
            text = "  ".join(f"{k} {_format(v)}" for k, v in shown.items())
            print(f"step {step:>7d}  {record['split']:<5s}  {text}", flush=True)

    def write(self, text: str) -> None:
        """Print a line without breaking the bar."""
        self._bar.write(text) if self.enabled else print(text, flush=True)

    def close(self) -> None:
        self._bar.close()


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
