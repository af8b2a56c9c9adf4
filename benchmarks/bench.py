"""jlstm against its peers on CPU: speed, a GRU, a whole train step, memory, compile time.

Run from the repository root::

    python benchmarks/bench.py                  # everything, writes benchmarks/RESULTS.md
    python benchmarks/bench.py --shapes S1,S5   # a subset (still writes RESULTS.md)
    python benchmarks/bench.py --no-memory --no-compile --no-levers --out /tmp/r.md
    python benchmarks/bench.py --quick --out /tmp/r.md   # a minute or two: does it run?

Protocol (shared/PEERS.md's): one layer, one direction, float32, batch-first
input, zero initial state; ``fwd`` = all hidden states, ``fwd+bwd`` = the
gradient of sum(outputs) w.r.t. all parameters and the input. JAX code is
jitted as a function of (params, xs); torch.nn.LSTM runs with 2 threads.
Implementations are interleaved round-robin; each number is the median of
>= 7 rounds after compilation (see ``timing.py`` for how rounds disturbed by
other processes are set aside). Peers that are not installed are skipped with
a note, so the script runs with jlstm alone.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import compile_time  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import levers  # noqa: E402
import memory  # noqa: E402
import peers  # noqa: E402
import train_step  # noqa: E402
from peers import SHAPES  # noqa: E402
from timing import load_average, measure  # noqa: E402

STRESS = {
    "S1": "small",
    "S2": "medium",
    "S3": "long sequence, small state",
    "S4": "compute-bound",
    "S5": "latency, batch 1",
}
BIDIR_SHAPE = (32, 128, 64, 128)
TORCH = "torch.nn.LSTM"
JLSTM = "jlstm"  # implementation="auto"
XLA = "jlstm implementation='xla'"
KERNEL = "jlstm implementation='cpu_kernel'"
PLAIN = "jlstm implementation='reference' (autodiff of lax.scan)"
BF16 = "jlstm, dtype=bfloat16"
EXPLICIT = {XLA: "xla", KERNEL: "cpu_kernel", PLAIN: "reference"}  # row -> implementation
QUICK_SHAPES = "S1,S5"
QUICK_ROUNDS = 3


def flops(batch, steps, inputs, hidden) -> tuple[float, float]:
    """(fwd, fwd+bwd) FLOPs: 2·B·T·(I+H)·4H matmul + ~10·B·T·H elementwise; fwd+bwd ≈ 3×."""
    fwd = 2 * batch * steps * (inputs + hidden) * 4 * hidden + 10 * batch * steps * hidden
    return fwd, 3 * fwd


def matmul_peak(n=2048, trials=5) -> dict[str, float]:
    """Best float32 GFLOP/s of an n³ matmul, in JAX and (if installed) torch."""
    out = {}
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    f = jax.jit(jnp.matmul)
    jax.block_until_ready(f(a, a))
    best = min(_timed(lambda: jax.block_until_ready(f(a, a))) for _ in range(trials))
    out["jax"] = 2 * n**3 / best / 1e9
    try:
        import torch

        torch.set_num_threads(2)
        t = torch.randn(n, n)
        torch.mm(t, t)
        best = min(_timed(lambda: torch.mm(t, t)) for _ in range(trials))
        out["torch"] = 2 * n**3 / best / 1e9
    except ImportError:
        pass
    return out


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def build_all(makers: dict, args: tuple, notes: list[str], **extra) -> dict[str, peers.Built]:
    built = {}
    for name, make in makers.items():
        try:
            built[name] = make(*args, **extra.get(name, {}))
        except peers.Unavailable as e:
            note = f"{name}: skipped, {e}."
            if note not in notes:
                notes.append(note)
    return built


# --------------------------------------------------------------------------- speed


def bench_shape(name, shape, rounds, notes) -> dict:
    makers = {JLSTM: peers.jlstm_layer, XLA: peers.jlstm_layer, KERNEL: peers.jlstm_layer}
    makers.update((k, v) for k, v in peers.LAYER_IMPLS.items() if k != JLSTM)
    makers[PLAIN] = peers.jlstm_layer
    makers[BF16] = peers.jlstm_layer
    extra = {k: dict(implementation=v) for k, v in EXPLICIT.items()}
    extra[BF16] = dict(dtype=jnp.bfloat16)
    built = build_all(makers, shape, notes, **extra)
    fwd = measure({k: b.fwd for k, b in built.items()}, rounds=rounds)
    fb = measure({k: b.fwd_bwd for k, b in built.items()}, rounds=rounds)
    return dict(built=built, fwd=fwd, fb=fb, auto=peers.auto_choice(*shape))


def ratio(a, b) -> str:
    return f"{a / b:.2f}" if (a is not None and b) else "—"


def best_peer(stats: dict, among=peers.JAX_PEERS) -> tuple[str | None, float | None]:
    found = [(s.median_ms, k) for k, s in stats.items() if k in among]
    if not found:
        return None, None
    ms, k = min(found)
    return k, ms


def speed_markdown(results: dict, peak: float) -> list[str]:
    lines = []
    # Headline table.
    lines += [
        "### Headline: jlstm against torch.nn.LSTM and the best JAX peer",
        "",
        "Ratios are jlstm's time divided by the other's: below 1.00 means jlstm is faster. "
        "Targets: fwd+bwd ≤ 1.00× torch and ≤ 0.80× the best JAX peer; fwd ≤ 1.00× torch.",
        "",
        "| shape | B, T, I, H | auto ran | jlstm fwd (ms) | torch fwd | **fwd ÷ torch** | "
        "jlstm fwd+bwd (ms) | torch fwd+bwd | **fwd+bwd ÷ torch** | best JAX peer fwd+bwd "
        "| **fwd+bwd ÷ best JAX peer** |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        shape = SHAPES[name]
        jf, jb = r["fwd"][JLSTM].median_ms, r["fb"][JLSTM].median_ms
        tf = r["fwd"].get(TORCH)
        tb = r["fb"].get(TORCH)
        tf, tb = (tf.median_ms if tf else None), (tb.median_ms if tb else None)
        peer, pb = best_peer(r["fb"])
        peer_cell = f"{pb:.2f} ({_short(peer)})" if peer else "—"
        lines.append(
            f"| {name} | {', '.join(map(str, shape))} | {r['auto']} | {jf:.2f} | {_fmt(tf)} | "
            f"**{ratio(jf, tf)}** | {jb:.2f} | {_fmt(tb)} | **{ratio(jb, tb)}** | {peer_cell} | "
            f"**{ratio(jb, pb)}** |"
        )
    lines.append("")
    lines += auto_markdown(results)
    # Full tables, one per shape.
    for name, r in results.items():
        shape = SHAPES[name]
        f_fwd, f_fb = flops(*shape)
        tf = r["fwd"].get(TORCH)
        tb = r["fb"].get(TORCH)
        _, pf = best_peer(r["fwd"])
        _, pb = best_peer(r["fb"])
        lines += [
            f"### {name}: B={shape[0]}, T={shape[1]}, I={shape[2]}, H={shape[3]} ({STRESS[name]})",
            "",
            "| implementation | fwd (ms) | fwd+bwd (ms) | fwd ÷ torch | fwd+bwd ÷ torch | "
            "fwd ÷ best JAX peer | fwd+bwd ÷ best JAX peer | fwd GFLOP/s (% peak) | "
            "fwd+bwd GFLOP/s (% peak) | first call fwd / fwd+bwd (s) | clean rounds |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for impl, built in r["built"].items():
            sf, sb = r["fwd"][impl], r["fb"][impl]
            gf, gb = f_fwd / sf.median_ms / 1e6, f_fb / sb.median_ms / 1e6
            lines.append(
                f"| {impl} | {sf.median_ms:.2f} | {sb.median_ms:.2f} | "
                f"{ratio(sf.median_ms, tf.median_ms if tf else None)} | "
                f"{ratio(sb.median_ms, tb.median_ms if tb else None)} | "
                f"{ratio(sf.median_ms, pf)} | {ratio(sb.median_ms, pb)} | "
                f"{gf:.0f} ({100 * gf / peak:.0f}%) | {gb:.0f} ({100 * gb / peak:.0f}%) | "
                f"{built.first_fwd_s:.2f} / {built.first_fwd_bwd_s:.2f} | "
                f"{min(sf.clean, sf.used)}+{min(sb.clean, sb.used)} of {sf.used}+{sb.used} |"
            )
        lines.append("")
    return lines


def auto_markdown(results: dict) -> list[str]:
    """Did "auto" run the fastest of jlstm's implementations at each shape?"""
    rows = {"auto": JLSTM, "xla": XLA, "cpu_kernel": KERNEL, "reference": PLAIN}
    lines = [
        "### implementation='auto' against each explicit implementation",
        "",
        "What `implementation='auto'` chose on this CPU (`jlstm.implementation.choose`), "
        "and each implementation's time, fwd / fwd+bwd ms. 'auto ÷ fastest' compares auto "
        "with the fastest explicit one of the same run (1.00: auto ran the fastest, or "
        "within the noise of it; differences under ~10% are noise).",
        "",
        "| shape | auto ran | auto | 'xla' | 'cpu_kernel' | 'reference' | fastest fwd / fwd+bwd "
        "| auto ÷ fastest, fwd / fwd+bwd |",
        "|---|---|---:|---:|---:|---:|---|---:|",
    ]
    for name, r in results.items():
        cells, best = [], {}
        for impl, row in rows.items():
            if row not in r["fwd"]:
                cells.append("—")
                continue
            f, b = r["fwd"][row].median_ms, r["fb"][row].median_ms
            cells.append(f"{f:.2f} / {b:.2f}")
            if impl != "auto":
                best[impl] = (f, b)
        if not best or JLSTM not in r["fwd"]:
            continue
        bf = min(best, key=lambda k: best[k][0])
        bb = min(best, key=lambda k: best[k][1])
        af, ab = r["fwd"][JLSTM].median_ms, r["fb"][JLSTM].median_ms
        lines.append(
            f"| {name} | {r['auto']} | {' | '.join(cells)} | {bf} / {bb} | "
            f"{af / best[bf][0]:.2f} / {ab / best[bb][1]:.2f} |"
        )
    lines.append("")
    return lines


def _fmt(x):
    return f"{x:.2f}" if x is not None else "—"


def _short(name):
    return name.split(" ")[0] if name else ""


# --------------------------------------------------------------------------- bidirectional


def bench_bidir(rounds, notes) -> list[str]:
    batch, steps, inputs, hidden = BIDIR_SHAPE
    lengths = peers.random_lengths(batch, steps)
    built = build_all(peers.BIDIR_IMPLS, (batch, steps, inputs, hidden, lengths), notes)
    fwd = measure({k: b.fwd for k, b in built.items()}, rounds=rounds)
    fb = measure({k: b.fwd_bwd for k, b in built.items()}, rounds=rounds)
    t_f = fwd.get("torch.nn.LSTM (packed)")
    t_b = fb.get("torch.nn.LSTM (packed)")
    lines = [
        f"2 layers, bidirectional, B={batch}, T={steps}, I={inputs}, H={hidden}, lengths "
        f"from {lengths.min()} to {lengths.max()} (mean {lengths.mean():.0f}); torch uses "
        "pack_padded_sequence, flax `seq_lengths`, jlstm `lengths`.",
        "",
        "| implementation | fwd (ms) | fwd+bwd (ms) | fwd ÷ torch | fwd+bwd ÷ torch | "
        "first call fwd / fwd+bwd (s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, b in built.items():
        lines.append(
            f"| {name} | {fwd[name].median_ms:.2f} | {fb[name].median_ms:.2f} | "
            f"{ratio(fwd[name].median_ms, t_f.median_ms if t_f else None)} | "
            f"{ratio(fb[name].median_ms, t_b.median_ms if t_b else None)} | "
            f"{b.first_fwd_s:.2f} / {b.first_fwd_bwd_s:.2f} |"
        )
    return lines


# --------------------------------------------------------------------------- GRU


GRU_JLSTM = "jlstm GRU"
GRU_TORCH = "torch.nn.GRU"


def bench_gru(shapes, rounds, notes) -> dict:
    """One GRU layer at each shape: jlstm (cell="gru") against torch.nn.GRU and flax."""
    results = {}
    for name in shapes:
        built = build_all(peers.GRU_IMPLS, SHAPES[name], notes)
        fwd = measure({k: b.fwd for k, b in built.items()}, rounds=rounds)
        fb = measure({k: b.fwd_bwd for k, b in built.items()}, rounds=rounds)
        results[name] = dict(built=built, fwd=fwd, fb=fb, auto=peers.auto_choice(
            *SHAPES[name], cell="gru"))  # fmt: skip
        print(
            "GRU",
            name,
            {k: (round(fwd[k].median_ms, 2), round(fb[k].median_ms, 2)) for k in fwd},
            flush=True,
        )
    return results


def gru_markdown(results: dict) -> list[str]:
    autos = sorted({r["auto"] for r in results.values()})
    lines = [
        "One GRU layer, the protocol of the LSTM tables (float32, batch-first, zero initial "
        "state; fwd = all hidden states, fwd+bwd = the gradient of sum(outputs) w.r.t. every "
        "parameter and the input; interleaved rounds, medians). jlstm's GRU has torch.nn.GRU's "
        "equations (`jlstm.cells.get('gru')`, `GRUParams`); `implementation='auto'` ran "
        f"{', '.join(repr(a) for a in autos)} for it. flax's `GRUCell` has the same equations "
        "(the reset gate inside the candidate's recurrent product).",
        "",
        "| shape | B, T, I, H | jlstm fwd (ms) | torch fwd | **fwd ÷ torch** | best flax fwd "
        "| fwd ÷ best flax | jlstm fwd+bwd (ms) | torch fwd+bwd | **fwd+bwd ÷ torch** | "
        "best flax fwd+bwd | **fwd+bwd ÷ best flax** |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        if GRU_JLSTM not in r["fwd"]:
            continue
        jf, jb = r["fwd"][GRU_JLSTM].median_ms, r["fb"][GRU_JLSTM].median_ms
        tf, tb = (r[k].get(GRU_TORCH) for k in ("fwd", "fb"))
        tf, tb = (tf.median_ms if tf else None), (tb.median_ms if tb else None)
        _, ff = best_peer(r["fwd"], peers.GRU_JAX_PEERS)
        fb_name, fb = best_peer(r["fb"], peers.GRU_JAX_PEERS)
        lines.append(
            f"| {name} | {', '.join(map(str, SHAPES[name]))} | {jf:.2f} | {_fmt(tf)} | "
            f"**{ratio(jf, tf)}** | {_fmt(ff)} | {ratio(jf, ff)} | {jb:.2f} | {_fmt(tb)} | "
            f"**{ratio(jb, tb)}** | {_fmt(fb)}{f' ({_short(fb_name)})' if fb_name else ''} | "
            f"**{ratio(jb, fb)}** |"
        )
    names = list(results)
    lines += [
        "",
        "All rows, fwd / fwd+bwd ms (clean rounds in the last column, summed over shapes):",
        "",
        "| implementation | " + " | ".join(names) + " | first call fwd / fwd+bwd (s), "
        f"{names[-1] if names else ''} | clean rounds |",
        "|---|" + "---:|" * (len(names) + 2),
    ]  # fmt: skip
    impls = list(dict.fromkeys(k for r in results.values() for k in r["fwd"]))
    for impl in impls:
        cells, clean, used = [], 0, 0
        for n in names:
            f, b = results[n]["fwd"].get(impl), results[n]["fb"].get(impl)
            if f is None:
                cells.append("—")
                continue
            cells.append(f"{f.median_ms:.2f} / {b.median_ms:.2f}")
            clean += min(f.clean, f.used) + min(b.clean, b.used)
            used += f.used + b.used
        last = results[names[-1]]["built"].get(impl)
        first = f"{last.first_fwd_s:.2f} / {last.first_fwd_bwd_s:.2f}" if last else "—"
        lines.append(f"| {impl} | " + " | ".join(cells) + f" | {first} | {clean} of {used} |")
    return lines


# --------------------------------------------------------------------------- bfloat16


def bf16_errors(shape) -> tuple[float, float, float]:
    """Max |bf16 - f32| of the outputs, and of the gradients relative to the largest f32 one."""
    from jlstm.cell import init_params
    from jlstm.layer import layer

    batch, steps, inputs, hidden = shape
    params = init_params(jax.random.key(0), inputs, hidden)
    xs = jax.random.normal(jax.random.key(1), (batch, steps, inputs))

    def run(dtype):
        hs = jax.jit(lambda p, x: layer(p, x, dtype=dtype)[0])(params, xs)
        grad = jax.jit(jax.grad(lambda p, x: layer(p, x, dtype=dtype)[0].sum(), argnums=(0, 1)))(
            params, xs
        )
        return hs, jax.tree.leaves(grad)

    h32, g32 = run(None)
    h16, g16 = run(jnp.bfloat16)
    out_err = float(jnp.abs(h16 - h32).max())
    grad_err = max(
        float(jnp.abs(a - b).max() / jnp.abs(b).max()) for a, b in zip(g16, g32, strict=True)
    )
    rel_out = out_err / float(jnp.abs(h32).max())
    return out_err, rel_out, grad_err


def bf16_markdown(results: dict) -> list[str]:
    lines = [
        "`layer(..., dtype=jnp.bfloat16)`: the matmuls in bfloat16 (float32 accumulation), "
        "the cell state, gate arithmetic and outputs in float32. Errors against the float32 "
        "run with the same parameters and inputs: outputs (absolute; h lies in (-1, 1)), and "
        "every gradient leaf's max |difference| over its max |value|.",
        "",
        "| shape | auto ran, f32 / bf16 | f32 fwd (ms) | bf16 fwd (ms) | bf16 ÷ f32 | "
        "f32 fwd+bwd (ms) | bf16 fwd+bwd (ms) | bf16 ÷ f32 | max output error | "
        "max gradient error (relative) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        if BF16 not in r["fwd"]:
            continue
        f32f, f32b = r["fwd"][JLSTM].median_ms, r["fb"][JLSTM].median_ms
        b16f, b16b = r["fwd"][BF16].median_ms, r["fb"][BF16].median_ms
        out_err, _, grad_err = r["bf16_err"]
        bf16_auto = peers.auto_choice(*SHAPES[name], dtype=jnp.bfloat16)
        lines.append(
            f"| {name} | {r['auto']} / {bf16_auto} | {f32f:.2f} | {b16f:.2f} | "
            f"{b16f / f32f:.2f} | {f32b:.2f} | "
            f"{b16b:.2f} | {b16b / f32b:.2f} | {out_err:.1e} | {grad_err:.1e} |"
        )
    return lines


# --------------------------------------------------------------------------- main


def cpu_info() -> dict:
    """The CPU's model string, family/model numbers and the vector extensions that matter
    here, from /proc/cpuinfo; and jlstm's CPU class and whether its kernel runs."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor's block is enough
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    flags = set(fields.get("flags", fields.get("Features", "")).split())
    from jlstm.fused import kernel

    return dict(
        model=fields.get("model name", platform.processor() or "unknown CPU"),
        family=fields.get("cpu family"),
        number=fields.get("model"),
        avx2="avx2" in flags,
        avx512="avx512f" in flags,
        avx512_bf16="avx512_bf16" in flags,
        amx="amx_tile" in flags,
        cpus=os.cpu_count(),
        jlstm_class=kernel.cpu_class(),
        kernel=kernel.unavailable(),
    )


def cpu_tag(cpu: dict) -> str:
    """A short name of the CPU for every section heading: model, AVX-512/AMX, core count."""
    ext = [name for name, key in (("AVX-512", "avx512"), ("AMX", "amx")) if cpu[key]]
    ext = ext or (["AVX2, no AVX-512"] if cpu["avx2"] else ["no AVX2"])
    return f"{cpu['model']} ({', '.join(ext)}), {cpu['cpus']} CPUs"


def environment(peak, cpu) -> list[str]:
    versions = []
    for mod in ("jax", "jaxlib", "flax", "torch", "haiku", "equinox", "optax"):
        try:
            m = __import__(mod)
            versions.append(f"{mod} {getattr(m, '__version__', '?')}")
        except ImportError:
            versions.append(f"{mod} (not installed)")
    yes = lambda b: "yes" if b else "no"
    number = f" (family {cpu['family']}, model {cpu['number']})" if cpu["family"] else ""
    kernel = "builds and runs" if cpu["kernel"] is None else f"unavailable: {cpu['kernel']}"
    peak_text = ", ".join(f"{k} {v:.0f}" for k, v in peak.items())
    return [
        f"- Date: {datetime.datetime.now().isoformat(timespec='minutes')}",
        f"- Machine: {cpu['model']}{number}, {cpu['cpus']} logical CPUs, {platform.system()} "
        f"{platform.release()}; Python {platform.python_version()}",
        f"- CPU extensions: AVX2 {yes(cpu['avx2'])}, AVX-512 {yes(cpu['avx512'])}, "
        f"AVX-512 BF16 {yes(cpu['avx512_bf16'])}, AMX {yes(cpu['amx'])}; jlstm's CPU class "
        f"(`jlstm.fused.kernel.cpu_class()`, what 'auto' decides by) `{cpu['jlstm_class']}`; "
        f"its CPU kernel {kernel}.",
        f"- Versions: {', '.join(versions)}",
        f"- float32 matmul peak (2048³, best of 5), GFLOP/s: {peak_text}. "
        f"Percent of peak below uses the larger, {max(peak.values()):.0f} GFLOP/s.",
    ]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shapes", default=None, help=f"comma-separated, of {','.join(SHAPES)} (default: all)"
    )
    parser.add_argument("--rounds", type=int, default=None, help="rounds per median (default 7)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a check that everything runs: shapes {QUICK_SHAPES} (unless --shapes), "
        f"{QUICK_ROUNDS} rounds (unless --rounds), no memory, compile or levers",
    )
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--no-bidir", action="store_true")
    parser.add_argument("--no-levers", action="store_true")
    parser.add_argument("--no-gru", action="store_true")
    parser.add_argument("--no-train-step", action="store_true")
    parser.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    args = parser.parse_args(argv)
    if args.quick:
        args.no_memory = args.no_compile = args.no_levers = True
    args.shapes = args.shapes or (QUICK_SHAPES if args.quick else ",".join(SHAPES))
    args.rounds = args.rounds or (QUICK_ROUNDS if args.quick else 7)
    unknown = [n for n in args.shapes.split(",") if n not in SHAPES]
    if unknown:
        parser.error(f"--shapes must name shapes of {sorted(SHAPES)}; got {unknown}")
    return args


def main(argv=None):
    args = parse_args(argv)
    shapes = args.shapes.split(",")

    load_start = load_average()
    notes: list[str] = []
    cpu = cpu_info()
    peak = matmul_peak()
    print("matmul peak GFLOP/s:", {k: round(v) for k, v in peak.items()}, flush=True)
    results = {}
    for name in shapes:
        shape = SHAPES[name]
        results[name] = bench_shape(name, shape, args.rounds, notes)
        results[name]["bf16_err"] = bf16_errors(shape)
        r = results[name]
        print(
            name,
            {
                k: (round(r["fwd"][k].median_ms, 2), round(r["fb"][k].median_ms, 2))
                for k in r["fwd"]
            },
            flush=True,
        )
    bidir = [] if args.no_bidir else bench_bidir(args.rounds, notes)
    gru = None if args.no_gru else bench_gru(shapes, args.rounds, notes)
    step = None if args.no_train_step else train_step.to_markdown(
        train_step.run(args.rounds, notes))  # fmt: skip
    lever_table = None if args.no_levers else levers.to_markdown(levers.run(shapes, args.rounds))
    mem = None if args.no_memory else memory.to_markdown(memory.run())
    comp = None if args.no_compile else compile_time.to_markdown(compile_time.run())
    load_end = load_average()

    on = f" — {cpu_tag(cpu)}"
    lines = [
        "# jlstm benchmark results",
        "",
        "Written by `python benchmarks/bench.py` (see `benchmarks/README.md`). "
        "Rerun it to reproduce; numbers from one run compare only with each other. "
        "Every section names the CPU it ran on.",
        "",
        *environment(peak, cpu),
        f"- Load average (1, 5, 15 min) at start: {load_start}; at end: {load_end}. "
        "The machine is shared; see 'Method' below.",
        "",
        f"## Speed: one LSTM layer, float32{on}",
        "",
        *speed_markdown(results, max(peak.values())),
    ]
    if bidir:
        lines += [f"## 2-layer bidirectional stack with variable lengths{on}", "", *bidir, ""]
    if gru:
        lines += [f"## GRU: one layer, float32{on}", "", *gru_markdown(gru), ""]
    if step:
        lines += [f"## A whole training step: the default experiment{on}", "", step, ""]
    if lever_table:
        lines += [f"## Levers, one at a time{on}", "", lever_table, ""]
    lines += [f"## bfloat16 compute{on}", "", *bf16_markdown(results), ""]
    if mem:
        lines += [f"## Memory for long sequences (remat){on}", "", mem, ""]
    if comp:
        lines += [f"## Compile time{on}", "", comp, ""]
    lines += [
        "## Method",
        "",
        "- fwd: all hidden states; fwd+bwd: gradient of sum(outputs) w.r.t. every parameter "
        "and the input. One layer, one direction, zero initial state, batch-first input.",
        "- JAX implementations are `jax.jit` of a function of (params, xs); torch.nn.LSTM "
        "and torch.nn.GRU (oneDNN) run eagerly with `torch.set_num_threads(2)`. 'first call' "
        "is the wall time of the first call (trace + compile + one run for JAX).",
        "- Each round calls every implementation in turn, repeating a call until the round "
        "lasts ≥ 0.2 s; the figure is the median over rounds. A round during which other "
        "processes (or the hypervisor) took more than 10% of a core (the machine's busy time "
        "in /proc/stat less this process's own CPU time) is run again; 'clean rounds' counts "
        f"rounds under that bar (fwd+fwd+bwd), of the {args.rounds}+{args.rounds} needed. "
        "Where fewer were clean, the least disturbed ones were used. Waits among an "
        "implementation's own threads are part of its time, not interference.",
        "- FLOPs: fwd = 2·B·T·(I+H)·4H + 10·B·T·H; fwd+bwd = 3 × fwd (shared/PEERS.md). "
        "Percent of peak uses the measured 2048³ float32 matmul rate above.",
        "- jlstm's rows differ only in `implementation=` (`jlstm.implementation`): `jlstm` "
        "is the default, 'auto', which picks one of the others by CPU class and step size; "
        f"`{XLA}` the LSTM's custom-JVP loops as `lax.scan`s; `{KERNEL}` the same loops in "
        f"jlstm's C++ CPU kernel; `{PLAIN}` the cell under `lax.scan`, differentiated by JAX.",
    ]
    lines += [f"- {n}" for n in notes]
    text = "\n".join(lines) + "\n"
    with open(args.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
