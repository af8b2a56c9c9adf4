"""Pure functions that turn a sequence of hidden states into what a head reads.

Pooling reduces ``hs`` of shape ``(*batch, T, D)`` over its time axis (the
second-to-last) to ``(*batch, D)``, reading only the real steps given by
``lengths`` (right padding) or a boolean ``mask`` (the general form, ``False``
at steps to ignore):

- :func:`last_hidden`: h at each sequence's last real step (h_T). For a
  bidirectional LSTM's output ``[forward; backward]`` the backward half is
  taken at the *first* real step, where the backward direction ends, so the
  result is the forward and backward final states concatenated.
- :func:`mean_pool`, :func:`max_pool`: the masked mean and maximum over time.
- :func:`all_hidden`: every step, with padded steps set to zero.

A sequence with no real step pools to zeros. Padding never changes a result.
Matching scores compare two pooled vectors: :func:`cosine_similarity` and
:func:`dot_similarity`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jlstm.masking import sequence_mask

Array = jax.Array

POOLING_METHODS = ("last", "mean", "max")


def _check_hs(hs: Array, name: str = "hs") -> Array:
    hs = jnp.asarray(hs)
    if hs.ndim < 2:
        raise ValueError(f"{name} must be (*batch, T, features); got shape {hs.shape}")
    return hs


def all_hidden(hs: Array, *, lengths: Array | None = None, mask: Array | None = None) -> Array:
    """Every step's hidden state, with padded steps set to zero.

    Shapes:
      hs: (*batch, T, D)  ->  (*batch, T, D)

    >>> all_hidden(jnp.ones((2, 3, 4)), lengths=jnp.array([3, 1])).sum(axis=(1, 2))
    Array([12.,  4.], dtype=float32)
    """
    hs = _check_hs(hs)
    m = sequence_mask(hs.shape[:-1], lengths=lengths, mask=mask)
    return jnp.where(m[..., None], hs, jnp.zeros_like(hs))


def last_hidden(
    hs: Array,
    *,
    lengths: Array | None = None,
    mask: Array | None = None,
    bidirectional: bool = False,
) -> Array:
    """h at each sequence's last real step; zeros for a sequence with none.

    With ``bidirectional=True`` the feature axis is read as ``[forward;
    backward]`` (two halves, as :func:`jlstm.stack.stack` concatenates them):
    the forward half is taken at the last real step and the backward half at
    the first, which are the two directions' final hidden states.

    Shapes:
      hs: (*batch, T, D)  ->  (*batch, D)

    >>> hs = jnp.arange(12.0).reshape(1, 3, 4)
    >>> last_hidden(hs, lengths=jnp.array([2]))
    Array([[4., 5., 6., 7.]], dtype=float32)
    >>> last_hidden(hs, lengths=jnp.array([2]), bidirectional=True)
    Array([[4., 5., 2., 3.]], dtype=float32)
    """
    hs = _check_hs(hs)
    if bidirectional and hs.shape[-1] % 2:
        raise ValueError(
            "hs must have an even number of features [forward; backward] when "
            f"bidirectional=True; got shape {hs.shape}"
        )
    m = sequence_mask(hs.shape[:-1], lengths=lengths, mask=mask)  # (*batch, T)
    steps = hs.shape[-2]
    t = jnp.arange(steps, dtype=jnp.int32).reshape((1,) * (m.ndim - 1) + (steps,))
    last = jnp.max(jnp.where(m, t, -1), axis=-1, initial=-1)  # (*batch,), -1 when empty
    valid = (last >= 0)[..., None]  # (*batch, 1)
    forward = _take_step(hs, last)
    if bidirectional:
        first = jnp.min(jnp.where(m, t, steps), axis=-1)  # (*batch,)
        half = hs.shape[-1] // 2
        backward = _take_step(hs, first)
        forward = jnp.concatenate([forward[..., :half], backward[..., half:]], axis=-1)
    return jnp.where(valid, forward, jnp.zeros_like(forward))


def _take_step(hs: Array, index: Array) -> Array:
    """hs[..., index, :] per batch element; index is clipped into [0, T)."""
    index = jnp.clip(index, 0, hs.shape[-2] - 1)
    return jnp.take_along_axis(hs, index[..., None, None], axis=-2)[..., 0, :]


def mean_pool(hs: Array, *, lengths: Array | None = None, mask: Array | None = None) -> Array:
    """The mean of h over each sequence's real steps; zeros for a sequence with none.

    Shapes:
      hs: (*batch, T, D)  ->  (*batch, D)

    >>> hs = jnp.arange(6.0).reshape(1, 3, 2)
    >>> mean_pool(hs, lengths=jnp.array([2]))
    Array([[1., 2.]], dtype=float32)
    """
    hs = _check_hs(hs)
    m = sequence_mask(hs.shape[:-1], lengths=lengths, mask=mask)[..., None]  # (*batch, T, 1)
    total = jnp.sum(jnp.where(m, hs, jnp.zeros_like(hs)), axis=-2)  # (*batch, D)
    count = jnp.sum(m, axis=-2).astype(hs.dtype)  # (*batch, 1)
    return total / jnp.maximum(count, jnp.ones_like(count))


def max_pool(hs: Array, *, lengths: Array | None = None, mask: Array | None = None) -> Array:
    """The maximum of h over each sequence's real steps; zeros for a sequence with none.

    Shapes:
      hs: (*batch, T, D)  ->  (*batch, D)

    >>> hs = jnp.array([[[1.0, -5.0], [3.0, -4.0], [9.0, 9.0]]])
    >>> max_pool(hs, lengths=jnp.array([2]))
    Array([[ 3., -4.]], dtype=float32)
    """
    hs = _check_hs(hs)
    m = sequence_mask(hs.shape[:-1], lengths=lengths, mask=mask)[..., None]  # (*batch, T, 1)
    low = jnp.full_like(hs, -jnp.inf)
    top = jnp.max(jnp.where(m, hs, low), axis=-2, initial=-jnp.inf)  # (*batch, D)
    any_real = jnp.any(m, axis=-2)  # (*batch, 1)
    return jnp.where(any_real, top, jnp.zeros_like(top))


def pool(
    hs: Array,
    method: str,
    *,
    lengths: Array | None = None,
    mask: Array | None = None,
    bidirectional: bool = False,
) -> Array:
    """Pool by name: ``"last"``, ``"mean"`` or ``"max"`` (see the functions above).

    ``bidirectional`` only matters for ``"last"``.

    Shapes:
      hs: (*batch, T, D)  ->  (*batch, D)

    >>> pool(jnp.ones((2, 5, 3)), "mean", lengths=jnp.array([5, 2])).shape
    (2, 3)
    """
    if method == "last":
        return last_hidden(hs, lengths=lengths, mask=mask, bidirectional=bidirectional)
    if method == "mean":
        return mean_pool(hs, lengths=lengths, mask=mask)
    if method == "max":
        return max_pool(hs, lengths=lengths, mask=mask)
    raise ValueError(f"method must be one of {POOLING_METHODS}; got {method!r}")


def _check_pair(a: Array, b: Array) -> tuple[Array, Array]:
    a, b = jnp.asarray(a), jnp.asarray(b)
    if a.ndim < 1 or a.shape != b.shape:
        raise ValueError(
            f"a and b must have the same shape (*batch, features); got {a.shape} and {b.shape}"
        )
    return a, b


def dot_similarity(a: Array, b: Array) -> Array:
    """The dot product of two vectors per batch element: ``sum(a * b, -1)``.

    Shapes:
      a, b: (*batch, D)  ->  (*batch,)

    >>> dot_similarity(jnp.array([[1.0, 2.0]]), jnp.array([[3.0, 4.0]]))
    Array([11.], dtype=float32)
    """
    a, b = _check_pair(a, b)
    return jnp.sum(a * b, axis=-1)


def cosine_similarity(a: Array, b: Array, *, eps: float = 1e-8) -> Array:
    """The cosine of the angle between two vectors per batch element.

    Each norm is at least ``eps``, so a zero vector scores 0 (with finite
    gradients) instead of NaN. Symmetric: ``cos(a, b) == cos(b, a)``.

    Shapes:
      a, b: (*batch, D)  ->  (*batch,), in [-1, 1]

    >>> cosine_similarity(jnp.array([[1.0, 0.0]]), jnp.array([[2.0, 2.0]]))
    Array([0.70710677], dtype=float32)
    """
    a, b = _check_pair(a, b)
    return dot_similarity(a, b) / (_safe_norm(a, eps) * _safe_norm(b, eps))


def _safe_norm(x: Array, eps: float) -> Array:
    """||x|| along the last axis, at least ``eps``, with a finite gradient at 0."""
    squared = jnp.sum(x * x, axis=-1)
    return jnp.sqrt(jnp.maximum(squared, jnp.full_like(squared, eps * eps)))


SIMILARITIES = {"cosine": cosine_similarity, "dot": dot_similarity}


def similarity(a: Array, b: Array, kind: str) -> Array:
    """Match by name: ``"cosine"`` or ``"dot"``.

    Shapes:
      a, b: (*batch, D)  ->  (*batch,)

    >>> similarity(jnp.ones((4, 3)), jnp.ones((4, 3)), "dot").shape
    (4,)
    """
    if kind not in SIMILARITIES:
        raise ValueError(f"similarity must be one of {tuple(SIMILARITIES)}; got {kind!r}")
    return SIMILARITIES[kind](a, b)
