"""The CIFG LSTM: coupled input and forget gates, i_t = 1 − f_t.

For each time step t, with z_t = [h_{t-1}; x_t] (Greff, Srivastava, Koutník,
Steunebrink & Schmidhuber 2017, "LSTM: A Search Space Odyssey", the CIFG
variant)::

    f_t = σ(W_f z_t + b_f)                 forget gate
    g_t = tanh(W_c z_t + b_c)              candidate memory
    o_t = σ(W_o z_t + b_o)                 output gate
    c_t = f_t ⊙ c_{t-1} + (1 − f_t) ⊙ g_t  cell state: the input gate is 1 − f_t
    h_t = o_t ⊙ tanh(c_t)

Three gate blocks, fused in the order **f, g, o** (the LSTM's order without i):
``w_x (I, 3H)``, ``w_h (H, 3H)``, ``b (3H,)``; ``forget_bias`` (1.0) starts in
the f block, as the LSTM's.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from jlstm.cells.base import Cell, check_fused_params, check_positive_int, expand, matmul
from jlstm.cells.lstm import Initializer, LSTMState, per_gate

Array = jax.Array

GATE_ORDER = ("f", "g", "o")


class CIFGParams(NamedTuple):
    """Parameters of one CIFG LSTM layer in one direction, gates fused as (f, g, o).

    Shapes:
      w_x: (input_size, 3 * hidden_size)
      w_h: (hidden_size, 3 * hidden_size)
      b:   (3 * hidden_size,)
    """

    w_x: Array
    w_h: Array
    b: Array


@dataclasses.dataclass(frozen=True)
class CIFG(Cell):
    """The LSTM with coupled input and forget gates (see the module docstring)."""

    name: ClassVar[str] = "cifg"
    params_type: ClassVar[type] = CIFGParams
    state_type: ClassVar[type] = LSTMState

    def init(
        self,
        key: Array,
        input_size: int,
        hidden_size: int,
        *,
        forget_bias: float = 1.0,
        kernel_init: Initializer = jax.nn.initializers.glorot_uniform(),
        recurrent_init: Initializer = jax.nn.initializers.orthogonal(),
        bias_init: Initializer = jax.nn.initializers.zeros,
        dtype: Any = jnp.float32,
    ) -> CIFGParams:
        """Glorot-uniform input blocks, orthogonal recurrent blocks (each gate's on its own),
        ``bias_init`` (zeros) biases plus ``forget_bias`` in the f block.

        >>> p = CIFG().init(jax.random.key(0), 3, 5)
        >>> p.w_x.shape, p.w_h.shape, p.b.shape
        ((3, 15), (5, 15), (15,))
        >>> print(p.b[:5])
        [1. 1. 1. 1. 1.]
        """
        input_size = check_positive_int("input_size", input_size)
        hidden_size = check_positive_int("hidden_size", hidden_size)
        k_x, k_h, k_b = jax.random.split(key, 3)
        b = bias_init(k_b, (3 * hidden_size,), dtype)
        return CIFGParams(
            w_x=per_gate(kernel_init, k_x, (input_size, hidden_size), 3, dtype),
            w_h=per_gate(recurrent_init, k_h, (hidden_size, hidden_size), 3, dtype),
            b=b.at[:hidden_size].add(jnp.asarray(forget_bias, dtype)),
        )

    def sizes(self, params, name: str = "params") -> tuple[int, int]:
        return check_fused_params(params, CIFGParams, 3, name)

    def step(self, params: CIFGParams, state: LSTMState, x: Array, *, dtype=None):
        gates = matmul(x, params.w_x, dtype) + matmul(state.h, params.w_h, dtype)  # (..., 3H)
        gates = gates + expand(params.b.astype(gates.dtype), gates.ndim)
        a_f, a_g, a_o = jnp.split(gates.astype(state.c.dtype), 3, axis=-1)
        f = jax.nn.sigmoid(a_f)
        c = f * state.c + (1 - f) * jnp.tanh(a_g)
        h = jax.nn.sigmoid(a_o) * jnp.tanh(c)
        return LSTMState(h, c), h
