"""Small sizes and one case per model assembly, shared by the tests of jlstm.nn.

A :class:`Case` builds a model, makes its inputs (right-padded, with junk in
the padding) and applies the model to them, so that tests of every assembly
(padding, gradients, jit, checkpoints) are written once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx

from jlstm.nn import CharLM, SequenceClassifier, SequenceRegressor, SequenceTagger, SiameseMatcher

B, T, F, H = 3, 5, 3, 4
VOCAB = 7
LENGTHS = (5, 3, 1)


@dataclass(frozen=True)
class Case:
    """How to build, feed and call one model assembly."""

    make: Callable[[nnx.Rngs], nnx.Module]
    apply: Callable[..., jax.Array]  # (model, data, dropout_key=None) -> output
    per_step: bool = False  # output has a time axis (B, T, ...)
    tokens: bool = False  # inputs are token ids

    def data(self, key: jax.Array, steps: int = T) -> dict[str, jax.Array]:
        """Inputs of ``steps`` steps; every step beyond LENGTHS holds junk."""
        k_a, k_b = jax.random.split(key)
        if self.tokens:
            return {
                "xs": jax.random.randint(k_a, (B, steps), 0, VOCAB),
                "lengths": jnp.array(LENGTHS),
            }
        return {
            "xs": jax.random.normal(k_a, (B, steps, F)),
            "lengths": jnp.array(LENGTHS),
            "xs_b": jax.random.normal(k_b, (B, steps + 1, F)),
            "lengths_b": jnp.array(LENGTHS[::-1]),
        }

    def padded(self, data: dict[str, jax.Array], key: jax.Array) -> dict[str, jax.Array]:
        """The same sequences padded with T more steps of junk."""
        junk = self.data(key, 2 * T)
        out = dict(data)
        for name in ("xs", "xs_b"):
            if name in data:
                steps = data[name].shape[1]
                out[name] = junk[name][:, : steps + T].at[:, :steps].set(data[name])
        return out


def _pooled(model, d, dropout_key=None):
    return model(d["xs"], lengths=d["lengths"], dropout_key=dropout_key)


def _siamese(model, d, dropout_key=None):
    return model(
        d["xs"],
        d["xs_b"],
        lengths_a=d["lengths"],
        lengths_b=d["lengths_b"],
        dropout_key=dropout_key,
    )


def _lm(model, d, dropout_key=None):
    return model(d["xs"], lengths=d["lengths"], dropout_key=dropout_key)[0]


CASES = {
    "classifier-last-bi-2layers": Case(
        lambda rngs: SequenceClassifier(
            F, H, 3, num_layers=2, bidirectional=True, dropout=0.3, rngs=rngs
        ),
        _pooled,
    ),
    "classifier-additive-2heads": Case(
        lambda rngs: SequenceClassifier(
            F, H, 3, pooling="attention", num_heads=2, output_dropout=0.2, rngs=rngs
        ),
        _pooled,
    ),
    "classifier-dot": Case(
        lambda rngs: SequenceClassifier(F, H, 2, pooling="attention", attention="dot", rngs=rngs),
        _pooled,
    ),
    "regressor-mean": Case(
        lambda rngs: SequenceRegressor(F, H, 2, pooling="mean", rngs=rngs), _pooled
    ),
    "tagger-bi": Case(
        lambda rngs: SequenceTagger(F, H, 4, bidirectional=True, output_dropout=0.2, rngs=rngs),
        _pooled,
        per_step=True,
    ),
    "siamese-cosine-scale-attention": Case(
        lambda rngs: SiameseMatcher(
            F,
            H,
            similarity="cosine",
            learn_scale=True,
            init_scale=5.0,
            pooling="attention",
            rngs=rngs,
        ),
        _siamese,
    ),
    "siamese-dot-max": Case(
        lambda rngs: SiameseMatcher(F, H, similarity="dot", pooling="max", rngs=rngs),
        _siamese,
    ),
    "charlm-2layers": Case(
        lambda rngs: CharLM(
            VOCAB, H, embed_dim=3, num_layers=2, dropout=0.2, output_dropout=0.2, rngs=rngs
        ),
        _lm,
        per_step=True,
        tokens=True,
    ),
}
