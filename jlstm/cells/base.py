"""The cell protocol: what a recurrent cell gives the engine, and the registry of cells.

A cell is one time step. The engine (:func:`jlstm.layer`, :func:`jlstm.stack`,
the NNX modules, the training tasks) knows a cell only through this interface,
so masking, ``lengths``, ``reverse``, ``initial_state``, ``remat``, ``dtype``,
bidirectional stacks and dropout between layers are written once for all cells.

A cell is a frozen dataclass (hashable: its fields are static options, such as
an RNN's nonlinearity) subclassing :class:`Cell`, with

- ``params_type``: its parameters, a NamedTuple of arrays;
- ``state_type``: its recurrent state, a NamedTuple of ``(..., H)`` arrays;
- :meth:`Cell.init` ``(key, input_size, hidden_size, **options) -> params``;
- :meth:`Cell.sizes` ``(params) -> (input_size, hidden_size)``, which checks them;
- :meth:`Cell.step` ``(params, state, x, *, dtype=None) -> (state, y)``, with
  ``lax.scan``'s contract;
- :meth:`Cell.output_size` (default: the hidden size) and :meth:`Cell.zero_state`.

Adding a cell is one file with such a class and one line in
``jlstm/cells/__init__.py`` that registers it (:func:`register`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def state_dtype(dtype) -> np.dtype:
    """The dtype of the recurrent state for parameters of ``dtype``: float32, or float64."""
    return np.dtype(jnp.float64 if np.dtype(dtype).itemsize > 4 else jnp.float32)


def matmul(x: Array, w: Array, dtype=None) -> Array:
    """``x @ w`` computed in ``dtype`` (default: ``w``'s), accumulated and returned in the
    state dtype (float32; float64 when ``w`` is float64, as in gradient checks)."""
    result = state_dtype(w.dtype)
    compute = w.dtype if dtype is None else dtype
    return jnp.matmul(x.astype(compute), w.astype(compute), preferred_element_type=result)


def expand(v: Array, ndim: int) -> Array:
    """Give a (N,) vector leading unit axes so it broadcasts against rank ``ndim``."""
    return v.reshape((1,) * (ndim - 1) + v.shape)


def check_positive_int(name: str, value: Any) -> int:
    """A positive Python integer (bool is not one), or a ValueError naming ``name``."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def check_float_dtype(name: str, dtype) -> None:
    """Reject integer and boolean dtypes (they would round the arithmetic)."""
    if not jnp.issubdtype(np.dtype(dtype), jnp.floating):
        raise TypeError(f"{name} must have a floating dtype (float32, bfloat16, ...); got {dtype}")


def article(word: str) -> str:
    """``word`` with "a" or "an" before it ("an LSTMParams", "a GRUParams")."""
    vowel = word[:1] in "AEIOU" or word.startswith(("LSTM", "RNN", "MLP"))
    return f"{'an' if vowel else 'a'} {word}"


def check_fused_params(
    params: NamedTuple, kind: type, gates: int, name: str, extra: dict[str, str] | None = None
) -> tuple[int, int]:
    """Check params with ``w_x (I, gates*H)``, ``w_h (H, gates*H)``, ``b (gates*H,)`` and
    any ``extra`` ``(H,)``-shaped fields; return ``(input_size, hidden_size)``."""
    if not isinstance(params, kind):
        raise TypeError(f"{name} must be {article(kind.__name__)}; got {type(params).__name__}")
    for field, value in params._asdict().items():
        check_float_dtype(f"{name}.{field}", jnp.result_type(value))
    w_x, w_h, b = (jnp.shape(a) for a in (params.w_x, params.w_h, params.b))
    if len(w_h) != 2 or w_h[1] != gates * w_h[0]:
        raise ValueError(
            f"{name}.w_h must be (hidden_size, {gates} * hidden_size); got shape {w_h}"
        )
    hidden = w_h[0]
    if len(w_x) != 2 or w_x[1] != gates * hidden:
        raise ValueError(
            f"{name}.w_x must be (input_size, {gates * hidden}) to match w_h {w_h}; got shape {w_x}"
        )
    if b != (gates * hidden,):
        raise ValueError(f"{name}.b must be ({gates * hidden},) to match w_h {w_h}; got shape {b}")
    for field in extra or {}:
        shape = jnp.shape(getattr(params, field))
        if shape != (hidden,):
            raise ValueError(f"{name}.{field} must be ({hidden},); got shape {shape}")
    return w_x[0], hidden


@dataclasses.dataclass(frozen=True)
class Cell:
    """Base class of a recurrent cell; see the module docstring for the protocol."""

    name: ClassVar[str]
    params_type: ClassVar[type]
    state_type: ClassVar[type]
    # Implementations other than "reference" that this cell provides (jlstm.implementation).
    fast_implementations: ClassVar[tuple[str, ...]] = ()

    def init(self, key: Array, input_size: int, hidden_size: int, **options: Any):
        raise NotImplementedError

    def sizes(self, params, name: str = "params") -> tuple[int, int]:
        raise NotImplementedError

    def step(self, params, state, x: Array, *, dtype=None):
        raise NotImplementedError

    def output_size(self, params) -> int:
        """Features of each step's output ``y`` (the hidden size unless overridden)."""
        return self.sizes(params)[1]

    def zero_state(self, params, batch_shape: int | tuple[int, ...]):
        """The zero state for ``params``, each field ``(*batch_shape, H)``, float32 (or 64)."""
        batch_shape = (batch_shape,) if isinstance(batch_shape, int) else tuple(batch_shape)
        hidden = self.sizes(params)[1]
        dtype = state_dtype(jnp.result_type(*jax.tree.leaves(params)))
        zeros = jnp.zeros((*batch_shape, hidden), dtype)
        return self.state_type(*(zeros for _ in self.state_type._fields))


_CELLS: dict[str, Cell] = {}
_BY_PARAMS: dict[type, Cell] = {}


def register(cell: Cell, *aliases: str) -> Cell:
    """Make ``cell`` known by its ``name`` (and ``aliases``), and the default cell for its
    ``params_type`` if that type has none yet. Returns the cell."""
    for key in (cell.name, *aliases):
        if key in _CELLS and _CELLS[key] != cell:
            raise ValueError(f"a different cell is registered as {key!r}: {_CELLS[key]!r}")
        _CELLS[key] = cell
    _BY_PARAMS.setdefault(cell.params_type, cell)
    return cell


def names() -> tuple[str, ...]:
    """The registered cell names."""
    return tuple(_CELLS)


def get(cell: str | Cell) -> Cell:
    """A registered cell by name, or ``cell`` itself if it is a :class:`Cell`."""
    if isinstance(cell, Cell):
        return cell
    if isinstance(cell, str) and cell in _CELLS:
        return _CELLS[cell]
    raise ValueError(f"cell must be one of {sorted(_CELLS)} or a jlstm Cell; got {cell!r}")


def resolve(cell: str | Cell | None, params, name: str = "params") -> Cell:
    """The cell that runs ``params``: ``cell`` if given (it must match the params' type),
    else the default cell of ``type(params)``."""
    if cell is not None:
        cell = get(cell)
        if not isinstance(params, cell.params_type):
            raise TypeError(
                f"{name} must be {article(cell.params_type.__name__)} for cell {cell.name!r}; "
                f"got {type(params).__name__}"
            )
        return cell
    found = _BY_PARAMS.get(type(params))
    if found is None:
        known = ", ".join(sorted(t.__name__ for t in _BY_PARAMS))
        raise TypeError(
            f"{name} must be the parameters of a registered cell ({known}); "
            f"got {type(params).__name__}"
        )
    return found


def check_state(cell: Cell, state, batch_shape: tuple[int, ...], params, name: str) -> None:
    """Check that ``state`` is ``cell``'s state type for ``params``, each field floating and
    of the zero state's shape for ``batch_shape``; raise an error naming ``name`` otherwise."""
    if not isinstance(state, cell.state_type):
        kind = article(cell.state_type.__name__)
        raise TypeError(
            f"{name} must be {kind} (the {cell.name} cell's state, fields "
            f"{cell.state_type._fields}); got {type(state).__name__}"
        )
    zero = jax.eval_shape(lambda: cell.zero_state(params, tuple(batch_shape)))
    for field, value in state._asdict().items():
        expected = getattr(zero, field).shape
        if jnp.shape(value) != expected:
            raise ValueError(
                f"{name}.{field} must have shape {expected} (batch, features); "
                f"got {jnp.shape(value)}"
            )
        dtype = jnp.result_type(value)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(f"{name}.{field} must have a floating dtype; got {dtype}")


def cast_state(state, dtype):
    """Every field of ``state`` as an array of ``dtype`` (the cell's state dtype)."""
    return type(state)(*(jnp.asarray(a).astype(dtype) for a in state))


def check_step_inputs(cell: Cell, params, state, x: Array) -> None:
    """The checks of one step's arguments: named errors instead of a ``dot_general`` one."""
    input_size, _ = cell.sizes(params)
    x_shape = jnp.shape(x)
    if not x_shape or x_shape[-1] != input_size:
        raise ValueError(
            f"x must be (..., {input_size}) to match params.w_x "
            f"{tuple(jnp.shape(params.w_x))}; got shape {x_shape}"
        )
    check_float_dtype("x", jnp.result_type(x))
    check_state(cell, state, x_shape[:-1], params, "state")


def num_params(params) -> int:
    """Total number of scalars in a pytree of parameters."""
    return int(sum(np.prod(np.shape(x)) for x in jax.tree_util.tree_leaves(params)))
