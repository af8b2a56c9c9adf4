"""The LSTM layer evaluated in parallel over time: Newton's method on the whole trajectory.

DEER (Lim et al., ICLR 2024) and quasi-DEER / ELK (Gonzalez et al., NeurIPS
2024) treat the trajectory ``s_t = (h_t, c_t)``, t = 1..T, as the root of the
residual ``r_t = s_t - f_t(s_{t-1})``, f_t the cell at input x_t. Newton's
method linearises f around the current guess trajectory S; its step δ solves
the linear recurrence

    δ_t = J_t δ_{t-1} + (f_t(S_{t-1}) - S_t),   δ_0 = 0,   J_t = ∂f_t/∂s at S_{t-1}

which is a composition of affine maps, computed by ``jax.lax.associative_scan``
in O(log T) depth ((A2, b2) ∘ (A1, b1) = (A2 A1, A2 b1 + b2)). Every step in
this family (any J, damped or not) makes at least one more time step exact, so
in exact arithmetic it converges in at most T iterations; Newton with the exact
J usually needs a handful.

Jacobian forms (``jacobian=``):

* ``"full"`` (DEER): the dense (2H x 2H) Jacobian per step and batch row,
  O(T·B·H²) memory and O(T·B·H³) work per iteration. Quadratic convergence.
* ``"quasi"``: per unit j the 2 x 2 block of J over (h_j, c_j). Exact for
  ∂c_t/∂c_{t-1} = diag(f_t) and ∂h_t/∂c_{t-1}; drops only the coupling between
  different units through W_h (it keeps W_h's diagonal). O(T·B·H) memory and
  work; linear convergence.

``damping=λ > 0`` scales J by 1/(1 + λ) in the Newton step (not ELK's
Kalman-smoother step; see :func:`parallel_scan`). The derivatives never use an
approximate J: see "Differentiation" in :func:`parallel_scan`.

Masked steps (mask False) hold the state: f_t(s) = s, J_t = I, exactly.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jlstm.cell import LSTMParams, LSTMState, cell

Array = jax.Array

JACOBIANS = ("full", "quasi")
TANGENTS = ("sequential", "dense")
ON_FAILURE = ("fallback", "raise")

# Default convergence tolerance on max |s_t - f_t(s_{t-1})| / (1 + |s_t|), by
# dtype. The residual of the exactly rounded sequential trajectory, evaluated
# with this module's batched matmuls, lies near 1e-7 (float32) and 1e-16
# (float64); these leave a margin of roughly 10x (float32) and 1e4 (float64)
# over the floors measured in tests/test_parallel.py.
DEFAULT_TOL = {np.dtype(np.float32): 1e-6, np.dtype(np.float64): 1e-12}
# Default iteration cap: min(T, this). T always suffices in exact arithmetic.
DEFAULT_MAX_ITERS = 100
# The residual's products run at full precision: on a GPU, JAX's default float32
# product is TF32 (about 1e-3 relative), which would hold the residual above any
# float32 tolerance, so that Newton's method always fell back (measured on an H200).
RESIDUAL_PRECISION = jax.lax.Precision.HIGHEST


class ParallelInfo(NamedTuple):
    """How the parallel solve went. All fields are arrays (they survive ``jax.jit``).

    Shapes:
      iterations: () int32: Newton steps taken (each one linear solve).
      converged:  () bool: the Newton iterate met ``tol`` (with no NaN/Inf).
      residual:   () float: max over (t, b, unit, h|c) of
                  |s_t - f_t(s_{t-1})| / (1 + |s_t|) at the last Newton iterate
                  (before any fallback).
      fell_back:  () bool: the returned trajectory is the sequential one.
      states:     LSTMState of (T, B, H): the state trajectory returned, in the
                  inputs' time order (held at masked steps), for ``init=``.
    """

    iterations: Array
    converged: Array
    residual: Array
    fell_back: Array
    states: LSTMState


class _Config(NamedTuple):
    """The static options of one solve (hashable: a ``nondiff_argnums`` argument)."""

    jacobian: str
    damping: float
    tol: float
    max_iters: int
    fallback: bool
    tangent: str


@dataclasses.dataclass(frozen=True)
class Parallel:
    """``implementation=Parallel(...)``: the "parallel" implementation with
    :func:`parallel_scan`'s options, on :func:`jlstm.layer`, :func:`jlstm.stack`
    and the NNX modules. ``implementation="parallel"`` is ``Parallel()``.

    The fields are :func:`parallel_scan`'s options of the same names, checked
    when the object is made. ``report``, if given, is a host function called
    with each layer's :class:`ParallelInfo` (its ``states`` left None) through
    ``jax.debug.callback``, so also under ``jax.jit``: that is how a caller
    sees the iterations of a solve that :func:`jlstm.layer` does not return
    (the training loop logs them this way). A function with a report holds a
    host callback, which ``jax.export`` refuses: leave it None there.

    >>> import jlstm
    >>> params = jlstm.init_params(jax.random.key(0), 3, 8)
    >>> seen = []
    >>> hs, _ = jlstm.layer(params, jnp.ones((2, 64, 3)),
    ...                     implementation=Parallel(report=seen.append))
    >>> jax.effects_barrier()
    >>> int(seen[0].iterations) > 0, bool(seen[0].converged)
    (True, True)
    """

    jacobian: str = "quasi"
    damping: float = 0.0
    tol: float | None = None
    max_iters: int | None = None
    on_failure: str = "fallback"
    tangent: str = "sequential"
    report: Callable[[ParallelInfo], None] | None = None

    name: ClassVar[str] = "parallel"  # the implementation it names

    def __post_init__(self):
        _config(
            self.jacobian,
            self.damping,
            self.tol,
            self.max_iters,
            self.on_failure,
            self.tangent,
            1,
            np.dtype(np.float32),
        )
        if self.report is not None and not callable(self.report):
            raise TypeError(f"report must be a function or None; got {self.report!r}")

    def run(self, params, xs, h0, c0, mask, *, reverse: bool):
        """:func:`parallel_scan` with these options; its info goes to ``report``."""
        options = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        report = options.pop("report")
        hs, final, info = parallel_scan(params, xs, h0, c0, mask, reverse=reverse, **options)
        if report is not None:
            jax.debug.callback(report, info._replace(states=None))
        return hs, final


def parallel_scan(
    params: LSTMParams,
    xs: Array,
    h0: Array,
    c0: Array,
    mask: Array | None = None,
    *,
    reverse: bool = False,
    jacobian: str = "quasi",
    damping: float = 0.0,
    tol: float | None = None,
    max_iters: int | None = None,
    on_failure: str = "fallback",
    init: LSTMState | None = None,
    tangent: str = "sequential",
) -> tuple[Array, LSTMState, ParallelInfo]:
    """The LSTM layer over a time-major sequence, solved by (quasi-)Newton in parallel over time.

    Same semantics as the sequential layer: where ``mask`` is False the state
    is held and the output is zero; ``reverse=True`` runs the recurrence from
    t = T-1 down to 0 (outputs stay aligned with the inputs); ``h0``/``c0`` is
    the initial state.

    Args:
      params: one layer's :class:`~jlstm.cell.LSTMParams`, float32 or float64.
      xs: inputs ``(T, B, I)``; cast to the parameters' dtype.
      h0, c0: the initial state, each ``(B, H)``.
      mask: boolean ``(T, B)``, or None (all steps real).
      reverse: run from the last step to the first.
      jacobian: ``"quasi"`` (per-unit 2 x 2 blocks over (h_j, c_j)) or
        ``"full"`` (dense 2H x 2H, DEER). See the module docstring.
      damping: λ ≥ 0. The Newton step solves δ_t = J_t/(1+λ) δ_{t-1} - r_t,
        i.e. the Newton system (I - L J) δ = -r (L the shift by one step) with
        its subdiagonal scaled by 1/(1+λ), equivalently ((1+λ) I - L J) δ =
        -(1+λ) r: a Levenberg-style shift of the Newton matrix itself (not of
        its normal equations, as in ELK's Kalman-smoother form). λ = 0 is
        Newton, λ → ∞ the Picard/Jacobi step δ = -r. The root is the same for
        every λ; a larger λ keeps the products of J (which overflow when the
        recurrent weights are large) bounded, at the price of slower,
        linear convergence.
      tol: convergence when max |s_t - f_t(s_{t-1})| / (1 + |s_t|) ≤ tol over
        every t, batch row, unit, h and c. Default by dtype: 1e-6 (float32),
        1e-12 (float64).
      max_iters: cap on Newton steps; default ``min(T, 100)``. (T steps always
        suffice in exact arithmetic, whatever the Jacobian form.)
      on_failure: what happens when the iteration stops unconverged (the cap,
        or a NaN/Inf in the iterate or the residual):
        ``"fallback"``: return the sequential answer (a ``lax.scan`` over the
        cell, run only when needed), with ``info.fell_back`` set;
        ``"raise"``: raise ``RuntimeError`` when the result is concrete (eager
        calls). Under ``jax.jit``/``vmap`` a host callback raises instead,
        so the call fails with a ``JaxRuntimeError`` carrying the same
        message, and the outputs are NaN, so nothing downstream can mistake
        them for an answer.
      init: a guess trajectory, LSTMState of ``(T, B, H)`` arrays in the
        inputs' time order (for instance a previous call's ``info.states``).
        Default: the initial state held at every step. It changes the
        number of iterations only, never the answer, and is not differentiated.
      tangent: how derivatives solve the tangent recurrence:
        ``"sequential"`` (a matrix-free linear ``lax.scan`` of the cell's JVP,
        the default: O(T·B·H) memory, O(T·B·H²) work; on a CPU faster and
        several times smaller than dense, see benchmarks/PARALLEL.md) or
        ``"dense"`` (an associative scan over the exact dense Jacobians:
        O(log T) depth but O(T·B·H²) memory and O(T·B·H³) work, which only
        pays with many parallel cores and small H).

    Returns:
      ``(hs, final_state, info)``: hs ``(T, B, H)`` (zero at masked steps),
      the state after the last real step, and a :class:`ParallelInfo`.

    Differentiation: by the implicit function theorem at the solution, not
    through the iterations (``jax.custom_jvp``). The tangent of the
    trajectory satisfies ds_t = J_t ds_{t-1} + ∂f_t/∂θ dθ + ∂f_t/∂x dx_t with
    the exact J at the solution; the input terms are computed for all t at
    once, the recurrence by ``tangent``. Reverse mode is JAX's transpose of
    that linear solve (for ``"sequential"``: one reverse linear scan, the
    adjoint). jvp, grad, jacfwd, hessian and vmap all apply. ``init`` and
    ``info`` carry no derivative.

    Shapes:
      xs: (T, B, I), h0, c0: (B, H), mask: (T, B) | None
      -> hs: (T, B, H), final_state.h, .c: (B, H)

    >>> from jlstm.cell import init_params
    >>> params = init_params(jax.random.key(0), input_size=3, hidden_size=8)
    >>> zeros = jnp.zeros((2, 8))
    >>> hs, final, info = parallel_scan(params, jnp.ones((16, 2, 3)), zeros, zeros)
    >>> hs.shape, final.c.shape, bool(info.converged), bool(info.fell_back)
    ((16, 2, 8), (2, 8), True, False)
    """
    dtype = _check_params(params)
    xs, h0, c0, mask, init = _check_inputs(params, xs, h0, c0, mask, init, dtype)
    steps = xs.shape[0]
    cfg = _config(jacobian, damping, tol, max_iters, on_failure, tangent, steps, dtype)
    params = LSTMParams(*(jnp.asarray(a) for a in params))

    if reverse:
        xs = jnp.flip(xs, 0)
        mask = None if mask is None else jnp.flip(mask, 0)
        init = None if init is None else LSTMState(*(jnp.flip(a, 0) for a in init))
    if steps == 0:
        traj = LSTMState(*(jnp.zeros((0, *h0.shape), dtype) for _ in range(2)))
        stats = (jnp.int32(0), jnp.bool_(True), jnp.zeros((), dtype), jnp.bool_(False))
    else:
        hs_t, cs_t, *stats = _solve(cfg, params, xs, h0, c0, mask, init)
        traj = LSTMState(hs_t, cs_t)
    iterations, converged, residual, fell_back = stats

    if on_failure == "raise":
        traj = _raise_unless_converged(traj, converged, iterations, residual)
    final = LSTMState(h0, c0) if steps == 0 else LSTMState(traj.h[-1], traj.c[-1])
    hs = traj.h if mask is None else jnp.where(mask[:, :, None], traj.h, 0.0)
    if reverse:
        hs = jnp.flip(hs, 0)
        traj = LSTMState(*(jnp.flip(a, 0) for a in traj))
    return hs, final, ParallelInfo(iterations, converged, residual, fell_back, traj)


# --- validation --------------------------------------------------------------------------------


def _check_params(params) -> np.dtype:
    if not isinstance(params, LSTMParams):
        raise TypeError(f"params must be an LSTMParams; got {type(params).__name__}")
    dtypes = {np.dtype(jnp.result_type(a)) for a in params}
    if len(dtypes) != 1 or next(iter(dtypes)) not in DEFAULT_TOL:
        raise TypeError(
            "parallel_scan needs params all float32 or all float64; "
            f"got {sorted(str(d) for d in dtypes)}"
        )
    hidden = jnp.shape(params.w_h)[0]
    if jnp.shape(params.w_h) != (hidden, 4 * hidden) or jnp.shape(params.b) != (4 * hidden,):
        raise ValueError(
            "params.w_h must be (H, 4H) and params.b (4H,); "
            f"got {jnp.shape(params.w_h)} and {jnp.shape(params.b)}"
        )
    if jnp.ndim(params.w_x) != 2 or jnp.shape(params.w_x)[1] != 4 * hidden:
        raise ValueError(
            f"params.w_x must be (input_size, {4 * hidden}); got {jnp.shape(params.w_x)}"
        )
    return next(iter(dtypes))


def _check_inputs(params, xs, h0, c0, mask, init, dtype):
    input_size, hidden = params.w_x.shape[0], params.w_h.shape[0]
    xs = jnp.asarray(xs)
    if xs.ndim != 3 or xs.shape[-1] != input_size:
        raise ValueError(f"xs must be (T, B, {input_size}) (time-major); got shape {xs.shape}")
    steps, batch = xs.shape[:2]
    for name, a in (("h0", h0), ("c0", c0)):
        if jnp.shape(a) != (batch, hidden):
            raise ValueError(f"{name} must be ({batch}, {hidden}) (B, H); got {jnp.shape(a)}")
    if mask is not None:
        mask = jnp.asarray(mask)
        if mask.shape != (steps, batch):
            raise ValueError(f"mask must be ({steps}, {batch}) (T, B); got shape {mask.shape}")
        if mask.dtype != jnp.bool_:
            raise TypeError(f"mask must have dtype bool; got {mask.dtype}")
    if init is not None:
        if not isinstance(init, LSTMState):
            raise TypeError(f"init must be an LSTMState or None; got {type(init).__name__}")
        for name, a in zip(("h", "c"), init, strict=True):
            if jnp.shape(a) != (steps, batch, hidden):
                raise ValueError(
                    f"init.{name} must be ({steps}, {batch}, {hidden}) (T, B, H); "
                    f"got {jnp.shape(a)}"
                )
        init = LSTMState(*(jnp.asarray(a, dtype) for a in init))
    cast = lambda a: jnp.asarray(a).astype(dtype)
    return cast(xs), cast(h0), cast(c0), mask, init


def _config(jacobian, damping, tol, max_iters, on_failure, tangent, steps, dtype) -> _Config:
    if jacobian not in JACOBIANS:
        raise ValueError(f"jacobian must be one of {JACOBIANS}; got {jacobian!r}")
    if tangent not in TANGENTS:
        raise ValueError(f"tangent must be one of {TANGENTS}; got {tangent!r}")
    if on_failure not in ON_FAILURE:
        raise ValueError(f"on_failure must be one of {ON_FAILURE}; got {on_failure!r}")
    if not (isinstance(damping, int | float) and math.isfinite(damping) and damping >= 0):
        raise ValueError(f"damping must be a finite float >= 0; got {damping!r}")
    if tol is None:
        tol = DEFAULT_TOL[dtype]
    if not (isinstance(tol, int | float) and tol > 0):
        raise ValueError(f"tol must be a float > 0 or None; got {tol!r}")
    if max_iters is None:
        max_iters = max(1, min(steps, DEFAULT_MAX_ITERS))
    if not (isinstance(max_iters, int) and max_iters >= 0):
        raise ValueError(f"max_iters must be an integer >= 0 or None; got {max_iters!r}")
    return _Config(
        jacobian, float(damping), float(tol), max_iters, on_failure == "fallback", tangent
    )


def _raise_unless_converged(traj: LSTMState, converged, iterations, residual) -> LSTMState:
    """``on_failure="raise"``: raise now if concrete, else raise from the host and poison."""
    try:
        ok = bool(np.all(np.asarray(converged)))
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
        jax.debug.callback(_host_raise, converged, iterations, residual)
        nan = jnp.asarray(np.nan, traj.h.dtype)
        return LSTMState(*(jnp.where(converged, a, nan) for a in traj))
    if not ok:
        _host_raise(converged, iterations, residual)
    return traj


def _host_raise(converged, iterations, residual) -> None:
    if not np.all(converged):
        raise RuntimeError(
            "parallel_scan did not converge: "
            f"{np.asarray(iterations)} iterations, residual {np.asarray(residual)} "
            "(raise tol or max_iters, add damping, or use on_failure='fallback')"
        )


# --- the cell over all steps at once -----------------------------------------------------------


class _Lin(NamedTuple):
    """The cell's partial derivatives at each step, each (T, B, H).

    With a_k the gate pre-activations: ∂c/∂a_i = ci, ∂c/∂a_f = cf, ∂c/∂a_g = cg,
    ∂c/∂c_prev = f, ∂h/∂a_o = co, ∂h/∂c = k (through c_t).
    """

    ci: Array
    cf: Array
    cg: Array
    f: Array
    co: Array
    k: Array


def _input_gates(params: LSTMParams, xs: Array) -> Array:
    """x_t @ w_x + b for every step at once: (T, B, I) -> (T, B, 4H)."""
    xw = jnp.einsum("tbi,ig->tbg", xs, params.w_x, precision=RESIDUAL_PRECISION)
    return xw + params.b[None, None, :]


def _shift(first: Array, traj: Array) -> Array:
    """The previous state of every step: (B, H), (T, B, H) -> (T, B, H)."""
    return jnp.concatenate([first[None], traj[:-1]], axis=0)


def _cell_all(w_h: Array, xw: Array, h_prev: Array, c_prev: Array) -> tuple[Array, Array, _Lin]:
    """f_t(s_{t-1}) for all t at once, and its derivatives. Arrays (T, B, ·)."""
    gates = xw + jnp.einsum("tbh,hg->tbg", h_prev, w_h, precision=RESIDUAL_PRECISION)
    a_i, a_f, a_g, a_o = jnp.split(gates, 4, axis=-1)
    i, f, o = jax.nn.sigmoid(a_i), jax.nn.sigmoid(a_f), jax.nn.sigmoid(a_o)
    g = jnp.tanh(a_g)
    c = f * c_prev + i * g
    tc = jnp.tanh(c)
    h = o * tc
    lin = _Lin(
        ci=g * i * (1 - i),
        cf=c_prev * f * (1 - f),
        cg=i * (1 - g * g),
        f=f,
        co=tc * o * (1 - o),
        k=o * (1 - tc * tc),
    )
    return h, c, lin


def _gate_blocks(w_h: Array) -> Array:
    """w_h (H, 4H) -> (4, H_in, H_out): the recurrent matrix of each gate i, f, g, o."""
    hidden = w_h.shape[0]
    return jnp.moveaxis(w_h.reshape(hidden, 4, hidden), 1, 0)


def _hold(mask: Array | None, new: Array, old: Array) -> Array:
    """``new`` at real steps, ``old`` at masked ones; mask (T, B), arrays (T, B, ...)."""
    if mask is None:
        return new
    return jnp.where(mask.reshape(mask.shape + (1,) * (new.ndim - 2)), new, old)


# --- Jacobians and the affine scans ------------------------------------------------------------


def _quasi_blocks(lin: _Lin, w_h: Array, mask, scale: float):
    """Per unit the 2 x 2 block [[∂h/∂h, ∂h/∂c], [∂c/∂h, ∂c/∂c]] of J_t, each (T, B, H)."""
    d = jnp.diagonal(_gate_blocks(w_h), axis1=1, axis2=2)[:, None, None, :]  # (4, 1, 1, H)
    dc_dh = lin.ci * d[0] + lin.cf * d[1] + lin.cg * d[2]
    blocks = (lin.co * d[3] + lin.k * dc_dh, lin.k * lin.f, dc_dh, lin.f)
    one, zero = jnp.ones_like(lin.f), jnp.zeros_like(lin.f)
    blocks = tuple(
        _hold(mask, scale * a, e) for a, e in zip(blocks, (one, zero, zero, one), strict=True)
    )
    return blocks


def _dense_jacobian(lin: _Lin, w_h: Array, mask, scale: float) -> Array:
    """J_t over s = [h; c]: (T, B, 2H, 2H), rows the new state, columns the previous one."""
    w = _gate_blocks(w_h)  # (4, H_in, H_out)
    coef = jnp.stack([lin.ci, lin.cf, lin.cg], axis=2)  # (T, B, 3, H)
    dc_dh = jnp.einsum("tbkj,klj->tbjl", coef, w[:3])  # (T, B, H_out, H_in)
    dh_dh = lin.co[..., None] * w[3].T[None, None] + lin.k[..., None] * dc_dh
    eye = jnp.eye(lin.f.shape[-1], dtype=lin.f.dtype)[None, None]  # (1, 1, H, H)
    dh_dc = (lin.k * lin.f)[..., None] * eye
    dc_dc = lin.f[..., None] * eye
    jac = jnp.concatenate(
        [jnp.concatenate([dh_dh, dh_dc], -1), jnp.concatenate([dc_dh, dc_dc], -1)], -2
    )
    identity = jnp.eye(jac.shape[-1], dtype=jac.dtype)
    return _hold(mask, scale * jac, jnp.broadcast_to(identity, jac.shape))


def _scan_quasi(blocks, u_h: Array, u_c: Array) -> tuple[Array, Array]:
    """Solve x_t = A_t x_{t-1} + u_t, x_0 = 0, with A_t per-unit 2 x 2 blocks.

    The six numbers of each unit's affine map (a, b, c, d of A, then u) travel
    as one array (T, 6, B, H): one leaf for the scan to slice at each level
    (six leaves compiled 2-6x slower and ran up to 1.8x slower on CPU).
    """

    def compose(early, late):
        a, b, c, d, p, q = (early[:, n] for n in range(6))
        e, f, g, h, r, s = (late[:, n] for n in range(6))
        # [[e f] [g h]] @ [[a b] [c d]], and [[e f] [g h]] @ [p q] + [r s]
        out = (e * a + f * c, e * b + f * d, g * a + h * c, g * b + h * d)
        return jnp.stack([*out, e * p + f * q + r, g * p + h * q + s], axis=1)

    packed = jnp.stack([*blocks, u_h, u_c], axis=1)  # (T, 6, B, H)
    solved = jax.lax.associative_scan(compose, packed)
    return solved[:, 4], solved[:, 5]


def _scan_dense(jac: Array, u: Array) -> Array:
    """Solve x_t = J_t x_{t-1} + u_t, x_0 = 0; jac (T, B, D, D), u (T, B, D).

    Each affine map travels as one augmented matrix [J | u] (T, B, D, D + 1).
    """
    size = jac.shape[-1]
    last = (jnp.arange(size + 1) == size).astype(jac.dtype)[None, None, None, :]  # (1,1,1,D+1)

    def compose(early, late):
        # [J2 | u2] ∘ [J1 | u1] = [J2 J1 | J2 u1 + u2]
        return late[..., :size] @ early + late[..., size:] * last

    solved = jax.lax.associative_scan(compose, jnp.concatenate([jac, u[..., None]], axis=-1))
    return solved[..., size]


def _scan_dense_linear(jac: Array, u: Array) -> Array:
    """:func:`_scan_dense` with J and u as separate leaves, so that the scan is linear in u.

    (The tangent's reverse mode transposes it; the augmented [J | u] would
    make it bilinear in one array, which JAX cannot transpose.)
    """

    def compose(early, late):
        (a1, b1), (a2, b2) = early, late
        return a2 @ a1, jnp.einsum("...ij,...j->...i", a2, b1) + b2

    _, x = jax.lax.associative_scan(compose, (jac, u))
    return x


# --- the solve: Newton, with the sequential fallback, and its JVP ------------------------------


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _solve(cfg: _Config, params, xs, h0, c0, mask, init):
    """Forward-time trajectory (T, B, H) x 2 and the info scalars."""
    w_h = params.w_h
    xw = _input_gates(params, xs)  # (T, B, 4H)
    scale = 1.0 / (1.0 + cfg.damping)
    steps = xs.shape[0]

    def evaluate(traj_h, traj_c):
        h_prev, c_prev = _shift(h0, traj_h), _shift(c0, traj_c)
        f_h, f_c, lin = _cell_all(w_h, xw, h_prev, c_prev)
        u_h = _hold(mask, f_h, h_prev) - traj_h  # -r_t
        u_c = _hold(mask, f_c, c_prev) - traj_c
        err = jnp.maximum(
            jnp.max(jnp.abs(u_h) / (1 + jnp.abs(traj_h))),
            jnp.max(jnp.abs(u_c) / (1 + jnp.abs(traj_c))),
        )
        # A NaN or Inf anywhere in the iterate shows in u; report it as inf.
        finite = jnp.isfinite(u_h).all() & jnp.isfinite(u_c).all()
        return (u_h, u_c), lin, jnp.where(finite, err, jnp.inf)

    def newton_step(traj_h, traj_c, u, lin):
        if cfg.jacobian == "quasi":
            d_h, d_c = _scan_quasi(_quasi_blocks(lin, w_h, mask, scale), *u)
        else:
            jac = _dense_jacobian(lin, w_h, mask, scale)
            d = _scan_dense(jac, jnp.concatenate(u, axis=-1))
            d_h, d_c = jnp.split(d, 2, axis=-1)
        return traj_h + d_h, traj_c + d_c

    def running(carry):
        k, _, _, _, _, err = carry
        return (k < cfg.max_iters) & jnp.isfinite(err) & (err > cfg.tol)

    def body(carry):
        k, traj_h, traj_c, u, lin, _ = carry
        traj_h, traj_c = newton_step(traj_h, traj_c, u, lin)
        u, lin, err = evaluate(traj_h, traj_c)
        return k + 1, traj_h, traj_c, u, lin, err

    if init is None:
        init = LSTMState(*(jnp.broadcast_to(a, (steps, *a.shape)) for a in (h0, c0)))
    start = (jnp.int32(0), init.h, init.c, *evaluate(init.h, init.c))
    iterations, traj_h, traj_c, _, _, err = jax.lax.while_loop(running, body, start)
    converged = jnp.isfinite(err) & (err <= cfg.tol)

    fell_back = jnp.zeros((), jnp.bool_)
    if cfg.fallback:
        # A loop that runs at most once rather than lax.cond: under vmap a
        # batched predicate turns cond into select (both branches run), while
        # a while_loop runs its body only if some batch element needs it.
        def sequential(carry):
            return jnp.zeros((), jnp.bool_), *_sequential(params, xs, h0, c0, mask)

        _, traj_h, traj_c = jax.lax.while_loop(
            lambda carry: carry[0], sequential, (~converged, traj_h, traj_c)
        )
        fell_back = ~converged
    return traj_h, traj_c, iterations, converged, err, fell_back


def _sequential(params, xs, h0, c0, mask) -> tuple[Array, Array]:
    """The exact reference: ``lax.scan`` over the cell, states held where masked."""

    def step(state, inputs):
        x, m = inputs
        new, _ = cell(params, state, x)
        if m is not None:
            new = LSTMState(*(jnp.where(m[:, None], a, b) for a, b in zip(new, state, strict=True)))
        return new, new

    _, traj = jax.lax.scan(step, LSTMState(h0, c0), (xs, mask))
    return traj.h, traj.c


@_solve.defjvp
def _solve_jvp(cfg: _Config, primals, tangents):
    params, xs, h0, c0, mask, init = primals
    d_params, d_xs, d_h0, d_c0, _, _ = tangents
    out = _solve(cfg, *primals)
    traj_h, traj_c, iterations, converged, err, fell_back = out

    h_prev, c_prev = _shift(h0, traj_h), _shift(c0, traj_c)
    _, _, lin = _cell_all(params.w_h, _input_gates(params, xs), h_prev, c_prev)
    # The input terms ∂f/∂θ dθ + ∂f/∂x dx, through the gates, all steps at once.
    d_gates = (
        jnp.einsum("tbi,ig->tbg", d_xs, params.w_x)
        + jnp.einsum("tbi,ig->tbg", xs, d_params.w_x)
        + jnp.einsum("tbh,hg->tbg", h_prev, d_params.w_h)
        + d_params.b[None, None, :]
    )  # (T, B, 4H)
    solve = _tangent_sequential if cfg.tangent == "sequential" else _tangent_dense
    d_h, d_c = solve(params.w_h, lin, d_gates, d_h0, d_c0, mask)

    float0 = lambda a: np.zeros(np.shape(a), jax.dtypes.float0)
    d_out = (
        d_h,
        d_c,
        float0(iterations),
        float0(converged),
        jnp.zeros_like(err),
        float0(fell_back),
    )
    return out, d_out


def _tangent_sequential(w_h, lin: _Lin, d_gates, d_h0, d_c0, mask):
    """ds_t = J_t ds_{t-1} + (input terms), as a linear lax.scan of the cell's JVP."""

    def step(carry, inputs):
        d_h, d_c = carry
        g, ci, cf, cg, f, co, k, m = inputs
        da_i, da_f, da_g, da_o = jnp.split(g + d_h @ w_h, 4, axis=-1)  # (B, H) each
        new_c = ci * da_i + cf * da_f + cg * da_g + f * d_c
        new_h = co * da_o + k * new_c
        if m is not None:
            new_h = jnp.where(m[:, None], new_h, d_h)
            new_c = jnp.where(m[:, None], new_c, d_c)
        return (new_h, new_c), (new_h, new_c)

    _, (d_h, d_c) = jax.lax.scan(step, (d_h0, d_c0), (d_gates, *lin, mask))
    return d_h, d_c


def _tangent_dense(w_h, lin: _Lin, d_gates, d_h0, d_c0, mask):
    """The same recurrence by an associative scan over the exact dense J_t."""
    g_i, g_f, g_g, g_o = jnp.split(d_gates, 4, axis=-1)
    u_c = lin.ci * g_i + lin.cf * g_f + lin.cg * g_g
    u_h = lin.co * g_o + lin.k * u_c
    u = jnp.concatenate([_hold(mask, u_h, 0 * u_h), _hold(mask, u_c, 0 * u_c)], axis=-1)
    jac = _dense_jacobian(lin, w_h, mask, 1.0)  # (T, B, 2H, 2H)
    s0 = jnp.concatenate([d_h0, d_c0], axis=-1)  # (B, 2H)
    u = u.at[0].add(jnp.einsum("bij,bj->bi", jac[0], s0))
    d = _scan_dense_linear(jac, u)
    return tuple(jnp.split(d, 2, axis=-1))
