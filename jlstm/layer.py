"""The layer: a cell applied over time, for any cell of :mod:`jlstm.cells`.

Variable length follows one rule: at a step where the mask is False the state
is held and the output is zero. ``lengths`` is the right-padded special case
(``mask[b, t] = t < lengths[b]``). Because padding only holds the state,
``reverse=True`` is a reverse scan over all T steps: the padding comes first
and changes nothing, so each sequence's real part is processed backwards from
its last real step, exactly as if it had been given unpadded. Inputs at padded
steps are set to zero before the loop, so garbage there (even NaN) cannot
reach a result or a gradient.

Which loop runs is :mod:`jlstm.implementation`'s choice; every one of them
equals the reference, ``lax.scan`` over the cell's step differentiated by JAX.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from jlstm import cells, regularize
from jlstm import implementation as implementations
from jlstm.cells.base import cast_state, check_float_dtype, check_state, state_dtype
from jlstm.masking import step_mask

if TYPE_CHECKING:
    from jlstm.parallel import Parallel

Array = jax.Array


def layer(
    params,
    xs: Array,
    *,
    cell: str | cells.Cell | None = None,
    implementation: str | Parallel = "auto",
    initial_state=None,
    lengths: Array | None = None,
    mask: Array | None = None,
    resets: Array | None = None,
    reverse: bool = False,
    time_major: bool = False,
    unroll: int = 1,
    remat: bool = False,
    dtype=None,
    recurrent_dropout: float = 0.0,
    zoneout: float | tuple[float, float] = 0.0,
    dropout_key: Array | None = None,
):
    """Run a cell over a whole sequence.

    Args:
      params: one layer's parameters: :class:`~jlstm.cell.LSTMParams`, or any
        registered cell's (:mod:`jlstm.cells`), which also picks the cell.
      xs: inputs, batch-major ``(*batch, T, input_size)``, or time-major
        ``(T, *batch, input_size)`` with ``time_major=True``. Any number of
        batch axes, including none.
      cell: the cell, by name or as a :class:`~jlstm.cells.Cell` (default: the
        one registered for ``type(params)``; e.g. ``"rnn_relu"`` for an Elman
        RNN's params with ReLU).
      implementation: "auto", "reference", "xla", "cpu_kernel" or "parallel"
        (or a :class:`jlstm.parallel.Parallel` with its options); see
        :mod:`jlstm.implementation`.
      initial_state: the cell's state (for the LSTM ``LSTMState(h, c)``), each
        field ``(*batch, H)``; zeros by default. Cast to the state dtype
        (float32, or float64 with float64 params).
      lengths: integer ``(*batch,)``: the number of real steps of each
        right-padded sequence. Values are checked against ``[0, T]`` when they
        are concrete; under ``jax.jit`` they are not checked, and a length
        above T acts as T, one below 0 as 0.
      mask: boolean, the layout of ``xs`` without its feature axis; where
        False the state is held and the output is zero. The general form of
        ``lengths`` (give one or the other).
      resets: boolean, the layout of ``mask``: where True an episode starts at
        that step, and the state before it is the cell's zero state (packed RL
        trajectories, several documents in one stream). The convention is
        *reset before step t*, so an environment's ``done_{t-1}`` is
        ``resets_t``. Each episode's outputs and gradients equal those of the
        episode run on its own from zeros. With ``reverse=True`` the episodes
        are read backwards: each starts again at its last step (the step
        before a True), so a backward layer equals each episode reversed on its
        own too. Composes with ``lengths``/``mask`` (a reset at a padded step
        still zeroes the held state) and truncated BPTT (``initial_state``
        carries into the first episode only).
      reverse: process each sequence's real steps from last to first. Outputs
        stay aligned with the inputs.
      time_major: see ``xs``.
      unroll: steps per loop iteration of ``lax.scan``.
      remat: keep the state only every ~sqrt(T) steps and recompute each
        stretch in the backward pass (``jax.checkpoint`` over stretches of the
        loop): memory for long sequences O(sqrt(T)) steps instead of O(T), at
        the cost of a second forward. The same for every implementation.
      dtype: the matmuls' dtype, e.g. ``jnp.bfloat16``; the state, the gate
        arithmetic and the outputs stay in the state's dtype (float32).
      recurrent_dropout: rate of variational dropout on x_t and h_{t-1}, one
        mask per sequence (:mod:`jlstm.regularize`); only with ``dropout_key``.
      zoneout: rate (or ``(p_h, p_c)``) at which units of h (and c) keep their
        previous value: random with ``dropout_key``, the expectation without.
      dropout_key: the randomness of ``recurrent_dropout`` and ``zoneout``;
        None at evaluation.

    Returns:
      ``(hs, final_state)``: every step's output (zero at padding) and the
      state after each sequence's last real step (its initial state for length 0).

    Shapes:
      xs: (*batch, T, I)  ->  hs: (*batch, T, H)
      final_state fields: (*batch, H)

    >>> from jlstm.cell import init_params
    >>> params = init_params(jax.random.key(0), input_size=3, hidden_size=8)
    >>> hs, final = layer(params, jnp.ones((2, 5, 3)), lengths=jnp.array([5, 2]))
    >>> hs.shape, final.h.shape
    ((2, 5, 8), (2, 8))
    >>> bool((hs[1, 2:] == 0).all())
    True
    """
    cell = cells.resolve(cell, params)
    input_size, hidden = cell.sizes(params)
    xs = jnp.asarray(xs)
    if xs.ndim < 2 or xs.shape[-1] != input_size:
        layout = "(T, *batch, {i})" if time_major else "(*batch, T, {i})"
        raise ValueError(
            f"xs must be {layout.format(i=input_size)} to match params.w_x "
            f"{tuple(params.w_x.shape)}; got shape {xs.shape}"
        )
    check_float_dtype("xs", xs.dtype)
    if dtype is not None:
        check_float_dtype("dtype", dtype)
    if isinstance(unroll, bool) or not isinstance(unroll, int) or unroll < 1:
        raise ValueError(f"unroll must be a positive integer; got {unroll!r}")

    # Everything below works on one flat batch axis: xs (T, B, I), or (B, T, I)
    # when batch-major; the mask (T, B) either way.
    if time_major:
        steps, batch_shape = xs.shape[0], xs.shape[1:-1]
    else:
        steps, batch_shape = xs.shape[-2], xs.shape[:-2]
    flat = math.prod(batch_shape)
    xs = xs.reshape((steps, flat, input_size) if time_major else (flat, steps, input_size))
    mask = step_mask(lengths, mask, steps, batch_shape, time_major)  # (T, B) | None
    resets = step_mask(None, resets, steps, batch_shape, time_major, "resets")  # (T, B) | None
    if resets is not None and reverse:  # read backwards, an episode starts at its last step
        resets = jnp.concatenate([resets[1:], jnp.zeros_like(resets[:1])], axis=0)
    sd = state_dtype(jnp.result_type(*jax.tree.leaves(params)))
    if initial_state is None:
        state = cell.zero_state(params, (flat,))
    else:
        check_state(cell, initial_state, batch_shape, params, "initial_state")
        state = type(initial_state)(*(jnp.reshape(a, (flat, a.shape[-1])) for a in initial_state))
    state = cast_state(state, sd)

    call = implementations.Call(
        cell=cell,
        batch=flat,
        steps=steps,
        input_size=input_size,
        hidden=hidden,
        param_dtypes=tuple(np.dtype(a.dtype) for a in jax.tree.leaves(params)),
        state_dtype=np.dtype(sd),
        compute=np.dtype(jax.tree.leaves(params)[0].dtype if dtype is None else dtype),
        backend=jax.default_backend(),
        devices=jax.device_count(),
        resets=resets is not None,
    )
    x_mask, noise = regularize.make_noise(
        dropout_key,
        state=state,
        steps=steps,
        input_size=input_size,
        recurrent_dropout=recurrent_dropout,
        zoneout=zoneout,
    )
    call = dataclasses.replace(call, noise=noise is not None)
    run = _runner(implementations.choose(implementation, call), cell, implementation)
    if x_mask is not None:  # the same input mask at every step
        xs = xs * (x_mask[None] if time_major else x_mask[:, None]).astype(xs.dtype)
    if mask is not None:  # padding never reaches a result, even as NaN
        real = mask[:, :, None] if time_major else mask.T[:, :, None]
        xs = jnp.where(real, xs, jnp.zeros_like(xs))

    kw = dict(reverse=reverse, unroll=unroll, dtype=dtype, resets=resets)
    if noise is not None:
        kw["noise"] = noise
    if remat:
        if not time_major:
            xs = jnp.swapaxes(xs, 0, 1)
        hs, final = _in_stretches(run, params, xs, state, mask, **kw)
        if not time_major:
            hs = jnp.swapaxes(hs, 0, 1)
    else:
        hs, final = run(params, xs, state, mask, batch_major=not time_major, **kw)

    out = hs.shape[-1]
    hs = hs.reshape((steps, *batch_shape, out) if time_major else (*batch_shape, steps, out))
    final = type(final)(*(a.reshape(*batch_shape, a.shape[-1]) for a in final))
    return hs, final


def _runner(name: str, cell: cells.Cell, requested):
    """``run(params, xs, state, mask, *, reverse, unroll, dtype, batch_major)`` for one
    implementation (``requested``: the caller's ``implementation=``, which holds the
    options of a :class:`jlstm.parallel.Parallel`). Shapes: xs (T, B, I), or (B, T, I)
    with ``batch_major``."""
    if name == "reference":

        def run(params, xs, state, mask, *, batch_major, **kw):
            if batch_major:
                xs = jnp.swapaxes(xs, 0, 1)
            hs, final = reference(cell, params, xs, state, mask, **kw)
            return (jnp.swapaxes(hs, 0, 1) if batch_major else hs), final

        return run
    if name == "parallel":

        def run(params, xs, state, mask, *, batch_major, reverse, resets, dtype, unroll):
            from jlstm.parallel import Parallel

            solver = requested if isinstance(requested, Parallel) else Parallel()
            if batch_major:
                xs = jnp.swapaxes(xs, 0, 1)
            hs, final = solver.run(params, xs, state.h, state.c, mask, reverse=reverse)
            return (jnp.swapaxes(hs, 0, 1) if batch_major else hs), final

        return run
    from jlstm.fused import layer as fused

    def run(params, xs, state, mask, **kw):
        return fused.run(params, xs, state, mask, kernel=name == "cpu_kernel", **kw)

    return run


def reference(
    cell: cells.Cell,
    params,
    xs: Array,
    state,
    mask: Array | None,
    *,
    reverse: bool,
    unroll: int = 1,
    dtype=None,
    resets: Array | None = None,
    noise: regularize.Noise | None = None,
):
    """The reference loop: ``lax.scan`` over ``cell.step``, differentiated by JAX.

    ``noise``: recurrent dropout and zoneout (:mod:`jlstm.regularize`).

    Shapes:
      xs: (T, B, I), mask, resets: (T, B) | None, state fields: (B, H) -> hs: (T, B, out)
    """

    def step(state, inputs):
        x, m, r, keep_t = inputs
        if r is not None:  # an episode starts: the state before the step is zero
            state = jax.tree.map(lambda a: jnp.where(r[:, None], jnp.zeros_like(a), a), state)
        new_state, y = cell.step(params, regularize.before_step(noise, state), x, dtype=dtype)
        if noise is not None and noise.zoneout:
            new_state = regularize.after_step(noise, state, new_state, keep_t)
            y = new_state.h
        if m is None:
            return new_state, y
        m = m[:, None]  # (B, 1)
        held = jax.tree.map(lambda new, old: jnp.where(m, new, old), new_state, state)
        return held, jnp.where(m, y, jnp.zeros_like(y))

    keep = None if noise is None else noise.keep
    final, hs = jax.lax.scan(step, state, (xs, mask, resets, keep), reverse=reverse, unroll=unroll)
    return hs, final


def _in_stretches(run, params, xs, state, mask, *, reverse, resets, noise=None, **kw):
    """``run`` over stretches of about sqrt(T) steps, each under ``jax.checkpoint``: the
    backward pass keeps only each stretch's initial state and recomputes the rest.

    The last stretch (in array order) is padded with masked steps, which hold the
    state and so change nothing. Shapes: time-major, xs (T, B, I) -> hs (T, B, out).
    """
    steps, batch = xs.shape[:2]
    k = max(1, math.isqrt(steps))
    n = -(-steps // k)
    pad = n * k - steps
    if pad:
        xs = jnp.concatenate([xs, jnp.zeros((pad, *xs.shape[1:]), xs.dtype)], axis=0)
        real = jnp.ones((steps, batch), bool) if mask is None else mask
        mask = jnp.concatenate([real, jnp.zeros((pad, batch), bool)], axis=0)
        if resets is not None:
            resets = jnp.concatenate([resets, jnp.zeros((pad, batch), bool)], axis=0)
    keep = None if noise is None or noise.keep is None else noise.keep
    if keep is not None and pad:
        keep = {
            f: jnp.concatenate([a, jnp.zeros((pad, *a.shape[1:]), bool)]) for f, a in keep.items()
        }
    seg = lambda a: None if a is None else a.reshape(n, k, *a.shape[1:])
    seg_keep = None if keep is None else {f: seg(a) for f, a in keep.items()}

    @jax.checkpoint
    def stretch(params, state, x, m, r, keep_k):
        step_noise = None if noise is None else noise._replace(keep=keep_k)
        extra = {} if noise is None else {"noise": step_noise}
        hs, final = run(
            params, x, state, m, reverse=reverse, batch_major=False, resets=r, **extra, **kw
        )
        return final, hs

    final, hs = jax.lax.scan(
        lambda s, inputs: stretch(params, s, *inputs),
        state,
        (seg(xs), seg(mask), seg(resets), seg_keep),
        reverse=reverse,
    )
    return hs.reshape(n * k, batch, hs.shape[-1])[:steps], final
