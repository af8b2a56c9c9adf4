"""Which implementation runs a layer: the one place where that is decided.

``implementation=`` on :func:`jlstm.layer`, :func:`jlstm.stack` and the NNX
modules takes one of:

=============  ==========================================================  ============
name           what runs                                                   where
=============  ==========================================================  ============
"auto"         the fastest of the others that is exact for the call        everywhere
"reference"    ``lax.scan`` over the cell's step, differentiated by JAX    every cell
"xla"          the LSTM's custom-JVP loops (:mod:`jlstm.fused`) as scans   LSTM, float
"cpu_kernel"   the same, with the loops in jlstm's C++ kernel              LSTM, CPU,
                                                                           float32
=============  ==========================================================  ============

Every implementation equals "reference" under every transformation (jit, grad,
vmap, jvp, jacfwd, hessian and their compositions) to float tolerance.

"auto" picks, top to bottom, the first that applies: "cpu_kernel" where the
computation runs on the CPU backend, in float32, on one device, at a step
size where the kernel was measured faster than XLA's loops on this class of
CPU (:func:`jlstm.fused.kernel.faster`); "xla" for any other LSTM call with
floating parameters; "reference" for other cells. An explicit name that
cannot run the call raises an error that says why and what to use instead.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from jlstm.cells.base import Cell

NAMES = ("auto", "reference", "xla", "cpu_kernel")
FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


@dataclasses.dataclass(frozen=True)
class Call:
    """What the choice depends on: the cell, shapes, dtypes and where it runs."""

    cell: Cell
    batch: int
    steps: int
    input_size: int
    hidden: int
    param_dtypes: tuple[np.dtype, ...]
    state_dtype: np.dtype
    compute: np.dtype  # the matmuls' dtype
    backend: str  # jax.default_backend() when traced
    devices: int  # jax.device_count()
    resets: bool = False  # the call has per-step state resets
    noise: bool = False  # recurrent dropout or zoneout act inside the recurrence


def choose(requested: str, call: Call) -> str:
    """The implementation that runs ``call``: ``requested`` itself, or for "auto" the
    first of "cpu_kernel", "xla", "reference" that applies (see the module docstring)."""
    if requested not in NAMES:
        raise ValueError(f"implementation must be one of {NAMES}; got {requested!r}")
    if requested == "reference" or min(call.batch, call.steps) == 0:
        return "reference"  # an empty sequence runs no loop: every implementation is this
    if requested != "auto":
        problem = why_not(requested, call)
        if problem is not None:
            raise ValueError(
                f"implementation={requested!r} cannot run this call: {problem}. "
                f"Use {_alternative(requested, call)}."
            )
        return requested
    for name in ("cpu_kernel", "xla"):
        if why_not(name, call) is None and (name != "cpu_kernel" or _kernel_faster(call)):
            return name
    return "reference"


def why_not(name: str, call: Call) -> str | None:
    """Why implementation ``name`` cannot run ``call`` (None: it can)."""
    if name == "reference":
        return None
    if call.noise:
        return (
            "recurrent dropout and zoneout change the recurrence; they run on "
            "implementation='reference' only"
        )
    if name not in call.cell.fast_implementations:
        has = ", ".join(repr(n) for n in ("reference", *call.cell.fast_implementations))
        return f"the {call.cell.name!r} cell has no {name!r} implementation (it has {has})"
    if len(set(call.param_dtypes)) != 1 or call.param_dtypes[0] not in FLOATS:
        return f"it needs float32 or float64 parameters of one dtype; got {call.param_dtypes}"
    if call.compute not in (*FLOATS, np.dtype(jax.numpy.bfloat16)):
        return f"it needs a float32, float64 or bfloat16 matmul dtype; got {call.compute}"
    if name == "xla":
        return None
    # cpu_kernel
    if call.backend != "cpu":
        return f"it runs on the CPU backend only; this computation runs on {call.backend!r}"
    f32 = np.dtype(np.float32)
    if call.compute != f32 or call.param_dtypes[0] != f32 or call.state_dtype != f32:
        return (
            f"it computes in float32 only; got parameters {call.param_dtypes[0]}, "
            f"matmuls {call.compute}, state {call.state_dtype}"
        )
    if call.resets:
        return "the kernel has no state resets (implementation='xla' has them, as fast loops)"
    if call.devices > 1:
        return (
            f"with {call.devices} devices the batch may be sharded, and a custom call "
            "cannot be split by rows"
        )
    from jlstm.fused import kernel

    return kernel.unavailable()


def _kernel_faster(call: Call) -> bool:
    from jlstm.fused import kernel

    return kernel.faster(call.batch, call.input_size, call.hidden)


def _alternative(requested: str, call: Call) -> str:
    if requested == "cpu_kernel" and why_not("xla", call) is None:
        return "implementation='xla' (the same loops as lax.scans) or 'auto'"
    return "implementation='auto' or 'reference'"
