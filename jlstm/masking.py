"""Which steps are real: ``lengths`` and ``mask``, checked once for the whole library.

``lengths`` (integer, ``(*batch,)``) is the right-padded special case of a
boolean ``mask`` (``mask[..., t] = t < lengths``). :func:`sequence_mask` gives
the batch-major mask that the pooling heads, the losses and the layer share.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def check_lengths(lengths, batch_shape: tuple[int, ...], steps: int) -> Array:
    """``lengths`` as int32 ``(*batch,)``, checked; concrete values outside ``[0, T]`` are
    rejected, traced ones act as clipped to ``[0, T]``.

    Any integer dtype works: int8 lengths at T = 200 do not wrap around, since
    the comparison with the step index is made in int32 (after clipping wide
    types to ``[0, T]``).
    """
    lengths = jnp.asarray(lengths)
    if not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise TypeError(f"lengths must have an integer dtype; got {lengths.dtype}")
    if lengths.shape != tuple(batch_shape):
        raise ValueError(
            f"lengths must have shape {tuple(batch_shape)} (the batch); got {lengths.shape}"
        )
    try:
        values = np.asarray(lengths)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        values = None  # traced: documented behaviour is clipping to [0, T]
    if values is not None and values.size and (values.min() < 0 or values.max() > steps):
        raise ValueError(
            f"lengths must lie in [0, T={steps}]; got values from {values.min()} to {values.max()}"
        )
    if lengths.dtype.itemsize >= 4:  # T fits this dtype; clip before narrowing to int32
        lengths = jnp.clip(lengths, 0, steps)
    return lengths.astype(jnp.int32)


def check_mask(
    mask, shape: tuple[int, ...], layout: str = "(batch, time)", name: str = "mask"
) -> Array:
    """A boolean mask of exactly ``shape``, or an error naming what arrived."""
    mask = jnp.asarray(mask)
    if mask.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)} {layout}; got {mask.shape}")
    if mask.dtype != jnp.bool_:
        raise TypeError(f"{name} must have dtype bool; got {mask.dtype}")
    return mask


def sequence_mask(
    shape: tuple[int, ...], *, lengths: Array | None = None, mask: Array | None = None
) -> Array:
    """The boolean mask of real steps for arrays of layout ``shape = (*batch, T)``.

    ``lengths`` (integer, ``(*batch,)``) gives ``t < lengths``; ``mask`` is
    checked and returned; with neither, every step is real. Concrete
    ``lengths`` outside ``[0, T]`` are rejected; traced ones are not checked
    (a length above T acts as T).

    Shapes:
      lengths: (*batch,) or mask: (*batch, T)  ->  (*batch, T) bool

    >>> sequence_mask((2, 4), lengths=jnp.array([4, 1])).astype(int)
    Array([[1, 1, 1, 1],
           [1, 0, 0, 0]], dtype=int32)
    """
    shape = tuple(shape)
    batch_shape, steps = shape[:-1], shape[-1]
    if lengths is not None and mask is not None:
        raise ValueError("give lengths or mask, not both")
    if lengths is not None:
        lengths = check_lengths(lengths, batch_shape, steps)
        t = jnp.arange(steps, dtype=jnp.int32).reshape((1,) * len(batch_shape) + (steps,))
        return t < lengths[..., None]
    if mask is not None:
        return check_mask(mask, shape)
    return jnp.ones(shape, jnp.bool_)


def step_mask(
    lengths, mask, steps: int, batch_shape: tuple[int, ...], time_major: bool, name: str = "mask"
) -> Array | None:
    """The layer's flat time-major mask ``(T, B)`` from ``lengths`` or ``mask`` (called
    ``name`` in errors), or None."""
    flat = int(np.prod(batch_shape, dtype=int))
    if lengths is not None and mask is not None:
        raise ValueError("give lengths or mask, not both")
    if lengths is not None:
        lengths = check_lengths(lengths, batch_shape, steps)
        t = jnp.arange(steps, dtype=jnp.int32)[:, None]  # (T, 1)
        return t < lengths.reshape(1, flat)
    if mask is None:
        return None
    layout = "(xs without its feature axis)"
    if time_major:
        mask = check_mask(mask, (steps, *batch_shape), layout, name)
    else:
        mask = check_mask(mask, (*batch_shape, steps), layout, name)
        mask = jnp.moveaxis(mask, -1, 0)
    return mask.reshape(steps, flat)
