"""The CPU kernels of the layer's two loops (``jlstm/csrc/lstm_cpu.cc``), through the XLA FFI.

:mod:`jlstm._fused` calls :func:`forward` and :func:`backward` where
:func:`usable` says so. Each computes exactly what the ``lax.scan`` it
replaces does (``_fused._forward_scan``, ``_fused._backward_loop``), in one
custom call per layer, with the step's product split over two threads
(XLA:CPU runs it on one). They run on the CPU backend only; on other
platforms, and wherever they cannot be built, the scans run. Derivatives of
the kernels themselves (reverse over reverse) are the scans'.

The library is compiled from source on first use, with the system's C++
compiler (``$CXX``, else ``c++``) and ``-march=native`` plus
``$JLSTM_CXXFLAGS`` (``-march=x86-64-v3``, say, for one build that runs on
every AVX2 machine of a cluster), into a cache folder (``$JLSTM_CACHE_DIR``,
else ``$XDG_CACHE_HOME/jlstm`` or ``~/.cache/jlstm``). The file name carries a
hash of the source, the compiler command, jaxlib's version and this CPU's
feature flags, so a shared home folder never hands one machine's build to
another. Without a compiler, or if the build fails, jlstm warns once and keeps
the scans. ``JLSTM_CPU_KERNEL=0`` switches the kernels off (read when a layer
is traced).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
from jax import lax

SOURCE = Path(__file__).parent / "csrc" / "lstm_cpu.cc"
# FFI target -> the library's symbol.
_TARGETS = {
    "jlstm_lstm_forward": "JlstmLstmForward",
    "jlstm_lstm_forward_saving": "JlstmLstmForwardSaving",
    "jlstm_lstm_backward": "JlstmLstmBackward",
}


def enabled() -> bool:
    """The ``JLSTM_CPU_KERNEL`` switch: anything but 0/false/off keeps the kernel on."""
    return os.environ.get("JLSTM_CPU_KERNEL", "1").strip().lower() not in ("0", "false", "off")


# Below AVX-512 the kernels' register tiles are half as wide, and XLA's own
# products win once a step is large: on an AVX-512 EPYC with the AVX2 build
# (same FMA throughput), the forward measured 8.6 against 10.3 ms for the scan
# at S1 (3.1 M multiply-adds a step) and 13.1 against 13.2 at S3, but 90
# against 83 at S2 (25 M) and 546 against 383 at S4 (403 M).
_NARROW_MAX_STEP = 8_000_000


def usable(batch: int = 1, inputs: int = 1, hidden: int = 1) -> bool:
    """Whether a traced layer of this shape should call the kernels: switched on, built,
    registered, and (below AVX-512) a step small enough that XLA's product is no faster."""
    if not (enabled() and _registered()):
        return False
    return _vector_lanes() >= 16 or batch * (inputs + hidden) * 4 * hidden <= _NARROW_MAX_STEP


def forward(params, xs, h0, c0, mask, w, b, *, reverse: bool, save: bool, scan, batch_major=False):
    """The forward recurrence: the kernel on the CPU backend, ``scan(*args)`` elsewhere.

    ``scan`` is ``_fused._forward_scan`` with the same arguments and results;
    ``w`` (I + H, 4H) and ``b`` (4H,) come with the i, f and o columns halved
    (``_fused._scaled_weights``). Returns ``(hs, h_T, c_T, saved)``, ``saved``
    ``(gates (T, B, 4H), c, h)`` (see ``_fused._G``) or None.

    With ``batch_major``, ``xs`` is (B, T, I) and ``hs`` (B, T, H): the kernels
    read and write that layout as it lies, with no transposing copy (the
    saved arrays stay time-major).

    Shapes:
      xs: (T, B, I), mask: (T, B) | None, h0, c0: (B, H) -> hs: (T, B, H)
    """
    steps, batch, _ = xs.shape
    if batch_major:
        batch, steps = steps, batch
    hidden = h0.shape[-1]
    seq = jax.ShapeDtypeStruct((steps, batch, hidden), jnp.float32)
    out = jax.ShapeDtypeStruct((batch, steps, hidden) if batch_major else seq.shape, jnp.float32)
    state = jax.ShapeDtypeStruct((batch, hidden), jnp.float32)

    def kernel(params, xs, h0, c0, mask, w, b):
        operands = (xs, w, b, h0, c0, _mask_operand(mask))
        if not save:
            call = jax.ffi.ffi_call(
                "jlstm_lstm_forward", [out, state, state], vmap_method="sequential"
            )
            hs, h, c = call(*operands, reverse=reverse, batch_major=batch_major)
            return hs, h, c, None
        gates = jax.ShapeDtypeStruct((steps, batch, 4 * hidden), jnp.float32)
        call = jax.ffi.ffi_call(
            "jlstm_lstm_forward_saving", [state, state, gates, seq, seq], vmap_method="sequential"
        )
        h, c, *saved = call(*operands, reverse=reverse, batch_major=batch_major)
        hs = saved[-1]  # the state after each step; the output is zero where masked
        if mask is not None:
            hs = jnp.where(mask[:, :, None], hs, jnp.zeros_like(hs))
        return jnp.swapaxes(hs, 0, 1) if batch_major else hs, h, c, tuple(saved)

    return _kernel_or_scan(kernel, scan, params, xs, h0, c0, mask, w, b)


def backward(params, saved, dys, dh, dc, c_before, mask, *, reverse: bool, scan):
    """The reverse recurrence: the kernel on the CPU backend, ``scan(*args)`` elsewhere.

    ``scan`` is ``_fused._backward_loop`` with the same arguments and results;
    ``saved`` the forward's ``(gates, c, h)``, ``reverse`` the forward's
    direction. Returns ``(dG, dh, dc)``: the gradients of the gate
    pre-activations (T, B, 4H) and of the state before the first step. dG is
    written over the gates' buffer (an aliased operand; XLA copies the gates
    first only if something else still reads them).
    """
    steps, batch, hidden = dys.shape
    shapes = [
        jax.ShapeDtypeStruct((steps, batch, 4 * hidden), jnp.float32),
        jax.ShapeDtypeStruct((batch, hidden), jnp.float32),
        jax.ShapeDtypeStruct((batch, hidden), jnp.float32),
    ]
    call = jax.ffi.ffi_call(
        "jlstm_lstm_backward",
        shapes,
        vmap_method="sequential",
        input_output_aliases={2: 0},  # dG over the gates
    )

    def kernel(params, saved, dys, dh, dc, c_before, mask):
        w_h = params.w_h.astype(jnp.float32)
        gates, cs, _ = saved
        operands = (w_h, dys, gates, cs, c_before, dh, dc, _mask_operand(mask))
        return tuple(call(*operands, reverse=reverse))

    return _kernel_or_scan(kernel, scan, params, saved, dys, dh, dc, c_before, mask)


def _kernel_or_scan(kernel, scan, *args):
    """``kernel(*args)`` on the CPU backend, ``scan(*args)`` on any other platform.

    The kernel is a custom call, which JAX cannot differentiate; its
    derivatives are the scan's, so reverse over reverse (the layer's custom VJP
    differentiated again) still works.
    """
    if not _registered():
        return scan(*args)

    @jax.custom_jvp
    def run(*args):
        return kernel(*args)

    @run.defjvp
    def run_jvp(primals, tangents):
        return jax.jvp(scan, primals, tangents)

    return lax.platform_dependent(*args, cpu=run, default=scan)


def _mask_operand(mask):
    """The kernels' mask operand: (T, B) bool, or (0, 0) for none."""
    return jnp.zeros((0, 0), bool) if mask is None else mask


@functools.cache
def _library() -> ctypes.CDLL:
    """The compiled library, built on the first call (raises if it cannot be)."""
    return ctypes.cdll.LoadLibrary(str(_build()))


def _vector_lanes() -> int:
    """The built library's SIMD width in floats."""
    return int(_library().JlstmVectorLanes())


@functools.cache
def _registered() -> bool:
    """Build (or find) the library and register its targets; False, with a warning, if not."""
    try:
        for target, symbol in _TARGETS.items():
            capsule = jax.ffi.pycapsule(getattr(_library(), symbol))
            jax.ffi.register_ffi_target(target, capsule, platform="cpu")
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        warnings.warn(
            f"jlstm: the CPU kernels could not be built ({e}); the layer's loops run as "
            "lax.scans instead (slower on CPU, same results). Set JLSTM_CPU_KERNEL=0 to silence.",
            RuntimeWarning,
            stacklevel=2,
        )
        return False
    return True


def _compile_command(output: Path) -> list[str]:
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        raise RuntimeError(f"no C++ compiler ({compiler!r} not found; set CXX)")
    return [
        compiler,
        *("-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-w"),
        *os.environ.get("JLSTM_CXXFLAGS", "").split(),
        f"-I{jax.ffi.include_dir()}",
        str(SOURCE),
        "-o",
        str(output),
    ]


def _cache_dir() -> Path:
    if "JLSTM_CACHE_DIR" in os.environ:
        return Path(os.environ["JLSTM_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "jlstm"


def _cpu_identity() -> str:
    """This CPU's model and feature flags (what ``-march=native`` compiles for)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return f"{platform.machine()} {platform.processor()}"
    wanted = ("model name", "flags", "Features", "CPU part")
    lines = [line for line in text.splitlines() if line.split(":")[0].strip() in wanted]
    return "\n".join(sorted(set(lines)))


def _build() -> Path:
    """The compiled library, built into the cache folder unless already there."""
    import jaxlib

    command = _compile_command(Path("OUT"))
    digest = hashlib.sha256()
    for part in (SOURCE.read_bytes(), " ".join(command).encode(), jaxlib.__version__.encode()):
        digest.update(part)
    digest.update(_cpu_identity().encode())
    folder = _cache_dir()
    library = folder / f"lstm_cpu-{digest.hexdigest()[:16]}.so"
    if library.exists():
        return library
    folder.mkdir(parents=True, exist_ok=True)
    # Build beside the target, then rename: concurrent builders never see half a file.
    fd, partial = tempfile.mkstemp(dir=folder, prefix=".build-", suffix=".so")
    os.close(fd)
    try:
        done = subprocess.run(
            _compile_command(Path(partial)), capture_output=True, text=True, timeout=300
        )
        if done.returncode != 0:
            raise RuntimeError(f"the compiler failed: {done.stderr.strip()[-2000:]}")
        os.replace(partial, library)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return library
