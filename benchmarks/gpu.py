"""jlstm on a GPU: the cuDNN path checked against the reference there, then timed.

Run on a machine with a CUDA GPU, from the repository root::

    python benchmarks/gpu.py --out benchmarks/RESULTS-gpu.md --budget 240

1. **Parity on the GPU** (float32, TF32 off): a 2-layer bidirectional LSTM stack
   with ragged lengths (one of them 0), ``implementation="cudnn"``, ``"xla"`` and
   ``"auto"`` against ``"reference"`` (``lax.scan`` over the cell, differentiated
   by JAX); outputs, final states and the gradients of a loss with respect to
   every weight and the input; and one layer of ``"parallel"`` against it.
2. **Speed**: S1-S5 of ``bench.py`` and a long shape L (B = 16, T = 4096,
   I = H = 256), forward and forward+backward, for jlstm's implementations,
   flax ``nn.RNN(OptimizedLSTMCell)``, equinox and ``torch.nn.LSTM`` (cuDNN).
   Every implementation computes float32 products in float32 (JAX: precision
   HIGHEST; torch: TF32 off), since cuDNN's path is float32; one row shows jlstm
   "xla" with JAX's default GPU precision (TF32) for what that would give.

Implementations are interleaved round-robin (``timing.measure``); each number is
a median over 7 rounds after compilation. Shapes are started while ``--budget``
seconds remain. The script needs a GPU, and says so without one.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import peers  # noqa: E402
from timing import measure  # noqa: E402

import jlstm  # noqa: E402

GPU_SHAPES = {**peers.SHAPES, "L": (16, 4096, 256, 256)}
HIGHEST = "highest"


# --------------------------------------------------------------------------- parity


def relative_error(a, b) -> float:
    """max |a - b| / max |b| over every leaf of two pytrees."""
    worst = 0.0
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        worst = max(worst, float(np.max(np.abs(x - y)) / max(np.max(np.abs(y)), 1e-30)))
    return worst


def parity_lines(log) -> list[str]:
    key = jax.random.key(0)
    batch, steps, inputs, hidden = 6, 50, 16, 32
    params = jlstm.init_stack_params(key, inputs, hidden, num_layers=2, bidirectional=True)
    xs = jax.random.normal(jax.random.fold_in(key, 1), (batch, steps, inputs))
    lengths = jnp.array([50, 1, 0, 33, 49, 17], jnp.int32)

    def stack_run(implementation):
        def loss(p, x):
            ys, state = jlstm.stack(p, x, lengths=lengths, implementation=implementation)
            return (ys**2).sum() + (state.h**2).sum() + state.c.sum(), (ys, state)

        with jax.default_matmul_precision(HIGHEST):
            fn = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))
            (_, (ys, state)), grads = fn(params, xs)
        return ys, state, grads

    lines = [
        "| implementation | outputs | h_n | c_n | weight grads | input grads |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    ref_ys, ref_state, ref_grads = stack_run("reference")
    for name in ("cudnn", "xla", "auto"):
        try:
            ys, state, grads = stack_run(name)
        except Exception as e:  # noqa: BLE001 - reported, not hidden
            lines.append(f"| {name} | failed: {type(e).__name__}: {str(e)[:120]} | | | | |")
            log(lines[-1])
            continue
        errors = (
            relative_error(ys, ref_ys),
            relative_error(state.h, ref_state.h),
            relative_error(state.c, ref_state.c),
            relative_error(grads[0], ref_grads[0]),
            relative_error(grads[1], ref_grads[1]),
        )
        lines.append(f"| {name} | " + " | ".join(f"{e:.1e}" for e in errors) + " |")
        log(lines[-1])

    # One layer, parallel in time against the reference (T = 1000).
    p1 = jlstm.init_params(key, inputs, hidden)
    x1 = jax.random.normal(jax.random.fold_in(key, 2), (4, 1000, inputs))
    for name in ("parallel", "reference"):

        def loss(p, x, name=name):
            ys, state = jlstm.layer(p, x, implementation=name)
            return (ys**2).sum() + state.c.sum(), ys

        with jax.default_matmul_precision(HIGHEST):
            out = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(p1, x1)
        if name == "parallel":
            par = out
    (_, ys_p), g_p = par
    (_, ys_r), g_r = out
    errors = (relative_error(ys_p, ys_r), relative_error(g_p[0], g_r[0]))
    errors += (relative_error(g_p[1], g_r[1]),)
    lines.append(
        f"| parallel (one layer, T = 1000) | {errors[0]:.1e} | | | {errors[1]:.1e} | "
        f"{errors[2]:.1e} |"
    )
    log(lines[-1])
    return lines


# --------------------------------------------------------------------------- speed


def jlstm_gpu(batch, steps, inputs, hidden, *, implementation, precision=HIGHEST):
    """One layer as a one-layer stack (cuDNN's call runs whole stacks)."""
    params = ((jlstm.init_params(jax.random.key(0), inputs, hidden),),)

    def apply(p, x):
        with jax.default_matmul_precision(precision):
            return jlstm.stack(p, x, implementation=implementation)[0]

    return peers._jax_built(apply, params, peers._inputs(batch, steps, inputs))


def with_precision(make):
    """A JAX peer's builder, traced with float32 products (precision HIGHEST)."""

    def build(*shape):
        with jax.default_matmul_precision(HIGHEST):
            return make(*shape)

    return build


def torch_cuda_lstm(batch, steps, inputs, hidden):
    try:
        import torch
    except ImportError as e:
        raise peers.Missing("torch") from e
    if not torch.cuda.is_available():
        raise peers.Unavailable("torch sees no CUDA device")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    model = torch.nn.LSTM(inputs, hidden, batch_first=True).cuda()
    xs = torch.randn(batch, steps, inputs, device="cuda")
    xs_grad = xs.clone().requires_grad_(True)

    def fwd():
        with torch.no_grad():
            out = model(xs)[0]
        torch.cuda.synchronize()
        return out

    def fwd_bwd():
        model.zero_grad(set_to_none=True)
        xs_grad.grad = None
        model(xs_grad)[0].sum().backward()
        torch.cuda.synchronize()

    return peers.Built(fwd, fwd_bwd, peers._first_call(fwd), peers._first_call(fwd_bwd))


def _jl(implementation, precision=HIGHEST):
    return lambda *shape: jlstm_gpu(*shape, implementation=implementation, precision=precision)


IMPLS = {
    "jlstm 'cudnn'": _jl("cudnn"),
    "jlstm 'auto'": _jl("auto"),
    "jlstm 'xla'": _jl("xla"),
    "jlstm 'reference' (lax.scan)": _jl("reference"),
    "jlstm 'xla', TF32 (JAX's default precision)": _jl("xla", "default"),
    "flax.linen RNN(OptimizedLSTMCell)": with_precision(peers.flax_linen),
    "equinox LSTMCell, vmap over scan": with_precision(peers.equinox_lstm),
    "torch.nn.LSTM (cuDNN)": torch_cuda_lstm,
}
BASE = "jlstm 'cudnn'"


def speed_lines(shapes, budget_s, rounds, log) -> tuple[list[str], list[str]]:
    started = time.monotonic()
    notes: list[str] = []
    lines = [
        "| shape | B, T, I, H | implementation | fwd ms | fwd+bwd ms | fwd ÷ cudnn "
        "| fwd+bwd ÷ cudnn |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for name, shape in shapes.items():
        if time.monotonic() - started > budget_s:
            notes.append(f"{name}: not run (time budget of {budget_s:.0f} s spent).")
            continue
        built = {}
        for impl, make in IMPLS.items():
            try:
                built[impl] = make(*shape)
            except Exception as e:  # noqa: BLE001 - an implementation that cannot run is noted
                notes.append(f"{name}, {impl}: skipped, {type(e).__name__}: {str(e)[:160]}")
                log(notes[-1])
        fwd = measure({k: b.fwd for k, b in built.items()}, rounds=rounds, min_round_s=0.05)
        fb = measure({k: b.fwd_bwd for k, b in built.items()}, rounds=rounds, min_round_s=0.05)
        base_f = fwd[BASE].median_ms if BASE in fwd else None
        base_b = fb[BASE].median_ms if BASE in fb else None
        for impl in built:
            f, b = fwd[impl].median_ms, fb[impl].median_ms
            rf = f"{f / base_f:.2f}" if base_f else "—"
            rb = f"{b / base_b:.2f}" if base_b else "—"
            lines.append(
                f"| {name} | {', '.join(map(str, shape))} | {impl} | {f:,.2f} | {b:,.2f} "
                f"| {rf} | {rb} |"
            )
            log(lines[-1])
    return lines, notes


def environment() -> str:
    device = jax.devices()[0]
    parts = [f"GPU: {getattr(device, 'device_kind', device)}", f"JAX {jax.__version__}"]
    for package in ("flax", "equinox", "torch"):
        try:
            parts.append(f"{package} {__import__(package).__version__}")
        except ImportError:
            parts.append(f"{package} not installed")
    try:
        import torch

        parts.append(f"cuDNN (torch's) {torch.backends.cudnn.version()}")
    except ImportError:
        pass
    return "; ".join(parts)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(HERE, "RESULTS-gpu.md"))
    parser.add_argument("--budget", type=float, default=600.0, help="seconds for the speed table")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--shapes", default=",".join(GPU_SHAPES), help="comma-separated")
    parser.add_argument("--cpu", action="store_true", help="run anyway (a check of the script)")
    args = parser.parse_args(argv)
    if jax.default_backend() != "gpu" and not args.cpu:
        sys.exit(f"benchmarks/gpu.py needs a GPU; JAX's backend here is {jax.default_backend()!r}")
    log = lambda line: print(line, flush=True)
    env = environment()
    log(env)
    started = time.monotonic()
    parity = parity_lines(log)
    shapes = {name: GPU_SHAPES[name] for name in args.shapes.split(",")}
    speed, notes = ([], []) if args.no_speed else speed_lines(shapes, args.budget, args.rounds, log)
    minutes = (time.monotonic() - started) / 60
    text = [
        "# jlstm on a GPU",
        "",
        f"{env}. Run `python benchmarks/gpu.py` on "
        f"{datetime.date.today().isoformat()}, {minutes:.1f} min.",
        "",
        "## Parity on the GPU (max |a − b| / max |b| against 'reference', float32, TF32 off)",
        "",
        "2-layer bidirectional stack, B = 6, T = 50, I = 16, H = 32, lengths "
        "(50, 1, 0, 33, 49, 17); gradients of a loss over outputs and final states.",
        "",
        *parity,
        "",
        "## Speed (median ms; ratios: below 1.00 is faster than jlstm 'cudnn')",
        "",
        *speed,
        "",
        *(f"- {n}" for n in notes),
    ]
    with open(args.out, "w") as f:
        f.write("\n".join(text) + "\n")
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
