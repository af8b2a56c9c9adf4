"""The peephole LSTM: the gates also look at the cell state.

For each time step t, with z_t = [h_{t-1}; x_t] (Gers & Schmidhuber 2000, "Recurrent
nets that time and count"; the equations of Gers, Schraudolph & Schmidhuber 2002,
"Learning precise timing with LSTM recurrent networks")::

    i_t = σ(W_i z_t + p_i ⊙ c_{t-1} + b_i)   input gate, peeks at c_{t-1}
    f_t = σ(W_f z_t + p_f ⊙ c_{t-1} + b_f)   forget gate, peeks at c_{t-1}
    g_t = tanh(W_c z_t + b_c)                candidate memory
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t          cell state
    o_t = σ(W_o z_t + p_o ⊙ c_t + b_o)       output gate, peeks at the new c_t
    h_t = o_t ⊙ tanh(c_t)

The peephole weights p_i, p_f, p_o are diagonal: (H,) vectors. ``w_x``, ``w_h``
and ``b`` are the LSTM's (:class:`~jlstm.cells.LSTMParams`, gates fused as i, f,
g, o); the peepholes start at zero (``peephole_init``), so a fresh cell computes
exactly the LSTM.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from jlstm.cells.base import Cell, check_fused_params, expand, matmul, state_dtype
from jlstm.cells.lstm import Initializer, LSTMState, init_params

Array = jax.Array


class PeepholeParams(NamedTuple):
    """Parameters of one peephole LSTM layer in one direction, gates fused as (i, f, g, o).

    Shapes:
      w_x: (input_size, 4 * hidden_size)
      w_h: (hidden_size, 4 * hidden_size)
      b:   (4 * hidden_size,)
      p_i, p_f, p_o: (hidden_size,)
    """

    w_x: Array
    w_h: Array
    b: Array
    p_i: Array
    p_f: Array
    p_o: Array


@dataclasses.dataclass(frozen=True)
class PeepholeLSTM(Cell):
    """The LSTM with diagonal peephole connections (see the module docstring)."""

    name: ClassVar[str] = "peephole"
    params_type: ClassVar[type] = PeepholeParams
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
        peephole_init: Initializer = jax.nn.initializers.zeros,
        dtype: Any = jnp.float32,
    ) -> PeepholeParams:
        """The LSTM's initialisation (:func:`jlstm.cell.init_params`) for ``w_x``, ``w_h``
        and ``b``; ``peephole_init`` (zeros) for each of p_i, p_f, p_o.

        >>> p = PeepholeLSTM().init(jax.random.key(0), 3, 5)
        >>> p.w_h.shape, p.p_o.shape
        ((5, 20), (5,))
        """
        k_lstm, k_i, k_f, k_o = jax.random.split(key, 4)
        lstm = init_params(
            k_lstm,
            input_size,
            hidden_size,
            forget_bias=forget_bias,
            kernel_init=kernel_init,
            recurrent_init=recurrent_init,
            bias_init=bias_init,
            dtype=dtype,
        )
        sd = state_dtype(dtype)
        p_i, p_f, p_o = (
            peephole_init(k, (hidden_size,), sd).astype(dtype) for k in (k_i, k_f, k_o)
        )
        return PeepholeParams(*lstm, p_i=p_i, p_f=p_f, p_o=p_o)

    def sizes(self, params, name: str = "params") -> tuple[int, int]:
        extra = {"p_i": "(H,)", "p_f": "(H,)", "p_o": "(H,)"}
        return check_fused_params(params, PeepholeParams, 4, name, extra=extra)

    def step(self, params: PeepholeParams, state: LSTMState, x: Array, *, dtype=None):
        c = state.c
        gates = matmul(x, params.w_x, dtype) + matmul(state.h, params.w_h, dtype)  # (..., 4H)
        gates = gates + expand(params.b.astype(gates.dtype), gates.ndim)
        a_i, a_f, a_g, a_o = jnp.split(gates.astype(c.dtype), 4, axis=-1)
        p_i, p_f, p_o = (expand(p.astype(c.dtype), c.ndim) for p in params[3:])
        i = jax.nn.sigmoid(a_i + p_i * c)
        f = jax.nn.sigmoid(a_f + p_f * c)
        c = f * c + i * jnp.tanh(a_g)
        h = jax.nn.sigmoid(a_o + p_o * c) * jnp.tanh(c)
        return LSTMState(h, c), h
