"""The one-screen summary printed at the end of a run."""

from __future__ import annotations


def _num(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_summary(summary: dict) -> str:
    """Final metrics, the baseline to beat, time, speed, size, where the files are, and a
    generated sample where the task made one."""
    final, baselines, head = summary["final"], summary["baselines"], summary["headline"]
    rate = summary["steps_per_sec"]
    lines = [
        "=" * 72,
        f"jlstm run  {summary['workdir']}",
        f"data       {summary['data']}",
        f"result     {head} = {_num(final[head])}"
        + (f"   (baseline {_num(baselines[head])})" if head in baselines else ""),
        "metrics    " + "  ".join(f"{k} {_num(v)}" for k, v in final.items()),
        f"steps      {summary['steps']}"
        + (f" (resumed at {summary['resumed_from']})" if summary["resumed_from"] else ""),
        f"time       {summary['wall_s']:.1f} s wall, "
        + (f"{rate:.1f} steps/s" if rate is not None else "no steps run")
        + f" on {summary['devices']} device(s)",
        f"model      {summary['num_params']:,} parameters",
    ]
    labels = {"metrics": "log", "curves": "plot", "checkpoints": "checkpoint", "summary": "summary"}
    for name, path in summary["files"].items():
        lines.append(f"{labels.get(name, name):<10s} {path}")
    if summary.get("sample"):
        lines += ["-" * 72, "sample", summary["sample"].rstrip("\n")]
    lines.append("=" * 72)
    return "\n".join(lines)
