"""Where the fast path's time goes: its pieces timed apart, with GFLOP/s each.

Run: ``python benchmarks/breakdown.py [--shapes S1,S4]``; prefix it with
``taskset -c 0`` to see the same on one core.

Per shape (float32, one layer, as in ``bench.py``), interleaved, medians:

* ``fwd``: the forward that saves nothing (what inference runs);
* ``fwd, saving``: the forward of the custom VJP, which also writes the gates
  and state of every step;
* ``fwd, saving + reverse loop``: that forward followed by the backward's
  loop, one (B, 4H) x (4H, H) product a step; the loop alone is the
  difference. (Timed alone, the loop would include a copy of the saved gates:
  it writes dG over them, which XLA cannot do to a jit argument.)
* ``fwd+bwd``: the whole gradient, as ``bench.py`` times it;

each of these four twice where the CPU kernels build: with the loops in the
kernels (as shipped) and as ``lax.scan`` (``JLSTM_CPU_KERNEL=0``); then

* ``weight grads``: dW_x, dW_h, db and dX as products over all T * B rows;
* ``in-loop product``: a scan that does nothing but the step's
  [x, h] x [W_x; W_h] product, and ``all-steps product``: the same
  FLOPs as one (T * B, I + H) x (I + H, 4H) product. Their ratio is what the
  recurrence costs in GEMM efficiency alone.

GFLOP/s count the products only (2 m n k each).
"""

from __future__ import annotations

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from levers import SHAPES  # noqa: E402
from timing import measure  # noqa: E402

from jlstm import _cpu_kernel, _fused  # noqa: E402
from jlstm.cell import LSTMParams  # noqa: E402

ONE_SHOT = ("weight grads", "all-steps product")  # no loop: no time per step


def pieces(batch: int, steps: int, inputs: int, hidden: int):
    """The zero-argument timed functions of one shape and their product FLOPs."""
    keys = jax.random.split(jax.random.key(0), 4)
    params = LSTMParams(
        jax.random.normal(keys[0], (inputs, 4 * hidden)) / np.sqrt(inputs),
        jax.random.normal(keys[1], (hidden, 4 * hidden)) / np.sqrt(hidden),
        jnp.zeros(4 * hidden),
    )
    xs = jax.random.normal(keys[2], (steps, batch, inputs))
    zeros = jnp.zeros((batch, hidden))
    dys = jnp.ones((steps, batch, hidden))
    rows = steps * batch
    gate = 2.0 * rows * (inputs + hidden) * 4 * hidden  # the forward's products
    recur = 2.0 * rows * 4 * hidden * hidden  # dG W_h^T in the reverse loop
    grads = 2.0 * rows * 4 * hidden * (2 * inputs + hidden)  # dW_x, dW_h, dX
    ready = jax.block_until_ready
    timed = {}
    for kernel in (True, False) if _cpu_kernel.usable() else (False,):
        config = _fused._Config(
            reverse=False, compute=np.dtype("float32"), unroll=1, segment=0, kernel=kernel
        )
        loops = "CPU kernel" if kernel else "lax.scan"

        def forward(p, x, save, config=config):
            return _fused._forward(p, x, zeros, zeros, None, config, save=save)

        fwd = jax.jit(lambda p, x, forward=forward: forward(p, x, False)[0])
        fwd_save = jax.jit(lambda p, x, forward=forward: forward(p, x, True)[3])
        saved = fwd_save(params, xs)

        def reverse(p, s, d, config=config):
            return _fused._backward_scan(p, s, d, zeros, zeros, zeros, None, config)[0]

        save_reverse = jax.jit(lambda p, x, d, f=fwd_save, r=reverse: r(p, f(p, x), d))
        run = _fused._layer_fn(config)
        grad = jax.jit(
            jax.grad(lambda p, x, run=run: run(p, x, zeros, zeros, None)[0].sum(), argnums=(0, 1))
        )
        # Default arguments bind this iteration's functions and arrays.
        timed[f"fwd ({loops})"] = (lambda f=fwd: ready(f(params, xs)), gate)
        timed[f"fwd, saving ({loops})"] = (lambda f=fwd_save: ready(f(params, xs)), gate)
        timed[f"fwd, saving + reverse loop ({loops})"] = (
            lambda f=save_reverse: ready(f(params, xs, dys)),
            gate + recur,
        )
        timed[f"fwd+bwd ({loops})"] = (lambda f=grad: ready(f(params, xs)), gate + recur + grads)
    dgates = jax.jit(reverse)(params, saved, dys)
    h_prev = _fused._shift_in(zeros, saved[_fused._H], False)
    weight_grads = jax.jit(lambda x, h, g, p: _fused._weight_grads(x, h, g, p, config))
    w = jnp.concatenate([params.w_x, params.w_h])

    @jax.jit
    def in_loop(w, x):
        def step(h, x_t):
            return (jnp.concatenate([x_t, h], -1) @ w)[:, :hidden], None

        return jax.lax.scan(step, zeros, x)[0]

    all_steps = jax.jit(jnp.matmul)  # (T * B, I + H) x (I + H, 4H)
    z = jax.random.normal(keys[3], (steps * batch, inputs + hidden))

    return {
        **timed,
        "weight grads": (lambda: ready(weight_grads(xs, h_prev, dgates, params)), grads),
        "in-loop product": (lambda: ready(in_loop(w, xs)), gate),
        "all-steps product": (lambda: ready(all_steps(z, w)), gate),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="S1,S2,S3,S4,S5")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    cores = len(os.sched_getaffinity(0))
    print(f"jax {jax.__version__}, {cores} core(s) available to this process\n")
    print("| shape | piece | ms | GFLOP/s (products) | µs per step |")
    print("|---|---|---:|---:|---:|")
    for name in args.shapes.split(","):
        batch, steps, inputs, hidden = SHAPES[name]
        fns = pieces(batch, steps, inputs, hidden)
        stats = measure({k: f for k, (f, _) in fns.items()}, rounds=args.rounds)
        for piece, (_, flops) in fns.items():
            ms = stats[piece].median_ms
            per_step = "" if piece in ONE_SHOT else f"{1000 * ms / steps:.1f}"
            print(f"| {name} | {piece} | {ms:.2f} | {flops / ms / 1e6:.0f} | {per_step} |")


if __name__ == "__main__":
    main()
