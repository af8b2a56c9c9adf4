"""Metric logs: JSON lines and TensorBoard event files in the workdir, and a tqdm
progress bar.

Each line of ``metrics.jsonl`` is one record, ``{"step": 500, "split": "train",
"loss": 0.12, ...}``, where ``step`` counts the updates done so far. A resumed
run first drops the records past its checkpoint, so the file reads as if the
run had never stopped.

With ``tensorboard=True`` every record also goes to an event file beside it
(``events.out.tfevents.*``, one scalar per metric, tagged ``split/name``:
``train/loss``, ``eval/accuracy``), so that ``tensorboard --logdir runs/`` shows
every run. A resumed run's event file starts with a purge marker at the step after
its checkpoint: TensorBoard then hides the earlier file's events from there on.
The writer is tensorboardX's: pure Python on protobuf (which orbax already needs),
where ``clu``'s and TensorFlow's own writers would pull in TensorFlow.
"""

from __future__ import annotations

import itertools
import json
import math
import numbers
import os
import sys
import threading
import time
import types
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
    """Append-only JSON-lines log of metric records; with ``tensorboard=True`` each
    record is also written to a TensorBoard event file in the same folder (which
    needs the package tensorboardX, a dependency of jlstm)."""

    def __init__(self, path: str | Path, *, tensorboard: bool = False):
        self.path = Path(path)
        self.tensorboard = tensorboard
        self._events = None  # tensorboardX's EventsWriter, opened at the first record
        self._purge_step = None  # set by truncate_after when earlier event files exist
        if tensorboard:
            _tensorboardx()  # a missing tensorboardX stops the run now, not at step 1

    def truncate_after(self, step: int) -> None:
        """Drop records with ``step > step`` (left by a run that stopped after its
        last checkpoint); TensorBoard is told to hide those of earlier event files."""
        if self.tensorboard and any(self.path.parent.glob("events.out.tfevents.*")):
            self._purge_step = int(step) + 1
        if not self.path.exists():
            return
        kept = [r for r in read_metrics(self.path) if r["step"] <= step]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        tmp.replace(self.path)

    def write(self, step: int, split: str, metrics: dict) -> dict:
        """Append one record (and its scalars to the event file); return it."""
        record = {"step": int(step), "split": split, **{k: _plain(v) for k, v in metrics.items()}}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tensorboard:
            self._write_events(int(step), split, metrics)
        return record

    def _write_events(self, step: int, split: str, metrics: dict) -> None:
        tb = _tensorboardx()
        if self._events is None:  # here, not in __init__: only the writing process makes a file
            suffix = f".{os.getpid()}.{next(_EVENT_FILES)}"  # unique within the same second
            self._events = tb.EventsWriter(str(self.path.parent / "events"), suffix)
            if self._purge_step is not None:
                start = tb.SessionLog(status=tb.SessionLog.START)
                self._events.write_event(
                    tb.Event(wall_time=time.time(), step=self._purge_step, session_log=start)
                )
        values = []
        for name, value in metrics.items():
            value = np.asarray(value).item() if hasattr(value, "shape") else value
            if isinstance(value, numbers.Real):  # NaN and inf too: TensorBoard shows them
                values.append(tb.Summary.Value(tag=f"{split}/{name}", simple_value=float(value)))
        summary = tb.Summary(value=values)
        self._events.write_event(tb.Event(wall_time=time.time(), step=step, summary=summary))
        self._events.flush()  # on disk when write returns: a killed run keeps its records

    def close(self) -> None:
        """Close the event file (the JSON lines need nothing)."""
        if self._events is not None:
            self._events.close()
            self._events = None


_EVENT_FILES = itertools.count()  # event files opened by this process


def _tensorboardx() -> types.SimpleNamespace:
    """The parts of tensorboardX used here, or an ImportError saying what to do.

    Its synchronous EventsWriter, not its SummaryWriter: that one writes from a
    background queue, so a record could still be in memory when a run is killed."""
    try:
        from tensorboardX.event_file_writer import EventsWriter
        from tensorboardX.proto.event_pb2 import Event, SessionLog
        from tensorboardX.proto.summary_pb2 import Summary
    except ImportError as e:
        raise ImportError(
            "config.train.tensorboard = True needs the package tensorboardX (a dependency "
            "of jlstm: pip install tensorboardX), or set config.train.tensorboard = False"
        ) from e
    return types.SimpleNamespace(
        EventsWriter=EventsWriter, Event=Event, SessionLog=SessionLog, Summary=Summary
    )


class NewtonLog:
    """What the layers of ``implementation="parallel"`` report (each solve's
    :class:`jlstm.parallel.ParallelInfo`, through :class:`jlstm.parallel.Parallel`'s
    ``report``), summed up for the metric log.

    The training loop's models are built with ``Parallel(report=NEWTON)``; the loop
    calls :meth:`drain` at each train log and each evaluation and adds its
    figures to the record: ``newton_iterations`` (mean Newton steps per solve),
    ``newton_iterations_max``, ``newton_converged`` (the fraction of solves that
    converged) and ``newton_fell_back`` (how many returned the sequential answer).
    """

    def __init__(self):
        self._lock = threading.Lock()  # the report runs on JAX's callback threads
        self._solves = []

    def __deepcopy__(self, memo):  # one sink: a copied model reports to the same log
        return self

    def __call__(self, info) -> None:
        record = tuple(
            np.ravel(np.asarray(a)) for a in (info.iterations, info.converged, info.fell_back)
        )
        with self._lock:
            self._solves.append(record)

    def drain(self) -> dict[str, float]:
        """The figures of every solve since the last call (none: an empty dict)."""
        import jax

        jax.effects_barrier()  # every report of the work dispatched so far has run
        with self._lock:
            solves, self._solves = self._solves, []
        if not solves:
            return {}
        iterations, converged, fell_back = (np.concatenate(a) for a in zip(*solves, strict=True))
        return {
            "newton_iterations": float(iterations.mean()),
            "newton_iterations_max": int(iterations.max()),
            "newton_converged": float(converged.mean()),
            "newton_fell_back": int(fell_back.sum()),
        }


NEWTON = NewtonLog()  # the report of the training loop's parallel layers


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
