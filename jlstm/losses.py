"""Masked losses and metrics: pure functions of arrays, optax underneath.

Every function returns a scalar: the mean over the real items, where an item
is an example (``logits (B, C)``, ``labels (B,)``) or a time step
(``logits (B, T, C)``, ``labels (B, T)``). Steps beyond ``lengths`` or where
``mask`` is False are left out of the mean (whatever their labels hold), and
an empty selection gives 0. The mean is over all real steps of the batch
together (token-level), so a long sequence counts for more than a short one.

``lengths`` has the labels' shape without its last (time) axis; ``mask`` has
the labels' shape (or, for :func:`mse` / :func:`mae`, a leading part of it).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax

from jlstm.heads import sequence_mask

Array = jax.Array


def _at_least_float32(x: Array) -> Array:
    """Half-precision values (bfloat16, float16) as float32; others unchanged."""
    return x.astype(jnp.float32) if jnp.dtype(x.dtype).itemsize < 4 else x


def _masked_mean(values: Array, mask: Array | None) -> Array:
    """Mean of ``values`` over the entries where ``mask`` is True (0 if none)."""
    if mask is None:
        return jnp.mean(values)
    total = jnp.sum(jnp.where(mask, values, jnp.zeros_like(values)))
    count = jnp.sum(mask).astype(values.dtype)
    return total / jnp.maximum(count, jnp.ones_like(count))


def _item_mask(shape: tuple[int, ...], lengths, mask, name: str) -> Array | None:
    """The mask over items of layout ``shape`` from ``lengths`` (time = last axis) or ``mask``."""
    if lengths is None and mask is None:
        return None
    if lengths is not None and len(shape) < 2:
        raise ValueError(
            f"lengths needs {name} with a time axis (*batch, T); got {name} of shape {shape}"
        )
    return sequence_mask(shape, lengths=lengths, mask=mask)


def _check_classification(logits: Array, labels: Array) -> tuple[Array, Array]:
    logits, labels = jnp.asarray(logits), jnp.asarray(labels)
    if logits.ndim < 2:
        raise ValueError(f"logits must be (*batch, num_classes); got shape {logits.shape}")
    if labels.shape != logits.shape[:-1]:
        raise ValueError(
            f"labels must have shape {logits.shape[:-1]} (logits {logits.shape} without the "
            f"class axis); got shape {labels.shape}"
        )
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"labels must have an integer dtype (class indices); got {labels.dtype}")
    return _at_least_float32(logits), labels


def cross_entropy(
    logits: Array, labels: Array, *, lengths: Array | None = None, mask: Array | None = None
) -> Array:
    """Softmax cross-entropy with integer labels, in nats, averaged over real items.

    ``optax.softmax_cross_entropy_with_integer_labels`` per item; padded items
    are left out (their labels may be anything, e.g. -1).

    Shapes:
      logits: (*batch, C), labels: (*batch,)  ->  ()
      e.g. (B, C) + (B,) per example, or (B, T, C) + (B, T) per step with
      lengths (B,) or mask (B, T)

    >>> logits = jnp.zeros((2, 3, 4))
    >>> labels = jnp.array([[0, 1, 2], [3, -1, -1]])
    >>> cross_entropy(logits, labels, lengths=jnp.array([3, 1]))  # ln 4
    Array(1.3862944, dtype=float32)
    """
    logits, labels = _check_classification(logits, labels)
    m = _item_mask(labels.shape, lengths, mask, "labels")
    if m is not None:
        labels = jnp.where(m, labels, jnp.zeros_like(labels))
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    return _masked_mean(losses, m)


def bits_per_char(
    logits: Array, labels: Array, *, lengths: Array | None = None, mask: Array | None = None
) -> Array:
    """Cross-entropy in bits: :func:`cross_entropy` / ln 2 (for character models).

    Shapes:
      logits: (*batch, C), labels: (*batch,)  ->  ()

    >>> bits_per_char(jnp.zeros((1, 5, 4)), jnp.zeros((1, 5), jnp.int32))  # log2 4
    Array(2., dtype=float32)
    """
    return cross_entropy(logits, labels, lengths=lengths, mask=mask) / math.log(2.0)


def accuracy(
    logits: Array, labels: Array, *, lengths: Array | None = None, mask: Array | None = None
) -> Array:
    """The fraction of real items whose argmax over classes equals the label.

    Shapes:
      logits: (*batch, C), labels: (*batch,)  ->  ()

    >>> logits = jnp.array([[2.0, 0.0], [0.0, 1.0], [5.0, 0.0]])
    >>> accuracy(logits, jnp.array([0, 0, 0]), mask=jnp.array([True, True, False]))
    Array(0.5, dtype=float32)
    """
    logits, labels = _check_classification(logits, labels)
    m = _item_mask(labels.shape, lengths, mask, "labels")
    hits = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
    return _masked_mean(hits, m)


def _regression_errors(pred, target, lengths, mask) -> tuple[Array, Array | None]:
    """pred - target, and the mask broadcast to its shape (or None)."""
    pred, target = jnp.asarray(pred), jnp.asarray(target)
    if target.shape != pred.shape:
        raise ValueError(f"target must have shape {pred.shape} like pred; got shape {target.shape}")
    pred = _at_least_float32(pred)
    target = target.astype(pred.dtype)
    if lengths is not None:
        lengths = jnp.asarray(lengths)
        if pred.ndim <= lengths.ndim:
            raise ValueError(
                f"lengths {lengths.shape} needs pred with a time axis after the batch axes; "
                f"got pred of shape {pred.shape}"
            )
        m = sequence_mask(pred.shape[: lengths.ndim + 1], lengths=lengths)
    elif mask is not None:
        mask = jnp.asarray(mask)
        if mask.shape != pred.shape[: mask.ndim]:
            raise ValueError(
                f"mask must have shape {pred.shape} or a leading part of it; got {mask.shape}"
            )
        m = sequence_mask(mask.shape, mask=mask)
    else:
        return pred - target, None
    m = jnp.broadcast_to(m.reshape(m.shape + (1,) * (pred.ndim - m.ndim)), pred.shape)
    return pred - target, m


def mse(
    pred: Array, target: Array, *, lengths: Array | None = None, mask: Array | None = None
) -> Array:
    """Mean squared error over the real elements.

    ``mask`` may cover the leading axes only (e.g. ``(B, T)`` for ``(B, T, F)``
    predictions); ``lengths`` ``(*batch,)`` marks the axis after the batch
    axes as time.

    Shapes:
      pred, target: (*batch, ...)  ->  ()

    >>> mse(jnp.array([[1.0], [3.0]]), jnp.zeros((2, 1)), mask=jnp.array([True, False]))
    Array(1., dtype=float32)
    """
    errors, m = _regression_errors(pred, target, lengths, mask)
    return _masked_mean(optax.squared_error(errors), m)


def mae(
    pred: Array, target: Array, *, lengths: Array | None = None, mask: Array | None = None
) -> Array:
    """Mean absolute error over the real elements; ``lengths``/``mask`` as for :func:`mse`.

    Shapes:
      pred, target: (*batch, ...)  ->  ()

    >>> mae(jnp.array([[1.0, -3.0]]), jnp.zeros((1, 2)), lengths=jnp.array([1]))
    Array(1., dtype=float32)
    """
    errors, m = _regression_errors(pred, target, lengths, mask)
    return _masked_mean(jnp.abs(errors), m)


def _check_pairs(scores, same) -> tuple[Array, Array]:
    scores, same = jnp.asarray(scores), jnp.asarray(same)
    if same.shape != scores.shape:
        raise ValueError(f"same must have shape {scores.shape} like scores; got shape {same.shape}")
    if not (same.dtype == jnp.bool_ or jnp.issubdtype(same.dtype, jnp.integer)):
        raise TypeError(f"same must be bool or 0/1 integers; got dtype {same.dtype}")
    return _at_least_float32(scores), same.astype(jnp.bool_)


def contrastive_loss(scores: Array, same: Array, *, margin: float = 0.0) -> Array:
    """Margin loss on similarity scores of pairs (PyTorch's ``CosineEmbeddingLoss``).

    For cosine similarities ``s`` in [-1, 1]: a matching pair costs ``1 - s``
    (pulled towards s = 1), a non-matching pair costs ``max(0, s - margin)``
    (pushed to ``margin`` or below); the mean over pairs. For unbounded scores
    (dot products, or a learned scale) use :func:`logistic_matching_loss`.

    Shapes:
      scores: (*batch,), same: (*batch,) bool or 0/1  ->  ()

    >>> contrastive_loss(jnp.array([0.5, 0.5]), jnp.array([True, False]))
    Array(0.5, dtype=float32)
    """
    scores, same = _check_pairs(scores, same)
    positive = 1.0 - scores
    negative = jax.nn.relu(scores - margin)
    return jnp.mean(jnp.where(same, positive, negative))


def logistic_matching_loss(scores: Array, same: Array) -> Array:
    """Binary cross-entropy of ``sigmoid(scores)`` against ``same``, mean over pairs.

    Reads scores as logits of "the pair matches": suits dot products and
    scaled cosine similarities (``optax.sigmoid_binary_cross_entropy``).

    Shapes:
      scores: (*batch,), same: (*batch,) bool or 0/1  ->  ()

    >>> logistic_matching_loss(jnp.zeros(3), jnp.array([1, 0, 1]))  # ln 2
    Array(0.6931472, dtype=float32)
    """
    scores, same = _check_pairs(scores, same)
    return jnp.mean(optax.sigmoid_binary_cross_entropy(scores, same.astype(scores.dtype)))


def roc_auc(scores: Array, labels: Array) -> Array:
    """Area under the ROC curve of ``scores`` ranking positives (``labels``) first.

    Rank-based (the Mann-Whitney U statistic over ``P * N``): the probability
    that a random positive scores above a random negative, ties counting half;
    tied scores share their average rank. 1 is a perfect ranking, 0.5 chance.
    NaN when ``labels`` holds only one class. Jittable; the rank sums are exact
    integers for up to about 46,000 items.

    Shapes:
      scores: (*batch,), labels: (*batch,) bool or 0/1  ->  ()

    >>> roc_auc(jnp.array([0.1, 0.4, 0.35, 0.8]), jnp.array([0, 0, 1, 1]))
    Array(0.75, dtype=float32)
    """
    scores, labels = _check_pairs(scores, labels)
    scores, labels = scores.reshape(-1), labels.reshape(-1)
    ordered = jnp.sort(scores)
    below = jnp.searchsorted(ordered, scores, side="left")  # items scoring lower
    up_to = jnp.searchsorted(ordered, scores, side="right")  # lower or tied, self included
    twice_rank = below + up_to + 1  # twice the average 1-based rank among ties
    n_pos = jnp.sum(labels).astype(jnp.float32)
    n_neg = labels.size - n_pos
    twice_rank_sum = jnp.sum(jnp.where(labels, twice_rank, 0)).astype(jnp.float32)
    u = twice_rank_sum / 2 - n_pos * (n_pos + 1) / 2  # positive-above-negative pairs
    return u / (n_pos * n_neg)
