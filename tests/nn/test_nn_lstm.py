"""LSTMCell and LSTM modules against the pure functions with the same parameters."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jlstm.cell import LSTMState, cell, init_params
from jlstm.nn import LSTM, LSTMCell
from jlstm.stack import init_stack_params, stack

B, T, F, H = 3, 5, 3, 4


@pytest.fixture
def xs(key):
    return jax.random.normal(key, (B, T, F))


def test_cell_module_is_the_cell(key, assert_trees_allclose):
    module = LSTMCell(F, H, forget_bias=2.0, rngs=nnx.Rngs(0))
    np.testing.assert_array_equal(module.b[...][H : 2 * H], 2.0)
    state = LSTMState(jax.random.normal(key, (B, H)), jax.random.normal(key, (B, H)))
    x = jax.random.normal(jax.random.fold_in(key, 1), (B, F))
    assert_trees_allclose(module(state, x), cell(module.params, state, x), rtol=0, atol=0)


def test_cell_module_scans(xs):
    module = LSTMCell(F, H, rngs=nnx.Rngs(0))
    final, hs = jax.lax.scan(module, module.initial_state(B), jnp.swapaxes(xs, 0, 1))
    assert hs.shape == (T, B, H) and final.h.shape == (B, H)


@pytest.mark.parametrize(
    "num_layers, bidirectional, given",
    [(1, False, "none"), (2, True, "lengths"), (3, False, "mask"), (1, True, "mask")],
)
def test_lstm_module_equals_stack(xs, key, num_layers, bidirectional, given, assert_trees_allclose):
    lstm = LSTM(F, H, num_layers=num_layers, bidirectional=bidirectional, rngs=nnx.Rngs(1))
    lengths = jnp.array([5, 2, 0])
    kwargs = {
        "lengths": {"lengths": lengths},
        "mask": {"mask": jax.random.bernoulli(key, 0.6, (B, T))},
        "none": {},
    }[given]
    count = num_layers * (2 if bidirectional else 1)
    h0 = jax.random.normal(jax.random.fold_in(key, 2), (count, B, H))
    initial = LSTMState(h0, 0.5 * h0)
    got, expected = nnx.jit(
        lambda lstm: (
            lstm(xs, initial_state=initial, **kwargs),
            stack(lstm.params, xs, initial_state=initial, **kwargs),
        )
    )(lstm)
    assert_trees_allclose(got, expected, rtol=0, atol=0)


def test_params_round_trip(xs, key, assert_trees_allclose):
    params = init_stack_params(key, F, H, num_layers=2, bidirectional=True, forget_bias=0.5)
    lstm = LSTM.from_params(params)
    assert_trees_allclose(lstm.params, params, rtol=0, atol=0)
    assert_trees_allclose(lstm.stack_params(), params, rtol=0, atol=0)
    other = LSTM(F, H, num_layers=2, bidirectional=True, rngs=nnx.Rngs(3))
    other.load_params(params)
    assert_trees_allclose(other.params, params, rtol=0, atol=0)
    # The parameters live in nnx.Param leaves, layer-major then direction.
    paths = {"/".join(map(str, p)) for p, _ in nnx.to_flat_state(nnx.state(lstm, nnx.Param))}
    assert "layers/1/1/w_x" in paths and len(paths) == 12


def test_dropout_between_layers_needs_a_key(xs, key):
    lstm = LSTM(F, H, num_layers=2, dropout=0.5, rngs=nnx.Rngs(0))

    @nnx.jit
    def run(lstm, key):
        expected = stack(lstm.params, xs, dropout_rate=0.5, dropout_key=key)[0]
        return lstm(xs)[0], lstm(xs, dropout_key=key)[0], expected

    eval_out, train_out, expected = run(lstm, key)
    np.testing.assert_array_equal(train_out, expected)
    assert not np.allclose(train_out, eval_out)
    np.testing.assert_array_equal(eval_out, stack(lstm.params, xs)[0])


def test_no_rng_state_is_stored():
    lstm = LSTM(F, H, num_layers=2, dropout=0.5, rngs=nnx.Rngs(0))
    assert not jax.tree.leaves(nnx.state(lstm, nnx.RngState))


def test_bf16_matmuls(xs):
    lstm32 = LSTM(F, H, rngs=nnx.Rngs(0))
    lstm16 = LSTM.from_params(lstm32.params, dtype=jnp.bfloat16)
    ys16, final16 = lstm16(xs)
    assert ys16.dtype == jnp.float32 and final16.c.dtype == jnp.float32
    np.testing.assert_allclose(ys16, lstm32(xs)[0], atol=5e-2)


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda lstm, xs: lstm(xs[..., :2]),
            r"xs must be \(batch, time, 3\) for LSTM\(in_features=3\); got shape \(3, 5, 2\)",
        ),
        (
            lambda lstm, xs: lstm.load_params(init_stack_params(jax.random.key(0), F, H + 1)),
            r"params must have \(in_features, hidden_size, num_layers, num_directions\) = "
            r"\(3, 4, 1, 1\); got \(3, 5, 1, 1\)",
        ),
        (
            lambda lstm, xs: lstm.layers[0][0].load_params(init_params(jax.random.key(0), 2, H)),
            "params must have input_size 3 and hidden_size 4; got input_size 2",
        ),
        (
            lambda lstm, xs: LSTM(F, H, dropout=1.0, rngs=nnx.Rngs(0)),
            r"dropout must lie in \[0, 1\); got 1.0",
        ),
        (
            lambda lstm, xs: LSTM(F, H, num_layers=0, rngs=nnx.Rngs(0)),
            "num_layers must be a positive integer; got 0",
        ),
    ],
)
def test_bad_input(xs, call, match):
    lstm = LSTM(F, H, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=match):
        call(lstm, xs)
