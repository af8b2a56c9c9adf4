"""The GRU cell, with ``torch.nn.GRU``'s equations and gate layout.

For each time step t::

    r_t = σ(x_t W_xr + h_{t-1} W_hr + b_r)               reset gate
    z_t = σ(x_t W_xz + h_{t-1} W_hz + b_z)               update gate
    n_t = tanh(x_t W_xn + b_n + r_t ⊙ (h_{t-1} W_hn + b_hn))   candidate
    h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t-1}

(Cho et al. 2014, in the form of cuDNN and PyTorch: the reset gate multiplies
the recurrent product *and* its bias ``b_hn``.) Gates are fused along the last
axis in the order **r, z, n**, PyTorch's: ``w_x = weight_ih.T``, ``w_h =
weight_hh.T``; ``b`` holds ``bias_ih + bias_hh`` for r and z and ``bias_ih``
for n, and ``b_hn`` is the n block of ``bias_hh``, which sits inside the reset
product and so cannot be summed into ``b``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from jlstm.cells.base import Cell, check_fused_params, check_positive_int, expand, matmul
from jlstm.cells.lstm import Initializer, per_gate

Array = jax.Array


class GRUParams(NamedTuple):
    """Parameters of one GRU layer in one direction, gates fused as (r, z, n).

    Shapes:
      w_x: (input_size, 3 * hidden_size)
      w_h: (hidden_size, 3 * hidden_size)
      b:   (3 * hidden_size,)
      b_hn: (hidden_size,)
    """

    w_x: Array
    w_h: Array
    b: Array
    b_hn: Array


class HiddenState(NamedTuple):
    """The state of a cell whose state is its output: ``h (..., hidden_size)``."""

    h: Array


@dataclasses.dataclass(frozen=True)
class GRU(Cell):
    """The gated recurrent unit (``torch.nn.GRU``'s equations; see the module docstring)."""

    name: ClassVar[str] = "gru"
    params_type: ClassVar[type] = GRUParams
    state_type: ClassVar[type] = HiddenState

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
    ) -> GRUParams:
        """Glorot-uniform input blocks, orthogonal recurrent blocks (each gate's on its
        own), zero biases.

        >>> p = GRU().init(jax.random.key(0), 3, 5)
        >>> p.w_x.shape, p.w_h.shape, p.b.shape, p.b_hn.shape
        ((3, 15), (5, 15), (15,), (5,))
        """
        input_size = check_positive_int("input_size", input_size)
        hidden_size = check_positive_int("hidden_size", hidden_size)
        k_x, k_h, k_b, k_n = jax.random.split(key, 4)
        return GRUParams(
            w_x=per_gate(kernel_init, k_x, (input_size, hidden_size), 3, dtype),
            w_h=per_gate(recurrent_init, k_h, (hidden_size, hidden_size), 3, dtype),
            b=bias_init(k_b, (3 * hidden_size,), dtype),
            b_hn=bias_init(k_n, (hidden_size,), dtype),
        )

    def sizes(self, params, name: str = "params") -> tuple[int, int]:
        return check_fused_params(params, GRUParams, 3, name, extra={"b_hn": "(H,)"})

    def step(self, params: GRUParams, state: HiddenState, x: Array, *, dtype=None):
        h = state.h
        a_x = matmul(x, params.w_x, dtype)  # (..., 3H)
        a_x = a_x + expand(params.b.astype(a_x.dtype), a_x.ndim)
        a_h = matmul(h, params.w_h, dtype)  # (..., 3H)
        x_r, x_z, x_n = jnp.split(a_x.astype(h.dtype), 3, axis=-1)
        h_r, h_z, h_n = jnp.split(a_h.astype(h.dtype), 3, axis=-1)
        r = jax.nn.sigmoid(x_r + h_r)
        z = jax.nn.sigmoid(x_z + h_z)
        n = jnp.tanh(x_n + r * (h_n + expand(params.b_hn.astype(h.dtype), h.ndim)))
        h = (1 - z) * n + z * h
        return HiddenState(h), h
