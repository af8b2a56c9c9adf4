"""Parallel-in-time evaluation (jlstm.parallel) against the sequential layer on this machine.

Run: ``python benchmarks/parallel.py --quick`` (about 8 minutes on a 2-core
CPU; writes ``benchmarks/PARALLEL.md``). ``--quick`` skips a case whose one
timed call is expected to take over 5 s and stops the main table after 5
minutes; without it the limit is 30 s a call and there is no overall budget.

For T in {1k, 10k, 100k}, H in {8, 32, 128}, B in {1, 16} and each Jacobian
form it measures, in one process, after compilation:

* wall time of ``parallel_scan``'s forward, and of forward+backward (``jax.grad``
  of a loss over all outputs), each divided by the same for the default
  ``jlstm.layer`` (time-major, ``implementation="auto"``);
* the Newton iterations to converge (default tolerance, init_params weights,
  standard normal inputs, input size = H);
* XLA's account of each compiled program's memory (``memory_analysis()``:
  temp + output bytes, the buffers beyond the arguments).

A case is skipped, and the table says why, when its memory (a Jacobian-size
count, then XLA's figure) exceeds the limit, when its forward time, extrapolated
from the same (H, B, form) at the previous T (x 1.5 T ratio) or, with none,
from a rough cost model, would exceed the per-call limit, and once the budget
is spent. Then three small studies: iterations against the recurrent weights'
scale with and without damping, the tangent solve (sequential scan vs dense
associative scan), and warm starts across one optimiser step.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jlstm  # noqa: E402
from jlstm.cell import init_params  # noqa: E402
from jlstm.parallel import parallel_scan  # noqa: E402

STEPS = (1_000, 10_000, 100_000)
HIDDEN = (8, 32, 128)
BATCH = (1, 16)
JACOBIANS = ("quasi", "full")
MEMORY_LIMIT = 3e9  # bytes of XLA temp + output for one program (the machine is shared)
FLOPS = 2e10  # assumed float32 rate of the sequential matmuls, for first-guess estimates


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return platform.processor() or "unknown CPU"
    model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "")
    flags = next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith("flags")), [])
    avx = "AVX-512" if "avx512f" in flags else ("AVX2" if "avx2" in flags else "no AVX2")
    return f"{model or platform.processor()}, {os.cpu_count()} cores visible, {avx}"


def problem(steps, batch, hidden, scale=1.0, seed=0):
    key = jax.random.key(seed)
    params = init_params(key, hidden, hidden)
    params = params._replace(w_h=scale * params.w_h)
    xs = jax.random.normal(jax.random.fold_in(key, 1), (steps, batch, hidden))
    return params, xs


def sequential_fns():
    def fwd(params, xs):
        return jlstm.layer(params, xs, time_major=True)[0]

    def loss(params, xs):
        return (fwd(params, xs) ** 2).mean()

    return jax.jit(fwd), jax.jit(jax.grad(loss))


def parallel_fns(jacobian, tangent="sequential", **options):
    def fwd(params, xs):
        zeros = jnp.zeros((xs.shape[1], params.w_h.shape[0]), xs.dtype)
        hs, _, info = parallel_scan(
            params, xs, zeros, zeros, jacobian=jacobian, tangent=tangent, **options
        )
        return hs, info.iterations, info.converged, info.fell_back

    def loss(params, xs):
        return (fwd(params, xs)[0] ** 2).mean()

    return jax.jit(fwd), jax.jit(jax.grad(loss))


def compiled_memory(fn, *args) -> tuple[object, float]:
    compiled = fn.lower(*args).compile()
    stats = compiled.memory_analysis()
    size = float("nan") if stats is None else stats.temp_size_in_bytes + stats.output_size_in_bytes
    return compiled, size


def wall_time(fn, *args, min_runs=3, max_seconds=3.0):
    """Fastest of up to ``min_runs`` calls after a warm-up call (fewer when calls are slow;
    the warm-up alone when it took over half of ``max_seconds``).

    The minimum, not the median: on shared cores the other processes only add time.
    """
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    times = [time.perf_counter() - start]
    if times[0] > max_seconds / 2:
        return times[0], out
    times = []
    while len(times) < min_runs and sum(times) < max_seconds:
        start = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return min(times), out


class Budget:
    def __init__(self, seconds):
        self.deadline = None if seconds is None else time.monotonic() + seconds

    def spent(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline


def machine() -> str:
    """The device the benchmark ran on: the GPU's name, or the CPU's."""
    if jax.default_backend() == "gpu":
        return f"{jax.devices()[0].device_kind} (GPU)"
    return cpu_name()


def first_guess_seconds(steps, batch, hidden, jacobian):
    """Forward seconds for a case with no smaller T to extrapolate from (fitted by eye to
    a loaded 2-core Xeon: dense batched 2H x 2H products at ~4 GFLOP/s; the quasi form is
    memory-bound, ~40 + 12 log2 T floats moved per state entry per iteration at ~8 GB/s)."""
    if jax.default_backend() == "gpu":  # guessed, not fitted: a GPU is no slower
        return first_guess_cpu(steps, batch, hidden, jacobian) / 50
    return first_guess_cpu(steps, batch, hidden, jacobian)


def first_guess_cpu(steps, batch, hidden, jacobian):
    if jacobian == "full":  # ~6 iterations, each 2T (2H x 2H) @ (2H x 2H+1) products
        return 6 * 2 * steps * batch * 2 * (2 * hidden) ** 3 / 4e9
    # ~25 iterations
    return 25 * steps * batch * hidden * 4 * (40 + 12 * math.log2(steps)) / 8e9


def mb(nbytes) -> str:
    if not math.isfinite(nbytes):
        return "n/a"
    return f"{nbytes / 1e6:,.1f}" if nbytes < 1e7 else f"{nbytes / 1e6:,.0f}"


def main_table(args, budget, log):
    """Breadth first (every H and B at T = 1k, then 10k, then 100k), so a spent budget cuts
    only the largest cases; each case's time is extrapolated from the same (H, B, form) at
    the previous T."""
    seq_fwd, seq_grad = sequential_fns()
    rows = []
    previous = {}  # (H, B, form) -> (T, seconds of the forward) for extrapolation
    for steps in args.steps:
        for hidden in args.hidden:
            for batch in args.batch:
                params, xs = problem(steps, batch, hidden)
                seq = measure_sequential(args, budget, previous, steps, hidden, batch, params, xs)
                for jacobian in JACOBIANS:
                    row = dict(T=steps, H=hidden, B=batch, jacobian=jacobian, **seq)
                    row.update(
                        measure_parallel(
                            args, budget, previous, steps, hidden, batch, jacobian, params, xs
                        )
                    )
                    rows.append(row)
                    log(format_row(row))
    return rows


def estimate(previous, key, steps, guess) -> float:
    """Seconds: the same case at a smaller T scaled by 1.5 T/T0 (caches make it super-linear)."""
    if key in previous:
        t0, s0 = previous[key]
        return 1.5 * s0 * steps / t0
    return guess


def measure_sequential(args, budget, previous, steps, hidden, batch, params, xs):
    if budget.spent():
        return dict(seq_note="not run: time budget spent")
    key = ("sequential", hidden, batch)
    guess = 3 * steps * (batch * 8 * hidden * hidden / FLOPS + 1e-6)  # fwd+bwd
    seconds = estimate(previous, key, steps, guess)
    if seconds > args.limit:
        return dict(seq_note=f"sequential skipped: est. {seconds:.0f} s")
    fwd, grad = sequential_fns()
    c_fwd, _ = compiled_memory(fwd, params, xs)
    c_grad, m_grad = compiled_memory(grad, params, xs)
    t_fwd, _ = wall_time(c_fwd, params, xs, max_seconds=args.limit)
    t_grad, _ = wall_time(c_grad, params, xs, max_seconds=args.limit)
    previous[key] = (steps, t_grad)
    return dict(seq_fwd=t_fwd, seq_grad=t_grad, seq_mem=m_grad)


def measure_parallel(args, budget, previous, steps, hidden, batch, jacobian, params, xs):
    if budget.spent():
        return dict(note="not run: time budget spent")
    key = (jacobian, hidden, batch)
    seconds = estimate(previous, key, steps, first_guess_seconds(steps, batch, hidden, jacobian))
    if seconds > args.limit:
        return dict(note=f"skipped: est. {seconds:,.0f} s > {args.limit:.0f} s")
    if jacobian == "full" and steps * batch * (2 * hidden) ** 2 * 4 * 4 > MEMORY_LIMIT:
        return dict(note=f"skipped: memory > {MEMORY_LIMIT / 1e9:.0f} GB (4 (2H)^2 floats a step)")
    fwd, grad = parallel_fns(jacobian)
    c_fwd, m_fwd = compiled_memory(fwd, params, xs)
    if m_fwd > MEMORY_LIMIT:
        return dict(note=f"skipped: memory {m_fwd / 1e9:.0f} GB", par_mem=m_fwd)
    c_grad, m_grad = compiled_memory(grad, params, xs)
    t_fwd, (_, iterations, converged, fell_back) = wall_time(
        c_fwd, params, xs, max_seconds=args.limit
    )
    previous[key] = (steps, t_fwd)
    out = dict(par_fwd=t_fwd, iterations=int(iterations), par_mem=m_fwd, par_grad_mem=m_grad)
    out["note"] = "fell back" if bool(fell_back) else ("" if bool(converged) else "NOT CONVERGED")
    if m_grad > MEMORY_LIMIT or 1.5 * t_fwd > args.limit or budget.spent():
        out["note"] += " fwd+bwd skipped (memory or time)"
        return out
    out["par_grad"], _ = wall_time(c_grad, params, xs, max_seconds=args.limit)
    return out


def ratio(row, a, b) -> str:
    if a in row and b in row:
        value = row[a] / row[b]
        return (
            f"{value:,.3f}" if value < 0.1 else f"{value:,.2f}" if value < 10 else f"{value:,.1f}"
        )
    return "—"


def ms(row, k) -> str:
    return f"{row[k] * 1e3:,.1f}" if k in row else "—"


HEADER = (
    "| T | H | B | Jacobian | iters | seq fwd ms | par fwd ms | fwd ÷ seq | par ms / iter ÷ seq "
    "| seq fwd+bwd ms | par fwd+bwd ms | fwd+bwd ÷ seq | par fwd MB | par fwd+bwd MB "
    "| seq fwd+bwd MB | note |\n"
    "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
)


def format_row(r) -> str:
    per_iter = "—"
    if "par_fwd" in r and "seq_fwd" in r and r.get("iterations"):
        per_iter = f"{r['par_fwd'] / r['iterations'] / r['seq_fwd']:,.2f}"
    notes = (r.get("seq_note", ""), r.get("note", ""))
    note = " ".join(dict.fromkeys(x for x in notes if x))  # once each, in order
    return (
        f"| {r['T']:,} | {r['H']} | {r['B']} | {r['jacobian']} | {r.get('iterations', '—')} "
        f"| {ms(r, 'seq_fwd')} | {ms(r, 'par_fwd')} | {ratio(r, 'par_fwd', 'seq_fwd')} "
        f"| {per_iter} | {ms(r, 'seq_grad')} | {ms(r, 'par_grad')} "
        f"| {ratio(r, 'par_grad', 'seq_grad')} | {mb(r.get('par_mem', math.nan))} "
        f"| {mb(r.get('par_grad_mem', math.nan))} | {mb(r.get('seq_mem', math.nan))} | {note} |"
    )


def tangent_study(log):
    """fwd+bwd with the tangent solved by the sequential scan or the dense associative scan."""
    lines = [
        "| T | H | B | tangent | fwd+bwd ms | fwd+bwd MB |",
        "|---:|---:|---:|---|---:|---:|",
    ]
    for steps, hidden, batch in ((1_000, 8, 16), (1_000, 32, 1), (10_000, 8, 1)):
        params, xs = problem(steps, batch, hidden)
        for tangent in ("sequential", "dense"):
            _, grad = parallel_fns("quasi", tangent)
            compiled, memory = compiled_memory(grad, params, xs)
            seconds, _ = wall_time(compiled, params, xs, min_runs=2)
            cells = (f"{steps:,}", hidden, batch, tangent, f"{seconds * 1e3:,.1f}", mb(memory))
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
            log(lines[-1])
    return lines


def sign_step(params, grads, lr):
    """One sign-SGD step of size ``lr`` on every weight: the size of an Adam step."""
    return jax.tree.map(lambda p, g: p - lr * jnp.sign(g), params, grads)


def seq_loss(params, xs):
    return (jlstm.layer(params, xs, time_major=True)[0] ** 2).mean()


_solve = jax.jit(parallel_scan, static_argnames=("jacobian",))


def warm_start_study(log):
    """Iterations at params after one optimiser step, cold (held h0) vs warm (old trajectory)."""
    lines = [
        "| T | H | B | Jacobian | step size | cold iters | warm iters | cold ms | warm ms |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for steps, hidden, batch in ((1_000, 8, 16),):
        params, xs = problem(steps, batch, hidden)
        zeros = jnp.zeros((batch, hidden))
        grads = jax.jit(jax.grad(seq_loss))(params, xs)
        for lr in (1e-3, 1e-2):
            moved = sign_step(params, grads, lr)
            for jacobian in JACOBIANS:
                _, _, old = _solve(params, xs, zeros, zeros, jacobian=jacobian)
                args = (moved, xs, zeros, zeros)
                cold_fn = partial(_solve, jacobian=jacobian)
                warm_fn = partial(_solve, jacobian=jacobian, init=old.states)
                jax.block_until_ready((cold_fn(*args), warm_fn(*args)))  # compile both first
                cold_t, (_, _, cold) = wall_time(cold_fn, *args, min_runs=2)
                warm_t, (_, _, warm) = wall_time(warm_fn, *args, min_runs=2)
                lines.append(
                    f"| {steps:,} | {hidden} | {batch} | {jacobian} | {lr:g} | "
                    f"{int(cold.iterations)} | {int(warm.iterations)} | "
                    f"{cold_t * 1e3:,.1f} | {warm_t * 1e3:,.1f} |"
                )
                log(lines[-1])
    return lines


def scale_study(log):
    """Iterations and outcome against the recurrent weights' scale, undamped and damped."""
    steps, hidden, batch = 1_000, 8, 1
    settings = [("quasi", 0.0), ("full", 0.0), ("full", 0.5), ("full", 2.0)]
    head = " | ".join(f"{j}, λ={d:g}" for j, d in settings)
    lines = [
        f"| w_h scale | {head} |",
        "|---:|" + "---|" * len(settings),
    ]
    fns = {s: jax.jit(parallel_fns(s[0], damping=s[1], max_iters=100)[0]) for s in settings}
    for scale in (1.0, 2.0, 3.0, 5.0):
        params, xs = problem(steps, batch, hidden, scale=scale)
        cells = []
        for s in settings:
            _, iterations, converged, fell_back = fns[s](params, xs)
            outcome = "converged" if bool(converged) else "fell back"
            cells.append(f"{int(iterations)} ({outcome})")
        lines.append(f"| {scale:g} | " + " | ".join(cells) + " |")
        log(lines[-1])
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="5 s per timed call, about 8 min in all"
    )
    parser.add_argument("--out", default=str(Path(__file__).with_name("PARALLEL.md")))
    ints = lambda text: tuple(int(v) for v in text.split(","))
    parser.add_argument("--steps", type=ints, default=STEPS, help="e.g. 1000,10000")
    parser.add_argument("--hidden", type=ints, default=HIDDEN)
    parser.add_argument("--batch", type=ints, default=BATCH)
    parser.add_argument("--no-studies", action="store_true", help="the main table only")
    parser.add_argument("--limit", type=float, default=None, help="seconds a timed call may take")
    parser.add_argument("--budget", type=float, default=None, help="seconds for the main table")
    args = parser.parse_args(argv)
    args.limit = args.limit or (5.0 if args.quick else 30.0)
    budget = Budget(args.budget or (290.0 if args.quick else None))
    started, load0 = time.monotonic(), os.getloadavg()[0]

    def log(line):
        print(line, flush=True)

    log(HEADER)
    rows = main_table(args, budget, log)
    studies = {}
    overall = Budget(None)  # the studies take one to two minutes
    overall.deadline = started + 400.0 if args.quick else None
    for name, study in (
        ("scale", scale_study),
        ("tangent", tangent_study),
        ("warm", warm_start_study),
    ):
        if args.no_studies or overall.spent():
            studies[name] = [
                "(not run: " + ("--no-studies" if args.no_studies else "time budget") + ")"
            ]
        else:
            studies[name] = study(log)
    minutes = (time.monotonic() - started) / 60
    write_report(args, rows, studies, minutes, load0, os.getloadavg()[0])


def summary(rows) -> list[str]:
    """Findings computed from the rows, so that the text cannot drift from the table."""
    done = [r for r in rows if "par_fwd" in r and "seq_fwd" in r]
    if not done:
        return ["No case ran."]
    case = lambda r: f"T={r['T']:,}, H={r['H']}, B={r['B']}, {r['jacobian']}"
    fwd = min(done, key=lambda r: r["par_fwd"] / r["seq_fwd"])
    per_iter = min(done, key=lambda r: r["par_fwd"] / max(r["iterations"], 1) / r["seq_fwd"])
    grads = [r for r in done if "par_grad" in r and "seq_grad" in r]
    out = [
        f"- Cases run: {len(done)} of {len(rows)} (the rest skipped, see the notes column).",
        f"- Best forward ratio: {fwd['par_fwd'] / fwd['seq_fwd']:,.3g}x the sequential time "
        f"({case(fwd)}, {fwd['iterations']} iterations).",
    ]
    if grads:
        g = min(grads, key=lambda r: r["par_grad"] / r["seq_grad"])
        out.append(
            f"- Best fwd+bwd ratio: {g['par_grad'] / g['seq_grad']:,.3g}x ({case(g)}). The "
            "backward pass is a sequential adjoint scan in both, so fwd+bwd ratios sit closer "
            "to 1 than forward ones."
        )
    p = per_iter["par_fwd"] / max(per_iter["iterations"], 1) / per_iter["seq_fwd"]
    winners = [r for r in done if r["par_fwd"] < r["seq_fwd"]]
    if winners:
        out.append("- Crossover: the parallel forward wins at " + "; ".join(map(case, winners)))
    else:
        out.append(
            "- Crossover: none in the measured range. The cheapest Newton iteration relative "
            f"to the whole sequential pass is {p:,.2f}x ({case(per_iter)}): "
            + (
                "even a single iteration costs more than the sequential layer."
                if p >= 1
                else f"the parallel forward would win only below {1 / p:,.1f} iterations, "
                f"and it needed {per_iter['iterations']}."
            )
        )
    for form in JACOBIANS:
        its = [r["iterations"] for r in done if r["jacobian"] == form]
        if its:
            out.append(f"- Newton iterations, {form}: {min(its)} to {max(its)}.")
    return out


def write_report(args, rows, studies, minutes, load0, load1):
    mode = "--quick" if args.quick else "full"
    text = [
        "# Parallel-in-time LSTM (jlstm.parallel) vs the sequential layer",
        "",
        f"Machine: {machine()}; JAX {jax.__version__}, backend {jax.default_backend()}. "
        f"Run: `python benchmarks/parallel.py {'--quick' if args.quick else ''}` ({mode}; "
        f"{minutes:.1f} min; per-case limit {args.limit:.0f} s; load average "
        f"{load0:.1f} at the start, {load1:.1f} at the end).",
        "",
        "Ratios are parallel ÷ sequential (below 1: parallel faster). `par ms / iter ÷ seq` "
        "is one Newton iteration's share of the parallel forward over the whole sequential "
        "forward: above 1, no number of iterations lets the parallel form win. Memory: XLA's "
        "temp + output bytes of each compiled program. Sequential = `jlstm.layer` default, "
        "time-major. Parallel = `parallel_scan` defaults (tol 1e-6, max_iters min(T, 100), "
        "tangent by the sequential linear scan).",
        "",
        "## Summary",
        "",
        *summary(rows),
        "",
        HEADER,
        *[format_row(r) for r in rows],
        "",
        "## Tangent solve: sequential linear scan vs dense associative scan (quasi, fwd+bwd)",
        "",
        *studies["tangent"],
        "",
        "## Warm start across one optimiser step",
        "",
        "Parameters moved by one sign-gradient step of the given size on every weight "
        "(the size of an Adam step); cold starts from the held initial state, warm from the "
        "previous parameters' trajectory (`init=info.states`).",
        "",
        *studies["warm"],
        "",
        "## Recurrent weights scaled up (T = 1,000, H = 8, B = 1, max_iters = 100)",
        "",
        "Iterations (outcome); a fall-back returns the sequential answer, so every row is exact.",
        "",
        *studies["scale"],
        "",
    ]
    Path(args.out).write_text("\n".join(text))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
