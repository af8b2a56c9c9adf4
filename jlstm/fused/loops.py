"""The LSTM's three loops as ``lax.scan``s: forward, tangent (forward mode) and adjoint
(reverse mode). Pure JAX; they are what :mod:`jlstm.fused.primitives` lowers to
wherever the CPU kernel does not run, and what defines those primitives' derivatives.

Arithmetic (see :mod:`jlstm.cells.lstm` for the equations and the tanh form):
the forward saves, per step, the activated gates in tanh form (t_i, t_f, t_g,
t_o; sigmoid = (1 + t) / 2) and the state after the step (c, h; held where
masked). With A_t the (unscaled) pre-activations, the tangent of one step is::

    dA_t = U_t + dh_{t-1} W_h                    U_t: every term not through h_{t-1}
    di = σ'(A_i) dA_i, df = σ'(A_f) dA_f, do = σ'(A_o) dA_o, dg = (1 - g^2) dA_g
    dc_t = df c_{t-1} + f dc_{t-1} + di g + i dg
    dh_t = do tanh(c_t) + o (1 - tanh^2 c_t) dc_t

with σ'(A) = (1 - t^2) / 4. The adjoint is its transpose: a reverse loop that
gives dG_t (the cotangent of U_t, i.e. of the pre-activations) with one
(B, 4H) x (4H, H) product per step; the weight gradients are then single
products over all steps (:mod:`jlstm.fused.layer`).

Shapes: time-major, one flat batch axis: xs (T, B, I) — or (B, T, I) with
``batch_major`` —, mask (T, B), states (B, H), gates (T, B, 4H) as one array
(``fused_gates``, the kernels' layout) or four (T, B, H) arrays (XLA:CPU's
reverse scan reads those with contiguous slices, 1.3-1.7x faster).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

Array = jax.Array

# Input width from which the forward without residuals uses two products
# (x @ w_x + h @ w_h, per-gate sigmoids): measured ~10% faster at S2 than one
# product on [x, h]; with a narrow input the concatenated form wins (S3: ~7%).
SPLIT_INPUT = 128


def gate_scale(hidden: int, dtype) -> Array:
    """1/2 on the sigmoid gates (i, f, o), 1 on g: a' = a * scale, one tanh for all."""
    half, one = jnp.full((hidden,), 0.5, dtype), jnp.ones((hidden,), dtype)
    return jnp.concatenate([half, half, one, half])  # (4H,)


def scaled_weights(w_x, w_h, b, sd, compute):
    """[w_x; w_h] with the sigmoid columns halved, in the matmul dtype; b likewise."""
    scale = gate_scale(w_h.shape[0], sd)
    w = jnp.concatenate([w_x, w_h], axis=0).astype(sd) * scale[None]
    w, b = w.astype(compute), b.astype(sd) * scale  # (I + H, 4H), (4H,)
    # The barrier keeps XLA from constant-folding weights that are closed over
    # in a jit, so results do not depend on whether the weights are constants.
    return lax.optimization_barrier((w, b))


def gate_parts(gates, hidden: int):
    """t_i, t_f, t_g, t_o of one step (B, H), from either layout of the saved gates."""
    if len(gates) == 4:
        return tuple(gates)
    (g,) = gates
    return tuple(g[..., k * hidden : (k + 1) * hidden] for k in range(4))


def shift_in(first: Array, seq: Array, reverse: bool) -> Array:
    """The value before each step, in array order: (B, H), (T, B, H) -> (T, B, H)."""
    if reverse:
        return jnp.concatenate([seq[1:], first[None]], axis=0)
    return jnp.concatenate([first[None], seq[:-1]], axis=0)


def forward(
    xs,
    w_x,
    w_h,
    b,
    h0,
    c0,
    mask,
    resets=None,
    *,
    reverse,
    save,
    batch_major,
    fused_gates,
    unroll,
    compute,
):
    """The forward loop.

    Returns ``(hs, h_T, c_T)`` without ``save`` (``hs`` in the layout of ``xs``, zero
    where masked), else ``(h_T, c_T, *gates, cs, hstate)``: the saved arrays,
    time-major, ``hstate`` the state h after each step (held where masked).
    """
    sd = c0.dtype
    hidden = h0.shape[-1]
    if batch_major:
        xs = jnp.swapaxes(xs, 0, 1)
    split = not save and xs.shape[-1] >= SPLIT_INPUT
    w, bs = scaled_weights(w_x, w_h, b, sd, compute)
    if split:
        wx, wh = w_x.astype(compute), w_h.astype(compute)
        b_plain = b.astype(sd)

    def step(carry, inputs):
        h, c = carry
        x, m, r = inputs
        if r is not None:  # an episode starts here: the state before the step is zero
            h = jnp.where(r[:, None], jnp.zeros_like(h), h)
            c = jnp.where(r[:, None], jnp.zeros_like(c), c)
        if split:
            a = jnp.matmul(x.astype(compute), wx, preferred_element_type=sd)
            a = a + jnp.matmul(h.astype(compute), wh, preferred_element_type=sd)
            ai, af, ag, ao = (a[:, k * hidden : (k + 1) * hidden] for k in range(4))
            bi, bf, bg, bo = (b_plain[None, k * hidden : (k + 1) * hidden] for k in range(4))
            c_new = jax.nn.sigmoid(af + bf) * c + jax.nn.sigmoid(ai + bi) * jnp.tanh(ag + bg)
            h_new = jax.nn.sigmoid(ao + bo) * jnp.tanh(c_new)
        else:
            z = jnp.concatenate([x, h], axis=-1).astype(compute)  # (B, I + H)
            t = jnp.tanh(jnp.matmul(z, w, preferred_element_type=sd) + bs[None])  # (B, 4H)
            ti, tf, tg, to = (t[:, k * hidden : (k + 1) * hidden] for k in range(4))
            c_new = (0.5 * tf + 0.5) * c + (0.5 * ti + 0.5) * tg
            h_new = (0.5 * to + 0.5) * jnp.tanh(c_new)
        if m is not None:
            m = m[:, None]  # (B, 1)
            c_new = jnp.where(m, c_new, c)
            h_new = jnp.where(m, h_new, h)
        if save:
            gates = (t,) if fused_gates else (ti, tf, tg, to)
            return (h_new, c_new), (gates, c_new, h_new)
        y = h_new if m is None else jnp.where(m, h_new, jnp.zeros_like(h_new))
        return (h_new, c_new), y

    (h, c), out = lax.scan(step, (h0, c0), (xs, mask, resets), reverse=reverse, unroll=unroll)
    if not save:
        return (jnp.swapaxes(out, 0, 1) if batch_major else out), h, c
    gates, cs, hstate = out
    return (h, c, *gates, cs, hstate)


def split_rest(rest, has_mask: bool, has_resets: bool):
    """(gates, mask, resets) from the loops' trailing operands: the saved gates (one or four
    arrays), then the mask if ``has_mask``, then the resets if ``has_resets``."""
    rest = list(rest)
    resets = rest.pop() if has_resets else None
    mask = rest.pop() if has_mask else None
    return tuple(rest), mask, resets


def previous_cell(c0, cs, resets, reverse):
    """c before each step, in array order (zero where an episode starts): (T, B, H)."""
    c_prev = shift_in(c0, cs, reverse)
    if resets is None:
        return c_prev
    return jnp.where(resets[:, :, None], jnp.zeros_like(c_prev), c_prev)


def tangent(u, dh0, dc0, w_h, c0, cs, *rest, reverse, has_mask, has_resets=False, unroll, compute):
    """The tangent loop: ``(U, dh_0, dc_0) -> (dys, dh_T, dc_T)``, linear in those three.

    ``rest``: see :func:`split_rest`. ``dys`` is the tangent of the outputs (zero
    where masked), time-major. Where an episode starts the state's tangent is zero.
    """
    gates, mask, resets = split_rest(rest, has_mask, has_resets)
    hidden = dh0.shape[-1]
    sd = dh0.dtype
    w_h = w_h.astype(compute)
    c_prev = previous_cell(c0, cs, resets, reverse)

    def step(carry, inputs):
        dh, dc = carry
        u_t, g_t, c_t, cp_t, m, r = inputs
        if r is not None:
            dh = jnp.where(r[:, None], jnp.zeros_like(dh), dh)
            dc = jnp.where(r[:, None], jnp.zeros_like(dc), dc)
        ti, tf, tg, to = gate_parts(g_t, hidden)
        da = u_t + jnp.matmul(dh.astype(compute), w_h, preferred_element_type=sd)  # (B, 4H)
        dai, daf, dag, dao = (da[:, k * hidden : (k + 1) * hidden] for k in range(4))
        tc = jnp.tanh(c_t)
        dc_new = (
            (0.25 * (1 - tf * tf)) * daf * cp_t
            + (0.5 * tf + 0.5) * dc
            + (0.25 * (1 - ti * ti)) * dai * tg
            + (0.5 * ti + 0.5) * (1 - tg * tg) * dag
        )
        dh_new = (0.25 * (1 - to * to)) * dao * tc + (0.5 * to + 0.5) * (1 - tc * tc) * dc_new
        if m is None:
            return (dh_new, dc_new), dh_new
        m = m[:, None]
        dh_new = jnp.where(m, dh_new, dh)
        dc_new = jnp.where(m, dc_new, dc)
        return (dh_new, dc_new), jnp.where(m, dh_new, jnp.zeros_like(dh_new))

    inputs = (u, tuple(gates), cs, c_prev, mask, resets)
    (dh, dc), dys = lax.scan(step, (dh0, dc0), inputs, reverse=reverse, unroll=unroll)
    return dys, dh, dc


def adjoint(dys, dh, dc, w_h, c0, cs, *rest, reverse, has_mask, has_resets=False, unroll, compute):
    """The adjoint loop, the transpose of :func:`tangent`:
    ``(dys, dh_T, dc_T) -> (dG, dh_0, dc_0)``, with dG (T, B, 4H) the cotangent of ``U``.

    ``reverse`` is the forward's direction; this loop runs the other way. Where an
    episode starts (``resets``) nothing flows to the step before.
    """
    gates, mask, resets = split_rest(rest, has_mask, has_resets)
    steps, _, hidden = cs.shape
    sd = dh.dtype
    w_hT = w_h.T.astype(compute)  # (4H, H), materialised once
    previous = 1 if reverse else -1  # where the step before lies in the arrays

    def step(carry, inputs):
        dh, dc = carry
        dy, g_t, c, k, m, r = inputs
        ti, tf, tg, to = gate_parts(g_t, hidden)
        kp = k + previous
        c_prev = lax.dynamic_index_in_dim(cs, jnp.clip(kp, 0, steps - 1), 0, keepdims=False)
        c_prev = jnp.where((kp < 0) | (kp >= steps), c0, c_prev)
        if r is not None:
            c_prev = jnp.where(r[:, None], jnp.zeros_like(c_prev), c_prev)
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
        dh_new = jnp.matmul(dgates.astype(compute), w_hT, preferred_element_type=sd)
        if m is not None:
            m = m[:, None]
            dgates = jnp.where(m, dgates, jnp.zeros_like(dgates))
            dh_new = jnp.where(m, dh_new, dh)
            dc_new = jnp.where(m, dc_new, dc)
        if r is not None:  # the state before an episode's first step is a constant zero
            dh_new = jnp.where(r[:, None], jnp.zeros_like(dh_new), dh_new)
            dc_new = jnp.where(r[:, None], jnp.zeros_like(dc_new), dc_new)
        return (dh_new, dc_new), dgates

    inputs = (dys, tuple(gates), cs, jnp.arange(steps), mask, resets)
    (dh, dc), dgates = lax.scan(step, (dh, dc), inputs, reverse=not reverse, unroll=unroll)
    return dgates, dh, dc
