"""The levers behind jlstm's LSTM implementations, measured one at a time (float32).

Run: ``python benchmarks/levers.py [--shapes S1,S3]`` (``bench.py`` adds the
table to RESULTS.md unless ``--no-levers``).

Each row adds one lever to the one above, on the same shapes and protocol as
``bench.py``:

1. ``reference``: ``implementation="reference"``, ``lax.scan`` over the cell,
   differentiated by JAX (per-step weight-gradient products in the backward).
2. ``+ custom VJP``: a reverse scan for dh/dc only, then dW_x, dW_h, db, dX as
   large products over all T*B rows (cuDNN's scheme); the forward saves the
   activated gates (one (T, B, 4H) array) and c, recomputing nothing; sigmoid
   and tanh as XLA gives them; two products per step.
3. ``+ one tanh``: sigmoid(a) = (1 + tanh(a/2)) / 2 with the sigmoid columns of
   the weights pre-halved, so one tanh covers all four gates.
4. ``xla``: ``implementation="xla"``: a ``custom_jvp`` over primitives for the
   forward, tangent and adjoint loops, lowered to ``lax.scan``; reverse mode
   transposes the tangent loop into the adjoint loop, and the weight gradients
   are the transposes of the all-steps products. On top of 3: [x, h] @ [W_x; W_h]
   as one product per step, and the saved gates as four (T, B, H) arrays
   instead of one (T, B, 4H) array (reading gates out of one wide per-step
   slice fused badly on XLA:CPU).
5. ``cpu_kernel``: ``implementation="cpu_kernel"``: 4 with the forward and the
   adjoint loop in jlstm's C++ kernel (``jlstm/csrc/lstm_cpu.cc``, one custom
   call each; the step's product split over two threads, the gates fused with
   it). Left out where the kernel cannot run.
6. ``remat``: the default (``implementation="auto"``) with ``remat=True``:
   checkpoints every ~sqrt(T) steps (memory, not speed; see RESULTS.md).

Rows 2 and 3 are compact re-implementations kept here only for this
measurement; they are checked against the reference before timing.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import peers  # noqa: E402
from jax import lax  # noqa: E402
from timing import measure  # noqa: E402

SHAPES = {
    "S1": (32, 128, 64, 128),
    "S2": (64, 256, 128, 256),
    "S3": (16, 1024, 32, 64),
    "S4": (256, 64, 256, 512),
    "S5": (1, 512, 32, 128),
}


def _split4(a):
    hidden = a.shape[-1] // 4
    return tuple(a[..., k * hidden : (k + 1) * hidden] for k in range(4))


@functools.cache
def cudnn_style(one_tanh: bool):
    """Rows 2-3: custom VJP, time-major (T, B, I) input, zero initial state, no mask."""

    def forward(params, xs, save):
        w_x, w_h, b = params
        batch, hidden = xs.shape[1], w_h.shape[0]
        if one_tanh:
            scale = jnp.concatenate(
                [jnp.full((2 * hidden,), 0.5), jnp.ones((hidden,)), jnp.full((hidden,), 0.5)]
            )
            w_x, w_h, b = w_x * scale[None], w_h * scale[None], b * scale

        def step(carry, x):
            h, c = carry
            a = x @ w_x + h @ w_h + b[None]
            if one_tanh:
                t = jnp.tanh(a)
                ti, tf, tg, to = _split4(t)
                i, f, g, o = 0.5 * ti + 0.5, 0.5 * tf + 0.5, tg, 0.5 * to + 0.5
                act = t
            else:
                ai, af, ag, ao = _split4(a)
                i, f, g, o = (jax.nn.sigmoid(ai), jax.nn.sigmoid(af), jnp.tanh(ag),
                              jax.nn.sigmoid(ao))  # fmt: skip
                act = jnp.concatenate([i, f, g, o], axis=-1)
            c = f * c + i * g
            h = o * jnp.tanh(c)
            return (h, c), ((h, act, c) if save else h)

        zeros = jnp.zeros((batch, hidden), xs.dtype)
        return lax.scan(step, (zeros, zeros), xs)[1]

    @jax.custom_vjp
    def run(params, xs):
        return forward(params, xs, save=False)

    def fwd(params, xs):
        hs, acts, cs = forward(params, xs, save=True)
        return hs, (params, xs, hs, acts, cs)

    def bwd(res, dys):
        params, xs, hs, acts, cs = res
        w_x, w_h, _ = params
        steps, batch, inputs = xs.shape
        hidden = w_h.shape[0]
        zeros = jnp.zeros((1, batch, hidden), xs.dtype)
        c_prev = jnp.concatenate([zeros, cs[:-1]])
        h_prev = jnp.concatenate([zeros, hs[:-1]])
        w_hT = w_h.T

        def step(carry, inputs):
            dh, dc = carry
            dy, act, c, cp = inputs
            if one_tanh:
                ti, tf, tg, to = _split4(act)
                i, f, g, o = 0.5 * ti + 0.5, 0.5 * tf + 0.5, tg, 0.5 * to + 0.5
            else:
                i, f, g, o = _split4(act)
            tc = jnp.tanh(c)
            dh = dh + dy
            dc = dc + dh * o * (1 - tc * tc)
            dgates = jnp.concatenate(
                [dc * g * i * (1 - i), dc * cp * f * (1 - f), dc * i * (1 - g * g),
                 dh * tc * o * (1 - o)], axis=-1,
            )  # fmt: skip
            return (dgates @ w_hT, dc * f), dgates

        zero = jnp.zeros((batch, hidden), xs.dtype)
        _, dg = lax.scan(step, (zero, zero), (dys, acts, cs, c_prev), reverse=True)
        dg = dg.reshape(steps * batch, 4 * hidden)
        x2, h2 = xs.reshape(steps * batch, inputs), h_prev.reshape(steps * batch, hidden)
        grads = type(params)(x2.T @ dg, h2.T @ dg, dg.sum(0))
        return grads, (dg @ w_x.T).reshape(xs.shape)

    run.defvjp(fwd, bwd)
    return run


def lever_built(kind, batch, steps, inputs, hidden) -> peers.Built:
    if kind in ("reference", "xla", "cpu_kernel"):
        return peers.jlstm_layer(batch, steps, inputs, hidden, implementation=kind)
    if kind == "remat":
        return peers.jlstm_layer(batch, steps, inputs, hidden, remat=True)
    from jlstm.cell import init_params

    params = init_params(jax.random.key(0), inputs, hidden)
    run = cudnn_style(kind == "one_tanh")

    def apply(p, x):
        return jnp.swapaxes(run(p, jnp.swapaxes(x, 0, 1)), 0, 1)

    return peers._jax_built(apply, params, peers._inputs(batch, steps, inputs))


ROWS = {
    "reference": "1. implementation='reference' (autodiff of lax.scan)",
    "sigmoid": "2. + custom VJP (cuDNN-style backward, saved gates)",
    "one_tanh": "3. + one tanh for all gates",
    "xla": "4. implementation='xla': + custom JVP loops, one product on [x, h], "
    "gates saved per gate",
    "cpu_kernel": "5. implementation='cpu_kernel': + the C++ kernel for both loops",
    "remat": "6. implementation='auto', remat=True",
}


def check(batch=3, steps=5, inputs=4, hidden=6):
    """Rows 2-3 must equal the reference before they are timed."""
    from jlstm.cell import init_params
    from jlstm.layer import layer

    params = init_params(jax.random.key(0), inputs, hidden)
    xs = peers._inputs(batch, steps, inputs)

    def loss(p, x):
        return (layer(p, x, implementation="reference")[0] ** 2).sum()

    ref = jax.grad(loss, argnums=(0, 1))(params, xs)
    for one_tanh in (False, True):
        run = cudnn_style(one_tanh)
        f = lambda p, x, run=run: (jnp.swapaxes(run(p, jnp.swapaxes(x, 0, 1)), 0, 1) ** 2).sum()
        got = jax.grad(f, argnums=(0, 1))(params, xs)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(ref), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


RUNS_ALWAYS = ("reference", "sigmoid", "one_tanh", "remat")


def rows(shape) -> dict[str, str]:
    """ROWS without those that cannot run here (the kernel where it is unavailable)."""
    return {k: v for k, v in ROWS.items() if k in RUNS_ALWAYS or not peers.why_not(k, *shape)}


def run(shapes=tuple(SHAPES), rounds=7) -> dict:
    check()
    results = {}
    for name in shapes:
        built = {k: lever_built(k, *SHAPES[name]) for k in rows(SHAPES[name])}
        results[name] = dict(
            fwd=measure({k: b.fwd for k, b in built.items()}, rounds=rounds),
            fb=measure({k: b.fwd_bwd for k, b in built.items()}, rounds=rounds),
        )
        print(name, {k: round(v.median_ms, 2) for k, v in results[name]["fb"].items()}, flush=True)
    return results


def to_markdown(results: dict) -> str:
    names = list(results)
    lines = [
        "Each row adds one lever to the row above (see `benchmarks/levers.py`). fwd+bwd "
        "milliseconds, and in brackets the ratio to row 1; forward-only times follow.",
        "",
        "| lever | " + " | ".join(f"{n} fwd+bwd" for n in names) + " | "
        + " | ".join(f"{n} fwd" for n in names) + " |",
        "|---|" + "---:|" * (2 * len(names)),
    ]  # fmt: skip
    for key, label in ROWS.items():
        cells = []
        for n in names:
            if key not in results[n]["fb"]:
                cells.append("—")
                continue
            base = results[n]["fb"]["reference"].median_ms
            ms = results[n]["fb"][key].median_ms
            cells.append(f"{ms:.2f} ({ms / base:.2f})")
        for n in names:
            stats = results[n]["fwd"].get(key)
            cells.append(f"{stats.median_ms:.2f}" if stats else "—")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(to_markdown(run(args.shapes.split(","), args.rounds)))


if __name__ == "__main__":
    main()
