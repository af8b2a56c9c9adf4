"""The LSTM with a recurrent projection layer, LSTMP (Sak, Senior & Beaufays 2014, "Long
Short-Term Memory Recurrent Neural Network Architectures for Large Scale Acoustic
Modeling"), in the form of ``torch.nn.LSTM(proj_size=P)``.

For each time step t, with H cells and a projection to P < H units::

    a_t = x_t W_x + h_{t-1} W_h + b        (..., 4H), gates i, f, g, o; h_{t-1} is (..., P)
    i_t, f_t, o_t = σ(a_i), σ(a_f), σ(a_o);  g_t = tanh(a_g)
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t        (..., H)
    h_t = (o_t ⊙ tanh(c_t)) W_hr           (..., P): the output and the recurrent input

The state is :class:`~jlstm.cells.LSTMState` with ``h (..., P)`` and ``c (..., H)``,
and each step outputs h_t, so a layer's output size is P. From PyTorch: ``w_x =
weight_ih.T`` (I, 4H), ``w_h = weight_hh.T`` (P, 4H), ``w_hr = weight_hr.T`` (H, P),
``b = bias_ih + bias_hh`` (:mod:`jlstm.interop.torch`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from jlstm.cells.base import (
    Cell,
    article,
    check_float_dtype,
    check_positive_int,
    expand,
    matmul,
    state_dtype,
)
from jlstm.cells.lstm import Initializer, LSTMState, per_gate

Array = jax.Array


class LSTMPParams(NamedTuple):
    """Parameters of one LSTMP layer in one direction, gates fused as (i, f, g, o).

    Shapes:
      w_x:  (input_size, 4 * hidden_size)
      w_h:  (proj_size, 4 * hidden_size)
      b:    (4 * hidden_size,)
      w_hr: (hidden_size, proj_size)
    """

    w_x: Array
    w_h: Array
    b: Array
    w_hr: Array

    @property
    def proj_size(self) -> int:
        return self.w_hr.shape[1]


def check_proj_size(proj_size: Any, hidden_size: int) -> int:
    """A projection size in [1, hidden_size), or a ValueError naming ``proj_size``."""
    proj_size = check_positive_int("proj_size", proj_size)
    if proj_size >= hidden_size:
        raise ValueError(
            f"proj_size must be smaller than hidden_size ({hidden_size}); got {proj_size}"
        )
    return proj_size


@dataclasses.dataclass(frozen=True)
class LSTMP(Cell):
    """The LSTM with a recurrent projection (see the module docstring)."""

    name: ClassVar[str] = "lstmp"
    params_type: ClassVar[type] = LSTMPParams
    state_type: ClassVar[type] = LSTMState

    def init(
        self,
        key: Array,
        input_size: int,
        hidden_size: int,
        *,
        proj_size: int | None = None,
        forget_bias: float = 1.0,
        kernel_init: Initializer = jax.nn.initializers.glorot_uniform(),
        recurrent_init: Initializer = jax.nn.initializers.orthogonal(),
        projection_init: Initializer = jax.nn.initializers.orthogonal(),
        bias_init: Initializer = jax.nn.initializers.zeros,
        dtype: Any = jnp.float32,
    ) -> LSTMPParams:
        """``proj_size`` P (default ``hidden_size // 2``) must be below ``hidden_size``.
        Glorot-uniform input blocks and orthogonal (P, H) recurrent blocks, each gate's on
        its own; an orthogonal (H, P) projection; zero biases plus ``forget_bias`` in f.

        >>> p = LSTMP().init(jax.random.key(0), 3, 8, proj_size=2)
        >>> p.w_x.shape, p.w_h.shape, p.b.shape, p.w_hr.shape
        ((3, 32), (2, 32), (32,), (8, 2))
        """
        input_size = check_positive_int("input_size", input_size)
        hidden_size = check_positive_int("hidden_size", hidden_size)
        proj_size = check_proj_size(
            hidden_size // 2 if proj_size is None else proj_size, hidden_size
        )
        k_x, k_h, k_b, k_r = jax.random.split(key, 4)
        b = bias_init(k_b, (4 * hidden_size,), dtype)
        return LSTMPParams(
            w_x=per_gate(kernel_init, k_x, (input_size, hidden_size), 4, dtype),
            w_h=per_gate(recurrent_init, k_h, (proj_size, hidden_size), 4, dtype),
            b=b.at[hidden_size : 2 * hidden_size].add(jnp.asarray(forget_bias, dtype)),
            w_hr=projection_init(k_r, (hidden_size, proj_size), state_dtype(dtype)).astype(dtype),
        )

    def sizes(self, params, name: str = "params") -> tuple[int, int]:
        if not isinstance(params, LSTMPParams):
            raise TypeError(f"{name} must be {article('LSTMPParams')}; got {type(params).__name__}")
        for field, value in params._asdict().items():
            check_float_dtype(f"{name}.{field}", jnp.result_type(value))
        w_x, w_h, b, w_hr = (jnp.shape(a) for a in params)
        if len(w_hr) != 2 or w_hr[1] >= w_hr[0] or 0 in w_hr:
            raise ValueError(
                f"{name}.w_hr must be (hidden_size, proj_size) with 0 < proj_size < hidden_size; "
                f"got shape {w_hr}"
            )
        hidden, proj = w_hr
        for field, shape, expected in (
            ("w_h", w_h, (proj, 4 * hidden)),
            ("b", b, (4 * hidden,)),
        ):
            if shape != expected:
                raise ValueError(
                    f"{name}.{field} must be {expected} to match w_hr {w_hr}; got shape {shape}"
                )
        if len(w_x) != 2 or w_x[1] != 4 * hidden:
            raise ValueError(
                f"{name}.w_x must be (input_size, {4 * hidden}) to match w_hr {w_hr}; "
                f"got shape {w_x}"
            )
        return w_x[0], hidden

    def output_size(self, params) -> int:
        """P: each step outputs the projected h_t."""
        self.sizes(params)
        return params.w_hr.shape[1]

    def zero_state(self, params, batch_shape: int | tuple[int, ...]) -> LSTMState:
        """h_0 = 0 ``(*batch_shape, P)``, c_0 = 0 ``(*batch_shape, H)``."""
        batch_shape = (batch_shape,) if isinstance(batch_shape, int) else tuple(batch_shape)
        _, hidden = self.sizes(params)
        dtype = state_dtype(jnp.result_type(*jax.tree.leaves(params)))
        return LSTMState(
            h=jnp.zeros((*batch_shape, params.w_hr.shape[1]), dtype),
            c=jnp.zeros((*batch_shape, hidden), dtype),
        )

    def step(self, params: LSTMPParams, state: LSTMState, x: Array, *, dtype=None):
        gates = matmul(x, params.w_x, dtype) + matmul(state.h, params.w_h, dtype)  # (..., 4H)
        gates = gates + expand(params.b.astype(gates.dtype), gates.ndim)
        a_i, a_f, a_g, a_o = jnp.split(gates.astype(state.c.dtype), 4, axis=-1)
        c = jax.nn.sigmoid(a_f) * state.c + jax.nn.sigmoid(a_i) * jnp.tanh(a_g)
        h = matmul(jax.nn.sigmoid(a_o) * jnp.tanh(c), params.w_hr, dtype)  # (..., P)
        return LSTMState(h.astype(c.dtype), c), h.astype(c.dtype)
