"""PNGs of a run: its train and eval curves (from ``metrics.jsonl``), and attention
weights over time."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

# Train-record fields that are bookkeeping, not curves worth a panel of their own.
_NOT_CURVES = {"step", "split", "learning_rate", "steps_per_sec", "wall_s"}


def plot_curves(
    records: list[dict], path: str | Path, *, title: str = "", baselines: dict | None = None
) -> Path:
    """One panel per metric (train and eval on the same axes), ``grad_norm`` last.

    ``baselines`` (metric -> value) draws a dashed line for a trivial predictor.
    Non-numeric values (a logged ``"nan"``) are left out of the lines.
    """
    baselines = baselines or {}
    names: list[str] = []
    for r in records:
        for k in r:
            if k not in _NOT_CURVES and k not in names:
                names.append(k)
    names.sort(key=lambda k: (k == "grad_norm", k != "loss"))
    if not names:
        names = ["loss"]
    fig, axes = plt.subplots(
        1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False, layout="constrained"
    )
    for ax, name in zip(axes[0], names, strict=True):
        for split, style in (("train", "-"), ("eval", "o-")):
            points = [
                (r["step"], r[name])
                for r in records
                if r["split"] == split and isinstance(r.get(name), int | float)
            ]
            if points:
                steps, values = zip(*points, strict=True)
                ax.plot(steps, values, style, label=split, markersize=3, linewidth=1.2)
        if name in baselines:
            ax.axhline(baselines[name], color="grey", linestyle="--", linewidth=1, label="baseline")
        ax.set_title(name)
        ax.set_xlabel("step")
        if name in ("loss", "grad_norm", "mse", "bits_per_char") and _all_positive(records, name):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path, title)


def _save(fig, path: str | Path, title: str) -> Path:
    """Title the figure, write it as a PNG, free it."""
    if title:
        fig.suptitle(title)
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _all_positive(records, name) -> bool:
    values = [r[name] for r in records if isinstance(r.get(name), int | float)]
    return bool(values) and min(values) > 0


def plot_attention(
    weights,
    lengths,
    path: str | Path,
    *,
    indices=None,
    labels=None,
    predictions=None,
    title: str = "",
) -> Path:
    """One panel per sequence: its attention weight at each real time step.

    ``weights`` (N, T) (for several heads, (N, heads, T): one set of bars per
    head), ``lengths`` (N,); ``indices`` (each sequence's number in its data
    set), ``labels`` and ``predictions`` (N,), when given, go in each panel's
    title.
    """
    weights = np.asarray(weights, np.float32)
    if weights.ndim == 2:
        weights = weights[:, None, :]
    if weights.ndim != 3:
        raise ValueError(f"weights must be (N, T) or (N, heads, T); got shape {weights.shape}")
    lengths = np.asarray(lengths)
    if lengths.shape != weights.shape[:1]:
        raise ValueError(f"lengths must be ({weights.shape[0]},); got shape {lengths.shape}")
    n, heads = weights.shape[:2]
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.2 * cols, 2.6 * rows), squeeze=False, layout="constrained"
    )
    for k, ax in enumerate(axes.flat):
        if k >= n:
            ax.axis("off")
            continue
        steps = np.arange(int(lengths[k]))
        for h, w in enumerate(weights[k]):
            label = f"head {h}" if heads > 1 else None
            ax.bar(steps, w[: len(steps)], alpha=0.8 if heads == 1 else 0.5, label=label)
        number = k if indices is None else indices[k]
        name = f"sequence {number} (length {int(lengths[k])})"
        if labels is not None:
            name += f"\nlabel {labels[k]}"
            if predictions is not None:
                name += f", predicted {predictions[k]}"
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("time step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("attention weight")
        ax.grid(alpha=0.3)
        if heads > 1:
            ax.legend(fontsize=7)
    return _save(fig, path, title)


def plot_gate_traces(
    traces: dict,
    lengths,
    path: str | Path,
    *,
    labels: dict[str, str] | None = None,
    sequence_names: list[str] | None = None,
    tick_labels: list[list[str]] | None = None,
    max_units: int = 64,
    title: str = "",
) -> Path:
    """Heat maps of a layer's gates and states over time (:func:`jlstm.inspect.gate_traces`).

    One row per trace, in the order of ``traces`` (for the LSTM f, i, g, o, c, h),
    one column per sequence; in each panel the units go up and the time steps
    across, the padding left out. A trace within [0, 1] (a σ gate) is drawn on
    0..1, one within [-1, 1] (tanh) on -1..1, any other (c_t, a pre-activation)
    on ±its largest magnitude: one colour bar per row.

    Args:
      traces: name -> ``(N, T, H)`` array.
      lengths: ``(N,)`` real steps of each sequence.
      labels: name -> the row's title (:func:`jlstm.inspect.trace_labels`).
      sequence_names: a title per column.
      tick_labels: per sequence, a label for each real step (a text's characters).
      max_units: units shown, the first ones (the axis says how many there are).
    """
    arrays = {k: np.asarray(v, np.float32) for k, v in traces.items()}
    if not arrays:
        raise ValueError("traces must hold at least one (N, T, H) array; got none")
    shapes = {k: a.shape for k, a in arrays.items()}
    first = next(iter(arrays.values()))
    if first.ndim != 3 or any(s != first.shape for s in shapes.values()):
        raise ValueError(f"traces must all be (N, T, H) arrays of one shape; got {shapes}")
    n, steps, units = first.shape
    lengths = np.asarray(lengths)
    if lengths.shape != (n,):
        raise ValueError(f"lengths must be ({n},); got shape {lengths.shape}")
    shown = min(units, max_units)
    labels = labels or {}
    width = max(3.2, 0.12 * int(lengths.max(initial=1)))
    fig, axes = plt.subplots(
        len(arrays),
        n,
        figsize=(width * n + 1.2, 1.6 * len(arrays) + 0.6),
        squeeze=False,
        layout="constrained",
    )
    last_row = len(arrays) - 1
    for r, (row, (name, values)) in enumerate(zip(axes, arrays.items(), strict=True)):
        real = np.concatenate([values[k, : int(lengths[k])].ravel() for k in range(n)])
        low, high = (float(real.min()), float(real.max())) if real.size else (0.0, 1.0)
        if low >= 0.0 and high <= 1.0:
            vmin, vmax, cmap = 0.0, 1.0, "viridis"
        else:
            top = 1.0 if low >= -1.0 and high <= 1.0 else max(abs(low), abs(high), 1e-6)
            vmin, vmax, cmap = -top, top, "RdBu_r"
        image = None
        for k, ax in enumerate(row):
            length = int(lengths[k])
            image = ax.imshow(
                values[k, :length, :shown].T,
                aspect="auto",
                origin="lower",
                interpolation="nearest",
                cmap=cmap,
                vmin=vmin,
                vmax=vmax,
                extent=(-0.5, max(length, 1) - 0.5, -0.5, shown - 0.5),
            )
            if r == 0 and sequence_names is not None:
                ax.set_title(sequence_names[k], fontsize=9)
            if k == 0:
                units_note = f"units 0-{shown - 1} of {units}" if shown < units else "unit"
                ax.set_ylabel(f"{labels.get(name, name)}\n{units_note}", fontsize=8)
            if r == last_row:
                if tick_labels is not None:
                    ax.set_xticks(range(length), tick_labels[k][:length], fontsize=6)
                else:
                    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
                    ax.set_xlabel("time step")
            else:
                ax.set_xticks([])
            ax.tick_params(labelsize=7)
        fig.colorbar(image, ax=list(row), pad=0.01, aspect=12)
    return _save(fig, path, title)
