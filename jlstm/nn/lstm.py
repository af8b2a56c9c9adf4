"""NNX modules that own LSTM parameters and call the pure core.

:class:`LSTMCell` holds one :class:`~jlstm.cell.LSTMParams` as three
``nnx.Param`` (``w_x``, ``w_h``, ``b``, gates fused as i, f, g, o) and runs
:func:`jlstm.cell.cell`; :class:`LSTM` holds one cell per layer and direction,
``layers[layer][direction]``, and runs :func:`jlstm.stack.stack`. Neither
stores a random key: dropout takes ``dropout_key`` at call time.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jlstm.cell import LSTMParams, LSTMState, cell, check_params, init_params, zero_state
from jlstm.stack import StackParams, stack, stack_shape

Array = jax.Array
Initializer = Any


def _check_positive(**values) -> None:
    for name, value in values.items():
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}")


class LSTMCell(nnx.Module):
    """One LSTM time step with its own parameters: :func:`jlstm.cell.cell`.

    Called as a ``lax.scan`` step, ``cell(state, x) -> (new_state, h)``.
    ``dtype`` (e.g. ``jnp.bfloat16``) is the matmuls' dtype, ``param_dtype``
    the parameters'; the cell state stays float32.

    Shapes:
      w_x: (in_features, 4H), w_h: (H, 4H), b: (4H,)
      x: (*batch, in_features); state.h, state.c: (*batch, H)  ->  h: (*batch, H)

    >>> cell = LSTMCell(3, 8, rngs=nnx.Rngs(0))
    >>> state, h = cell(cell.initial_state(2), jnp.ones((2, 3)))
    >>> h.shape, state.c.shape
    ((2, 8), (2, 8))
    """

    def __init__(
        self,
        in_features: int,
        hidden_size: int,
        *,
        forget_bias: float = 1.0,
        kernel_init: Initializer = jax.nn.initializers.glorot_uniform(),
        recurrent_init: Initializer = jax.nn.initializers.orthogonal(),
        bias_init: Initializer = jax.nn.initializers.zeros,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        params = init_params(
            rngs.params(),
            in_features,
            hidden_size,
            forget_bias=forget_bias,
            kernel_init=kernel_init,
            recurrent_init=recurrent_init,
            bias_init=bias_init,
            dtype=param_dtype,
        )
        self.w_x = nnx.Param(params.w_x)
        self.w_h = nnx.Param(params.w_h)
        self.b = nnx.Param(params.b)
        self.in_features = in_features
        self.hidden_size = hidden_size
        self.dtype = dtype

    @property
    def params(self) -> LSTMParams:
        """The parameters as an :class:`~jlstm.cell.LSTMParams` (arrays, not Params)."""
        return LSTMParams(self.w_x[...], self.w_h[...], self.b[...])

    def load_params(self, params: LSTMParams) -> None:
        """Overwrite the parameters with ``params`` (same shapes; cast to the Params' dtype)."""
        size, hidden = check_params(params)
        if (size, hidden) != (self.in_features, self.hidden_size):
            raise ValueError(
                f"params must have input_size {self.in_features} and hidden_size "
                f"{self.hidden_size}; got input_size {size} and hidden_size {hidden}"
            )
        for var, value in zip((self.w_x, self.w_h, self.b), params, strict=True):
            var.set_value(jnp.asarray(value, var.dtype))

    def initial_state(self, batch_shape: int | tuple[int, ...]) -> LSTMState:
        """Zero h and c of shape ``(*batch_shape, H)``."""
        return zero_state(batch_shape, self.hidden_size)

    def __call__(self, state: LSTMState, x: Array) -> tuple[LSTMState, Array]:
        return cell(self.params, state, x, dtype=self.dtype)


class LSTM(nnx.Module):
    """A stack of (bi)directional LSTM layers: :func:`jlstm.stack.stack`.

    Args:
      in_features: input features per step.
      hidden_size: units per layer and direction (H).
      num_layers: layers stacked; layer k > 0 reads layer k - 1's outputs.
      bidirectional: add a backward direction per layer; outputs concatenate
        ``[forward; backward]``.
      dropout: rate of dropout on every layer's output but the last's, applied
        only when ``__call__`` gets a ``dropout_key``.
      forget_bias, kernel_init, recurrent_init, bias_init: see
        :func:`jlstm.cell.init_params`.
      dtype: the matmuls' dtype (e.g. ``jnp.bfloat16``); the state and the
        outputs stay float32. param_dtype: the parameters' dtype.
      unroll, remat: passed to :func:`jlstm.layer.layer`.
      rngs: for initialisation only; not stored.

    ``__call__(xs, *, lengths=None, mask=None, initial_state=None,
    dropout_key=None)`` returns ``(ys, final_state)``. Padded steps (beyond
    ``lengths``, or where ``mask`` is False) hold the state and output zeros.
    :attr:`params` gives a :data:`jlstm.stack.StackParams`, ``params[layer]
    [direction]``; :meth:`load_params` writes one back.

    Shapes:
      xs: (B, T, in_features)  ->  ys: (B, T, D * H)
      initial_state, final_state .h, .c: (num_layers * D, B, H)
      with D = 2 if bidirectional else 1; any number of batch axes works.

    >>> lstm = LSTM(3, 8, num_layers=2, bidirectional=True, rngs=nnx.Rngs(0))
    >>> ys, final = lstm(jnp.ones((4, 6, 3)), lengths=jnp.array([6, 5, 1, 0]))
    >>> ys.shape, final.h.shape
    ((4, 6, 16), (4, 4, 8))
    """

    def __init__(
        self,
        in_features: int,
        hidden_size: int,
        *,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        forget_bias: float = 1.0,
        kernel_init: Initializer = jax.nn.initializers.glorot_uniform(),
        recurrent_init: Initializer = jax.nn.initializers.orthogonal(),
        bias_init: Initializer = jax.nn.initializers.zeros,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        unroll: int = 1,
        remat: bool = False,
        rngs: nnx.Rngs,
    ):
        _check_positive(in_features=in_features, hidden_size=hidden_size, num_layers=num_layers)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1); got {dropout!r}")
        directions = 2 if bidirectional else 1
        init = dict(
            forget_bias=forget_bias,
            kernel_init=kernel_init,
            recurrent_init=recurrent_init,
            bias_init=bias_init,
            dtype=dtype,
            param_dtype=param_dtype,
            rngs=rngs,
        )
        self.layers = nnx.List(
            nnx.List(
                LSTMCell(
                    in_features if depth == 0 else directions * hidden_size, hidden_size, **init
                )
                for _ in range(directions)
            )
            for depth in range(num_layers)
        )
        self.in_features = in_features
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bool(bidirectional)
        self.dropout = float(dropout)
        self.dtype = dtype
        self.unroll = unroll
        self.remat = remat

    @classmethod
    def from_params(cls, params: StackParams, **kwargs: Any) -> LSTM:
        """A module holding ``params`` (e.g. converted from PyTorch).

        ``kwargs`` are the constructor's options other than the sizes
        (``dropout``, ``dtype``, ``unroll``, ...); ``rngs`` is not needed.

        >>> from jlstm.stack import init_stack_params
        >>> p = init_stack_params(jax.random.key(0), 3, 8, num_layers=2)
        >>> LSTM.from_params(p).params[1][0].w_x.shape
        (8, 32)
        """
        in_features, hidden, num_layers, directions = stack_shape(params)
        kwargs.setdefault("rngs", nnx.Rngs(0))
        if "param_dtype" not in kwargs:
            kwargs["param_dtype"] = params[0][0].w_x.dtype
        module = cls(
            in_features,
            hidden,
            num_layers=num_layers,
            bidirectional=directions == 2,
            **kwargs,
        )
        module.load_params(params)
        return module

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def out_features(self) -> int:
        """Features of each output step: D * H."""
        return self.num_directions * self.hidden_size

    @property
    def params(self) -> StackParams:
        """The parameters as :data:`jlstm.stack.StackParams`, ``params[layer][direction]``."""
        return tuple(tuple(c.params for c in directional) for directional in self.layers)

    def stack_params(self) -> StackParams:
        """Same as :attr:`params`."""
        return self.params

    def load_params(self, params: StackParams) -> None:
        """Overwrite every layer's parameters with ``params`` (same sizes as this module)."""
        shape = stack_shape(params)
        expected = (self.in_features, self.hidden_size, self.num_layers, self.num_directions)
        if shape != expected:
            names = "(in_features, hidden_size, num_layers, num_directions)"
            raise ValueError(f"params must have {names} = {expected}; got {shape}")
        for cells, directional in zip(self.layers, params, strict=True):
            for c, p in zip(cells, directional, strict=True):
                c.load_params(p)

    def initial_state(self, batch_shape: int | tuple[int, ...]) -> LSTMState:
        """Zero h and c of shape ``(num_layers * D, *batch_shape, H)``."""
        batch_shape = (batch_shape,) if isinstance(batch_shape, int) else tuple(batch_shape)
        return zero_state((self.num_layers * self.num_directions, *batch_shape), self.hidden_size)

    def __call__(
        self,
        xs: Array,
        *,
        lengths: Array | None = None,
        mask: Array | None = None,
        initial_state: LSTMState | None = None,
        dropout_key: Array | None = None,
    ) -> tuple[Array, LSTMState]:
        xs = jnp.asarray(xs)
        if xs.ndim < 2 or xs.shape[-1] != self.in_features:
            raise ValueError(
                f"xs must be (batch, time, {self.in_features}) for LSTM(in_features="
                f"{self.in_features}); got shape {xs.shape}"
            )
        return stack(
            self.params,
            xs,
            initial_state=initial_state,
            lengths=lengths,
            mask=mask,
            dropout_rate=self.dropout,
            dropout_key=dropout_key,
            unroll=self.unroll,
            remat=self.remat,
            dtype=self.dtype,
        )
