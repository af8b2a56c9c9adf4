"""The sLSTM cell of xLSTM (Beck, Pöppel, Spanring, Auer, Prudnikova, Kopp, Klambauer,
Brandstetter & Hochreiter 2024, "xLSTM: Extended Long Short-Term Memory", §2.2 and
appendix A.2): exponential gating, a normaliser state and block-diagonal recurrence.

For each time step t, with pre-activations in the gate order **i, f, z, o** (the
LSTM's i, f, g, o, the candidate called z)::

    ĩ, f̃, z̃, õ = x_t W_x + h_{t-1} R + b            R block-diagonal: one block per head
    log i_t = ĩ_t                                     exponential input gate
    log f_t = log σ(f̃_t)  (forget="sigmoid")  or  f̃_t  (forget="exp")
    z_t = tanh(z̃_t),  o_t = σ(õ_t)

and the paper's stabilised update, with the stabiliser state m_t::

    m_t = max(log f_t + m_{t-1}, log i_t)
    i'_t = exp(log i_t − m_t),   f'_t = exp(log f_t + m_{t-1} − m_t)
    c_t = f'_t ⊙ c_{t-1} + i'_t ⊙ z_t                 cell state
    n_t = f'_t ⊙ n_{t-1} + i'_t                       normaliser state
    h_t = o_t ⊙ c_t / n_t

which computes the unstabilised c_t = f_t c_{t-1} + i_t z_t, n_t = f_t n_{t-1} +
i_t, h_t = o_t c_t / n_t with c and n scaled by exp(−m_t); h_t does not depend on
m. The state is :class:`SLSTMState` ``(h, c, n, m)``, each ``(..., H)``.

Clamping: none. n = 0 is the empty memory (the zero state, before the first
step): there m_t = log i_t and f'_t = 0, the paper's update with m_{t-1} = −∞,
as the xLSTM authors' vanilla code does at the first step (it tests ``n == 0``
for the whole batch; here each unit is tested on its own). Reference
implementations differ in the clamps they add: some clamp the gates (i', f' ≤ 1),
some the normaliser (n ≥ 1). Under this rule both hold without a clamp: m_t is the
larger of the two exponents, so i'_t ≤ 1 and f'_t ≤ 1 with one of them 1, hence
n_t = 1 at the first step and n_t ≥ 1 after it. So this cell clamps nothing and
computes the paper's equations exactly; only an initial state given with
0 < n < 1 would be treated differently by an n ≥ 1 clamp.

Recurrent weights: ``w_h (num_heads, H / num_heads, 4 H / num_heads)``, head k
mapping its slice of h_{t-1} to its slice of every gate (blocks i, f, z, o of
H / num_heads within a head). ``w_x (I, 4H)`` and ``b (4H,)`` are fused as the
LSTM's, gates i, f, z, o in blocks of H.
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
from jlstm.cells.lstm import Initializer, per_gate

Array = jax.Array

FORGET_GATES = ("sigmoid", "exp")


class SLSTMParams(NamedTuple):
    """Parameters of one sLSTM layer in one direction, gates fused as (i, f, z, o).

    Shapes:
      w_x: (input_size, 4 * hidden_size)
      w_h: (num_heads, head_size, 4 * head_size), head_size = hidden_size / num_heads
      b:   (4 * hidden_size,)
    """

    w_x: Array
    w_h: Array
    b: Array

    @property
    def num_heads(self) -> int:
        return self.w_h.shape[0]


class SLSTMState(NamedTuple):
    """The sLSTM's state: output h, cell c, normaliser n and stabiliser m.

    Shapes:
      h, c, n, m: (..., hidden_size)
    """

    h: Array
    c: Array
    n: Array
    m: Array


def recurrent(h: Array, w_h: Array, dtype=None) -> Array:
    """h R for the block-diagonal R of ``w_h (NH, d, 4d)``: (..., H) -> (..., 4H), gate-major."""
    heads, d, _ = w_h.shape
    compute = w_h.dtype if dtype is None else dtype
    r = jnp.einsum(
        "...nd,nde->...ne",
        h.reshape(*h.shape[:-1], heads, d).astype(compute),
        w_h.astype(compute),
        preferred_element_type=state_dtype(w_h.dtype),
    )  # (..., NH, 4d)
    r = r.reshape(*r.shape[:-1], 4, d)  # (..., NH, 4, d)
    return jnp.swapaxes(r, -3, -2).reshape(*h.shape[:-1], 4 * heads * d)  # (..., 4H)


@dataclasses.dataclass(frozen=True)
class SLSTM(Cell):
    """The sLSTM (see the module docstring); ``forget`` is "sigmoid" or "exp"."""

    forget: str = "sigmoid"
    params_type: ClassVar[type] = SLSTMParams
    state_type: ClassVar[type] = SLSTMState

    def __post_init__(self):
        if self.forget not in FORGET_GATES:
            raise ValueError(f"forget must be one of {FORGET_GATES}; got {self.forget!r}")

    @property
    def name(self) -> str:  # "slstm" (sigmoid forget gate) or "slstm_exp"
        return "slstm" if self.forget == "sigmoid" else f"slstm_{self.forget}"

    def init(
        self,
        key: Array,
        input_size: int,
        hidden_size: int,
        *,
        num_heads: int = 1,
        forget_bias: float = 1.0,
        kernel_init: Initializer = jax.nn.initializers.glorot_uniform(),
        recurrent_init: Initializer = jax.nn.initializers.orthogonal(),
        bias_init: Initializer = jax.nn.initializers.zeros,
        dtype: Any = jnp.float32,
    ) -> SLSTMParams:
        """``num_heads`` must divide ``hidden_size``. Glorot-uniform input blocks, an
        orthogonal (d, d) block per head and gate, zero biases plus ``forget_bias`` in f.

        >>> p = SLSTM().init(jax.random.key(0), 3, 8, num_heads=2)
        >>> p.w_x.shape, p.w_h.shape, p.b.shape
        ((3, 32), (2, 4, 16), (32,))
        """
        input_size = check_positive_int("input_size", input_size)
        hidden_size = check_positive_int("hidden_size", hidden_size)
        num_heads = check_positive_int("num_heads", num_heads)
        if hidden_size % num_heads:
            raise ValueError(
                f"num_heads must divide hidden_size ({hidden_size}); got num_heads={num_heads}"
            )
        d = hidden_size // num_heads
        k_x, k_h, k_b = jax.random.split(key, 3)
        heads = jax.random.split(k_h, num_heads)
        w_h = jnp.stack([per_gate(recurrent_init, k, (d, d), 4, dtype) for k in heads])
        b = bias_init(k_b, (4 * hidden_size,), dtype)
        return SLSTMParams(
            w_x=per_gate(kernel_init, k_x, (input_size, hidden_size), 4, dtype),
            w_h=w_h,
            b=b.at[hidden_size : 2 * hidden_size].add(jnp.asarray(forget_bias, dtype)),
        )

    def sizes(self, params, name: str = "params") -> tuple[int, int]:
        if not isinstance(params, SLSTMParams):
            raise TypeError(f"{name} must be {article('SLSTMParams')}; got {type(params).__name__}")
        for field, value in params._asdict().items():
            check_float_dtype(f"{name}.{field}", jnp.result_type(value))
        w_x, w_h, b = (jnp.shape(a) for a in params)
        if len(w_h) != 3 or 0 in w_h or w_h[2] != 4 * w_h[1]:
            raise ValueError(
                f"{name}.w_h must be (num_heads, head_size, 4 * head_size); got shape {w_h}"
            )
        hidden = w_h[0] * w_h[1]
        if len(w_x) != 2 or w_x[1] != 4 * hidden:
            raise ValueError(
                f"{name}.w_x must be (input_size, {4 * hidden}) to match w_h {w_h}; got shape {w_x}"
            )
        if b != (4 * hidden,):
            raise ValueError(f"{name}.b must be ({4 * hidden},) to match w_h {w_h}; got shape {b}")
        return w_x[0], hidden

    def step(self, params: SLSTMParams, state: SLSTMState, x: Array, *, dtype=None):
        sd = state.c.dtype
        a = matmul(x, params.w_x, dtype) + recurrent(state.h, params.w_h, dtype)  # (..., 4H)
        a = (a + expand(params.b.astype(a.dtype), a.ndim)).astype(sd)
        log_i, a_f, a_z, a_o = jnp.split(a, 4, axis=-1)
        log_f = jax.nn.log_sigmoid(a_f) if self.forget == "sigmoid" else a_f
        empty = state.n == 0  # no memory yet: m_{t-1} = -inf
        m = jnp.where(empty, log_i, jnp.maximum(log_f + state.m, log_i))
        i = jnp.exp(log_i - m)
        # f' = 0 on an empty memory; its exponent is zeroed there so that no inf (or its
        # gradient) arises in the branch not taken.
        f = jnp.where(empty, 0.0, jnp.exp(jnp.where(empty, 0.0, log_f + state.m - m)))
        c = f * state.c + i * jnp.tanh(a_z)
        n = f * state.n + i
        h = jax.nn.sigmoid(a_o) * c / n
        return SLSTMState(h, c, n, m), h
