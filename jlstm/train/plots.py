"""A PNG of a run's train and eval curves, drawn from its ``metrics.jsonl``."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402

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
    if title:
        fig.suptitle(title)
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _all_positive(records, name) -> bool:
    values = [r[name] for r in records if isinstance(r.get(name), int | float)]
    return bool(values) and min(values) > 0
