"""Look inside a recurrent layer: every step's gates and states, and how gradients flow back.

Nothing here is on the training path: these are separate functions, run on a
trained (or freshly initialised) layer's parameters to see what it does, and
they cost nothing when unused.

- :func:`gate_traces` gives every step's gates and states, computed from the
  step's pre-activations as the cell's own step computes them: for the LSTM
  i_t, f_t, g_t (= c̃_t, the candidate), o_t, c_t and h_t; for the GRU r_t,
  z_t, n_t and h_t; for the Elman RNN the pre-activation a_t and h_t.
  :func:`stack_traces` does the same for every layer and direction of a stack.
- :func:`gradient_flow` gives ‖∂h_T/∂x_t‖ against the lag T − t, for any cell:
  how much the final hidden state still feels an input that many steps back.
- :func:`state_gradient_norms` gives ‖∂L/∂s_t‖ for each field of the state
  (for the LSTM ‖∂L/∂c_t‖ and ‖∂L/∂h_t‖) under a loss of the outputs.

Per cell, one function ``traces(cell, params, state, x) -> (new_state,
{name: (B, H) array})`` in the table :data:`TRACES`, keyed by the cell's name
(:func:`register_traces` adds one). A cell without one gets a clear error.

>>> import jlstm
>>> params = jlstm.init_params(jax.random.key(0), 3, 8)
>>> traces = gate_traces(params, jnp.ones((2, 5, 3)), lengths=jnp.array([5, 2]))
>>> list(traces), traces["f"].shape
(['f', 'i', 'g', 'o', 'c', 'h'], (2, 5, 8))
>>> float(traces["f"][1, 2:].sum())  # padded steps are zero
0.0
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jlstm import cells
from jlstm.cells.base import cast_state, check_float_dtype, check_state, expand, matmul, state_dtype
from jlstm.cells.gru import HiddenState
from jlstm.cells.lstm import LSTMState
from jlstm.cells.rnn import NONLINEARITIES
from jlstm.layer import layer
from jlstm.masking import check_lengths, step_mask
from jlstm.stack import StackParams, stack_shape

Array = jax.Array
TraceFn = Callable[[cells.Cell, Any, Any, Array], tuple[Any, dict[str, Array]]]


class TraceSpec(NamedTuple):
    """A cell's traces: the step function and, in the equations' order, what each is."""

    step: TraceFn  # (cell, params, state, x (B, I)) -> (new_state, {name: (B, H)})
    labels: dict[str, str]  # name -> description, e.g. "f": "forget gate f_t"


def lstm_traces(cell, params, state: LSTMState, x: Array):
    """The LSTM step (:meth:`jlstm.cells.LSTM.step`) with its gates kept.

    The same arithmetic in the same order: pre-activations ``x @ w_x + h @ w_h +
    b`` (i, f, g, o blocks), then c_t = f ⊙ c_{t-1} + i ⊙ g and h_t = o ⊙ tanh(c_t).
    """
    gates = matmul(x, params.w_x) + matmul(state.h, params.w_h)  # (B, 4H)
    gates = gates + expand(params.b.astype(gates.dtype), gates.ndim)
    a_i, a_f, a_g, a_o = jnp.split(gates.astype(state.c.dtype), 4, axis=-1)
    i, f, g, o = jax.nn.sigmoid(a_i), jax.nn.sigmoid(a_f), jnp.tanh(a_g), jax.nn.sigmoid(a_o)
    c = f * state.c + i * g
    h = o * jnp.tanh(c)
    return LSTMState(h, c), {"f": f, "i": i, "g": g, "o": o, "c": c, "h": h}


def gru_traces(cell, params, state: HiddenState, x: Array):
    """The GRU step (:meth:`jlstm.cells.GRU.step`) with r_t, z_t and n_t kept."""
    h = state.h
    a_x = matmul(x, params.w_x)  # (B, 3H)
    a_x = a_x + expand(params.b.astype(a_x.dtype), a_x.ndim)
    a_h = matmul(h, params.w_h)  # (B, 3H)
    x_r, x_z, x_n = jnp.split(a_x.astype(h.dtype), 3, axis=-1)
    h_r, h_z, h_n = jnp.split(a_h.astype(h.dtype), 3, axis=-1)
    r = jax.nn.sigmoid(x_r + h_r)
    z = jax.nn.sigmoid(x_z + h_z)
    n = jnp.tanh(x_n + r * (h_n + expand(params.b_hn.astype(h.dtype), h.ndim)))
    h = (1 - z) * n + z * h
    return HiddenState(h), {"r": r, "z": z, "n": n, "h": h}


def rnn_traces(cell, params, state: HiddenState, x: Array):
    """The Elman step (:meth:`jlstm.cells.ElmanRNN.step`) with its pre-activation a_t kept."""
    a = matmul(x, params.w_x) + matmul(state.h, params.w_h)  # (B, H)
    a = (a + expand(params.b.astype(a.dtype), a.ndim)).astype(state.h.dtype)
    h = NONLINEARITIES[cell.nonlinearity](a)
    return HiddenState(h), {"a": a, "h": h}


_LSTM = TraceSpec(
    lstm_traces,
    {
        "f": "forget gate f_t",
        "i": "input gate i_t",
        "g": "candidate c̃_t (g)",
        "o": "output gate o_t",
        "c": "cell state c_t",
        "h": "hidden state h_t",
    },
)
_GRU = TraceSpec(
    gru_traces,
    {"r": "reset gate r_t", "z": "update gate z_t", "n": "candidate n_t", "h": "hidden state h_t"},
)
_RNN = TraceSpec(rnn_traces, {"a": "pre-activation a_t", "h": "hidden state h_t"})

# Cell name -> its traces. Every entry has "h", the step's output.
TRACES: dict[str, TraceSpec] = {"lstm": _LSTM, "gru": _GRU, "rnn": _RNN, "rnn_relu": _RNN}


def register_traces(name: str, step: TraceFn, labels: dict[str, str]) -> None:
    """Give the cell called ``name`` traces: ``step(cell, params, state, x) -> (new_state,
    traces)`` with ``traces`` a dict of ``(B, H)`` arrays named as ``labels`` (which holds
    their descriptions, in the order to show them, and must include ``"h"``, the output)."""
    if "h" not in labels:
        raise ValueError(f"labels must include 'h' (the step's output); got {list(labels)}")
    TRACES[name] = TraceSpec(step, dict(labels))


def has_traces(cell: str | cells.Cell) -> bool:
    """Whether :func:`gate_traces` knows the cell."""
    return cells.get(cell).name in TRACES


def trace_labels(cell: str | cells.Cell) -> dict[str, str]:
    """The traces' names and descriptions for ``cell``, in the equations' order."""
    return dict(_spec(cells.get(cell)).labels)


def _spec(cell: cells.Cell) -> TraceSpec:
    if cell.name not in TRACES:
        raise ValueError(
            f"cell {cell.name!r} has no gate traces; cells with traces: {sorted(TRACES)} "
            "(jlstm.inspect.register_traces adds one)"
        )
    return TRACES[cell.name]


def _flat_inputs(cell, params, xs, lengths, mask, initial_state):
    """Checked inputs on one flat batch axis, time-major: ``xs (T, B, I)`` (zero where
    padded), the mask ``(T, B)`` or None, the state ``(B, H)`` fields, and the batch shape."""
    input_size, _ = cell.sizes(params)
    xs = jnp.asarray(xs)
    if xs.ndim < 2 or xs.shape[-1] != input_size:
        raise ValueError(
            f"xs must be (*batch, T, {input_size}) to match params.w_x "
            f"{tuple(params.w_x.shape)}; got shape {xs.shape}"
        )
    check_float_dtype("xs", xs.dtype)
    steps, batch_shape = xs.shape[-2], xs.shape[:-2]
    flat = math.prod(batch_shape)
    xs = jnp.swapaxes(xs.reshape(flat, steps, input_size), 0, 1)  # (T, B, I)
    m = step_mask(lengths, mask, steps, batch_shape, time_major=False)  # (T, B) | None
    if m is not None:
        xs = jnp.where(m[:, :, None], xs, jnp.zeros_like(xs))
    if initial_state is None:
        state = cell.zero_state(params, (flat,))
    else:
        check_state(cell, initial_state, batch_shape, params, "initial_state")
        state = type(initial_state)(*(jnp.reshape(a, (flat, a.shape[-1])) for a in initial_state))
    state = cast_state(state, state_dtype(jnp.result_type(*jax.tree.leaves(params))))
    return xs, m, state, batch_shape


def _held(m, new, old):
    """``new`` where the step is real, ``old`` where it is padding (``m`` (B,) or None)."""
    if m is None:
        return new
    return jax.tree.map(lambda a, b: jnp.where(m[:, None], a, b), new, old)


def _batch_major(a: Array, batch_shape) -> Array:
    """(T, B, F) -> (*batch, T, F)."""
    return jnp.swapaxes(a, 0, 1).reshape(*batch_shape, a.shape[0], a.shape[-1])


def gate_traces(
    params,
    xs: Array,
    *,
    cell: str | cells.Cell | None = None,
    lengths: Array | None = None,
    mask: Array | None = None,
    reverse: bool = False,
    initial_state=None,
) -> dict[str, Array]:
    """Every step's gates and states of one layer, named as in the cell's equations.

    The semantics of :func:`jlstm.layer` (the plain ``lax.scan``): padded steps
    (beyond ``lengths``, or where ``mask`` is False) hold the state and give zeros
    in every trace, ``reverse=True`` reads each sequence's real steps backwards
    (traces stay aligned with the inputs), ``initial_state`` defaults to zeros.
    ``trace["h"]`` equals the layer's outputs, and for the LSTM ``trace["c"]`` at a
    sequence's last real step its final cell state. Works under ``jax.jit`` (with
    ``cell`` and ``reverse`` static).

    Args:
      params: one layer's parameters of a cell in :data:`TRACES`.
      xs: ``(*batch, T, input_size)``, batch-major.
      cell, lengths, mask, reverse, initial_state: as :func:`jlstm.layer`.

    Returns:
      A dict, in the equations' order: LSTM ``f, i, g, o, c, h`` (g is c̃_t);
      GRU ``r, z, n, h``; RNN ``a`` (the pre-activation) and ``h``.

    Shapes:
      xs: (*batch, T, I)  ->  each trace: (*batch, T, H)
    """
    cell = cells.resolve(cell, params)
    spec = _spec(cell)
    xs, m, state, batch_shape = _flat_inputs(cell, params, xs, lengths, mask, initial_state)

    def step(state, inputs):
        x, m_t = inputs
        new, traces = spec.step(cell, params, state, x)
        if m_t is not None:
            traces = {k: jnp.where(m_t[:, None], v, jnp.zeros_like(v)) for k, v in traces.items()}
        return _held(m_t, new, state), traces

    _, traces = jax.lax.scan(step, state, (xs, m), reverse=reverse)  # each (T, B, H)
    return {k: _batch_major(traces[k], batch_shape) for k in spec.labels}


def stack_traces(
    params: StackParams,
    xs: Array,
    *,
    cell: str | cells.Cell | None = None,
    lengths: Array | None = None,
    mask: Array | None = None,
) -> tuple[tuple[dict[str, Array], ...], ...]:
    """:func:`gate_traces` of every layer and direction of a stack (no dropout, as at
    evaluation): ``traces[layer][direction]``, direction 1 the backward one. Layer k > 0
    reads layer k - 1's outputs, ``[forward; backward]``, as :func:`jlstm.stack` does.

    Shapes:
      xs: (*batch, T, I)  ->  each trace: (*batch, T, H)
    """
    stack_shape(params, cell)
    cell = cells.resolve(cell, params[0][0], "params[0][0]")
    out = []
    for directional in params:
        traces = tuple(
            gate_traces(p, xs, cell=cell, lengths=lengths, mask=mask, reverse=d == 1)
            for d, p in enumerate(directional)
        )
        out.append(traces)
        xs = jnp.concatenate([t["h"] for t in traces], axis=-1)
    return tuple(out)


def gradient_flow(
    params,
    xs: Array,
    *,
    cell: str | cells.Cell | None = None,
    lengths: Array | None = None,
    implementation: str = "auto",
) -> Array:
    """‖∂h_T/∂x_t‖ against the lag T − t: how strongly the final hidden state depends on
    the input that many steps before the end, for any cell.

    ``h_T`` is each sequence's final hidden state (after its last real step, as
    :func:`jlstm.layer` returns it); the norm is the Frobenius norm of the (H, I)
    Jacobian ∂h_T/∂x_t, built row by row from ``jax.vjp`` of the final state (one
    cotangent per unit of h, under ``jax.vmap``). ``out[b, k]`` is the norm at lag
    ``k`` (the input ``k`` steps before sequence b's last real step: lag 0 is that
    step itself), zero for ``k >= lengths[b]``. Works under ``jax.jit`` (``cell``,
    ``implementation`` static).

    Shapes:
      xs: (B, T, I), lengths: (B,)  ->  (B, T), indexed by lag

    >>> import jlstm
    >>> params = jlstm.init_params(jax.random.key(0), 2, 4)
    >>> gradient_flow(params, jnp.ones((3, 6, 2)), lengths=jnp.array([6, 6, 2])).shape
    (3, 6)
    """
    cell = cells.resolve(cell, params)
    xs = jnp.asarray(xs)
    if xs.ndim != 3:
        raise ValueError(f"xs must be (batch, time, features); got shape {xs.shape}")
    batch, steps, _ = xs.shape

    def final_h(xs):
        _, final = layer(params, xs, cell=cell, lengths=lengths, implementation=implementation)
        return final.h  # (B, H)

    h, vjp = jax.vjp(final_h, xs)
    hidden = h.shape[-1]
    units = jnp.broadcast_to(jnp.eye(hidden, dtype=h.dtype)[:, None, :], (hidden, *h.shape))
    (rows,) = jax.vmap(vjp)(units)  # (H, B, T, I): row k of every Jacobian ∂h_T/∂x_t
    norms = jnp.sqrt(jnp.sum(jnp.square(rows), axis=(0, -1)))  # (B, T), by time step
    if lengths is None:
        last = jnp.full((batch,), steps - 1, jnp.int32)
    else:
        last = check_lengths(lengths, (batch,), steps) - 1
    t = last[:, None] - jnp.arange(steps, dtype=jnp.int32)[None, :]  # (B, T): step at each lag
    by_lag = jnp.take_along_axis(norms, jnp.clip(t, 0, steps - 1), axis=1)
    return jnp.where(t >= 0, by_lag, jnp.zeros_like(by_lag))


def state_gradient_norms(
    loss_fn: Callable[[Array, Any], Array],
    params,
    xs: Array,
    *,
    cell: str | cells.Cell | None = None,
    lengths: Array | None = None,
    mask: Array | None = None,
    initial_state=None,
) -> dict[str, Array]:
    """‖∂L/∂s_t‖ for each field of the state s_t that step t hands on, per step.

    ``loss_fn(outputs, final_state) -> scalar`` takes what :func:`jlstm.layer` returns
    (outputs ``(*batch, T, H)``, zero at padding, and the final state). The
    gradient is taken with respect to the state as carried from step t to step
    t + 1 (or out as the final state): the error that flows back to step t
    through the recurrence, the quantity that vanishes or does not. For the LSTM,
    ``"c"`` is ‖∂L/∂c_t‖, the signal carried back by the additive update
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t (scaled by f_t at each step). The direct path
    from h_t into the loss through the output at step t is not part of it: it
    enters at step t, it does not flow back. Zero at padded steps.

    Computed as the gradient, at zero, of a perturbation added to the state after
    every step (one ``jax.grad`` of a ``lax.scan`` over the cell's step).

    Shapes:
      xs: (*batch, T, I)  ->  each field: (*batch, T)

    >>> import jlstm
    >>> params = jlstm.init_params(jax.random.key(0), 2, 4)
    >>> loss = lambda hs, final: jnp.sum(final.h)
    >>> norms = state_gradient_norms(loss, params, jnp.ones((3, 6, 2)))
    >>> sorted(norms), norms["c"].shape
    (['c', 'h'], (3, 6))
    """
    cell = cells.resolve(cell, params)
    xs, m, state, batch_shape = _flat_inputs(cell, params, xs, lengths, mask, initial_state)
    steps = xs.shape[0]
    zeros = jax.tree.map(lambda a: jnp.zeros((steps, *a.shape), a.dtype), state)  # (T, B, H)

    def loss(deltas):
        def step(state, inputs):
            x, m_t, delta = inputs
            new, y = cell.step(params, state, x)
            new = jax.tree.map(jnp.add, new, delta)
            if m_t is not None:
                y = jnp.where(m_t[:, None], y, jnp.zeros_like(y))
            return _held(m_t, new, state), y

        final, ys = jax.lax.scan(step, state, (xs, m, deltas))
        final = type(final)(*(a.reshape(*batch_shape, a.shape[-1]) for a in final))
        return loss_fn(_batch_major(ys, batch_shape), final)

    grads = jax.grad(loss)(zeros)
    return {
        field: jnp.swapaxes(jnp.linalg.norm(g, axis=-1), 0, 1).reshape(*batch_shape, steps)
        for field, g in grads._asdict().items()
    }
