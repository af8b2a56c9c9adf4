"""The layer-normalised LSTM (Ba, Kiros & Hinton 2016, "Layer Normalization", §3.1 and the
LSTM equations of its appendix).

For each time step t, with LN(a; α, β) = α ⊙ (a − μ(a)) / sqrt(σ²(a) + ε) + β over
the last axis of a (its mean μ and biased variance σ²)::

    a_t = LN(x_t W_x; α_x) + LN(h_{t-1} W_h; α_h) + b        (..., 4H), gates i, f, g, o
    i_t, f_t, o_t = σ(a_i), σ(a_f), σ(a_o);  g_t = tanh(a_g)
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t                          the state keeps c_t itself
    h_t = o_t ⊙ tanh(LN(c_t; α_c, β_c))

The input and recurrent pre-activations are normalised separately, each over
all 4H of them (as in the paper, and in TensorFlow Addons' ``LayerNormLSTMCell``);
the cell state is normalised only on its way to the output. The paper's biases of
the first two normalisations, β_x and β_h, reach the forward pass only as the sum
β_x + β_h + b, so ``b`` holds all three: ``gain_x``, ``gain_h``, ``gain_c`` start
at 1, ``bias_c`` at 0, and ``b`` at zeros with ``forget_bias`` (1.0) in the f
block, as the LSTM's. ``eps`` (ε, 1e-5 as ``torch.nn.LayerNorm``'s) is an option
of the cell.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from jlstm.cells.base import Cell, check_fused_params, expand, matmul
from jlstm.cells.lstm import Initializer, LSTMState, init_params

Array = jax.Array


class LayerNormLSTMParams(NamedTuple):
    """Parameters of one layer-normalised LSTM layer in one direction, gates (i, f, g, o).

    Shapes:
      w_x: (input_size, 4 * hidden_size)
      w_h: (hidden_size, 4 * hidden_size)
      b:   (4 * hidden_size,)
      gain_x, gain_h: (4 * hidden_size,)   gains of LN(x W_x), LN(h W_h)
      gain_c, bias_c: (hidden_size,)       gain and bias of LN(c)
    """

    w_x: Array
    w_h: Array
    b: Array
    gain_x: Array
    gain_h: Array
    gain_c: Array
    bias_c: Array


def layer_norm(a: Array, gain: Array, bias: Array | None, eps: float) -> Array:
    """LN(a; gain, bias) over the last axis, in ``a``'s dtype."""
    mean = a.mean(axis=-1, keepdims=True)
    centred = a - mean
    var = (centred * centred).mean(axis=-1, keepdims=True)
    out = centred * jax.lax.rsqrt(var + eps) * expand(gain.astype(a.dtype), a.ndim)
    return out if bias is None else out + expand(bias.astype(a.dtype), a.ndim)


@dataclasses.dataclass(frozen=True)
class LayerNormLSTM(Cell):
    """The LSTM with layer normalisation (see the module docstring); ``eps`` is ε."""

    eps: float = 1e-5
    name: ClassVar[str] = "layernorm_lstm"
    params_type: ClassVar[type] = LayerNormLSTMParams
    state_type: ClassVar[type] = LSTMState

    def __post_init__(self):
        if isinstance(self.eps, bool) or not isinstance(self.eps, int | float) or self.eps <= 0:
            raise ValueError(f"eps must be a positive number; got {self.eps!r}")

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
    ) -> LayerNormLSTMParams:
        """The LSTM's ``w_x``, ``w_h`` and ``b`` (:func:`jlstm.cell.init_params`); gains 1,
        ``bias_c`` 0.

        >>> p = LayerNormLSTM().init(jax.random.key(0), 3, 5)
        >>> p.gain_x.shape, p.gain_c.shape, float(p.gain_h[0]), float(p.b[5])
        ((20,), (5,), 1.0, 1.0)
        """
        lstm = init_params(
            key,
            input_size,
            hidden_size,
            forget_bias=forget_bias,
            kernel_init=kernel_init,
            recurrent_init=recurrent_init,
            bias_init=bias_init,
            dtype=dtype,
        )
        ones = jnp.ones((4 * hidden_size,), dtype)
        return LayerNormLSTMParams(
            *lstm,
            gain_x=ones,
            gain_h=ones,
            gain_c=jnp.ones((hidden_size,), dtype),
            bias_c=jnp.zeros((hidden_size,), dtype),
        )

    def sizes(self, params, name: str = "params") -> tuple[int, int]:
        input_size, hidden = check_fused_params(
            params, LayerNormLSTMParams, 4, name, extra={"gain_c": "(H,)", "bias_c": "(H,)"}
        )
        for field in ("gain_x", "gain_h"):
            shape = jnp.shape(getattr(params, field))
            if shape != (4 * hidden,):
                raise ValueError(f"{name}.{field} must be ({4 * hidden},); got shape {shape}")
        return input_size, hidden

    def step(self, params: LayerNormLSTMParams, state: LSTMState, x: Array, *, dtype=None):
        sd = state.c.dtype
        a_x = matmul(x, params.w_x, dtype).astype(sd)  # (..., 4H)
        a_h = matmul(state.h, params.w_h, dtype).astype(sd)  # (..., 4H)
        gates = layer_norm(a_x, params.gain_x, None, self.eps)
        gates = gates + layer_norm(a_h, params.gain_h, None, self.eps)
        gates = gates + expand(params.b.astype(sd), gates.ndim)
        a_i, a_f, a_g, a_o = jnp.split(gates, 4, axis=-1)
        c = jax.nn.sigmoid(a_f) * state.c + jax.nn.sigmoid(a_i) * jnp.tanh(a_g)
        h = jax.nn.sigmoid(a_o) * jnp.tanh(layer_norm(c, params.gain_c, params.bias_c, self.eps))
        return LSTMState(h, c), h
