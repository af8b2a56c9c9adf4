"""The cell against a NumPy transcription of the six equations; initialisation; bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jlstm import GateView, LSTMParams, LSTMState, cell, from_gate_view, gate_view, init_params
from jlstm.cell import check_params, zero_state


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def numpy_cell(W, b, h, c, x):
    """The equations as written, z_t = [h_{t-1}; x_t], one W and b per gate."""
    z = np.concatenate([h, x], axis=-1)
    f = sigmoid(z @ W["f"].T + b["f"])
    i = sigmoid(z @ W["i"].T + b["i"])
    g = np.tanh(z @ W["c"].T + b["c"])
    c = f * c + i * g
    o = sigmoid(z @ W["o"].T + b["o"])
    h = o * np.tanh(c)
    return h, c


def random_gates(rng, input_size, hidden):
    W = {k: rng.normal(size=(hidden, hidden + input_size)) * 0.5 for k in "ifco"}
    b = {k: rng.normal(size=hidden) * 0.5 for k in "ifco"}
    return W, b


def fuse(W, b, hidden):
    """The documented layout: gate blocks i, f, g, o; w_h acts on h, w_x on x."""
    w = np.concatenate([W["i"], W["f"], W["c"], W["o"]], axis=0).T  # (H + I, 4H)
    bias = np.concatenate([b["i"], b["f"], b["c"], b["o"]])
    return LSTMParams(
        w_x=jnp.asarray(w[hidden:], jnp.float32),
        w_h=jnp.asarray(w[:hidden], jnp.float32),
        b=jnp.asarray(bias, jnp.float32),
    )


@pytest.mark.parametrize("batch,input_size,hidden", [(1, 1, 1), (3, 5, 4), (2, 7, 16)])
def test_cell_matches_numpy_equations(batch, input_size, hidden):
    rng = np.random.default_rng(0)
    W, b = random_gates(rng, input_size, hidden)
    h0, c0 = rng.normal(size=(2, batch, hidden))
    x = rng.normal(size=(batch, input_size))
    params = fuse(W, b, hidden)
    state = LSTMState(jnp.asarray(h0, jnp.float32), jnp.asarray(c0, jnp.float32))

    new_state, out = cell(params, state, jnp.asarray(x, jnp.float32))

    h_ref, c_ref = numpy_cell(W, b, h0, c0, x)
    np.testing.assert_allclose(new_state.h, h_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new_state.c, c_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out, new_state.h)


def test_gate_view_round_trip():
    rng = np.random.default_rng(1)
    W, b = random_gates(rng, 3, 4)
    params = fuse(W, b, 4)
    view = gate_view(params)
    assert isinstance(view, GateView)
    for gate in "ifco":
        np.testing.assert_allclose(getattr(view, f"W_{gate}"), W[gate], rtol=1e-6)
        np.testing.assert_allclose(getattr(view, f"b_{gate}"), b[gate], rtol=1e-6)
    back = from_gate_view(view)
    for a, d in zip(back, params, strict=True):
        np.testing.assert_array_equal(a, d)


def test_cell_any_leading_batch_dims():
    params = init_params(jax.random.key(1), 3, 4)
    x = jax.random.normal(jax.random.key(2), (2, 3, 3))
    state, h = cell(params, zero_state((2, 3), 4), x)
    flat_state, flat_h = cell(params, zero_state(6, 4), x.reshape(6, 3))
    np.testing.assert_allclose(h.reshape(6, 4), flat_h, rtol=1e-6)
    np.testing.assert_allclose(state.c.reshape(6, 4), flat_state.c, rtol=1e-6)


def test_init_params_layout(key):
    input_size, hidden = 6, 5
    params = init_params(key, input_size, hidden, forget_bias=1.5)
    b = np.asarray(params.b)
    np.testing.assert_array_equal(b[hidden : 2 * hidden], 1.5)
    np.testing.assert_array_equal(np.delete(b, np.s_[hidden : 2 * hidden]), 0.0)
    # Each gate's recurrent block is orthogonal.
    for k in range(4):
        block = np.asarray(params.w_h[:, k * hidden : (k + 1) * hidden], np.float64)
        np.testing.assert_allclose(block.T @ block, np.eye(hidden), atol=1e-5)
    # Each gate's input block is Glorot uniform: inside +-sqrt(6 / (fan_in + fan_out)).
    limit = np.sqrt(6.0 / (input_size + hidden))
    assert np.abs(np.asarray(params.w_x)).max() <= limit
    assert np.abs(np.asarray(params.w_x)).max() > 0.5 * limit


def test_init_params_takes_initializers(key):
    ones = jax.nn.initializers.ones
    params = init_params(
        key, 2, 3, kernel_init=ones, recurrent_init=ones, bias_init=ones, forget_bias=0.0
    )
    for leaf in params:
        np.testing.assert_array_equal(leaf, 1.0)


def test_init_params_dtype(key):
    params = init_params(key, 2, 3, dtype=jnp.bfloat16)
    assert all(leaf.dtype == jnp.bfloat16 for leaf in params)


def test_bfloat16_matmuls_keep_float32_state(key):
    params = init_params(key, 8, 16)
    x = jax.random.normal(jax.random.key(3), (4, 8))
    state = LSTMState(*jax.random.normal(jax.random.key(4), (2, 4, 16)))
    full, h32 = cell(params, state, x)
    half, h16 = cell(params, state, x, dtype=jnp.bfloat16)
    assert half.c.dtype == jnp.float32 and h16.dtype == jnp.float32
    np.testing.assert_allclose(h16, h32, atol=3e-2)
    np.testing.assert_allclose(half.c, full.c, atol=3e-2)
    assert not np.array_equal(h16, h32)  # the matmuls really ran in bfloat16


def test_cell_under_jit_grad_vmap(key):
    params = init_params(key, 3, 4)
    xs = jax.random.normal(jax.random.key(5), (6, 3))
    state = LSTMState(jnp.full((4,), 0.5), jnp.full((4,), -0.5))

    def loss(p, x):
        return cell(p, state, x)[1].sum()

    batched = jax.vmap(lambda x: cell(params, state, x)[1])(xs)
    batched_state = jax.tree.map(lambda a: jnp.broadcast_to(a, (6, 4)), state)
    np.testing.assert_allclose(batched, cell(params, batched_state, xs)[1], rtol=1e-6)
    np.testing.assert_allclose(jax.jit(loss)(params, xs[0]), loss(params, xs[0]), rtol=1e-6)
    grads = jax.grad(loss)(params, xs[0])
    assert all(np.abs(g).sum() > 0 for g in grads)


def test_check_params_errors(key):
    params = init_params(key, 3, 4)
    with pytest.raises(ValueError, match=r"params.w_x must be \(input_size, 16\)"):
        check_params(params._replace(w_x=jnp.zeros((3, 12))))
    with pytest.raises(ValueError, match=r"params.w_h must be \(hidden_size, 4 \* hidden_size\)"):
        check_params(params._replace(w_h=jnp.zeros((4, 4))))
    with pytest.raises(ValueError, match=r"params.b must be \(16,\).*got shape \(12,\)"):
        check_params(params._replace(b=jnp.zeros(12)))
    with pytest.raises(TypeError, match="params must be an LSTMParams; got tuple"):
        check_params(tuple(params))


@pytest.mark.parametrize("size", [0, -1, 2.5])
def test_init_params_rejects_bad_sizes(key, size):
    with pytest.raises(ValueError, match="hidden_size must be a positive integer"):
        init_params(key, 3, size)
    with pytest.raises(ValueError, match="input_size must be a positive integer"):
        init_params(key, size, 3)
