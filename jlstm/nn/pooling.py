"""Modules that pool hidden states over time: by name, or by learned attention.

Both take ``hs (B, T, D)`` with ``lengths`` or ``mask`` and read only the
real steps (see :mod:`jlstm.heads` and :mod:`jlstm.attention`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jlstm import heads
from jlstm.attention import (
    ATTENTION_KINDS,
    AdditiveParams,
    additive_attention,
    dot_product_attention,
    init_additive_params,
    init_query,
)

Array = jax.Array

POOLING_NAMES = (*heads.POOLING_METHODS, "attention")


class Pooling(nnx.Module):
    """Parameter-free pooling over time by name: ``"last"``, ``"mean"`` or ``"max"``.

    ``"last"`` is h at each sequence's last real step; with
    ``bidirectional=True`` the backward half of the features is taken at the
    first real step, so the result is both directions' final states
    concatenated (see :func:`jlstm.heads.last_hidden`).

    Shapes:
      hs: (B, T, D)  ->  (B, D)

    >>> pool = Pooling("max")
    >>> pool(jnp.ones((2, 5, 3)), lengths=jnp.array([5, 2])).shape
    (2, 3)
    """

    def __init__(self, method: str = "last", *, bidirectional: bool = False):
        if method not in heads.POOLING_METHODS:
            raise ValueError(f"method must be one of {heads.POOLING_METHODS}; got {method!r}")
        self.method = method
        self.bidirectional = bool(bidirectional)

    def __call__(
        self, hs: Array, *, lengths: Array | None = None, mask: Array | None = None
    ) -> Array:
        return heads.pool(
            hs, self.method, lengths=lengths, mask=mask, bidirectional=self.bidirectional
        )


class AttentionPooling(nnx.Module):
    """Attention over hidden states: returns ``(context, weights)``.

    ``kind="additive"`` (Bahdanau): score_t = v · tanh(W h_t + b), with ``W``
    of shape ``(in_features, attention_size)``. ``kind="dot"``: score_t =
    q · h_t / sqrt(D) with a learned query ``q``. Padded steps get weight 0;
    the weights over real steps sum to 1. With ``num_heads > 1`` every head
    has its own ``v`` (or ``q``) and the context concatenates the heads'
    weighted sums (see :mod:`jlstm.attention`).

    Shapes:
      hs: (B, T, D)
      -> context: (B, D), weights: (B, T)                          num_heads = 1
      -> context: (B, num_heads * D), weights: (B, num_heads, T)   num_heads > 1

    >>> attn = AttentionPooling(6, kind="dot", num_heads=2, rngs=nnx.Rngs(0))
    >>> context, weights = attn(jnp.ones((3, 5, 6)), lengths=jnp.array([5, 2, 1]))
    >>> context.shape, weights.shape, attn.out_features
    ((3, 12), (3, 2, 5), 12)
    """

    def __init__(
        self,
        in_features: int,
        *,
        kind: str = "additive",
        num_heads: int = 1,
        attention_size: int | None = None,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        if kind not in ATTENTION_KINDS:
            raise ValueError(f"attention must be one of {ATTENTION_KINDS}; got {kind!r}")
        if int(num_heads) != num_heads or num_heads < 1:
            raise ValueError(f"num_heads must be a positive integer; got {num_heads!r}")
        heads_arg = None if num_heads == 1 else num_heads
        if kind == "additive":
            p = init_additive_params(
                rngs.params(), in_features, attention_size, num_heads=heads_arg, dtype=param_dtype
            )
            self.w = nnx.Param(p.w)
            self.b = nnx.Param(p.b)
            self.v = nnx.Param(p.v)
        else:
            if attention_size is not None:
                raise ValueError("attention_size applies to kind='additive' only; got kind='dot'")
            self.query = nnx.Param(
                init_query(rngs.params(), in_features, num_heads=heads_arg, dtype=param_dtype)
            )
        self.in_features = in_features
        self.kind = kind
        self.num_heads = int(num_heads)
        self.dtype = dtype

    @property
    def out_features(self) -> int:
        """Features of the context vector: num_heads * in_features."""
        return self.num_heads * self.in_features

    def __call__(
        self, hs: Array, *, lengths: Array | None = None, mask: Array | None = None
    ) -> tuple[Array, Array]:
        hs = jnp.asarray(hs)
        if hs.ndim < 2 or hs.shape[-1] != self.in_features:
            raise ValueError(
                f"hs must be (batch, time, {self.in_features}) for AttentionPooling("
                f"in_features={self.in_features}); got shape {hs.shape}"
            )
        if self.kind == "additive":
            params = AdditiveParams(self.w[...], self.b[...], self.v[...])
            return additive_attention(params, hs, lengths=lengths, mask=mask, dtype=self.dtype)
        return dot_product_attention(
            self.query[...], hs, lengths=lengths, mask=mask, dtype=self.dtype
        )


def make_pooling(
    name: str,
    in_features: int,
    *,
    bidirectional: bool = False,
    attention: str = "additive",
    num_heads: int = 1,
    attention_size: int | None = None,
    dtype: Any = None,
    param_dtype: Any = jnp.float32,
    rngs: nnx.Rngs,
) -> Pooling | AttentionPooling:
    """A pooling module by name: ``"last"``, ``"mean"``, ``"max"`` or ``"attention"``.

    >>> make_pooling("attention", 4, rngs=nnx.Rngs(0)).kind
    'additive'
    """
    if name not in POOLING_NAMES:
        raise ValueError(f"pooling must be one of {POOLING_NAMES}; got {name!r}")
    if name == "attention":
        return AttentionPooling(
            in_features,
            kind=attention,
            num_heads=num_heads,
            attention_size=attention_size,
            dtype=dtype,
            param_dtype=param_dtype,
            rngs=rngs,
        )
    return Pooling(name, bidirectional=bidirectional)
