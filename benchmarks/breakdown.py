"""Where the LSTM's time goes: the loops timed apart, per implementation, with GFLOP/s each.

Run: ``python benchmarks/breakdown.py [--shapes S1,S4]``; prefix it with
``taskset -c 0`` to see the same on one core. Not part of ``bench.py``.

Per shape (float32, one layer, as in ``bench.py``), interleaved, medians, each
of the first four with the loops of ``implementation="cpu_kernel"`` (where the
kernel runs) and of ``implementation="xla"`` (``lax.scan``), by binding the
primitives of :mod:`jlstm.fused.primitives` as :mod:`jlstm.fused.layer` does:

* ``fwd``: ``forward_p`` without residuals (what inference runs);
* ``fwd, saving``: ``forward_p`` saving each step's gates, c and h (what
  differentiation runs first);
* ``fwd, saving + adjoint loop``: that, then ``adjoint_p`` (reverse mode's
  loop, one (B, 4H) x (4H, H) product a step, giving dG); the loop alone is the
  difference. (Timed alone, the kernel's loop would include a copy of the saved
  gates: it writes dG over them, which XLA cannot do to a jit argument.)
* ``fwd+bwd``: the whole gradient through ``jlstm.layer(...,
  implementation=...)``, as ``bench.py`` times it; then

* ``weight grads``: dW_x = X^T dG, dW_h = H_prev^T dG, db = sum dG and
  dX = dG W_x^T, the transposes of the all-steps products, over all T * B rows;
* ``in-loop product``: a scan that does nothing but the step's
  [x, h] x [W_x; W_h] product, and ``all-steps product``: the same FLOPs as one
  (T * B, I + H) x (I + H, 4H) product. Their ratio is what the recurrence costs
  in GEMM efficiency alone.

GFLOP/s count the products only (2 m n k each). The primitives' parameters are
jlstm's internals: this script follows them, the library does not promise them.
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
import peers  # noqa: E402
from levers import SHAPES  # noqa: E402
from timing import measure  # noqa: E402

import jlstm  # noqa: E402
from jlstm.fused import loops  # noqa: E402
from jlstm.fused.primitives import adjoint_p, forward_p  # noqa: E402

ONE_SHOT = ("weight grads", "all-steps product")  # no loop: no time per step
F32 = np.dtype(np.float32)


def _loop_params(kernel: bool) -> dict:
    """The static parameters jlstm.fused.layer binds (forward, one direction, no mask)."""
    return dict(reverse=False, unroll=1, compute=F32, kernel=kernel)


def pieces(batch: int, steps: int, inputs: int, hidden: int):
    """The zero-argument timed functions of one shape and their product FLOPs."""
    keys = jax.random.split(jax.random.key(0), 4)
    params = jlstm.init_params(keys[0], inputs, hidden)
    xs = jax.random.normal(keys[2], (steps, batch, inputs))  # time-major
    xs_bm = jnp.swapaxes(xs, 0, 1)  # (B, T, I) for the whole layer
    zeros = jnp.zeros((batch, hidden))
    dys = jnp.ones((steps, batch, hidden))
    rows = steps * batch
    gate = 2.0 * rows * (inputs + hidden) * 4 * hidden  # the forward's products
    recur = 2.0 * rows * 4 * hidden * hidden  # dG W_h^T in the adjoint loop
    grads = 2.0 * rows * 4 * hidden * (2 * inputs + hidden)  # dW_x, dW_h, dX
    ready = jax.block_until_ready
    timed = {}
    names = [n for n in ("cpu_kernel", "xla") if not peers.why_not(n, batch, steps, inputs, hidden)]
    for name in names:
        kernel = name == "cpu_kernel"
        loop = _loop_params(kernel)
        fwd_kw = dict(loop, batch_major=False, fused_gates=kernel, has_mask=False)

        def forward(p, x, save, fwd_kw=fwd_kw):
            return forward_p.bind(x, p.w_x, p.w_h, p.b, zeros, zeros, save=save, **fwd_kw)

        def adjoint(p, saved, d, loop=loop):
            *gates, cs, _ = saved[2:]
            return adjoint_p.bind(d, zeros, zeros, p.w_h, zeros, cs, *gates, has_mask=False, **loop)

        fwd = jax.jit(lambda p, x, f=forward: f(p, x, False)[0])
        fwd_save = jax.jit(lambda p, x, f=forward: f(p, x, True))
        save_adjoint = jax.jit(lambda p, x, d, f=forward, a=adjoint: a(p, f(p, x, True), d)[0])

        def loss(p, x, name=name):
            return jlstm.layer(p, x, implementation=name)[0].sum()

        grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
        # Default arguments bind this iteration's functions.
        timed[f"fwd ({name})"] = (lambda f=fwd: ready(f(params, xs)), gate)
        timed[f"fwd, saving ({name})"] = (lambda f=fwd_save: ready(f(params, xs)), gate)
        timed[f"fwd, saving + adjoint loop ({name})"] = (
            lambda f=save_adjoint: ready(f(params, xs, dys)),
            gate + recur,
        )
        timed[f"fwd+bwd ({name})"] = (lambda f=grad: ready(f(params, xs_bm)), gate + recur + grads)

    saved = jax.jit(lambda p, x: forward_p.bind(
        x, p.w_x, p.w_h, p.b, zeros, zeros, save=True, batch_major=False, fused_gates=False,
        has_mask=False, **_loop_params(False)))(params, xs)  # fmt: skip
    dgates = jax.jit(
        lambda p, s, d: adjoint_p.bind(
            d, zeros, zeros, p.w_h, zeros, s[-2], *s[2:-2], has_mask=False, **_loop_params(False)
        )[0]
    )(params, saved, dys)  # (T, B, 4H)
    h_prev = loops.shift_in(zeros, saved[-1], False)

    @jax.jit
    def weight_grads(x, h, g, p):
        g2 = g.reshape(rows, 4 * hidden)
        return (
            x.reshape(rows, inputs).T @ g2,
            h.reshape(rows, hidden).T @ g2,
            g2.sum(0),
            (g2 @ p.w_x.T).reshape(x.shape),
        )

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
