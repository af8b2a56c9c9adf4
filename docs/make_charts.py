"""Draw the speed chart of the docs from benchmarks/RESULTS.md's headline table.

    python docs/make_charts.py        # writes docs/images/speed.png

Reads the table under "### Headline" (one row per shape S1-S5: jlstm's time
divided by torch.nn.LSTM's and by the best JAX peer's) and the run's date and
machine from the lines above it, and draws the three ratios per shape as bars
against the line at 1.0 (below it jlstm is faster). Rerun it after a new
benchmark run and commit the PNG with the new RESULTS.md.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
OUT = ROOT / "docs" / "images" / "speed.png"

# Headline columns drawn, by the header's text, and their legend labels.
SERIES = {
    "fwd ÷ torch": "forward ÷ torch.nn.LSTM",
    "fwd+bwd ÷ torch": "forward + backward ÷ torch.nn.LSTM",
    "fwd+bwd ÷ best JAX peer": "forward + backward ÷ best JAX peer",
}


def headline(
    text: str,
) -> tuple[list[str], dict[str, list[float]], list[str]]:
    """(shape labels, {column: ratios}, the best peer's name per shape) of the table."""
    after = text[text.index("### Headline") :].splitlines()
    first = next(i for i, x in enumerate(after) if x.startswith("|"))
    lines = []
    for x in after[
        first:
    ]:  # the first table after the heading, to its last row
        if not x.startswith("|"):
            break
        lines.append(x)
    rows = [
        [c.strip().strip("*").strip() for c in x.strip("|").split("|")]
        for x in lines
    ]
    header, body = (
        rows[0],
        [r for r in rows[2:] if r and r[0].startswith("S")],
    )
    if not body:
        raise ValueError(
            f"no S1-S5 rows in the headline table of {RESULTS}"
        )
    columns = {name: header.index(name) for name in SERIES}
    shapes = [f"{r[0]}\n{r[1]}" for r in body]
    ratios = {
        name: [float(r[i]) for r in body] for name, i in columns.items()
    }
    peer_col = header.index("best JAX peer fwd+bwd")
    peers = [re.sub(r".*\((.*)\)", r"\1", r[peer_col]) for r in body]
    return shapes, ratios, peers


def run_line(text: str) -> str:
    """'2026-12-03T14:27, AMD EPYC, 2 logical CPUs' from the file's header."""
    date = re.search(r"^- Date: (.+)$", text, re.M)
    machine = re.search(r"^- Machine: ([^,]+, [^,]+)", text, re.M)
    return ", ".join(m.group(1).strip() for m in (date, machine) if m)


def draw(path: Path = OUT) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    text = RESULTS.read_text(encoding="utf-8")
    shapes, ratios, peers = headline(text)
    x = np.arange(len(shapes))
    width = 0.26
    fig, ax = plt.subplots(figsize=(8, 3.6), dpi=110)
    colors = ["#7986cb", "#3949ab", "#ef6c00"]
    for k, (name, label) in enumerate(SERIES.items()):
        bars = ax.bar(
            x + (k - 1) * width,
            ratios[name],
            width,
            label=label,
            color=colors[k],
        )
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(
        x, [f"{s}\n(peer: {p})" for s, p in zip(shapes, peers, strict=True)]
    )
    ax.tick_params(axis="x", labelsize=7)
    ax.set_ylabel("jlstm's time ÷ the other's")
    ax.set_xlabel("shape: B, T, I, H", fontsize=7)
    top = max(max(v) for v in ratios.values())
    ax.set_ylim(0, max(1.2, top + 0.15))
    ax.set_title(
        f"One LSTM layer, float32, CPU (below 1.00 jlstm is faster)\n{run_line(text)}",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="upper left", frameon=False, ncols=3)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


if __name__ == "__main__":
    print(draw(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT))
