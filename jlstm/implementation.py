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
"cudnn"        the whole stack in one cuDNN call                           LSTM stacks,
               (``jax.experimental.rnn.lstm``, :mod:`jlstm.cudnn`)         CUDA GPU,
                                                                           float32
"parallel"     Newton's method over the whole trajectory, each step an     LSTM; never
               associative scan (DEER / quasi-DEER, :mod:`jlstm.parallel`)  picked by
                                                                           "auto"
=============  ==========================================================  ============

"parallel" is exact (it falls back to the sequential loop where Newton does
not converge) but on CPUs slower than the loops (``benchmarks/PARALLEL.md``);
``implementation=jlstm.parallel.Parallel(...)`` sets its options (Jacobian form,
damping, tolerance, iteration cap, what a failure does) and a ``report`` that
receives each solve's iterations and convergence.

On a TPU the layer lowers to the "xla" (or "reference") loops, ``lax.scan``
compiled by XLA:TPU: no custom call, so a TPU program exports from any machine
(``tests/test_implementations.py`` exports a train step for ``tpu``).

Every implementation equals "reference" under every transformation (jit, grad,
vmap, jvp, jacfwd, hessian and their compositions) to float tolerance.

"auto" picks, top to bottom, the first that applies: "cudnn" while
:data:`AUTO_USES_CUDNN` is set, for an LSTM stack (:func:`jlstm.stack`) on a
GPU in float32 with ``lengths`` or no padding (not a general ``mask``, resets,
``remat`` or recurrent noise), on one device, traced under no ``vmap`` and no
forward-mode derivative (:func:`transformations`; cuDNN's call has neither
rule); "cpu_kernel" where the computation runs on the CPU backend, in float32,
on one device, at a step size where the kernel was measured faster than XLA's
loops on this class of CPU (:func:`jlstm.fused.kernel.faster`) — except on
Intel CPUs with AMX at large steps, where the plain "reference" scan was
measured fastest (:func:`jlstm.fused.kernel.large_steps_prefer_reference`);
"xla" for any
other LSTM call with floating parameters; "reference" for other cells. An
explicit name that cannot run the call raises an error that says why and what
to use instead.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from jlstm.cells.base import Cell

NAMES = ("auto", "reference", "xla", "cpu_kernel", "cudnn", "parallel")
FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
GPUS = ("gpu", "cuda")  # jax.default_backend() on a GPU; "cuda" as jax.export names it

# "auto" may pick "cudnn". Off, as measured (benchmarks/RESULTS-gpu.md, an H200): cuDNN's
# call through jax.experimental.rnn equals the reference to 5e-7 but takes 1.6x to 2.1x the
# time of "xla" for fwd+bwd at S1-S3. The rules for when it may run are written and
# tested, so turning this on is the only change should a later JAX make the call faster.
AUTO_USES_CUDNN = False


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
    # Set by jlstm.stack, for "cudnn" (which runs whole stacks); a layer leaves the defaults.
    whole_stack: bool = False  # the call is every layer and direction of a stack
    masking: str = "none"  # padding given as "lengths", a general "mask", or "none"
    remat: bool = False  # remat=True: the backward recomputes stretches of the loop
    transformed: frozenset[str] = frozenset()  # transformations(): what cuDNN cannot run under


def choose(requested: str, call: Call) -> str:
    """The implementation that runs ``call``: ``requested`` itself, or for "auto" the
    first of "cudnn" (while AUTO_USES_CUDNN), "cpu_kernel", "xla", "reference" that
    applies (see the module docstring)."""
    requested = getattr(requested, "name", requested)  # a jlstm.parallel.Parallel's options
    if not isinstance(requested, str) or requested not in NAMES:
        raise ValueError(
            f"implementation must be one of {NAMES} or a jlstm.parallel.Parallel; got {requested!r}"
        )
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
    if AUTO_USES_CUDNN and why_not("cudnn", call) is None:
        return "cudnn"
    if call.backend == "cpu" and call.cell.name == "lstm" and _reference_faster(call):
        return "reference"  # measured: the plain scan wins there (kernel.py's AMX note)
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
    if name == "cudnn":
        return _why_not_cudnn(call)
    if name not in call.cell.fast_implementations:
        has = ", ".join(repr(n) for n in ("reference", *call.cell.fast_implementations))
        return f"the {call.cell.name!r} cell has no {name!r} implementation (it has {has})"
    if len(set(call.param_dtypes)) != 1 or call.param_dtypes[0] not in FLOATS:
        return f"it needs float32 or float64 parameters of one dtype; got {call.param_dtypes}"
    if call.compute not in (*FLOATS, np.dtype(jax.numpy.bfloat16)):
        return f"it needs a float32, float64 or bfloat16 matmul dtype; got {call.compute}"
    if name == "xla":
        return None
    if name == "parallel":
        if call.compute != call.param_dtypes[0]:
            return f"it computes in the parameters' dtype; got matmuls in {call.compute}"
        if call.resets:
            return "it has no state resets (implementation='xla' has them)"
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


def _why_not_cudnn(call: Call) -> str | None:
    from jlstm.cells.lstm import LSTM

    f32 = np.dtype(np.float32)
    if type(call.cell) is not LSTM:
        return f"cuDNN runs the 'lstm' cell only; got the {call.cell.name!r} cell"
    if not call.whole_stack:
        return (
            "it runs whole stacks, every layer and direction in one call: use jlstm.stack "
            "(one layer: stack(((params,),), xs))"
        )
    if call.backend not in GPUS:
        return f"it runs on a GPU only; this computation runs on {call.backend!r}"
    if set(call.param_dtypes) != {f32} or call.compute != f32 or call.state_dtype != f32:
        kinds = ", ".join(sorted({str(d) for d in call.param_dtypes}))
        return (
            f"it computes in float32 only; got parameters {kinds}, "
            f"matmuls {call.compute}, state {call.state_dtype}"
        )
    if call.masking == "mask":
        return "it takes right padding as lengths=, not a general mask="
    if call.resets:
        return "it has no state resets"
    if call.remat:
        return "remat=True recomputes stretches of jlstm's loops; cuDNN keeps its own saved state"
    if call.devices > 1:
        return (
            f"with {call.devices} devices the batch may be sharded, and a custom call "
            "cannot be split by rows"
        )
    if call.transformed:
        return (
            f"it is traced under {' and '.join(sorted(call.transformed))}, which cuDNN's call "
            "(a custom_vjp over a custom call) has no rule for"
        )
    return None


def transformations() -> frozenset[str]:
    """The transformations the current trace runs under that cuDNN's call has no rule for:
    "vmap" and "forward-mode autodiff" (jvp, jacfwd, hessian, linearize).

    Read from JAX's trace stack when the layer is traced, so it sees a transformation
    applied around the call or around a ``jax.jit`` traced inside it; a function already
    jitted and then transformed reuses its old trace, and JAX raises (no batching rule for
    'rnn_fwd', or no jvp of a custom_vjp) rather than compute anything wrong. Reverse mode
    (grad, vjp) is not listed: cuDNN has its own backward.
    """
    try:
        from jax._src import core
        from jax._src.interpreters import ad, batching

        traces = core.unsafe_get_trace_stack(core.trace_ctx.trace)
    except (ImportError, AttributeError):  # a JAX without these internals: assume the worst
        return frozenset({"a transformation that could not be read"})
    found = set()
    for trace in traces:
        if isinstance(trace, batching.BatchTrace):
            found.add("vmap")
        elif isinstance(trace, ad.JVPTrace) or (
            isinstance(trace, ad.LinearizeTrace) and not trace.is_vjp
        ):
            found.add("forward-mode autodiff")
    return frozenset(found)


def _reference_faster(call: Call) -> bool:
    from jlstm.fused import kernel

    return call.compute == np.dtype(np.float32) and kernel.large_steps_prefer_reference(
        call.batch, call.input_size, call.hidden
    )


def _kernel_faster(call: Call) -> bool:
    from jlstm.fused import kernel

    return kernel.faster(call.batch, call.input_size, call.hidden)


def _alternative(requested: str, call: Call) -> str:
    if requested == "cpu_kernel" and why_not("xla", call) is None:
        return "implementation='xla' (the same loops as lax.scans) or 'auto'"
    if requested == "cudnn" and why_not("xla", call) is None:
        return "implementation='xla' (the same LSTM on jlstm's loops) or 'auto'"
    return "implementation='auto' or 'reference'"
