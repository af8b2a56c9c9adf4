"""Pooling, attention and head modules against the pure functions and plain algebra."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jlstm import attention, heads
from jlstm.nn import (
    LSTM,
    AttentionPooling,
    ClassificationHead,
    MatchingHead,
    Pooling,
    RegressionHead,
    make_pooling,
)

B, T, D = 3, 5, 4
LENGTHS = jnp.array([5, 2, 0])


@pytest.fixture
def hs(key):
    return jax.random.normal(key, (B, T, D))


@pytest.mark.parametrize("method", ["last", "mean", "max"])
def test_pooling_module_is_the_function(hs, method):
    out = Pooling(method)(hs, lengths=LENGTHS)
    np.testing.assert_array_equal(out, heads.pool(hs, method, lengths=LENGTHS))


def test_last_pooling_of_a_bidirectional_lstm_is_its_final_states(key):
    lstm = LSTM(3, D, num_layers=2, bidirectional=True, rngs=nnx.Rngs(0))
    xs = jax.random.normal(key, (B, T, 3))
    ys, final = lstm(xs, lengths=LENGTHS)
    pooled = Pooling("last", bidirectional=True)(ys, lengths=LENGTHS)
    expected = jnp.concatenate([final.h[-2], final.h[-1]], axis=-1)  # last layer fwd, bwd
    np.testing.assert_allclose(pooled, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "kind, num_heads", [("additive", 1), ("additive", 2), ("dot", 1), ("dot", 3)]
)
def test_attention_pooling_is_the_function(hs, kind, num_heads):
    module = AttentionPooling(D, kind=kind, num_heads=num_heads, rngs=nnx.Rngs(0))
    context, weights = module(hs, lengths=LENGTHS)
    if kind == "additive":
        p = attention.AdditiveParams(module.w[...], module.b[...], module.v[...])
        expected = attention.additive_attention(p, hs, lengths=LENGTHS)
    else:
        expected = attention.dot_product_attention(module.query[...], hs, lengths=LENGTHS)
    np.testing.assert_array_equal(context, expected[0])
    np.testing.assert_array_equal(weights, expected[1])
    assert context.shape == (B, module.out_features) == (B, num_heads * D)
    w = np.asarray(weights).reshape(B, -1, T)
    assert np.all(w[1, :, 2:] == 0) and np.all(w[2] == 0)
    np.testing.assert_allclose(w[:2].sum(-1), 1.0, rtol=1e-6)


def test_classification_head_is_linear(key):
    head = ClassificationHead(D, 3, rngs=nnx.Rngs(0))
    x = jax.random.normal(key, (B, D))
    expected = x @ head.linear.kernel[...] + head.linear.bias[...][None]
    np.testing.assert_allclose(head(x), expected, rtol=1e-6)
    np.testing.assert_allclose(head.probabilities(x), jax.nn.softmax(expected), rtol=1e-6)
    assert RegressionHead(D, 7, rngs=nnx.Rngs(0))(x).shape == (B, 7)


@pytest.mark.parametrize("similarity", ["cosine", "dot"])
@pytest.mark.parametrize("learn_scale", [False, True])
def test_matching_head(key, similarity, learn_scale):
    a, b = jax.random.normal(key, (2, B, D))
    head = MatchingHead(similarity, learn_scale=learn_scale, init_scale=3.0)
    expected = 3.0 * heads.similarity(a, b, similarity)
    np.testing.assert_allclose(head(a, b), expected, rtol=1e-6)
    np.testing.assert_array_equal(head(a, b), head(b, a))
    params = jax.tree.leaves(nnx.state(head, nnx.Param))
    assert len(params) == int(learn_scale)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: make_pooling("sum", D, rngs=nnx.Rngs(0)), r"pooling must be one of .*'sum'"),
        (lambda: Pooling("attention"), r"method must be one of \('last', 'mean', 'max'\)"),
        (
            lambda: AttentionPooling(D, kind="luong", rngs=nnx.Rngs(0)),
            r"attention must be one of \('additive', 'dot'\); got 'luong'",
        ),
        (
            lambda: AttentionPooling(D, num_heads=0, rngs=nnx.Rngs(0)),
            "num_heads must be a positive integer",
        ),
        (
            lambda: AttentionPooling(D, kind="dot", attention_size=3, rngs=nnx.Rngs(0)),
            "attention_size applies to kind='additive' only",
        ),
        (
            lambda: AttentionPooling(D, rngs=nnx.Rngs(0))(jnp.ones((B, T, D + 1))),
            r"hs must be \(batch, time, 4\) for AttentionPooling\(in_features=4\); "
            r"got shape \(3, 5, 5\)",
        ),
        (
            lambda: ClassificationHead(D, 2, rngs=nnx.Rngs(0))(jnp.ones((B, D + 2))),
            r"x must be \(\.\.\., 4\) for ClassificationHead\(in_features=4\); got shape \(3, 6\)",
        ),
        (lambda: MatchingHead("euclid"), r"similarity must be one of .*'euclid'"),
        (lambda: MatchingHead(init_scale=0.0), "init_scale must be positive"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
