"""The Elman RNN cell, with ``torch.nn.RNN``'s equations.

For each time step t::

    h_t = φ(x_t W_x + h_{t-1} W_h + b)

with φ = tanh (``nonlinearity="tanh"``, the default) or ReLU
(``nonlinearity="relu"``); Elman 1990. ``w_x = weight_ih.T``, ``w_h =
weight_hh.T``, ``b = bias_ih + bias_hh``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from jlstm.cells.base import Cell, check_fused_params, check_positive_int, expand, matmul
from jlstm.cells.gru import HiddenState
from jlstm.cells.lstm import Initializer

Array = jax.Array

NONLINEARITIES = {"tanh": jnp.tanh, "relu": jax.nn.relu}


class RNNParams(NamedTuple):
    """Parameters of one Elman RNN layer in one direction.

    Shapes:
      w_x: (input_size, hidden_size)
      w_h: (hidden_size, hidden_size)
      b:   (hidden_size,)
    """

    w_x: Array
    w_h: Array
    b: Array


@dataclasses.dataclass(frozen=True)
class ElmanRNN(Cell):
    """h_t = φ(x_t W_x + h_{t-1} W_h + b), φ = ``nonlinearity`` ("tanh" or "relu")."""

    nonlinearity: str = "tanh"
    params_type: ClassVar[type] = RNNParams
    state_type: ClassVar[type] = HiddenState

    def __post_init__(self):
        if self.nonlinearity not in NONLINEARITIES:
            raise ValueError(
                f"nonlinearity must be one of {sorted(NONLINEARITIES)}; got {self.nonlinearity!r}"
            )

    @property
    def name(self) -> str:  # "rnn" (tanh) or "rnn_relu"
        return "rnn" if self.nonlinearity == "tanh" else f"rnn_{self.nonlinearity}"

    def init(
        self,
        key: Array,
        input_size: int,
        hidden_size: int,
        *,
        kernel_init: Initializer = jax.nn.initializers.glorot_uniform(),
        recurrent_init: Initializer = jax.nn.initializers.orthogonal(),
        bias_init: Initializer = jax.nn.initializers.zeros,
        dtype: Any = jnp.float32,
    ) -> RNNParams:
        """Glorot-uniform ``w_x``, orthogonal ``w_h``, zero ``b``.

        >>> p = ElmanRNN().init(jax.random.key(0), 3, 5)
        >>> p.w_x.shape, p.w_h.shape, p.b.shape
        ((3, 5), (5, 5), (5,))
        """
        input_size = check_positive_int("input_size", input_size)
        hidden_size = check_positive_int("hidden_size", hidden_size)
        k_x, k_h, k_b = jax.random.split(key, 3)
        dt = jnp.float64 if jnp.dtype(dtype).itemsize > 4 else jnp.float32
        return RNNParams(
            w_x=kernel_init(k_x, (input_size, hidden_size), dt).astype(dtype),
            w_h=recurrent_init(k_h, (hidden_size, hidden_size), dt).astype(dtype),
            b=bias_init(k_b, (hidden_size,), dtype),
        )

    def sizes(self, params, name: str = "params") -> tuple[int, int]:
        return check_fused_params(params, RNNParams, 1, name)

    def step(self, params: RNNParams, state: HiddenState, x: Array, *, dtype=None):
        a = matmul(x, params.w_x, dtype) + matmul(state.h, params.w_h, dtype)  # (..., H)
        a = a + expand(params.b.astype(a.dtype), a.ndim)
        h = NONLINEARITIES[self.nonlinearity](a.astype(state.h.dtype))
        return HiddenState(h), h
