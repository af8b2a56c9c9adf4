"""NNX modules that own a recurrent cell's parameters and call the pure core.

:class:`RecurrentCell` holds one layer's parameters of any cell of
:mod:`jlstm.cells`, one ``nnx.Param`` per field (for the LSTM ``w_x``, ``w_h``,
``b``, gates fused as i, f, g, o) and runs the cell's step;
:class:`Recurrent` holds one per layer and direction, ``layers[layer]
[direction]``, and runs :func:`jlstm.stack.stack`. :class:`LSTMCell` and
:class:`LSTM` are the same with the LSTM's options spelled out. None stores a
random key: dropout takes ``dropout_key`` at call time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
from flax import nnx

from jlstm import cells, regularize
from jlstm.cells.base import check_positive_int, check_step_inputs
from jlstm.stack import StackParams, stack, stack_shape

if TYPE_CHECKING:
    from jlstm.parallel import Parallel

Array = jax.Array
Initializer = Any


class RecurrentCell(nnx.Module):
    """One time step of ``cell`` with its own parameters.

    Called as a ``lax.scan`` step, ``module(state, x) -> (new_state, y)``.
    ``init_options`` go to the cell's ``init`` (initializers; for the LSTM
    ``forget_bias``). ``dtype`` (e.g. ``jnp.bfloat16``) is the matmuls' dtype,
    ``param_dtype`` the parameters'; the state stays float32.

    Shapes:
      x: (*batch, in_features); state fields: (*batch, H)  ->  y: (*batch, H)

    >>> gru = RecurrentCell(3, 8, cell="gru", rngs=nnx.Rngs(0))
    >>> state, h = gru(gru.initial_state(2), jnp.ones((2, 3)))
    >>> h.shape, type(state).__name__
    ((2, 8), 'HiddenState')
    """

    def __init__(
        self,
        in_features: int,
        hidden_size: int,
        *,
        cell: str | cells.Cell = "lstm",
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
        **init_options: Any,
    ):
        self.cell = cells.get(cell)
        params = self.cell.init(
            rngs.params(), in_features, hidden_size, dtype=param_dtype, **init_options
        )
        for name, value in params._asdict().items():
            setattr(self, name, nnx.Param(value))
        self.in_features = in_features
        self.hidden_size = hidden_size
        self.dtype = dtype

    @property
    def params(self):
        """The parameters as the cell's NamedTuple (arrays, not Params)."""
        fields = self.cell.params_type._fields
        return self.cell.params_type(*(getattr(self, name)[...] for name in fields))

    def load_params(self, params) -> None:
        """Overwrite the parameters with ``params`` (same shapes; cast to the Params' dtype)."""
        cells.resolve(self.cell, params)
        size, hidden = self.cell.sizes(params)
        if (size, hidden) != (self.in_features, self.hidden_size):
            raise ValueError(
                f"params must have input_size {self.in_features} and hidden_size "
                f"{self.hidden_size}; got input_size {size} and hidden_size {hidden}"
            )
        for name, value in params._asdict().items():
            var = getattr(self, name)
            var.set_value(jnp.asarray(value, var.dtype))

    def initial_state(self, batch_shape: int | tuple[int, ...]):
        """The zero state, each field ``(*batch_shape, H)``."""
        return self.cell.zero_state(self.params, batch_shape)

    def __call__(self, state, x: Array):
        check_step_inputs(self.cell, self.params, state, x)
        return self.cell.step(self.params, state, x, dtype=self.dtype)


class LSTMCell(RecurrentCell):
    """One LSTM time step with its own parameters: :func:`jlstm.cell.cell`.

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
        super().__init__(
            in_features,
            hidden_size,
            cell="lstm",
            dtype=dtype,
            param_dtype=param_dtype,
            rngs=rngs,
            forget_bias=forget_bias,
            kernel_init=kernel_init,
            recurrent_init=recurrent_init,
            bias_init=bias_init,
        )


class Recurrent(nnx.Module):
    """A stack of (bi)directional layers of any cell: :func:`jlstm.stack.stack`.

    Args:
      in_features: input features per step.
      hidden_size: units per layer and direction (H).
      cell: the cell's name in :mod:`jlstm.cells` ("lstm", "gru", "rnn",
        "rnn_relu") or a :class:`~jlstm.cells.Cell`.
      num_layers: layers stacked; layer k > 0 reads layer k - 1's outputs.
      bidirectional: add a backward direction per layer; outputs concatenate
        ``[forward; backward]``.
      dropout: rate of dropout on every layer's output but the last's, applied
        only when ``__call__`` gets a ``dropout_key``.
      implementation: which loop runs (:mod:`jlstm.implementation`).
      dtype: the matmuls' dtype (e.g. ``jnp.bfloat16``); the state and the
        outputs stay float32. param_dtype: the parameters' dtype.
      unroll, remat: passed to :func:`jlstm.layer.layer`.
      recurrent_dropout, zoneout: inside every layer, with ``dropout_key``
        (:mod:`jlstm.regularize`; zoneout uses its expectation without a key).
      learn_initial_state: h_0 (and c_0) are parameters, one per layer and
        direction shared by every sequence (starting at zeros), used when
        ``__call__`` gets no ``initial_state``.
      rngs: for initialisation only; not stored.
      **init_options: to the cell's ``init`` (initializers; ``forget_bias``).

    ``__call__(xs, *, lengths=None, mask=None, resets=None, initial_state=None,
    dropout_key=None)`` returns ``(ys, final_state)`` (``resets``: see
    :func:`jlstm.layer.layer`). Padded steps (beyond
    ``lengths``, or where ``mask`` is False) hold the state and output zeros.
    :attr:`params` gives a :data:`jlstm.stack.StackParams`, ``params[layer]
    [direction]``; :meth:`load_params` writes one back.

    Shapes:
      xs: (B, T, in_features)  ->  ys: (B, T, D * H)
      initial_state, final_state fields: (num_layers * D, B, H)
      with D = 2 if bidirectional else 1; any number of batch axes works.

    >>> gru = Recurrent(3, 8, cell="gru", num_layers=2, rngs=nnx.Rngs(0))
    >>> ys, final = gru(jnp.ones((4, 6, 3)), lengths=jnp.array([6, 5, 1, 0]))
    >>> ys.shape, final.h.shape
    ((4, 6, 8), (2, 4, 8))
    """

    def __init__(
        self,
        in_features: int,
        hidden_size: int,
        *,
        cell: str | cells.Cell = "lstm",
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        implementation: str | Parallel = "auto",
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        unroll: int = 1,
        remat: bool = False,
        recurrent_dropout: float = 0.0,
        zoneout: float | tuple[float, float] = 0.0,
        learn_initial_state: bool = False,
        rngs: nnx.Rngs,
        **init_options: Any,
    ):
        for name, value in dict(
            in_features=in_features, hidden_size=hidden_size, num_layers=num_layers
        ).items():
            check_positive_int(name, value)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1); got {dropout!r}")
        self.cell = cells.get(cell)
        directions = 2 if bidirectional else 1
        layers, size = [], in_features
        for _ in range(num_layers):
            layers.append(
                nnx.List(
                    RecurrentCell(
                        size,
                        hidden_size,
                        cell=self.cell,
                        dtype=dtype,
                        param_dtype=param_dtype,
                        rngs=rngs,
                        **init_options,
                    )
                    for _ in range(directions)
                )
            )
            size = directions * self.cell.output_size(layers[-1][0].params)
        self.layers = nnx.List(layers)
        self.in_features = in_features
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bool(bidirectional)
        self.dropout = float(dropout)
        self.implementation = implementation
        self.dtype = dtype
        self.unroll = unroll
        self.remat = remat
        self.recurrent_dropout = regularize.check_rate("recurrent_dropout", recurrent_dropout)
        regularize.zoneout_rates(zoneout)  # checked
        self.zoneout = tuple(zoneout) if isinstance(zoneout, list | tuple) else float(zoneout)
        # A learned initial state: one (num_layers * D, H) Param per state field, from zeros.
        learned = None
        if learn_initial_state:
            zero = self.cell.zero_state(self.layers[0][0].params, (num_layers * directions,))
            learned = nnx.Dict({k: nnx.Param(v) for k, v in zero._asdict().items()})
        self.learned_state = learned

    @classmethod
    def from_params(cls, params: StackParams, **kwargs: Any) -> Recurrent:
        """A module holding ``params`` (e.g. converted from PyTorch).

        ``kwargs`` are the constructor's options other than the sizes
        (``dropout``, ``dtype``, ``unroll``, ...); ``rngs`` is not needed.

        >>> from jlstm.stack import init_stack_params
        >>> p = init_stack_params(jax.random.key(0), 3, 8, num_layers=2)
        >>> LSTM.from_params(p).params[1][0].w_x.shape
        (8, 32)
        """
        in_features, hidden, num_layers, directions = stack_shape(params, kwargs.get("cell"))
        kwargs.setdefault("rngs", nnx.Rngs(0))
        if cls is not LSTM:
            kwargs.setdefault("cell", cells.resolve(None, params[0][0]))
        kwargs.setdefault("param_dtype", params[0][0].w_x.dtype)
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
        """Features of each output step: D * the cell's output size (H)."""
        return self.num_directions * self.cell.output_size(self.layers[-1][0].params)

    @property
    def params(self) -> StackParams:
        """The parameters as :data:`jlstm.stack.StackParams`, ``params[layer][direction]``."""
        return tuple(tuple(c.params for c in directional) for directional in self.layers)

    def load_params(self, params: StackParams) -> None:
        """Overwrite every layer's parameters with ``params`` (same sizes as this module)."""
        shape = stack_shape(params, self.cell)
        expected = (self.in_features, self.hidden_size, self.num_layers, self.num_directions)
        if shape != expected:
            names = "(in_features, hidden_size, num_layers, num_directions)"
            raise ValueError(f"params must have {names} = {expected}; got {shape}")
        for modules, directional in zip(self.layers, params, strict=True):
            for module, p in zip(modules, directional, strict=True):
                module.load_params(p)

    def initial_state(self, batch_shape: int | tuple[int, ...]):
        """The state a sequence starts from, each field ``(num_layers * D, *batch_shape,
        H)``: zeros, or the learned state with ``learn_initial_state``."""
        batch_shape = (batch_shape,) if isinstance(batch_shape, int) else tuple(batch_shape)
        if self.learned_state is not None:
            return self.learned_initial_state(batch_shape)
        count = self.num_layers * self.num_directions
        return self.cell.zero_state(self.layers[0][0].params, (count, *batch_shape))

    def learned_initial_state(self, batch_shape: tuple[int, ...]):
        """The learned initial state broadcast over ``batch_shape``."""
        fields = self.cell.state_type._fields
        return self.cell.state_type(
            *(
                jnp.broadcast_to(
                    self.learned_state[k][...][:, *([None] * len(batch_shape))],
                    (self.learned_state[k].shape[0], *batch_shape, self.learned_state[k].shape[-1]),
                )
                for k in fields
            )
        )

    def __call__(
        self,
        xs: Array,
        *,
        lengths: Array | None = None,
        mask: Array | None = None,
        resets: Array | None = None,
        initial_state=None,
        dropout_key: Array | None = None,
    ):
        xs = jnp.asarray(xs)
        if xs.ndim < 2 or xs.shape[-1] != self.in_features:
            raise ValueError(
                f"xs must be (batch, time, {self.in_features}) for {type(self).__name__}"
                f"(in_features={self.in_features}); got shape {xs.shape}"
            )
        if initial_state is None and self.learned_state is not None:
            initial_state = self.learned_initial_state(xs.shape[:-2])
        return stack(
            self.params,
            xs,
            cell=self.cell,
            implementation=self.implementation,
            initial_state=initial_state,
            lengths=lengths,
            mask=mask,
            resets=resets,
            dropout_rate=self.dropout,
            dropout_key=dropout_key,
            unroll=self.unroll,
            remat=self.remat,
            dtype=self.dtype,
            recurrent_dropout=self.recurrent_dropout,
            zoneout=self.zoneout,
        )


class LSTM(Recurrent):
    """A stack of (bi)directional LSTM layers: :class:`Recurrent` with ``cell="lstm"``.

    ``forget_bias``, ``kernel_init``, ``recurrent_init``, ``bias_init``: see
    :func:`jlstm.cell.init_params`; other arguments as :class:`Recurrent`.

    >>> lstm = LSTM(3, 8, num_layers=2, bidirectional=True, rngs=nnx.Rngs(0))
    >>> ys, final = lstm(jnp.ones((4, 6, 3)), lengths=jnp.array([6, 5, 1, 0]))
    >>> ys.shape, final.h.shape
    ((4, 6, 16), (4, 4, 8))
    """

    def __init__(self, in_features: int, hidden_size: int, *, rngs: nnx.Rngs, **options: Any):
        if (
            options.setdefault("cell", "lstm") != "lstm"
            and cells.get(options["cell"]).name != "lstm"
        ):
            raise ValueError(
                f"LSTM runs the 'lstm' cell; got cell={options['cell']!r} "
                "(use jlstm.nn.Recurrent for other cells)"
            )
        super().__init__(in_features, hidden_size, rngs=rngs, **options)

    def stack_params(self) -> StackParams:
        """Same as :attr:`params`."""
        return self.params
