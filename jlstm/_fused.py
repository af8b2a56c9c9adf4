"""The layer's fast path: one ``jax.custom_vjp`` over the whole sequence.

:func:`jlstm.layer.layer` runs this by default; ``jlstm.layer._scan_reference``
is the plain path (``lax.scan`` over :func:`~jlstm.cell.cell`, differentiated
by JAX) that it must equal, in values and gradients, to float tolerance.

What it does differently from the plain path, and why (measured on a 2-core
AVX-512 CPU; see ``benchmarks/RESULTS.md``):

* **Backward as cuDNN does it.** Autodiff of a scan computes the weight
  gradients step by step, two small products per step. Here the reverse scan
  computes only what the recurrence needs, the pre-activation gradients dG_t
  (one (B, 4H) x (4H, H) product per step), and the weight and input
  gradients follow as four large products over all T * B rows at once::

      dW_x = X^T dG     dW_h = H_prev^T dG     db = sum dG     dX = dG W_x^T

* **Nothing recomputed.** The forward saves each step's activated gates, c_t
  and h_t (see ``_G``); the backward writes dG over the gates.
* **One transcendental for all four gates.** sigmoid(a) = (1 + tanh(a / 2)) / 2,
  so the i, f and o columns of the weights are halved once per call and a
  single tanh over the contiguous (B, 4H) pre-activations gives all four
  gates; XLA's sigmoid (an exp and a divide) is slower.
* **The mask costs nothing without one.** Without ``lengths``/``mask`` the
  step has no ``where``; with one, padded steps hold the state and their
  gate gradients are zero.
* **Both loops in a CPU kernel.** On the CPU backend, with float32 compute
  and one device, the forward and the reverse loop each run as one XLA FFI
  custom call (:mod:`jlstm._cpu_kernel`, ``jlstm/csrc/lstm_cpu.cc``) instead
  of a ``lax.scan``: the same arithmetic, with the step's product split over
  two threads (XLA:CPU runs it on one) and the gate arithmetic done on the
  product's registers. Other platforms, and machines where the kernel cannot
  be built, run the scans below; the large all-steps products stay with XLA.
* **No transposes around the kernels.** Batch-first callers (``layer``'s
  default) hand the kernels xs as (B, T, I), and the forward writes hs as
  (B, T, H): the kernels read a row of a step with a stride instead of
  reading a time-major copy (``batch_major``). Inside the custom VJP's rules
  everything is time-major, so the backward is unchanged.
* ``remat=True`` keeps only the state at every ``k``-th step (k about sqrt(T))
  and recomputes one segment at a time in the backward pass, so memory for
  long sequences stays O(T / k + k) steps instead of O(T).

A custom VJP has no forward-mode rule: ``jax.jvp``/``jax.jacfwd`` through the
layer need the plain path (``jlstm._fused.ENABLED = False`` before tracing).
Reverse mode, including reverse over reverse, ``jit`` and ``vmap`` all work.

Shapes, everywhere in this module: time-major, one flat batch axis.
``xs: (T, B, I)``, ``mask: (T, B) | None``, ``h0, c0: (B, H)``.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jlstm import _cpu_kernel
from jlstm.cell import LSTMParams, LSTMState

Array = jax.Array

# Off switch for tests and benchmarks (the plain path then runs everywhere).
ENABLED = True

# Input width from which the residual-free forward uses two products (see _forward).
_SPLIT_INPUT = 128

# Hidden size from which the weight gradients contract (T, B) in place on one
# device too (see _weight_grads): layer fwd+bwd 3-D form / 2-D form measured
# 0.89-0.98 at H = 512 and 1024 (S4 median 0.94), 0.99-1.01 at H = 256-384,
# 1.02-1.07 at H = 64-128 (S1, S3).
_IN_PLACE_HIDDEN = 512

# What the forward saves, in this order: the activated gates, and c and h after
# each step ((T, B, H) each). The gates are in tanh form (t_i, t_f, t_g, t_o;
# see _forward) and come as one (T, B, 4H) array where the CPU kernels run
# (config.kernel): their backward writes dG over it in place, so it needs no
# fresh (T, B, 4H) buffer, which at S4 saved 128 MiB of first-touch page
# faults a call. Elsewhere they are four (T, B, H) arrays: XLA:CPU's reverse
# scan reads those with contiguous dynamic slices, 1.3-1.7x faster than
# slicing gates out of one (T, B, 4H) array per step.
_G, _C, _H = range(3)


def supported(params: LSTMParams, xs: Array, state: LSTMState, dtype) -> bool:
    """Whether the fast path handles this call (else the plain path runs)."""
    floats = (np.dtype(jnp.float32), np.dtype(jnp.float64))
    if any(np.dtype(p.dtype) not in floats for p in params):
        return False
    if len({np.dtype(p.dtype) for p in params}) != 1:
        return False
    if np.dtype(state.c.dtype) not in floats or state.c.dtype != state.h.dtype:
        return False
    if dtype is not None and np.dtype(dtype) not in (*floats, np.dtype(jnp.bfloat16)):
        return False
    return all(n > 0 for n in xs.shape)  # an empty loop gains nothing


def fused_scan(
    params: LSTMParams,
    xs: Array,
    state: LSTMState,
    mask: Array | None,
    *,
    reverse: bool,
    unroll: int = 1,
    remat: bool = False,
    dtype=None,
    batch_major: bool = False,
) -> tuple[Array, LSTMState]:
    """The whole layer with a custom VJP; same contract as ``layer._scan``.

    With ``batch_major``, ``xs`` is (B, T, I) and ``hs`` (B, T, H): the CPU
    kernels read and write them as they lie (a forward without the two
    transposing copies measured 4-5% faster at S4); elsewhere they are
    transposed here, as the caller would.

    Shapes:
      xs: (T, B, I), mask: (T, B) | None, state: (B, H) -> hs: (T, B, H)
    """
    steps, batch, inputs = xs.shape
    if batch_major:
        batch, steps = steps, batch
    hidden = state.h.shape[-1]
    compute = np.dtype(params.w_h.dtype if dtype is None else dtype)
    kernel = _kernel_applies(compute, state.c.dtype, batch, inputs, hidden)
    config = _Config(
        reverse=bool(reverse),
        compute=compute,
        unroll=int(unroll),
        segment=_segment_length(steps) if remat else 0,
        batch_in_place=jax.device_count() > 1 or hidden >= _IN_PLACE_HIDDEN,
        kernel=kernel,
        batch_major=batch_major and kernel and not remat,
    )
    run = batch_major_io(_run) if batch_major and not config.batch_major else _run
    hs, h, c = run(params, xs.astype(state.c.dtype), state.h, state.c, mask, config)
    return hs, LSTMState(h, c)


@functools.partial(jax.jit, static_argnums=5)
def _run(params, xs, h0, c0, mask, config):
    # jit: an eager call compiles the layer as one program (as it would be
    # inside the caller's jit) instead of dispatching its pieces one by one.
    return _layer_fn(config)(params, xs, h0, c0, mask)


class _Config(NamedTuple):
    """Static choices of one call (hashable: each gets its own custom_vjp)."""

    reverse: bool
    compute: np.dtype  # the matmuls' dtype
    unroll: int
    segment: int  # 0: save every step; k > 0: checkpoint the state every k steps (remat)
    batch_in_place: bool = False  # weight gradients contract (T, B) unreshaped (see _weight_grads)
    kernel: bool = False  # both loops run jlstm._cpu_kernel on the CPU backend
    # xs and hs are (B, T, .) at the custom VJP's boundary (with kernel, without
    # remat); everything inside the VJP rules is time-major.
    batch_major: bool = False


def _kernel_applies(compute, state_dtype, batch: int, inputs: int, hidden: int) -> bool:
    """Whether the loops call the CPU kernels: float32 throughout, one device, and
    a shape they are faster at (see ``_cpu_kernel.usable``).

    With several devices the batch is sharded, and XLA cannot split a custom
    call by rows: the ``lax.scan`` loops keep each device on its own rows.
    """
    f32 = np.dtype(jnp.float32)
    if compute != f32 or np.dtype(state_dtype) != f32 or jax.device_count() > 1:
        return False
    return _cpu_kernel.usable(batch, inputs, hidden)


def _segment_length(steps: int) -> int:
    """Checkpoint spacing for remat: about sqrt(T), at least 1."""
    return max(1, math.isqrt(steps))


# --------------------------------------------------------------------------- forward


def _gate_scale(hidden: int, dtype) -> Array:
    """1/2 on the sigmoid gates (i, f, o), 1 on g: a' = a * scale, one tanh for all."""
    half, one = jnp.full((hidden,), 0.5, dtype), jnp.ones((hidden,), dtype)
    return jnp.concatenate([half, half, one, half])  # (4H,)


def _scaled_weights(params: LSTMParams, config: _Config, sd):
    """[w_x; w_h] with the sigmoid columns halved, in the matmul dtype; b likewise."""
    hidden = params.w_h.shape[0]
    scale = _gate_scale(hidden, sd)
    w = jnp.concatenate([params.w_x, params.w_h], axis=0).astype(sd) * scale[None]
    w, b = w.astype(config.compute), params.b.astype(sd) * scale  # (I + H, 4H), (4H,)
    # The barrier keeps XLA from constant-folding weights that are closed over
    # in a jit, so results do not depend on whether the weights are constants.
    return lax.optimization_barrier((w, b))


def _forward(params, xs, h0, c0, mask, config: _Config, *, save: bool):
    """The forward. Returns (hs, h_T, c_T, saved), ``saved`` as ``_G`` says if ``save``.

    ``saved`` holds, per step, the activated gates in their tanh form (t_i,
    t_f, t_g, t_o, with sigmoid = (1 + t) / 2) and the state after the step
    (c, h; held where masked). With ``config.kernel`` the CPU backend runs
    :mod:`jlstm._cpu_kernel`, other platforms the scan.
    """
    w, b = _scaled_weights(params, config, c0.dtype)
    scan = functools.partial(_forward_scan, config=config, save=save)
    if config.batch_major:
        scan = batch_major_io(scan)
    if not config.kernel:
        return scan(params, xs, h0, c0, mask, w, b)
    return _cpu_kernel.forward(
        params,
        xs,
        h0,
        c0,
        mask,
        w,
        b,
        reverse=config.reverse,
        save=save,
        scan=scan,
        batch_major=config.batch_major,
    )


def batch_major_io(fn):
    """A time-major loop ``fn(params, xs (T, B, I), ...) -> (hs (T, B, H), ...)`` taking
    xs as (B, T, I) and returning hs as (B, T, H), by transposing around it."""

    def run(params, xs, *args, **kwargs):
        hs, *rest = fn(params, jnp.swapaxes(xs, 0, 1), *args, **kwargs)
        return (jnp.swapaxes(hs, 0, 1), *rest)

    return run


def _forward_scan(params, xs, h0, c0, mask, w, b, *, config: _Config, save: bool):
    """:func:`_forward` as a ``lax.scan``; ``w``, ``b`` from :func:`_scaled_weights`."""
    sd = c0.dtype
    hidden = h0.shape[-1]

    # Without residuals and with a wide input (I >= _SPLIT_INPUT), two products
    # x @ w_x + h @ w_h and per-gate sigmoids measured faster (S2: ~10%) than one
    # product on [x, h]; with a narrow input the concatenated form wins (S3: ~7%).
    split = not save and xs.shape[-1] >= _SPLIT_INPUT
    if split:
        w_x, w_h = (p.astype(config.compute) for p in (params.w_x, params.w_h))
        b_plain = params.b.astype(sd)

    def step(carry, inputs):
        h, c = carry
        x, m = inputs if mask is not None else (inputs, None)
        if split:
            a = jnp.matmul(x.astype(config.compute), w_x, preferred_element_type=sd)
            a = a + jnp.matmul(h.astype(config.compute), w_h, preferred_element_type=sd)
            ai, af, ag, ao = (a[:, k * hidden : (k + 1) * hidden] for k in range(4))
            bi, bf, bg, bo = (b_plain[None, k * hidden : (k + 1) * hidden] for k in range(4))
            c_new = jax.nn.sigmoid(af + bf) * c + jax.nn.sigmoid(ai + bi) * jnp.tanh(ag + bg)
            h_new = jax.nn.sigmoid(ao + bo) * jnp.tanh(c_new)
        else:
            z = jnp.concatenate([x, h], axis=-1).astype(config.compute)  # (B, I + H)
            t = jnp.tanh(jnp.matmul(z, w, preferred_element_type=sd) + b[None])  # (B, 4H)
            ti, tf, tg, to = (t[:, k * hidden : (k + 1) * hidden] for k in range(4))
            c_new = (0.5 * tf + 0.5) * c + (0.5 * ti + 0.5) * tg
            h_new = (0.5 * to + 0.5) * jnp.tanh(c_new)
        if m is not None:
            m = m[:, None]  # (B, 1)
            c_new = jnp.where(m, c_new, c)
            h_new = jnp.where(m, h_new, h)
        if save:
            gates = t if config.kernel else (ti, tf, tg, to)  # (B, 4H) or four (B, H)
            return (h_new, c_new), (gates, c_new, h_new)
        y = h_new if m is None else jnp.where(m, h_new, jnp.zeros_like(h_new))
        return (h_new, c_new), y

    inputs = xs if mask is None else (xs, mask)
    (h, c), out = lax.scan(step, (h0, c0), inputs, reverse=config.reverse, unroll=config.unroll)
    if not save:
        return out, h, c, None
    hs = out[_H]  # (T, B, H): the state; the output is zero where masked
    if mask is not None:
        hs = jnp.where(mask[:, :, None], hs, jnp.zeros_like(hs))
    return hs, h, c, out


# --------------------------------------------------------------------------- backward


def _backward_scan(params, saved, dys, dh, dc, c_before, mask, config: _Config):
    """Reverse of the forward scan over one stretch of steps: the recurrence only.

    ``saved`` is what the forward kept (see ``_G``); ``c_before``
    the cell state before the stretch's first step (in scan order). Returns
    dG (T, B, 4H), the gradients of the (unscaled) gate pre-activations, and
    (dh, dc) before the stretch. With ``config.kernel`` the CPU backend runs
    :mod:`jlstm._cpu_kernel`, other platforms the scan.
    """
    scan = functools.partial(_backward_loop, config=config)
    if not config.kernel:
        return scan(params, saved, dys, dh, dc, c_before, mask)
    return _cpu_kernel.backward(
        params, saved, dys, dh, dc, c_before, mask, reverse=config.reverse, scan=scan
    )


def _backward_loop(params, saved, dys, dh, dc, c_before, mask, *, config: _Config):
    """:func:`_backward_scan` as a reverse ``lax.scan``."""
    steps, _, hidden = saved[_C].shape
    sd = dh.dtype
    w_hT = params.w_h.T.astype(config.compute)  # (4H, H), materialised once
    previous = 1 if config.reverse else -1  # where the step before lies in the arrays
    cs = saved[_C]

    def step(carry, inputs):
        dh, dc = carry
        if mask is not None:
            (dy, gates, c, k), m = inputs
        else:
            dy, gates, c, k = inputs
        ti, tf, tg, to = _gate_parts(gates, hidden)
        kp = k + previous
        c_prev = lax.dynamic_index_in_dim(cs, jnp.clip(kp, 0, steps - 1), 0, keepdims=False)
        c_prev = jnp.where((kp < 0) | (kp >= steps), c_before, c_prev)
        tc = jnp.tanh(c)
        dhc = dh + dy
        dcc = dc + dhc * (0.5 * to + 0.5) * (1 - tc * tc)
        # d(act)/d(pre-activation): sigmoid' = (1 - t^2) / 4 with t = tanh(a / 2); tanh' = 1 - t^2
        dgates = jnp.concatenate(
            [
                (0.25 * (1 - ti * ti)) * dcc * tg,
                (0.25 * (1 - tf * tf)) * dcc * c_prev,
                (1 - tg * tg) * dcc * (0.5 * ti + 0.5),
                (0.25 * (1 - to * to)) * dhc * tc,
            ],
            axis=-1,
        )  # (B, 4H)
        dc_new = dcc * (0.5 * tf + 0.5)
        dh_new = jnp.matmul(dgates.astype(config.compute), w_hT, preferred_element_type=sd)
        if mask is not None:
            m = m[:, None]
            dgates = jnp.where(m, dgates, jnp.zeros_like(dgates))
            dh_new = jnp.where(m, dh_new, dh)
            dc_new = jnp.where(m, dc_new, dc)
        return (dh_new, dc_new), dgates

    inputs = (dys, saved[_G], cs, jnp.arange(steps))
    if mask is not None:
        inputs = (inputs, mask)
    (dh, dc), dgates = lax.scan(
        step, (dh, dc), inputs, reverse=not config.reverse, unroll=config.unroll
    )
    return dgates, dh, dc


def _gate_parts(gates, hidden: int):
    """t_i, t_f, t_g, t_o (B, H) of one step, from either layout of the saved gates."""
    if isinstance(gates, tuple):
        return gates
    return tuple(gates[:, k * hidden : (k + 1) * hidden] for k in range(4))


def _shift_in(h0: Array, hs: Array, reverse: bool) -> Array:
    """The state before each step, in array order: (T, B, H) -> (T, B, H)."""
    if reverse:
        return jnp.concatenate([hs[1:], h0[None]], axis=0)
    return jnp.concatenate([h0[None], hs[:-1]], axis=0)


def _weight_grads(xs, h_prev, dgates, params, config: _Config):
    """All-steps products: dW_x = X^T dG, dW_h = H_prev^T dG, db, dX = dG W_x^T.

    With ``config.batch_in_place`` the products contract the (T, B) axes as they
    lie: with B split over devices each device sums its own rows and one
    all-reduce follows (reshaped to (T*B, ...), the partitioner gathers the
    whole batch onto every device first); on one device it is also the faster
    form from H = _IN_PLACE_HIDDEN. Otherwise the rows are reshaped to
    (T*B, ...), a free reshape, and XLA:CPU's 2-D product reads the transposed
    operand as it lies, where the 3-D contraction first copies X and H_prev
    transposed, which small H does not repay.
    """
    sd = dgates.dtype
    dg, x, h = (a.astype(config.compute) for a in (dgates, xs, h_prev))
    if not config.batch_in_place:
        dg, x, h = (a.reshape(-1, a.shape[-1]) for a in (dg, x, h))
    rows = tuple(range(dg.ndim - 1))  # (T*B,) or (T, B)
    over_rows = ((rows, rows), ((), ()))
    dw_x = lax.dot_general(x, dg, over_rows, preferred_element_type=sd)  # (I, 4H)
    dw_h = lax.dot_general(h, dg, over_rows, preferred_element_type=sd)  # (H, 4H)
    db = dgates.sum(axis=(0, 1))
    w_x = params.w_x.astype(config.compute)
    dxs = lax.dot_general(dg, w_x, (((dg.ndim - 1,), (1,)), ((), ())), preferred_element_type=sd)
    return dw_x, dw_h, db, dxs.reshape(xs.shape)  # dX: (T, B, I)


# --------------------------------------------------------------------------- custom VJP


@functools.cache
def _layer_fn(config: _Config):
    """One ``custom_vjp`` function per static configuration."""

    @jax.custom_vjp
    def run(params, xs, h0, c0, mask):
        hs, h, c, _ = _forward(params, xs, h0, c0, mask, config, save=False)
        return hs, h, c

    if config.segment:
        run.defvjp(*_remat_rules(config))
    else:
        run.defvjp(*_stored_rules(config))
    return run


def _finish(params, xs, h0, c0, dw_x, dw_h, db, dxs, dh, dc):
    grads = LSTMParams(
        dw_x.astype(params.w_x.dtype), dw_h.astype(params.w_h.dtype), db.astype(params.b.dtype)
    )
    return grads, dxs.astype(xs.dtype), dh.astype(h0.dtype), dc.astype(c0.dtype), None


def _stored_rules(config: _Config):
    """Save every step's gates and state in the forward; one reverse scan in the backward."""

    def fwd(params, xs, h0, c0, mask):
        hs, h, c, saved = _forward(params, xs, h0, c0, mask, config, save=True)
        return (hs, h, c), (params, xs, h0, c0, mask, saved)

    def bwd(residuals, cotangents):
        params, xs, h0, c0, mask, saved = residuals
        dys, dh, dc = cotangents
        if config.batch_major:  # the backward runs time-major
            xs, dys = jnp.swapaxes(xs, 0, 1), jnp.swapaxes(dys, 0, 1)
        dgates, dh, dc = _backward_scan(params, saved, dys, dh, dc, c0, mask, config)
        h_prev = _shift_in(h0, saved[_H], config.reverse)
        dw_x, dw_h, db, dxs = _weight_grads(xs, h_prev, dgates, params, config)
        if config.batch_major:
            dxs = jnp.swapaxes(dxs, 0, 1)
        return _finish(params, xs, h0, c0, dw_x, dw_h, db, dxs, dh, dc)

    return fwd, bwd


def _remat_rules(config: _Config):
    """Checkpoint the state every ``config.segment`` steps; recompute segment by segment.

    The sequence is cut into N segments of k steps (the last array-order
    segment may be padded with masked steps, which hold the state and so
    change nothing). The forward keeps the state at each segment's start; the
    backward walks the segments in reverse scan order, recomputes one
    segment's saved arrays, runs its reverse scan and adds its share of the weight
    gradients.
    """
    k = config.segment
    inner = config._replace(segment=0)

    def split(xs, mask):
        steps, batch = xs.shape[:2]
        n = -(-steps // k)
        pad = n * k - steps
        if pad:
            xs = jnp.concatenate([xs, jnp.zeros((pad, *xs.shape[1:]), xs.dtype)], axis=0)
            real = jnp.ones((steps, batch), bool) if mask is None else mask
            mask = jnp.concatenate([real, jnp.zeros((pad, batch), bool)], axis=0)
        xs = xs.reshape(n, k, *xs.shape[1:])
        mask = None if mask is None else mask.reshape(n, k, batch)
        return xs, mask, pad

    def segments_forward(params, xs, h0, c0, mask):
        """Run all segments; return hs (padded), final state, and each segment's initial state."""
        seg_xs, seg_mask, pad = split(xs, mask)

        def body(carry, inputs):
            h, c = carry
            x, m = inputs if seg_mask is not None else (inputs, None)
            hs, h_new, c_new, _ = _forward(params, x, h, c, m, inner, save=False)
            return (h_new, c_new), (hs, h, c)

        inputs = seg_xs if seg_mask is None else (seg_xs, seg_mask)
        (h, c), (hs, h_starts, c_starts) = lax.scan(body, (h0, c0), inputs, reverse=config.reverse)
        return hs, h, c, h_starts, c_starts, pad

    def fwd(params, xs, h0, c0, mask):
        hs, h, c, h_starts, c_starts, pad = segments_forward(params, xs, h0, c0, mask)
        steps = xs.shape[0]
        hs = hs.reshape(-1, *hs.shape[2:])[:steps]
        return (hs, h, c), (params, xs, h0, c0, mask, h_starts, c_starts)

    def bwd(residuals, cotangents):
        params, xs, h0, c0, mask, h_starts, c_starts = residuals
        dys, dh, dc = cotangents
        steps = xs.shape[0]
        seg_xs, seg_mask, pad = split(xs, mask)
        if pad:
            dys = jnp.concatenate([dys, jnp.zeros((pad, *dys.shape[1:]), dys.dtype)], axis=0)
        seg_dys = dys.reshape(seg_xs.shape[0], k, *dys.shape[1:])
        zeros = LSTMParams(*(jnp.zeros(p.shape, dh.dtype) for p in params))

        def body(carry, inputs):
            (dh, dc), acc = carry
            (x, dy, h_start, c_start), m = inputs if seg_mask is not None else (inputs, None)
            _, _, _, saved = _forward(params, x, h_start, c_start, m, inner, save=True)
            dgates, dh, dc = _backward_scan(params, saved, dy, dh, dc, c_start, m, inner)
            h_prev = _shift_in(h_start, saved[_H], config.reverse)
            dw_x, dw_h, db, dx = _weight_grads(x, h_prev, dgates, params, inner)
            acc = LSTMParams(acc.w_x + dw_x, acc.w_h + dw_h, acc.b + db)
            return ((dh, dc), acc), dx

        inputs = (seg_xs, seg_dys, h_starts, c_starts)
        if seg_mask is not None:
            inputs = (inputs, seg_mask)
        ((dh, dc), acc), dxs = lax.scan(body, ((dh, dc), zeros), inputs, reverse=not config.reverse)
        dxs = dxs.reshape(-1, *dxs.shape[2:])[:steps]
        return _finish(params, xs, h0, c0, acc.w_x, acc.w_h, acc.b, dxs, dh, dc)

    return fwd, bwd
