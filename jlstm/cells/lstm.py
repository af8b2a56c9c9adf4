"""The LSTM cell: parameters, state, initialisation and one time step.

For each time step t, with z_t = [h_{t-1}; x_t]::

    i_t = σ(W_i z_t + b_i)            input gate
    f_t = σ(W_f z_t + b_f)            forget gate
    g_t = tanh(W_c z_t + b_c)         candidate memory
    o_t = σ(W_o z_t + b_o)            output gate
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t   cell state
    h_t = o_t ⊙ tanh(c_t)             hidden state (the output)

The four gates are fused: ``x @ w_x + h @ w_h + b`` gives all of them at once,
in blocks of ``hidden_size`` along the last axis, in the order **i, f, g, o**
(the order of PyTorch, cuDNN and Flax's ``OptimizedLSTMCell``). :func:`gate_view`
gives the per-gate matrices of the equations.

The same arithmetic in the fast implementations (:mod:`jlstm.fused`, and the
C++ kernel ``jlstm/csrc/lstm_cpu.cc``), written differently for speed: since
σ(a) = (1 + tanh(a / 2)) / 2, the i, f and o columns of ``[w_x; w_h]`` and
``b`` are halved once per call and one tanh over the (B, 4H) pre-activations
gives t_i, t_f, t_g, t_o, with i = (1 + t_i) / 2, f = (1 + t_f) / 2, g = t_g,
o = (1 + t_o) / 2; then c_t and h_t as above. ``tests/test_implementations.py``
holds every implementation to :meth:`LSTM.step` scanned by ``lax.scan``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from jlstm.cells.base import (
    Cell,
    check_fused_params,
    check_positive_int,
    check_step_inputs,
    expand,
    matmul,
    state_dtype,
)

Array = jax.Array
Initializer = Any  # jax.nn.initializers.Initializer: (key, shape, dtype) -> Array

GATE_ORDER = ("i", "f", "g", "o")


class LSTMParams(NamedTuple):
    """Parameters of one LSTM layer in one direction, gates fused as (i, f, g, o).

    Shapes:
      w_x: (input_size, 4 * hidden_size)
      w_h: (hidden_size, 4 * hidden_size)
      b:   (4 * hidden_size,)
    """

    w_x: Array
    w_h: Array
    b: Array

    @property
    def input_size(self) -> int:
        return self.w_x.shape[0]

    @property
    def hidden_size(self) -> int:
        return self.w_h.shape[0]


class LSTMState(NamedTuple):
    """The recurrent state: hidden state ``h`` and cell state ``c``.

    Shapes:
      h: (..., hidden_size)
      c: (..., hidden_size)
    """

    h: Array
    c: Array


class GateView(NamedTuple):
    """Per-gate parameters in the equations' notation.

    Each ``W`` acts on z_t = [h_{t-1}; x_t]:

    Shapes:
      W_i, W_f, W_c, W_o: (hidden_size, hidden_size + input_size)
      b_i, b_f, b_c, b_o: (hidden_size,)
    """

    W_i: Array
    W_f: Array
    W_c: Array
    W_o: Array
    b_i: Array
    b_f: Array
    b_c: Array
    b_o: Array


def per_gate(init: Initializer, key: Array, shape: tuple[int, int], gates: int, dtype) -> Array:
    """Initialise each of ``gates`` (rows, H) blocks separately, then fuse them.

    Blocks are drawn in float32 (or float64) and cast, since some initializers
    (orthogonal's QR) have no bfloat16 implementation.
    """
    keys = jax.random.split(key, gates)
    blocks = [init(k, shape, state_dtype(dtype)) for k in keys]
    return jnp.concatenate(blocks, axis=-1).astype(dtype)


def init_params(
    key: Array,
    input_size: int,
    hidden_size: int,
    *,
    forget_bias: float = 1.0,
    kernel_init: Initializer = jax.nn.initializers.glorot_uniform(),
    recurrent_init: Initializer = jax.nn.initializers.orthogonal(),
    bias_init: Initializer = jax.nn.initializers.zeros,
    dtype: Any = jnp.float32,
) -> LSTMParams:
    """Initialise one layer's parameters.

    Each gate's block is initialised on its own: ``kernel_init`` (Xavier/Glorot
    uniform) for the (input_size, H) input blocks, ``recurrent_init``
    (orthogonal) for the (H, H) recurrent blocks, ``bias_init`` (zeros) for the
    bias, after which ``forget_bias`` is added to the forget block. The forget
    bias lives in ``b``: the forward pass adds no hidden constant.

    Shapes:
      returns LSTMParams(w_x (input_size, 4H), w_h (H, 4H), b (4H,))

    >>> p = init_params(jax.random.key(0), 3, 5)
    >>> p.w_x.shape, p.w_h.shape, p.b.shape
    ((3, 20), (5, 20), (20,))
    >>> print(p.b[5:10])
    [1. 1. 1. 1. 1.]
    """
    input_size = check_positive_int("input_size", input_size)
    hidden_size = check_positive_int("hidden_size", hidden_size)
    k_x, k_h, k_b = jax.random.split(key, 3)
    w_x = per_gate(kernel_init, k_x, (input_size, hidden_size), 4, dtype)
    w_h = per_gate(recurrent_init, k_h, (hidden_size, hidden_size), 4, dtype)
    b = bias_init(k_b, (4 * hidden_size,), dtype)
    b = b.at[hidden_size : 2 * hidden_size].add(jnp.asarray(forget_bias, dtype))
    return LSTMParams(w_x, w_h, b)


def check_params(params: LSTMParams, name: str = "params") -> tuple[int, int]:
    """Check that the three arrays agree; return (input_size, hidden_size)."""
    return check_fused_params(params, LSTMParams, 4, name)


def gates_to_state(gates: Array, c: Array) -> tuple[LSTMState, Array]:
    """The cell's elementwise part: pre-activations (..., 4H) and c_{t-1} -> new state.

    ``gates`` is float32 (or whatever ``c`` is); the result keeps ``c``'s dtype.
    """
    i, f, g, o = jnp.split(gates.astype(c.dtype), 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return LSTMState(h, c), h


@dataclasses.dataclass(frozen=True)
class LSTM(Cell):
    """The LSTM cell of the equations above (the seed's), gates fused as i, f, g, o."""

    name: ClassVar[str] = "lstm"
    params_type: ClassVar[type] = LSTMParams
    state_type: ClassVar[type] = LSTMState
    fast_implementations: ClassVar[tuple[str, ...]] = ("xla", "cpu_kernel", "parallel")

    # init_params itself, so that its options (forget_bias, the initializers, dtype) are
    # the signature the training configs read to know which options this cell takes.
    init = staticmethod(init_params)

    def sizes(self, params, name: str = "params") -> tuple[int, int]:
        return check_params(params, name)

    def step(self, params: LSTMParams, state: LSTMState, x: Array, *, dtype=None):
        gates = matmul(x, params.w_x, dtype) + matmul(state.h, params.w_h, dtype)  # (..., 4H)
        gates = gates + expand(params.b.astype(gates.dtype), gates.ndim)
        return gates_to_state(gates, state.c)


def cell(params: LSTMParams, state: LSTMState, x: Array, *, dtype=None) -> tuple[LSTMState, Array]:
    """One time step: (state_{t-1}, x_t) -> (state_t, h_t), the ``lax.scan`` contract.

    ``dtype=jnp.bfloat16`` runs the two matmuls in bfloat16; the gate
    arithmetic and the cell state stay in the state's dtype (float32).

    Shapes:
      x: (..., input_size); state.h, state.c: (..., H) -> h: (..., H)

    >>> p = init_params(jax.random.key(0), 3, 5)
    >>> state, h = cell(p, zero_state(2, 5), jnp.ones((2, 3)))
    >>> h.shape, state.c.shape
    ((2, 5), (2, 5))
    """
    check_step_inputs(LSTM(), params, state, x)
    return LSTM().step(params, state, x, dtype=dtype)


def zero_state(
    batch_shape: int | tuple[int, ...], hidden_size: int, dtype=jnp.float32
) -> LSTMState:
    """h_0 = c_0 = 0.

    Shapes:
      returns LSTMState(h (*batch_shape, H), c (*batch_shape, H))

    >>> zero_state(4, 8).h.shape
    (4, 8)
    """
    batch_shape = (batch_shape,) if isinstance(batch_shape, int) else tuple(batch_shape)
    zeros = jnp.zeros((*batch_shape, hidden_size), dtype)
    return LSTMState(zeros, zeros)


def gate_view(params: LSTMParams) -> GateView:
    """Split fused parameters into the equations' per-gate W (acting on [h; x]) and b.

    >>> v = gate_view(init_params(jax.random.key(0), 3, 5))
    >>> v.W_f.shape, v.b_f.shape
    ((5, 8), (5,))
    """
    check_params(params)
    w = jnp.concatenate([params.w_h, params.w_x], axis=0).T  # (4H, H + I)
    W_i, W_f, W_c, W_o = jnp.split(w, 4, axis=0)
    b_i, b_f, b_c, b_o = jnp.split(params.b, 4)
    return GateView(W_i, W_f, W_c, W_o, b_i, b_f, b_c, b_o)


def from_gate_view(view: GateView) -> LSTMParams:
    """Inverse of :func:`gate_view`: ``input_size`` is inferred as columns - H."""
    hidden = view.W_i.shape[0]
    w = jnp.concatenate([view.W_i, view.W_f, view.W_c, view.W_o], axis=0).T  # (H + I, 4H)
    b = jnp.concatenate([view.b_i, view.b_f, view.b_c, view.b_o])
    return LSTMParams(w_x=w[hidden:], w_h=w[:hidden], b=b)
