"""First-call time of a 2-layer bidirectional train step, at a short and a long T.

Run: ``python benchmarks/compile_time.py`` (prints a Markdown table;
``bench.py`` includes it in RESULTS.md).

The step is what a training loop jits: loss (mean squared output of a
2-layer bidirectional ``jlstm.stack`` with variable lengths), its gradient,
and an optax Adam update. Each T runs in a fresh subprocess so that no
compilation is cached; the times are trace + lower, XLA compile, and the
first execution, plus a later step for scale.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

SHAPE = dict(batch=16, inputs=64, hidden=128)
STEPS = (128, 8192)


def _child(steps: int, shape: dict, implementation: str) -> dict:
    import jax
    import jax.numpy as jnp
    import optax

    from jlstm.stack import init_stack_params, stack

    batch = shape["batch"]
    params = init_stack_params(
        jax.random.key(0), shape["inputs"], shape["hidden"], num_layers=2, bidirectional=True
    )
    optimizer = optax.adam(1e-3)
    opt_state = optimizer.init(params)
    xs = jax.random.normal(jax.random.key(1), (batch, steps, shape["inputs"]))
    lengths = jnp.linspace(steps // 2, steps, batch).astype(jnp.int32)

    def loss(p, x, n):
        ys, _ = stack(p, x, lengths=n, implementation=implementation)
        return jnp.mean(ys**2)

    @jax.jit
    def train_step(p, s, x, n):
        value, grads = jax.value_and_grad(loss)(p, x, n)
        updates, s = optimizer.update(grads, s, p)
        return optax.apply_updates(p, updates), s, value

    t0 = time.perf_counter()
    lowered = train_step.lower(params, opt_state, xs, lengths)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    out = jax.block_until_ready(compiled(params, opt_state, xs, lengths))
    t3 = time.perf_counter()
    jax.block_until_ready(compiled(*out[:2], xs, lengths))
    t4 = time.perf_counter()
    return dict(lower=t1 - t0, compile=t2 - t1, first_run=t3 - t2, later_step=t4 - t3)


def run(steps=STEPS, shape=None, implementation="auto") -> dict[int, dict]:
    shape = shape or SHAPE
    here = os.path.dirname(os.path.abspath(__file__))
    results = {}
    for t in steps:
        payload = json.dumps(dict(steps=t, shape=shape, implementation=implementation))
        proc = subprocess.run(
            [sys.executable, os.path.join(here, "compile_time.py"), "--child", payload],
            capture_output=True,
            text=True,
            cwd=os.path.dirname(here),
            env={**os.environ, "PYTHONPATH": os.path.dirname(here)},
        )
        if proc.returncode != 0:
            results[t] = dict(error=proc.stderr.strip().splitlines()[-1:])
        else:
            results[t] = json.loads(proc.stdout.strip().splitlines()[-1])
    return results


def to_markdown(results: dict[int, dict], shape=None) -> str:
    shape = shape or SHAPE
    lines = [
        f"2-layer bidirectional `jlstm.stack` train step (loss, gradient, optax Adam update), "
        f"B={shape['batch']}, I={shape['inputs']}, H={shape['hidden']}, variable lengths. "
        "Seconds; each T in a fresh process.",
        "",
        "| T | trace + lower | XLA compile | first call to compiled (includes first run) | "
        "lower + compile | a later step |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for t, r in results.items():
        if "error" in r:
            lines.append(f"| {t} | failed: {r['error']} | | | | |")
            continue
        lines.append(
            f"| {t} | {r['lower']:.2f} | {r['compile']:.2f} | {r['first_run']:.2f} | "
            f"**{r['lower'] + r['compile']:.2f}** | {r['later_step']:.2f} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--steps", default=",".join(map(str, STEPS)), help="sequence lengths T")
    parser.add_argument("--implementation", default="auto", help="jlstm's implementation=")
    args = parser.parse_args()
    if args.child:
        payload = json.loads(args.child)
        print(json.dumps(_child(payload["steps"], payload["shape"], payload["implementation"])))
        return
    steps = tuple(int(t) for t in args.steps.split(","))
    print(to_markdown(run(steps, implementation=args.implementation)))


if __name__ == "__main__":
    main()
