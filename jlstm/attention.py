"""Attention over a sequence of hidden states: a context vector and its weights.

Both kinds score every step, take a softmax over the real steps only and
return the weighted sum of the hidden states::

    additive (Bahdanau):        score_t = v · tanh(W h_t + b)
    scaled dot product:         score_t = q · h_t / sqrt(D)     (q learned)
    weights = softmax over real steps of score;  context = Σ_t weights_t h_t

Padded steps get weight exactly 0, the weights over real steps sum to 1 (a
sequence with no real step gets all-zero weights and a zero context).

Several heads (``v`` of shape ``(heads, A)`` or ``q`` of shape ``(heads, D)``)
score the steps independently, as the hops of Lin et al. (2017), "A
structured self-attentive sentence embedding": the weights gain a heads axis
and the context is the heads' weighted sums concatenated, ``(*batch, heads *
D)``. With one-dimensional ``v`` or ``q`` there is no heads axis.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jlstm.cell import matmul
from jlstm.heads import sequence_mask

Array = jax.Array
Initializer = Any

ATTENTION_KINDS = ("additive", "dot")


class AdditiveParams(NamedTuple):
    """Parameters of additive attention, score_t = v · tanh(W h_t + b).

    Shapes:
      w: (D, A)          D = features of h, A = attention size
      b: (A,)
      v: (A,), or (heads, A) for several heads
    """

    w: Array
    b: Array
    v: Array


def init_additive_params(
    key: Array,
    in_features: int,
    attention_size: int | None = None,
    *,
    num_heads: int | None = None,
    w_init: Initializer = jax.nn.initializers.glorot_uniform(),
    v_init: Initializer = jax.nn.initializers.lecun_normal(),
    dtype: Any = jnp.float32,
) -> AdditiveParams:
    """Initialise additive attention; ``attention_size`` defaults to ``in_features``.

    ``num_heads=None`` gives a single head with no heads axis (``v`` of shape
    ``(A,)``); an integer gives ``v`` of shape ``(num_heads, A)``.

    Shapes:
      returns AdditiveParams(w (D, A), b (A,), v (A,) or (heads, A))

    >>> p = init_additive_params(jax.random.key(0), 8, 4, num_heads=2)
    >>> p.w.shape, p.b.shape, p.v.shape
    ((8, 4), (4,), (2, 4))
    """
    _check_positive(in_features=in_features)
    attention_size = in_features if attention_size is None else attention_size
    _check_positive(attention_size=attention_size)
    k_w, k_v = jax.random.split(key)
    w = w_init(k_w, (in_features, attention_size), dtype)
    b = jnp.zeros((attention_size,), dtype)
    if num_heads is None:
        v = v_init(k_v, (attention_size, 1), dtype)[:, 0]
    else:
        _check_positive(num_heads=num_heads)
        v = v_init(k_v, (attention_size, num_heads), dtype).T
    return AdditiveParams(w, b, v)


def init_query(
    key: Array,
    in_features: int,
    *,
    num_heads: int | None = None,
    init: Initializer = jax.nn.initializers.lecun_normal(),
    dtype: Any = jnp.float32,
) -> Array:
    """Initialise the learned query of dot-product attention.

    Shapes:
      returns (D,) for ``num_heads=None``, else (num_heads, D)

    >>> init_query(jax.random.key(0), 8, num_heads=3).shape
    (3, 8)
    """
    _check_positive(in_features=in_features)
    if num_heads is None:
        return init(key, (in_features, 1), dtype)[:, 0]
    _check_positive(num_heads=num_heads)
    return init(key, (in_features, num_heads), dtype).T


def _check_positive(**values) -> None:
    for name, value in values.items():
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}")


def masked_softmax(scores: Array, mask: Array) -> Array:
    """Softmax over the last axis, over the entries where ``mask`` is True only.

    Masked entries get exactly 0; a row with no True entry is all zeros.
    ``mask`` must have the rank of ``scores`` (its axes may have size 1).

    Shapes:
      scores: (..., T), mask: (..., T)  ->  (..., T)

    >>> masked_softmax(jnp.zeros((1, 3)), jnp.array([[True, True, False]]))
    Array([[0.5, 0.5, 0. ]], dtype=float32)
    """
    if mask.ndim != scores.ndim:
        raise ValueError(f"mask must have rank {scores.ndim} like scores; got shape {mask.shape}")
    low = jnp.full_like(scores, jnp.finfo(scores.dtype).min)
    masked = jnp.where(mask, scores, low)
    top = jnp.max(masked, axis=-1, keepdims=True, initial=jnp.finfo(scores.dtype).min)
    top = jax.lax.stop_gradient(top)  # (..., 1)
    e = jnp.where(mask, jnp.exp(masked - top), jnp.zeros_like(scores))
    total = jnp.sum(e, axis=-1, keepdims=True)  # (..., 1)
    return e / jnp.where(total > 0, total, jnp.ones_like(total))


def attend(
    scores: Array, hs: Array, *, lengths: Array | None = None, mask: Array | None = None
) -> tuple[Array, Array]:
    """Weights from ``scores`` (masked softmax over time) and the weighted sum of ``hs``.

    ``scores`` is ``(*batch, T)`` for one head or ``(*batch, heads, T)`` for
    several; the context concatenates the heads.

    Shapes:
      scores: (*batch, T) or (*batch, heads, T); hs: (*batch, T, D)
      -> context: (*batch, D) or (*batch, heads * D), weights: like scores

    >>> context, weights = attend(jnp.zeros((2, 3)), jnp.ones((2, 3, 4)), lengths=jnp.array([3, 1]))
    >>> context.shape, weights[1]
    ((2, 4), Array([1., 0., 0.], dtype=float32))
    """
    hs = _check_hs(hs)
    batch_shape, steps = hs.shape[:-2], hs.shape[-2]
    m = sequence_mask(hs.shape[:-1], lengths=lengths, mask=mask)  # (*batch, T)
    if jnp.dtype(scores.dtype).itemsize < 4:
        scores = scores.astype(jnp.float32)  # the softmax in float32
    if scores.shape == (*batch_shape, steps):
        weights = masked_softmax(scores, m)
        context = jnp.einsum("...t,...td->...d", weights, hs.astype(weights.dtype))
        return context, weights
    if scores.ndim == len(batch_shape) + 2 and scores.shape[:-2] + scores.shape[-1:] == m.shape:
        weights = masked_softmax(scores, m[..., None, :])  # (*batch, heads, T)
        context = jnp.einsum("...ht,...td->...hd", weights, hs.astype(weights.dtype))
        return context.reshape(*batch_shape, -1), weights
    raise ValueError(
        f"scores must be {(*batch_shape, steps)} or {(*batch_shape, 'heads', steps)} "
        f"to match hs {hs.shape}; got shape {scores.shape}"
    )


def _check_hs(hs: Array) -> Array:
    hs = jnp.asarray(hs)
    if hs.ndim < 2:
        raise ValueError(f"hs must be (*batch, T, features); got shape {hs.shape}")
    return hs


def _heads_last_to_front(scores: Array) -> Array:
    """(*batch, T, heads) -> (*batch, heads, T)."""
    return jnp.swapaxes(scores, -1, -2)


def additive_scores(params: AdditiveParams, hs: Array, *, dtype=None) -> Array:
    """score_t = v · tanh(W h_t + b) for every step (padding not masked here).

    Shapes:
      hs: (*batch, T, D)  ->  (*batch, T), or (*batch, heads, T) for several heads
    """
    hs = _check_hs(hs)
    w, b, v = params
    if w.ndim != 2 or b.shape != w.shape[1:] or v.shape[-1:] != w.shape[1:] or v.ndim > 2:
        raise ValueError(
            "params must be AdditiveParams(w (D, A), b (A,), v (A,) or (heads, A)); "
            f"got shapes w {w.shape}, b {b.shape}, v {v.shape}"
        )
    if hs.shape[-1] != w.shape[0]:
        raise ValueError(
            f"hs must be (*batch, T, {w.shape[0]}) to match params.w {w.shape}; "
            f"got shape {hs.shape}"
        )
    pre = matmul(hs, w, dtype)  # (*batch, T, A)
    hidden = jnp.tanh(pre + b.astype(pre.dtype).reshape((1,) * (pre.ndim - 1) + b.shape))
    if v.ndim == 1:
        return matmul(hidden, v[:, None], dtype)[..., 0]  # (*batch, T)
    return _heads_last_to_front(matmul(hidden, v.T, dtype))  # (*batch, heads, T)


def additive_attention(
    params: AdditiveParams,
    hs: Array,
    *,
    lengths: Array | None = None,
    mask: Array | None = None,
    dtype=None,
) -> tuple[Array, Array]:
    """Additive (Bahdanau) attention over hidden states: (context, weights).

    ``dtype`` (e.g. ``jnp.bfloat16``) is the matmuls' dtype; the softmax and
    the context are float32.

    Shapes:
      hs: (*batch, T, D)
      -> context: (*batch, D), weights: (*batch, T)               one head
      -> context: (*batch, heads * D), weights: (*batch, heads, T)  several

    >>> p = init_additive_params(jax.random.key(0), 6, 4)
    >>> context, weights = additive_attention(p, jnp.ones((2, 5, 6)), lengths=jnp.array([5, 3]))
    >>> context.shape, weights.shape, weights[1, 3:].tolist()
    ((2, 6), (2, 5), [0.0, 0.0])
    """
    scores = additive_scores(params, hs, dtype=dtype)
    return attend(scores, hs, lengths=lengths, mask=mask)


def dot_product_scores(query: Array, hs: Array, *, dtype=None) -> Array:
    """score_t = q · h_t / sqrt(D) for every step (padding not masked here).

    Shapes:
      query: (D,) or (heads, D); hs: (*batch, T, D)
      -> (*batch, T) or (*batch, heads, T)
    """
    hs = _check_hs(hs)
    query = jnp.asarray(query)
    if query.ndim not in (1, 2):
        raise ValueError(f"query must be (D,) or (heads, D); got shape {query.shape}")
    features = query.shape[-1]
    if hs.shape[-1] != features:
        raise ValueError(
            f"hs must be (*batch, T, {features}) to match query {query.shape}; got shape {hs.shape}"
        )
    scale = 1.0 / math.sqrt(features)
    if query.ndim == 1:
        return matmul(hs, query[:, None], dtype)[..., 0] * scale  # (*batch, T)
    return _heads_last_to_front(matmul(hs, query.T, dtype)) * scale  # (*batch, heads, T)


def dot_product_attention(
    query: Array,
    hs: Array,
    *,
    lengths: Array | None = None,
    mask: Array | None = None,
    dtype=None,
) -> tuple[Array, Array]:
    """Scaled dot-product attention with a learned query: (context, weights).

    Shapes:
      query: (D,) or (heads, D); hs: (*batch, T, D)
      -> context: (*batch, D), weights: (*batch, T)               one head
      -> context: (*batch, heads * D), weights: (*batch, heads, T)  several

    >>> q = init_query(jax.random.key(0), 6, num_heads=2)
    >>> context, weights = dot_product_attention(q, jnp.ones((2, 5, 6)), lengths=jnp.array([5, 3]))
    >>> context.shape, weights.shape
    ((2, 12), (2, 2, 5))
    """
    scores = dot_product_scores(query, hs, dtype=dtype)
    return attend(scores, hs, lengths=lengths, mask=mask)
