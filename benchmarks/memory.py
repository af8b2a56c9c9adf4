"""Peak memory of one layer's forward+backward on a long sequence, with and without remat.

Run: ``python benchmarks/memory.py`` (prints a Markdown table; ``bench.py``
includes it in RESULTS.md).

Two measures per configuration, each in a fresh subprocess:

* XLA's own account of the compiled program (``Compiled.memory_analysis()``):
  temp + output bytes, the buffers the program allocates beyond its
  arguments (its ``peak_memory_in_bytes`` reads as the arguments alone on
  CPU, so it is not used);
* the growth of the process's peak resident set size over one run of the
  gradient: the peak mark is reset (``/proc/self/clear_refs``) after the
  inputs and the compiled program exist, and read back (``VmHWM``) after.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

SHAPE = dict(batch=8, steps=16384, inputs=64, hidden=256)

BASE = "jlstm, remat=False"  # the row the ratios divide by
CONFIGS = {
    BASE: dict(implementation="auto", remat=False),
    "jlstm, remat=True": dict(implementation="auto", remat=True),
    "jlstm implementation='xla', remat=False": dict(implementation="xla", remat=False),
    "jlstm implementation='xla', remat=True": dict(implementation="xla", remat=True),
    "jlstm implementation='reference' (autodiff of the scan)": dict(
        implementation="reference", remat=False
    ),
    "jlstm implementation='reference', remat=True": dict(implementation="reference", remat=True),
}


def _status_bytes(field: str) -> int:
    """A memory figure of this process from /proc/self/status (kB there), in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def _reset_peak_rss() -> int:
    """Reset the peak-RSS mark (Linux clear_refs) and return the current RSS."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_bytes("VmRSS")


def _child(config: dict, shape: dict) -> dict:
    """Runs in the subprocess: compile, read XLA's numbers, run once, read RSS."""
    import jax

    from jlstm.cell import init_params
    from jlstm.layer import layer

    params = init_params(jax.random.key(0), shape["inputs"], shape["hidden"])
    xs = jax.random.normal(jax.random.key(1), (shape["batch"], shape["steps"], shape["inputs"]))

    def loss(p, x):
        return layer(p, x, implementation=config["implementation"], remat=config["remat"])[0].sum()

    grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
    compiled = grad.lower(params, xs).compile()
    stats = compiled.memory_analysis()
    jax.block_until_ready((params, xs))
    rss_before = _reset_peak_rss()
    start = time.perf_counter()
    jax.block_until_ready(compiled(params, xs))
    first = time.perf_counter() - start
    rss_peak = _status_bytes("VmHWM")
    times = []
    for _ in range(3):
        start = time.perf_counter()
        jax.block_until_ready(compiled(params, xs))
        times.append(time.perf_counter() - start)
    return dict(
        temp=stats.temp_size_in_bytes,
        output=stats.output_size_in_bytes,
        argument=stats.argument_size_in_bytes,
        rss_growth=rss_peak - rss_before,
        first_s=first,
        step_s=sorted(times)[1],
    )


def run(shape: dict | None = None) -> dict[str, dict]:
    shape = shape or SHAPE
    here = os.path.dirname(os.path.abspath(__file__))
    results = {}
    for name, config in CONFIGS.items():
        payload = json.dumps(dict(config=config, shape=shape))
        proc = subprocess.run(
            [sys.executable, os.path.join(here, "memory.py"), "--child", payload],
            capture_output=True,
            text=True,
            cwd=os.path.dirname(here),
            env={**os.environ, "PYTHONPATH": os.path.dirname(here)},
        )
        if proc.returncode != 0:
            results[name] = dict(error=proc.stderr.strip().splitlines()[-1:])
            continue
        results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    return results


def to_markdown(results: dict[str, dict], shape: dict | None = None) -> str:
    shape = shape or SHAPE
    mib = lambda b: f"{b / 2**20:,.0f}" if b is not None else "n/a"
    base = results.get(BASE, {})
    base_xla = base.get("temp", 0) + base.get("output", 0)
    base_rss = base.get("rss_growth", 0)
    lines = [
        f"Forward+backward of one layer, B={shape['batch']}, T={shape['steps']}, "
        f"I={shape['inputs']}, H={shape['hidden']}, float32 (gradient w.r.t. parameters "
        "and input). MiB.",
        "",
        f"'jlstm' is the default, `implementation='auto'`; ratios are to `{BASE}`.",
        "",
        "| configuration | XLA temp + output | ratio | RSS growth | ratio | time per fwd+bwd (s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        if "error" in r:
            lines.append(f"| {name} | failed: {r['error']} | | | | |")
            continue
        xla = r["temp"] + r["output"]
        ratio_xla = f"{xla / base_xla:.2f}" if base_xla else "n/a"
        ratio_rss = f"{r['rss_growth'] / base_rss:.2f}" if base_rss else "n/a"
        lines.append(
            f"| {name} | {mib(xla)} | {ratio_xla} | {mib(r['rss_growth'])} | {ratio_rss} | "
            f"{r['step_s']:.2f} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=SHAPE["steps"])
    args = parser.parse_args()
    if args.child:
        payload = json.loads(args.child)
        print(json.dumps(_child(payload["config"], payload["shape"])))
        return
    shape = dict(SHAPE, steps=args.steps)
    print(to_markdown(run(shape), shape))


if __name__ == "__main__":
    main()
