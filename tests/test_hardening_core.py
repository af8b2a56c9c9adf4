"""Bad input to the core and the modules: a named error or the right answer, never a silent
wrong one (each case gave a wrong answer or an unclear crash before)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jlstm import LSTMState, cell, init_params, layer, zero_state
from jlstm.heads import last_hidden, max_pool, mean_pool
from jlstm.nn import CharLM, LSTMCell, SequenceClassifier


@pytest.mark.parametrize("dtype, steps", [(jnp.int8, 200), (jnp.uint8, 300), (jnp.int16, 40_000)])
@pytest.mark.parametrize("jit", [False, True])
def test_narrow_integer_lengths_do_not_wrap_around(key, dtype, steps, jit):
    params = init_params(key, 3, 4)
    xs = jax.random.normal(key, (1, steps, 3))
    run = lambda n: layer(params, xs, lengths=n)[1].h
    run = jax.jit(run) if jit else run
    wide = run(jnp.array([50], jnp.int32))
    np.testing.assert_allclose(run(jnp.array([50], dtype)), wide, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype, steps", [(jnp.int8, 200), (jnp.uint8, 300)])
@pytest.mark.parametrize("pool", [mean_pool, max_pool, last_hidden])
def test_pooling_with_narrow_lengths(dtype, steps, pool):
    hs = jnp.broadcast_to(jnp.arange(steps, dtype=jnp.float32)[None, :, None], (1, steps, 2))
    expected = pool(hs, lengths=jnp.array([10], jnp.int32))
    np.testing.assert_allclose(pool(hs, lengths=jnp.array([10], dtype)), expected)
    if pool is mean_pool:
        np.testing.assert_allclose(expected, 4.5)


def test_integer_dtypes_are_rejected_naming_the_argument(key):
    params = init_params(key, 3, 4)
    xs = jnp.ones((2, 5, 3))
    with pytest.raises(TypeError, match=r"params.w_x must have a floating dtype.*int32"):
        layer(params._replace(w_x=params.w_x.astype(jnp.int32)), xs)
    with pytest.raises(TypeError, match=r"dtype must have a floating dtype.*int8"):
        layer(params, xs, dtype=jnp.int8)
    with pytest.raises(TypeError, match=r"xs must have a floating dtype.*int32"):
        layer(params, xs.astype(jnp.int32))


def test_initial_state_errors(key):
    params = init_params(key, 3, 4)
    xs = jnp.ones((2, 5, 3))
    state = zero_state(2, 4)
    with pytest.raises(TypeError, match=r"initial_state must be an LSTMState .*got tuple"):
        layer(params, xs, initial_state=(state.h, state.c))
    with pytest.raises(TypeError, match=r"initial_state.h must have a floating dtype; got int32"):
        layer(params, xs, initial_state=LSTMState(state.h.astype(jnp.int32), state.c))


def test_cell_size_mismatches_are_named(key):
    params = init_params(key, 3, 4)
    with pytest.raises(ValueError, match=r"x must be \(\.\.\., 3\) to match params.w_x"):
        cell(params, zero_state(2, 4), jnp.ones((2, 5)))
    with pytest.raises(ValueError, match=r"state.h must have shape \(2, 4\)"):
        cell(params, zero_state(2, 6), jnp.ones((2, 3)))
    with pytest.raises(ValueError, match=r"params.b must be \(16,\)"):
        cell(params._replace(b=params.b[:8]), zero_state(2, 4), jnp.ones((2, 3)))
    module = LSTMCell(3, 4, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"x must be \(\.\.\., 3\)"):
        module(module.initial_state(2), jnp.ones((2, 7)))
    with pytest.raises(TypeError, match=r"state must be an LSTMState"):
        module((jnp.zeros((2, 4)), jnp.zeros((2, 4))), jnp.ones((2, 3)))


@pytest.mark.parametrize("bad", [True, 0, -1, 2.5, "8"])
def test_init_sizes_must_be_positive_integers(key, bad):
    with pytest.raises(ValueError, match=r"hidden_size must be a positive integer"):
        init_params(key, 3, bad)


def test_char_lm_rejects_out_of_range_tokens():
    lm = CharLM(10, 8, embed_dim=4, rngs=nnx.Rngs(0))
    for bad in (10, -1):
        with pytest.raises(ValueError, match=r"tokens must lie in \[0, vocab_size=10\)"):
            lm(jnp.array([[1, 2, bad]]))
    with pytest.raises(ValueError, match=r"prompt must lie in \[0, vocab_size=10\)"):
        lm.generate(jnp.array([1, 12]), 3, temperature=0.0)
    logits, _ = jax.jit(lambda t: lm(t))(jnp.array([[1, 2, 3]]))  # traced: not checked
    assert logits.shape == (1, 3, 10)


@pytest.mark.parametrize("pooling", ["last", "max", "attention", "mean"])
def test_classifier_over_empty_sequences(pooling):
    model = SequenceClassifier(3, 4, 2, pooling=pooling, rngs=nnx.Rngs(0))
    logits = model(jnp.ones((2, 0, 3)), lengths=jnp.array([0, 0]))
    np.testing.assert_allclose(logits, model.head(jnp.zeros((2, model.encoder.out_features))))


def test_zero_classes_is_an_error():
    with pytest.raises(ValueError, match="num_classes must be a positive integer; got 0"):
        SequenceClassifier(3, 4, 0, rngs=nnx.Rngs(0))
