"""The LSTM layer: the cell applied over time with ``jax.lax.scan``.

Variable length follows one rule: at a step where the mask is False the state
is held and the output is zero. ``lengths`` is the right-padded special case
(``mask[b, t] = t < lengths[b]``). Because padding only holds the state,
``reverse=True`` is a reverse scan over all T steps: the padding comes first
and changes nothing, so each sequence's real part is processed backwards from
its last real step, exactly as if it had been given unpadded.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jlstm import _fused
from jlstm.cell import (
    LSTMParams,
    LSTMState,
    _expand,
    check_params,
    gates_to_state,
    matmul,
    state_dtype,
)

Array = jax.Array


def layer(
    params: LSTMParams,
    xs: Array,
    *,
    initial_state: LSTMState | None = None,
    lengths: Array | None = None,
    mask: Array | None = None,
    reverse: bool = False,
    time_major: bool = False,
    unroll: int = 1,
    remat: bool = False,
    dtype=None,
) -> tuple[Array, LSTMState]:
    """Run the LSTM cell over a whole sequence.

    Args:
      params: one layer's :class:`~jlstm.cell.LSTMParams`.
      xs: inputs, batch-major ``(*batch, T, input_size)``, or time-major
        ``(T, *batch, input_size)`` with ``time_major=True``. Any number of
        batch axes, including none.
      initial_state: h_0 and c_0, each ``(*batch, H)``; zeros by default.
      lengths: integer ``(*batch,)``: the number of real steps of each
        right-padded sequence. Values are checked against ``[0, T]`` when they
        are concrete; under ``jax.jit`` they are not checked, and a length
        above T acts as T, one below 0 as 0.
      mask: boolean, the layout of ``xs`` without its feature axis; where
        False the state is held and the output is zero. The general form of
        ``lengths`` (give one or the other).
      reverse: process each sequence's real steps from last to first. Outputs
        stay aligned with the inputs.
      time_major: see ``xs``.
      unroll: steps per loop iteration of ``lax.scan``.
      remat: recompute each step's activations in the backward pass instead of
        storing them (``jax.checkpoint``): less memory, more compute.
      dtype: the matmuls' dtype, e.g. ``jnp.bfloat16``; the cell state, the
        gate arithmetic and the outputs stay in the state's dtype (float32).

    Returns:
      ``(hs, final_state)``: every step's h (zero at padding) and the state
      after each sequence's last real step (its initial state for length 0).

    Shapes:
      xs: (*batch, T, I)  ->  hs: (*batch, T, H)
      final_state.h, final_state.c: (*batch, H)

    >>> from jlstm.cell import init_params
    >>> params = init_params(jax.random.key(0), input_size=3, hidden_size=8)
    >>> hs, final = layer(params, jnp.ones((2, 5, 3)), lengths=jnp.array([5, 2]))
    >>> hs.shape, final.h.shape
    ((2, 5, 8), (2, 8))
    >>> bool((hs[1, 2:] == 0).all())
    True
    """
    input_size, hidden = check_params(params)
    xs = jnp.asarray(xs)
    if xs.ndim < 2 or xs.shape[-1] != input_size:
        layout = "(T, *batch, {i})" if time_major else "(*batch, T, {i})"
        raise ValueError(
            f"xs must be {layout.format(i=input_size)} to match params.w_x "
            f"{tuple(params.w_x.shape)}; got shape {xs.shape}"
        )
    if not isinstance(unroll, int | bool) or unroll < 1:
        raise ValueError(f"unroll must be a positive integer; got {unroll!r}")

    # Everything below works on one flat batch axis: xs (T, B, I), or (B, T, I)
    # when batch-major; the mask (T, B) either way.
    if time_major:
        steps, batch_shape = xs.shape[0], xs.shape[1:-1]
        xs = xs.reshape(steps, math.prod(batch_shape), input_size)  # (T, B, I)
    else:
        steps, batch_shape = xs.shape[-2], xs.shape[:-2]
        xs = xs.reshape(math.prod(batch_shape), steps, input_size)  # (B, T, I)

    mask = _time_major_mask(lengths, mask, steps, batch_shape, time_major)  # (T, B) | None
    state = _initial_state(initial_state, batch_shape, hidden, state_dtype(params.w_h.dtype))

    hs, final = _scan(
        params,
        xs,
        state,
        mask,
        reverse=reverse,
        unroll=unroll,
        remat=remat,
        dtype=dtype,
        batch_major=not time_major,
    )

    if time_major:
        hs = hs.reshape(steps, *batch_shape, hidden)
    else:
        hs = hs.reshape(*batch_shape, steps, hidden)
    final = LSTMState(*(a.reshape(*batch_shape, hidden) for a in final))
    return hs, final


def _scan(
    params: LSTMParams,
    xs: Array,
    state: LSTMState,
    mask: Array | None,
    *,
    reverse: bool,
    unroll: int,
    remat: bool,
    dtype,
    batch_major: bool = False,
) -> tuple[Array, LSTMState]:
    """The loop. The one place where a time step is formed.

    Runs the fast path of :mod:`jlstm._fused` (a custom VJP over the whole
    sequence) where it applies, else :func:`_scan_reference`; the two agree to
    float tolerance in values and gradients (``tests/test_fast_path.py``).

    Shapes:
      xs: (T, B, I), mask: (T, B) | None, state: (B, H) -> hs: (T, B, H);
      with ``batch_major``, xs: (B, T, I) -> hs: (B, T, H)
    """
    kw = dict(reverse=reverse, unroll=unroll, remat=remat, dtype=dtype)
    if _fused.ENABLED and _fused.supported(params, xs, state, dtype):
        return _fused.fused_scan(params, xs, state, mask, batch_major=batch_major, **kw)
    reference = _fused.batch_major_io(_scan_reference) if batch_major else _scan_reference
    return reference(params, xs, state, mask, **kw)


def _scan_reference(
    params: LSTMParams,
    xs: Array,
    state: LSTMState,
    mask: Array | None,
    *,
    reverse: bool,
    unroll: int,
    remat: bool,
    dtype,
) -> tuple[Array, LSTMState]:
    """The plain path: ``lax.scan`` over the cell, differentiated by JAX.

    Shapes:
      xs: (T, B, I), mask: (T, B) | None, state: (B, H) -> hs: (T, B, H)
    """

    def step(state, inputs):
        x, m = inputs
        gates = matmul(x, params.w_x, dtype) + matmul(state.h, params.w_h, dtype)  # (B, 4H)
        gates = gates + _expand(params.b.astype(gates.dtype), gates.ndim)
        new_state, h = gates_to_state(gates, state.c)
        if m is None:
            return new_state, h
        m = m[:, None]  # (B, 1)
        held = jax.tree.map(lambda new, old: jnp.where(m, new, old), new_state, state)
        return held, jnp.where(m, h, jnp.zeros_like(h))

    if remat:
        step = jax.checkpoint(step)
    final, hs = jax.lax.scan(step, state, (xs, mask), reverse=reverse, unroll=unroll)
    return hs, final


def _time_major_mask(lengths, mask, steps, batch_shape, time_major) -> Array | None:
    """Validate ``lengths``/``mask`` and return a flat time-major mask (T, B), or None."""
    if lengths is not None and mask is not None:
        raise ValueError("give lengths or mask, not both")
    flat = math.prod(batch_shape)
    if lengths is not None:
        lengths = jnp.asarray(lengths) if not isinstance(lengths, jax.Array) else lengths
        if not jnp.issubdtype(lengths.dtype, jnp.integer):
            raise TypeError(f"lengths must have an integer dtype; got {lengths.dtype}")
        if lengths.shape != batch_shape:
            raise ValueError(
                f"lengths must have shape {batch_shape} (the batch); got {lengths.shape}"
            )
        _check_lengths_values(lengths, steps)
        t = jnp.arange(steps, dtype=lengths.dtype)[:, None]  # (T, 1)
        return t < lengths.reshape(1, flat)
    if mask is not None:
        mask = jnp.asarray(mask)
        expected = (steps, *batch_shape) if time_major else (*batch_shape, steps)
        if mask.shape != expected:
            raise ValueError(
                f"mask must have shape {expected} (xs without its feature axis); got {mask.shape}"
            )
        if mask.dtype != jnp.bool_:
            raise TypeError(f"mask must have dtype bool; got {mask.dtype}")
        if not time_major:
            mask = jnp.moveaxis(mask, -1, 0)
        return mask.reshape(steps, flat)
    return None


def _check_lengths_values(lengths: Array, steps: int) -> None:
    """Reject lengths outside [0, T] when their values are known at trace time."""
    try:
        values = np.asarray(lengths)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return  # Traced: documented behaviour is clipping to [0, T].
    if values.size and (values.min() < 0 or values.max() > steps):
        raise ValueError(
            f"lengths must lie in [0, T={steps}]; got values from {values.min()} to {values.max()}"
        )


def _initial_state(initial_state, batch_shape, hidden, dtype) -> LSTMState:
    """Validate ``initial_state`` (or make zeros) and flatten it to (B, H)."""
    flat = (math.prod(batch_shape), hidden)
    if initial_state is None:
        zeros = jnp.zeros(flat, dtype)
        return LSTMState(zeros, zeros)
    if not isinstance(initial_state, LSTMState):
        raise TypeError(f"initial_state must be an LSTMState; got {type(initial_state).__name__}")
    expected = (*batch_shape, hidden)
    for name, a in zip(("h", "c"), initial_state, strict=True):
        if jnp.shape(a) != expected:
            raise ValueError(
                f"initial_state.{name} must have shape {expected} (batch, hidden); "
                f"got {jnp.shape(a)}"
            )
    return LSTMState(*(jnp.asarray(a).reshape(flat) for a in initial_state))
