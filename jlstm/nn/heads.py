"""Heads: what turns an encoded vector (or every step) into a prediction.

Classification and regression heads are one ``nnx.Linear``; the matching head
scores two encoded vectors with :func:`jlstm.heads.similarity`, optionally
times a learned positive scale (an inverse temperature).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jlstm.cells.base import check_positive_int
from jlstm.heads import SIMILARITIES, similarity

Array = jax.Array


def _float32_out(y: Array) -> Array:
    """Outputs of half-precision matmuls (``dtype=jnp.bfloat16``) come back as float32."""
    return y.astype(jnp.float32) if jnp.dtype(y.dtype).itemsize < 4 else y


def _check_features(x: Array, features: int, owner: str) -> Array:
    x = jnp.asarray(x)
    if x.ndim < 1 or x.shape[-1] != features:
        raise ValueError(
            f"x must be (..., {features}) for {owner}(in_features={features}); got shape {x.shape}"
        )
    return x


class ClassificationHead(nnx.Module):
    """Linear -> logits; :meth:`probabilities` gives the softmax.

    Losses take the logits (see :func:`jlstm.losses.cross_entropy`). With
    ``dtype=jnp.bfloat16`` the matmul runs in bfloat16 and the logits come
    back as float32.

    Shapes:
      x: (..., in_features)  ->  logits: (..., num_classes)

    >>> head = ClassificationHead(8, 3, rngs=nnx.Rngs(0))
    >>> head(jnp.ones((2, 8))).shape, float(head.probabilities(jnp.ones((2, 8))).sum())
    ((2, 3), 2.0)
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        check_positive_int("in_features", in_features)
        check_positive_int("num_classes", num_classes)
        self.linear = nnx.Linear(
            in_features, num_classes, dtype=dtype, param_dtype=param_dtype, rngs=rngs
        )
        self.in_features = in_features
        self.num_classes = num_classes

    def __call__(self, x: Array) -> Array:
        return _float32_out(self.linear(_check_features(x, self.in_features, "ClassificationHead")))

    def probabilities(self, x: Array) -> Array:
        """softmax(logits) over the class axis."""
        return jax.nn.softmax(self(x), axis=-1)


class RegressionHead(nnx.Module):
    """Linear -> real-valued outputs of any size (float32, as :class:`ClassificationHead`).

    Shapes:
      x: (..., in_features)  ->  (..., out_features)

    >>> RegressionHead(8, 2, rngs=nnx.Rngs(0))(jnp.ones((5, 8))).shape
    (5, 2)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        check_positive_int("in_features", in_features)
        check_positive_int("out_features", out_features)
        self.linear = nnx.Linear(
            in_features, out_features, dtype=dtype, param_dtype=param_dtype, rngs=rngs
        )
        self.in_features = in_features
        self.out_features = out_features

    def __call__(self, x: Array) -> Array:
        return _float32_out(self.linear(_check_features(x, self.in_features, "RegressionHead")))


class MatchingHead(nnx.Module):
    """The similarity of two encoded vectors: ``scale * sim(a, b)``.

    ``similarity`` is ``"cosine"`` or ``"dot"``. With ``learn_scale=True`` the
    scale is a parameter, stored as its logarithm so it stays positive and
    starting at ``init_scale`` (for cosine scores read as logits, a scale
    around 5-20 lets them reach confident probabilities); otherwise the scale
    is the constant ``init_scale``. Symmetric in ``a`` and ``b``.

    Shapes:
      a, b: (B, D)  ->  scores: (B,)

    >>> head = MatchingHead("cosine", learn_scale=True, init_scale=10.0)
    >>> head(jnp.ones((4, 3)), jnp.ones((4, 3)))
    Array([10., 10., 10., 10.], dtype=float32)
    """

    def __init__(
        self,
        similarity: str = "cosine",
        *,
        learn_scale: bool = False,
        init_scale: float = 1.0,
        param_dtype: Any = jnp.float32,
    ):
        if similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {tuple(SIMILARITIES)}; got {similarity!r}")
        if not init_scale > 0:
            raise ValueError(f"init_scale must be positive; got {init_scale!r}")
        self.similarity = similarity
        self.learn_scale = bool(learn_scale)
        self.init_scale = float(init_scale)
        if learn_scale:
            self.log_scale = nnx.Param(jnp.full((), math.log(init_scale), param_dtype))

    @property
    def scale(self) -> Array | float:
        """The current scale: exp(log_scale) if learned, else ``init_scale``."""
        if self.learn_scale:
            return jnp.exp(self.log_scale[...])
        return self.init_scale

    def __call__(self, a: Array, b: Array) -> Array:
        scores = similarity(a, b, self.similarity)
        if not self.learn_scale and self.init_scale == 1.0:
            return scores
        return scores * jnp.asarray(self.scale, scores.dtype)
