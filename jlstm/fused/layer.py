"""The LSTM layer's fast implementations ("xla" and "cpu_kernel"): one ``jax.custom_jvp``
over the whole sequence, built from the loops of :mod:`jlstm.fused.primitives`.

What it does differently from the reference (``lax.scan`` over
:meth:`jlstm.cells.LSTM.step`, differentiated by JAX), and why (measured on
2-core CPUs; ``benchmarks/RESULTS.md``):

* **Derivatives as cuDNN computes them, for every transformation.** The JVP
  rule runs the forward once, saving each step's activated gates, c_t and h_t,
  and writes the tangent of the pre-activations as ``dA_t = U_t + dh_{t-1}
  W_h``: ``U = dX W_x + X dW_x + H_prev dW_h + db`` is four products over all
  T * B rows at once, and only ``dh_{t-1} W_h`` is inside the loop
  (``tangent_p``). Reverse mode transposes that: the adjoint loop
  (``adjoint_p``, one (B, 4H) x (4H, H) product per step) gives dG, and the
  transposed products give ``dW_x = X^T dG``, ``dW_h = H_prev^T dG``, ``db =
  sum dG`` and ``dX = dG W_x^T`` as single large matmuls. So ``jvp``,
  ``jacfwd``, ``grad``, ``hessian`` and their compositions all run the fast
  loops, and their higher derivatives are those of the scans.
* **One transcendental for all four gates** (the tanh form of
  :mod:`jlstm.cells.lstm`).
* **The mask costs nothing without one**: no ``where`` in the loops then.
* **Both first-order loops in a CPU kernel** with ``kernel=True`` on the CPU
  backend (:mod:`jlstm.fused.kernel`); elsewhere the same primitives lower to
  ``lax.scan``.
* **No transposes around the kernels**: batch-first callers hand the forward
  xs as (B, T, I) and get hs as (B, T, H) as they lie (``batch_major``).

Shapes: one flat batch axis; xs (T, B, I), or (B, T, I) with ``batch_major``;
mask (T, B) | None; h0, c0 (B, H).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jlstm.cells.lstm import LSTMParams, LSTMState
from jlstm.fused import loops
from jlstm.fused.primitives import forward_p, tangent_p

Array = jax.Array
SymbolicZero = jax.custom_derivatives.SymbolicZero

# Hidden size from which the all-steps products contract (T, B) in place on one
# device too: layer fwd+bwd 3-D form / 2-D form measured 0.89-0.98 at H = 512
# and 1024 (S4 median 0.94), 0.99-1.01 at H = 256-384, 1.02-1.07 at H = 64-128.
IN_PLACE_HIDDEN = 512


class Config(NamedTuple):
    """Static choices of one call (hashable: each gets its own custom_jvp)."""

    reverse: bool
    compute: np.dtype  # the matmuls' dtype
    unroll: int
    has_mask: bool
    has_resets: bool  # an episode starts (the state before the step is zero) where True
    kernel: bool  # lower the loops to the CPU kernel on the CPU backend
    batch_major: bool  # xs (B, T, I) and hs (B, T, H) at the boundary
    # The all-steps products contract (T, B) as they lie, instead of reshaping to
    # (T * B, .): with the batch split over devices each device then sums its own
    # rows and one all-reduce follows; on one device it is faster from IN_PLACE_HIDDEN.
    batch_in_place: bool


def run(
    params: LSTMParams,
    xs: Array,
    state: LSTMState,
    mask: Array | None,
    *,
    resets: Array | None = None,
    reverse: bool,
    unroll: int,
    dtype,
    batch_major: bool,
    kernel: bool,
) -> tuple[Array, LSTMState]:
    """The layer; same contract as the reference loop of :func:`jlstm.layer`.

    ``resets`` (T, B) bool: where True the state before the step is zero."""
    hidden = state.h.shape[-1]
    config = Config(
        reverse=bool(reverse),
        compute=np.dtype(params.w_h.dtype if dtype is None else dtype),
        unroll=int(unroll),
        has_mask=mask is not None,
        has_resets=resets is not None,
        kernel=bool(kernel),
        batch_major=bool(batch_major),
        batch_in_place=jax.device_count() > 1 or hidden >= IN_PLACE_HIDDEN,
    )
    sd = state.c.dtype
    weights = (a.astype(sd) for a in params)
    hs, h, c = _run(*weights, xs.astype(sd), state.h, state.c, mask, resets, config)
    return hs, LSTMState(h, c)


@functools.partial(jax.jit, static_argnums=8)
def _run(w_x, w_h, b, xs, h0, c0, mask, resets, config):
    # jit: an eager call compiles the layer as one program (as it would be
    # inside the caller's jit) instead of dispatching its pieces one by one.
    return _layer_fn(config)(w_x, w_h, b, xs, h0, c0, mask, resets)


def _loop_params(config: Config) -> dict:
    return dict(
        reverse=config.reverse, unroll=config.unroll, compute=config.compute, kernel=config.kernel
    )


@functools.cache
def _layer_fn(config: Config):
    """One ``custom_jvp`` function per static configuration."""
    loop = _loop_params(config)
    loop = dict(loop, has_mask=config.has_mask, has_resets=config.has_resets)
    forward = dict(loop, batch_major=config.batch_major, fused_gates=config.kernel)

    def extras(mask, resets):
        return (*((mask,) if config.has_mask else ()), *((resets,) if config.has_resets else ()))

    @jax.custom_jvp
    def layer(w_x, w_h, b, xs, h0, c0, mask, resets):
        masks = extras(mask, resets)
        return tuple(forward_p.bind(xs, w_x, w_h, b, h0, c0, *masks, save=False, **forward))

    @functools.partial(layer.defjvp, symbolic_zeros=True)
    def layer_jvp(primals, tangents):
        w_x, w_h, b, xs, h0, c0, mask, resets = primals
        dw_x, dw_h, db, dxs, dh0, dc0, _, _ = tangents
        masks = extras(mask, resets)
        h, c, *saved = forward_p.bind(xs, w_x, w_h, b, h0, c0, *masks, save=True, **forward)
        *gates, cs, hstate = saved  # time-major (T, B, .)
        hs = hstate if mask is None else jnp.where(mask[:, :, None], hstate, 0.0)
        if config.batch_major:
            hs = jnp.swapaxes(hs, 0, 1)
            xs, dxs = jnp.swapaxes(xs, 0, 1), _swap(dxs)

        # U: every term of the pre-activations' tangent that does not pass through h_{t-1}.
        h_prev = loops.shift_in(h0, hstate, config.reverse)  # (T, B, H)
        if resets is not None:
            h_prev = jnp.where(resets[:, :, None], jnp.zeros_like(h_prev), h_prev)
        products = ((dxs, w_x), (xs, dw_x), (h_prev, dw_h))
        terms = [_rows(a, w, config) for a, w in products if not _zero(a) and not _zero(w)]
        if not _zero(db):
            terms.append(jnp.broadcast_to(db.astype(c0.dtype), (*cs.shape[:2], db.shape[0])))
        u = (
            sum(terms[1:], terms[0])
            if terms
            else jnp.zeros((*cs.shape[:2], 4 * h0.shape[-1]), c0.dtype)
        )
        dh0 = jnp.zeros_like(h0) if _zero(dh0) else dh0
        dc0 = jnp.zeros_like(c0) if _zero(dc0) else dc0
        dys, dh, dc = tangent_p.bind(u, dh0, dc0, w_h, c0, cs, *gates, *masks, **loop)
        if config.batch_major:
            dys = jnp.swapaxes(dys, 0, 1)
        return (hs, h, c), (dys, dh, dc)

    return layer


def _zero(t) -> bool:
    return isinstance(t, SymbolicZero)


def _swap(t):
    return t if _zero(t) else jnp.swapaxes(t, 0, 1)


def _rows(a: Array, w: Array, config: Config) -> Array:
    """``a (T, B, K) @ w (K, 4H)`` over all rows at once, in the compute dtype.

    With ``config.batch_in_place`` the product contracts K with (T, B) as they
    lie, so its transpose (``a^T dG``) contracts (T, B) in place; otherwise the
    rows are reshaped to (T * B, K), a free reshape, and XLA:CPU's 2-D product
    reads the transposed operand as it lies, which small H repays.
    """
    sd = loops_state_dtype(a, w)
    a, w = a.astype(config.compute), w.astype(config.compute)
    if config.batch_in_place:
        return lax.dot_general(a, w, (((2,), (0,)), ((), ())), preferred_element_type=sd)
    flat = jnp.matmul(a.reshape(-1, a.shape[-1]), w, preferred_element_type=sd)
    return flat.reshape(*a.shape[:2], w.shape[-1])


def loops_state_dtype(a, w):
    return jnp.float64 if jnp.result_type(a, w) == jnp.float64 else jnp.float32
