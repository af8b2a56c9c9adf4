"""The LSTM stack on cuDNN, through ``jax.experimental.rnn.lstm`` ("cudnn").

cuDNN runs every layer and both directions of a stack in one call, from one
flat weight vector. :func:`to_flat_weights` and :func:`from_flat_weights`
convert between that vector and jlstm's ``params[layer][direction]``:

- **Gate order**: i, f, g, o in both, so no block is permuted.
- **Matrices**: cuDNN's ``W_ih`` (4H, in) is ``w_x.T``, ``W_hh`` (4H, H) is
  ``w_h.T``.
- **Biases**: cuDNN adds two, ``b_ih + b_hh``; jlstm has one. jlstm's ``b``
  goes into ``b_ih`` and ``b_hh`` is zero; back, ``b = b_ih + b_hh`` (so a
  double-bias vector from elsewhere, e.g. PyTorch's, converts to the same LSTM).
- **Layout** (``jax.experimental.rnn.unpack_lstm_weights``): the pseudo-layers
  in the order forward-0, backward-0, forward-1, ... (jlstm's order, and that
  of the final states); first every pseudo-layer's ``W_ih, W_hh``, then every
  one's ``b_ih, b_hh``, each raveled row-major.

:func:`stack` is :func:`jlstm.stack`'s contract on the cuDNN call. It computes
in float32 with TF32 off (``precision=HIGHEST``), so it is the float32 LSTM.
Rows of length 0, which cuDNN does not define, run with length 1 and then take
zero outputs and their initial state as final state: exact, and their
cotangents are zero, so they add nothing to a gradient. The call is a
``custom_vjp`` (cuDNN's own backward); JAX gives it no ``vmap`` and no
forward-mode rule, so :mod:`jlstm.implementation` never picks it under those,
and a backward pass that runs under ``vmap`` (``jax.jacrev``) computes the
same cotangents with jlstm's XLA loops instead. When "auto" picks it, the
stack is staged for :data:`PLATFORMS` only, the layers for every other.

Only a GPU can build the call (its shapes come from cuDNN): on other machines
``tests/test_cudnn.py`` puts ``jax.experimental.rnn.lstm_ref``, JAX's reference
of what cuDNN computes from the flat weights, in :data:`KERNEL`'s place.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.experimental import rnn

from jlstm import implementation as implementations
from jlstm.cells.base import check_positive_int
from jlstm.cells.lstm import LSTMParams, LSTMState
from jlstm.masking import check_lengths

Array = jax.Array
PRECISION = jax.lax.Precision.HIGHEST  # float32 products: cuDNN's TF32 stays off
# Where "auto"'s choice of the cuDNN call holds once lowered: jlstm.stack stages it with
# lax.platform_dependent, so the same trace lowered for any other platform (jax.export
# from a GPU for a TPU, say) runs jlstm's layers instead. An explicit "cudnn" is cuDNN only.
PLATFORMS = ("cuda",)


class Sizes(NamedTuple):
    """A stack's static sizes, as ``jax.experimental.rnn`` takes them."""

    input_size: int
    hidden_size: int
    num_layers: int
    bidirectional: bool


class Kernel(NamedTuple):
    """The two halves of the cuDNN call.

    ``forward(x, h0, c0, w, lengths, sizes) -> ((y, h_n, c_n), residuals)`` and
    ``backward(sizes, residuals, (dy, dh_n, dc_n)) -> (dx, dh0, dc0, dw)``.

    Shapes (batch-major, flat batch B, D directions, L layers):
      x: (B, T, I), h0, c0, h_n, c_n: (L * D, B, H), w: (num_params,),
      lengths: (B,) int32, every one in [1, T]  ->  y: (B, T, D * H)
    """

    forward: Callable
    backward: Callable


def _cudnn_forward(x, h0, c0, w, lengths, sizes: Sizes):
    return rnn.lstm_fwd(x, h0, c0, w, lengths, *sizes[:3], 0.0, sizes.bidirectional, PRECISION)


def _cudnn_backward(sizes: Sizes, residuals, cotangents):
    grads = rnn.lstm_bwd(*sizes[:3], 0.0, sizes.bidirectional, PRECISION, residuals, cotangents)
    return grads[:4]  # the last is the lengths' (zero)


KERNEL = Kernel(_cudnn_forward, _cudnn_backward)


def num_params(input_size: int, hidden_size: int, num_layers: int, bidirectional: bool) -> int:
    """The length of the flat weight vector."""
    return rnn.get_num_params_in_lstm(input_size, hidden_size, num_layers, bidirectional)


def to_flat_weights(params) -> Array:
    """jlstm's LSTM stack parameters as cuDNN's flat weight vector (the module docstring
    gives the layout); ``b`` becomes ``b_ih``, and ``b_hh`` is zero.

    Shapes:
      params[layer][direction]: LSTMParams  ->  (num_params(I, H, L, bidirectional),)

    >>> from jlstm.stack import init_stack_params
    >>> p = init_stack_params(jax.random.key(0), 3, 8, num_layers=2, bidirectional=True)
    >>> to_flat_weights(p).shape == (num_params(3, 8, 2, True),)
    True
    """
    from jlstm.stack import stack_shape

    stack_shape(params, "lstm")
    pseudo = [p for directional in params for p in directional]  # forward-0, backward-0, ...
    matrices = [m for p in pseudo for m in (p.w_x.T, p.w_h.T)]  # W_ih (4H, in), W_hh (4H, H)
    biases = [v for p in pseudo for v in (p.b, jnp.zeros_like(p.b))]  # b_ih = b, b_hh = 0
    return jnp.concatenate([a.ravel() for a in (*matrices, *biases)])


def from_flat_weights(
    flat: Array, input_size: int, hidden_size: int, num_layers: int, bidirectional: bool
) -> tuple[tuple[LSTMParams, ...], ...]:
    """cuDNN's flat weight vector as jlstm's ``params[layer][direction]``, with
    ``b = b_ih + b_hh``. The inverse of :func:`to_flat_weights`.

    Shapes:
      flat: (num_params(I, H, L, bidirectional),)  ->  params[layer][direction]
    """
    sizes = [
        check_positive_int(name, value)
        for name, value in (
            ("input_size", input_size),
            ("hidden_size", hidden_size),
            ("num_layers", num_layers),
        )
    ]
    count = num_params(*sizes, bidirectional)
    flat = jnp.asarray(flat)
    if flat.shape != (count,):
        raise ValueError(
            f"flat must be ({count},) for input_size={input_size}, hidden_size={hidden_size}, "
            f"num_layers={num_layers}, bidirectional={bidirectional}; got shape {flat.shape}"
        )
    w_ih, w_hh, b_ih, b_hh = rnn.unpack_lstm_weights(flat, *sizes, bidirectional)
    directions = 2 if bidirectional else 1
    return tuple(
        tuple(
            LSTMParams(w_x=w_ih[k].T, w_h=w_hh[k].T, b=b_ih[k] + b_hh[k])
            for k in range(depth * directions, (depth + 1) * directions)
        )
        for depth in range(num_layers)
    )


def stack(
    params,
    xs: Array,
    *,
    initial_state: LSTMState | None = None,
    lengths: Array | None = None,
    time_major: bool = False,
    between: Callable[[int, Array], Array] | None = None,
) -> tuple[Array, LSTMState]:
    """:func:`jlstm.stack` for an LSTM stack, on cuDNN.

    Args:
      params, xs, initial_state, lengths, time_major: as :func:`jlstm.stack`
        (``initial_state`` already checked; None: zeros).
      between: ``between(depth, ys)`` applied to layer ``depth``'s outputs (in
        the layout of ``xs``) before the next layer reads them, e.g. dropout.
        With it every layer is its own call; without, the whole stack is one.

    Shapes:
      xs: (*batch, T, I)  ->  ys: (*batch, T, D * H)
      initial_state / final_state fields: (num_layers * D, *batch, H)
    """
    from jlstm.stack import stack_shape

    input_size, hidden, num_layers, directions = stack_shape(params, "lstm")
    if time_major:
        xs = jnp.moveaxis(xs, 0, -2)
    *batch_shape, steps, _ = xs.shape
    flat = math.prod(batch_shape)
    count = num_layers * directions
    lengths = jnp.full(batch_shape, steps, jnp.int32) if lengths is None else lengths
    lengths = check_lengths(lengths, tuple(batch_shape), steps).reshape(flat)  # in [0, T]
    real = jnp.arange(steps, dtype=jnp.int32)[None, :] < lengths[:, None]  # (B, T)
    empty = (lengths == 0)[None, :, None]  # (1, B, 1): cuDNN needs a step; restored below
    if initial_state is None:
        zeros = jnp.zeros((count, flat, hidden), jnp.float32)
        initial_state = LSTMState(zeros, zeros)
    state0 = LSTMState(*(a.reshape(count, flat, hidden).astype(jnp.float32) for a in initial_state))

    def unflatten(ys):  # (B, T, F) -> the layout of xs
        ys = ys.reshape(*batch_shape, steps, ys.shape[-1])
        return jnp.moveaxis(ys, -2, 0) if time_major else ys

    ys = xs.reshape(flat, steps, input_size).astype(jnp.float32)
    groups = (
        [range(num_layers)] if between is None else [range(d, d + 1) for d in range(num_layers)]
    )
    finals = []
    for group in groups:
        ys = jnp.where(real[:, :, None], ys, jnp.zeros_like(ys))  # padding reaches nothing
        part = slice(group.start * directions, group.stop * directions)
        sizes = Sizes(ys.shape[-1], hidden, len(group), directions == 2)
        w = to_flat_weights(tuple(params[d] for d in group)).astype(jnp.float32)
        ys, h, c = _lstm(ys, state0.h[part], state0.c[part], w, jnp.maximum(lengths, 1), sizes)
        ys = jnp.where(real[:, :, None], ys, jnp.zeros_like(ys))  # (B, T, D * H)
        finals.append(LSTMState(h, c))
        if between is not None and group.start < num_layers - 1:
            ys = between(group.start, unflatten(ys))
            ys = (jnp.moveaxis(ys, 0, -2) if time_major else ys).reshape(flat, steps, -1)
    final = LSTMState(*(jnp.concatenate(parts) for parts in zip(*finals, strict=True)))
    final = LSTMState(*(jnp.where(empty, a0, a) for a0, a in zip(state0, final, strict=True)))
    return unflatten(ys), LSTMState(*(a.reshape(count, *batch_shape, hidden) for a in final))


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def _lstm(x, h0, c0, w, lengths, sizes: Sizes):
    """One cuDNN call (:data:`KERNEL`); shapes as :class:`Kernel`'s."""
    out, _ = KERNEL.forward(x, h0, c0, w, lengths, sizes)
    return out


def _lstm_fwd(x, h0, c0, w, lengths, sizes):
    out, residuals = KERNEL.forward(x, h0, c0, w, lengths, sizes)
    return out, (residuals, (x, h0, c0, w, lengths))


def _lstm_bwd(sizes, saved, cotangents):
    residuals, (x, h0, c0, w, lengths) = saved
    if implementations.transformations():  # e.g. jax.jacrev: this runs under vmap
        _, pullback = jax.vjp(
            functools.partial(_on_xla, lengths=lengths, sizes=sizes), x, h0, c0, w
        )
        return (*pullback(cotangents), None)
    return (*KERNEL.backward(sizes, residuals, cotangents), None)


_lstm.defvjp(_lstm_fwd, _lstm_bwd)


def _on_xla(x, h0, c0, w, *, lengths, sizes: Sizes):
    """What one cuDNN call computes, on jlstm's XLA loops (they have every rule)."""
    from jlstm.stack import stack as xla_stack

    params = from_flat_weights(w, *sizes)
    ys, final = xla_stack(
        params, x, initial_state=LSTMState(h0, c0), lengths=lengths, implementation="xla"
    )
    return ys, final.h, final.c
