"""Several layers on top of each other, optionally bidirectional, for any cell.

Parameters are nested tuples, ``params[layer][direction]``, each one layer's
parameters of the same cell (:class:`~jlstm.cell.LSTMParams` by default): one
direction per layer, or two (forward, backward) for a bidirectional stack.
Final states follow PyTorch's ``h_n`` / ``c_n`` layout: a leading axis of
``num_layers * num_directions``, layer-major (layer 0 forward, layer 0
backward, layer 1 forward, ...).

Each layer runs on the implementation its call picks (:mod:`jlstm.implementation`),
except "cudnn", which runs the whole stack in one call (:mod:`jlstm.cudnn`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from jlstm import cells, regularize
from jlstm import implementation as implementations
from jlstm.cells.base import check_positive_int, check_state, state_dtype
from jlstm.layer import layer

if TYPE_CHECKING:
    from jlstm.parallel import Parallel

Array = jax.Array
StackParams = tuple[tuple[Any, ...], ...]  # params[layer][direction]


def init_stack_params(
    key: Array,
    input_size: int,
    hidden_size: int,
    *,
    num_layers: int = 1,
    bidirectional: bool = False,
    cell: str | cells.Cell = "lstm",
    **init_kwargs: Any,
) -> StackParams:
    """Initialise every layer and direction with the cell's ``init``.

    Layer 0 reads ``input_size`` features; later layers read the previous
    layer's output, ``num_directions * output_size``. ``init_kwargs`` (for the
    LSTM ``forget_bias``, initializers, ``dtype``) go to every layer.

    >>> p = init_stack_params(jax.random.key(0), 3, 8, num_layers=2, bidirectional=True)
    >>> len(p), len(p[0]), p[1][0].w_x.shape
    (2, 2, (16, 32))
    >>> init_stack_params(jax.random.key(0), 3, 8, cell="gru")[0][0].w_h.shape
    (8, 24)
    """
    num_layers = check_positive_int("num_layers", num_layers)
    cell = cells.get(cell)
    directions = 2 if bidirectional else 1
    keys = jax.random.split(key, num_layers * directions).reshape(num_layers, directions)
    params, size = [], input_size
    for depth in range(num_layers):
        params.append(tuple(cell.init(k, size, hidden_size, **init_kwargs) for k in keys[depth]))
        size = directions * cell.output_size(params[-1][0])
    return tuple(params)


def stack_shape(params: StackParams, cell: str | cells.Cell | None = None):
    """Check a stack's parameters; return (input_size, hidden_size, num_layers, directions)."""
    if not isinstance(params, tuple | list) or not params:
        raise TypeError(
            f"params must be a non-empty sequence of layers (params[layer][direction]); "
            f"got {type(params).__name__}"
        )
    directions = len(params[0]) if isinstance(params[0], tuple | list) else 0
    if directions not in (1, 2):
        raise ValueError(
            "params[0] must hold 1 (forward) or 2 (forward, backward) layers' parameters; "
            f"got {params[0]!r:.80}"
        )
    cell = cells.resolve(cell, params[0][0], "params[0][0]")
    input_size, hidden = cell.sizes(params[0][0], "params[0][0]")
    expected_in = input_size
    for depth, directional in enumerate(params):
        if not isinstance(directional, tuple | list) or len(directional) != directions:
            raise ValueError(
                f"params[{depth}] must hold {directions} {type(params[0][0]).__name__} like "
                "params[0]; "
                f"got {directional!r:.80}"
            )
        for d, p in enumerate(directional):
            name = f"params[{depth}][{d}]"
            cells.resolve(cell, p, name)
            size, h = cell.sizes(p, name)
            if (size, h) != (expected_in, hidden):
                raise ValueError(
                    f"{name} must have input_size {expected_in} and hidden_size {hidden}; "
                    f"got input_size {size} and hidden_size {h}"
                )
        expected_in = directions * cell.output_size(directional[0])
    return input_size, hidden, len(params), directions


def stack(
    params: StackParams,
    xs: Array,
    *,
    cell: str | cells.Cell | None = None,
    implementation: str | Parallel = "auto",
    initial_state=None,
    lengths: Array | None = None,
    mask: Array | None = None,
    resets: Array | None = None,
    dropout_rate: float = 0.0,
    dropout_key: Array | None = None,
    time_major: bool = False,
    unroll: int = 1,
    remat: bool = False,
    dtype=None,
    recurrent_dropout: float = 0.0,
    zoneout: float | tuple[float, float] = 0.0,
):
    """Run a stack of (bi)directional layers; see :func:`~jlstm.layer.layer`.

    A bidirectional layer concatenates its forward and backward outputs,
    ``[forward; backward]`` along the feature axis. Dropout with
    ``dropout_rate`` is applied to the outputs of every layer but the last,
    when ``dropout_key`` is given (no key: no dropout, as at evaluation);
    ``recurrent_dropout`` and ``zoneout`` act inside every layer
    (:mod:`jlstm.regularize`), each layer and direction with its own key.

    Shapes:
      xs: (*batch, T, I)  ->  ys: (*batch, T, D * H)
      initial_state / final_state fields: (num_layers * D, *batch, H)
      with D = 2 for a bidirectional stack, 1 otherwise.

    >>> p = init_stack_params(jax.random.key(0), 3, 8, num_layers=2, bidirectional=True)
    >>> ys, final = stack(p, jnp.ones((4, 6, 3)), lengths=jnp.array([6, 5, 1, 0]))
    >>> ys.shape, final.h.shape
    ((4, 6, 16), (4, 4, 8))
    """
    _, hidden, num_layers, directions = stack_shape(params, cell)
    cell = cells.resolve(cell, params[0][0], "params[0][0]")
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"dropout_rate must lie in [0, 1); got {dropout_rate!r}")
    xs = jnp.asarray(xs)
    if xs.ndim < 2:
        raise ValueError(f"xs must be (*batch, T, features); got shape {xs.shape}")
    batch_shape = xs.shape[1:-1] if time_major else xs.shape[:-2]
    count = num_layers * directions
    if initial_state is None:
        states = [None] * count
    else:
        check_state(cell, initial_state, (count, *batch_shape), params[0][0], "initial_state")
        states = [type(initial_state)(*(a[k] for a in initial_state)) for k in range(count)]

    def between(depth, xs):  # dropout on the outputs of every layer but the last
        if dropout_key is None or dropout_rate == 0.0 or depth == num_layers - 1:
            return xs
        keep = jax.random.bernoulli(
            jax.random.fold_in(dropout_key, depth), 1.0 - dropout_rate, xs.shape
        )
        return jnp.where(keep, xs / (1.0 - dropout_rate), jnp.zeros_like(xs))

    def layers():
        common = dict(
            cell=cell,
            implementation=implementation,
            lengths=lengths,
            mask=mask,
            resets=resets,
            time_major=time_major,
            unroll=unroll,
            remat=remat,
            dtype=dtype,
            recurrent_dropout=recurrent_dropout,
            zoneout=zoneout,
        )
        inputs, finals = xs, []
        for depth, directional in enumerate(params):
            outputs = []
            for d, p in enumerate(directional):
                state = states[depth * directions + d]
                key = None
                if dropout_key is not None:  # the layer's own stream (between: fold_in depth)
                    key = jax.random.fold_in(jax.random.fold_in(dropout_key, 1_000 + depth), d)
                ys, final = layer(
                    p, inputs, initial_state=state, reverse=d == 1, dropout_key=key, **common
                )
                outputs.append(ys)
                finals.append(final)
            inputs = between(depth, outputs[0] if directions == 1 else jnp.concatenate(outputs, -1))
        return inputs, type(finals[0])(*(jnp.stack(parts) for parts in zip(*finals, strict=True)))

    if implementation not in ("auto", "cudnn"):
        return layers()
    call = _stack_call(
        cell,
        params,
        xs,
        time_major=time_major,
        lengths=lengths,
        mask=mask,
        resets=resets,
        remat=remat,
        dtype=dtype,
        noise=_noise(dropout_key, recurrent_dropout, zoneout),
    )
    if implementations.choose(implementation, call) != "cudnn":
        return layers()
    from jlstm import cudnn

    def on_cudnn():
        dropout = dropout_key is not None and dropout_rate > 0.0
        return cudnn.stack(
            params,
            xs,
            initial_state=initial_state,
            lengths=lengths,
            time_major=time_major,
            between=between if dropout else None,
        )

    if implementation == "cudnn":
        return on_cudnn()
    # "auto": a program lowered for another platform (jax.export) runs the layers instead
    return jax.lax.platform_dependent(**dict.fromkeys(cudnn.PLATFORMS, on_cudnn), default=layers)


def _noise(dropout_key, recurrent_dropout, zoneout) -> bool:
    """Whether recurrent dropout or zoneout acts inside the layers (as regularize.make_noise)."""
    dropout = regularize.check_rate("recurrent_dropout", recurrent_dropout) > 0.0
    return bool(regularize.zoneout_rates(zoneout)) or (dropout and dropout_key is not None)


def _stack_call(
    cell, params, xs, *, time_major, lengths, mask, resets, remat, dtype, noise
) -> implementations.Call:
    """The whole stack as :mod:`jlstm.implementation` sees it (for "cudnn")."""
    leaves = jax.tree.leaves(params)
    batch_shape = xs.shape[1:-1] if time_major else xs.shape[:-2]
    return implementations.Call(
        cell=cell,
        batch=math.prod(batch_shape),
        steps=xs.shape[0 if time_major else -2],
        input_size=xs.shape[-1],
        hidden=cell.sizes(params[0][0])[1],
        param_dtypes=tuple(np.dtype(a.dtype) for a in leaves),
        state_dtype=np.dtype(state_dtype(jnp.result_type(*leaves))),
        compute=np.dtype(leaves[0].dtype if dtype is None else dtype),
        backend=jax.default_backend(),
        devices=jax.device_count(),
        resets=resets is not None,
        noise=noise,
        whole_stack=True,
        masking="mask" if mask is not None else "lengths" if lengths is not None else "none",
        remat=remat,
        transformed=implementations.transformations(),
    )
