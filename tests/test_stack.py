"""Stacks of layers: composition, bidirectional concatenation, dropout, final-state layout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jlstm import LSTMState, init_stack_params, layer, stack

I, H = 3, 4  # noqa: E741
LENGTHS = jnp.array([6, 4, 1, 0])


@pytest.fixture
def xs():
    return jax.random.normal(jax.random.key(1), (4, 6, I))


def manual_stack(params, xs, lengths, keep_masks=None):
    """Layers composed by hand from `layer`; finals in torch's (layer, direction) order."""
    finals = []
    for depth, directional in enumerate(params):
        outs = []
        for d, p in enumerate(directional):
            ys, final = layer(p, xs, lengths=lengths, reverse=d == 1)
            outs.append(ys)
            finals.append(final)
        xs = jnp.concatenate(outs, axis=-1)
        if keep_masks is not None and depth < len(params) - 1:
            xs = xs * keep_masks[depth]
    return xs, LSTMState(*(jnp.stack(parts) for parts in zip(*finals, strict=True)))


@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_stack_equals_composed_layers(key, xs, num_layers, bidirectional):
    params = init_stack_params(key, I, H, num_layers=num_layers, bidirectional=bidirectional)
    ys, final = stack(params, xs, lengths=LENGTHS)
    ref_ys, ref_final = manual_stack(params, xs, LENGTHS)
    directions = 2 if bidirectional else 1
    assert ys.shape == (4, 6, directions * H)
    assert final.h.shape == (num_layers * directions, 4, H)
    np.testing.assert_array_equal(ys, ref_ys)
    np.testing.assert_array_equal(final.c, ref_final.c)
    np.testing.assert_array_equal(ys[1, 4:], 0.0)


def test_bidirectional_halves(key, xs):
    params = init_stack_params(key, I, H, bidirectional=True)
    ys, final = stack(params, xs, lengths=LENGTHS)
    fwd, fwd_final = layer(params[0][0], xs, lengths=LENGTHS)
    bwd, bwd_final = layer(params[0][1], xs, lengths=LENGTHS, reverse=True)
    np.testing.assert_array_equal(ys[..., :H], fwd)
    np.testing.assert_array_equal(ys[..., H:], bwd)
    # The backward direction's final h is its output at each sequence's first step.
    np.testing.assert_array_equal(final.h[1, :3], bwd[:3, 0])
    np.testing.assert_array_equal(final.h[0], fwd_final.h)


def test_initial_state_layout(key, xs):
    params = init_stack_params(key, I, H, num_layers=2, bidirectional=True)
    state = LSTMState(*jax.random.normal(jax.random.key(2), (2, 4, 4, H)))
    _, final = stack(params, xs, initial_state=state, lengths=LENGTHS)
    # Sequence 3 has length 0: every layer and direction returns its own initial state.
    np.testing.assert_array_equal(final.h[:, 3], state.h[:, 3])
    _, layer2_bwd = layer(
        params[1][1],
        stack(params[:1], xs, initial_state=LSTMState(state.h[:2], state.c[:2]), lengths=LENGTHS)[
            0
        ],
        initial_state=LSTMState(state.h[3], state.c[3]),
        lengths=LENGTHS,
        reverse=True,
    )
    np.testing.assert_allclose(final.c[3], layer2_bwd.c, rtol=1e-6)


def test_dropout_between_layers(key, xs):
    params = init_stack_params(key, I, H, num_layers=3, bidirectional=True)
    rate, dropout_key = 0.5, jax.random.key(7)
    ys, final = stack(params, xs, lengths=LENGTHS, dropout_rate=rate, dropout_key=dropout_key)
    keep = [
        jax.random.bernoulli(
            jax.random.fold_in(dropout_key, depth), 1 - rate, (4, 6, 2 * H)
        ).astype(jnp.float32)
        / (1 - rate)
        for depth in range(2)
    ]
    ref_ys, ref_final = manual_stack(params, xs, LENGTHS, keep_masks=keep)
    np.testing.assert_allclose(ys, ref_ys, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(final.c, ref_final.c, rtol=1e-6, atol=1e-7)
    # No key (evaluation) or rate 0: no dropout at all.
    plain, _ = stack(params, xs, lengths=LENGTHS)
    np.testing.assert_array_equal(stack(params, xs, lengths=LENGTHS, dropout_rate=rate)[0], plain)
    assert not np.allclose(ys, plain)
    np.testing.assert_array_equal(ys[2, 1:], 0.0)  # padding stays exactly zero


def test_stack_under_jit_and_grad(key, xs):
    params = init_stack_params(key, I, H, num_layers=2, bidirectional=True)

    def loss(p, x, k):
        return (stack(p, x, lengths=LENGTHS, dropout_rate=0.2, dropout_key=k)[0] ** 2).sum()

    k = jax.random.key(3)
    np.testing.assert_allclose(jax.jit(loss)(params, xs, k), loss(params, xs, k), rtol=1e-5)
    grads = jax.jit(jax.grad(loss))(params, xs, k)
    for leaf in jax.tree.leaves(grads):
        assert float(jnp.abs(leaf).sum()) > 0


class TestBadInput:
    def test_layer_sizes(self, key, xs):
        params = init_stack_params(key, I, H, num_layers=2)
        other = init_stack_params(key, I, H + 1, num_layers=2)
        with pytest.raises(ValueError, match=r"params\[1\]\[0\] must have input_size 4"):
            stack((params[0], other[1]), xs)

    def test_direction_count(self, key, xs):
        bi = init_stack_params(key, I, H, num_layers=2, bidirectional=True)
        with pytest.raises(ValueError, match=r"params\[1\] must hold 2 LSTMParams"):
            stack((bi[0], bi[1][:1]), xs)

    def test_not_a_stack(self, key, xs):
        with pytest.raises(TypeError, match="params must be a non-empty sequence of layers"):
            stack(init_stack_params(key, I, H)[0][0].w_x, xs)

    def test_initial_state_shape(self, key, xs):
        params = init_stack_params(key, I, H, num_layers=2)
        bad = LSTMState(jnp.zeros((1, 4, H)), jnp.zeros((1, 4, H)))
        with pytest.raises(ValueError, match=r"initial_state.h must have shape \(2, 4, 4\)"):
            stack(params, xs, initial_state=bad)

    @pytest.mark.parametrize("rate", [-0.1, 1.0])
    def test_dropout_rate(self, key, xs, rate):
        with pytest.raises(ValueError, match=r"dropout_rate must lie in \[0, 1\)"):
            stack(init_stack_params(key, I, H), xs, dropout_rate=rate)

    def test_num_layers(self, key):
        with pytest.raises(ValueError, match="num_layers must be a positive integer; got 0"):
            init_stack_params(key, I, H, num_layers=0)
