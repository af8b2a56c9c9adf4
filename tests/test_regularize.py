"""Recurrent (variational) dropout and zoneout against a NumPy transcription of their
equations with the same masks, their evaluation forms, padding invariance, and the rules."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.test_util import check_grads

from jlstm import init_params, layer, stack, zero_state
from jlstm.nn import LSTM
from jlstm.regularize import make_noise
from jlstm.stack import init_stack_params

B, T, I, H = 3, 7, 4, 5  # noqa: E741
KEY = jax.random.key(5)


def setup():
    params = init_params(jax.random.key(0), I, H)
    xs = jax.random.normal(jax.random.key(1), (B, T, I))
    return params, xs


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def np_lstm(p, xs, x_mask=None, h_mask=None, rates=None, keep=None):
    w_x, w_h, b = (np.asarray(a, np.float64) for a in p)
    h, c = np.zeros((B, H)), np.zeros((B, H))
    hs = []
    for t in range(xs.shape[1]):
        x = xs[:, t] * (1 if x_mask is None else x_mask)
        hr = h * (1 if h_mask is None else h_mask)
        i, f, g, o = np.split(x @ w_x + hr @ w_h + b, 4, axis=-1)
        c_new = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h_new = sigmoid(o) * np.tanh(c_new)
        if rates:
            if keep is None:  # evaluation: the expectation
                h_new = rates.get("h", 0) * h + (1 - rates.get("h", 0)) * h_new
                c_new = rates.get("c", 0) * c + (1 - rates.get("c", 0)) * c_new
            else:
                h_new = np.where(keep["h"][t], h, h_new) if "h" in keep else h_new
                c_new = np.where(keep["c"][t], c, c_new) if "c" in keep else c_new
        h, c = h_new, c_new
        hs.append(h)
    return np.stack(hs, axis=1)


def noise(recurrent_dropout=0.0, zoneout=0.0, key=KEY, steps=T):
    x_mask, n = make_noise(
        key,
        state=zero_state(B, H),
        steps=steps,
        input_size=I,
        recurrent_dropout=recurrent_dropout,
        zoneout=zoneout,
    )
    as_np = lambda a: None if a is None else np.asarray(a, np.float64)
    keep = None if n is None or n.keep is None else {k: np.asarray(v) for k, v in n.keep.items()}
    return as_np(x_mask), None if n is None else as_np(n.h_mask), keep, n


def test_recurrent_dropout_equals_its_equations():
    params, xs = setup()
    x_mask, h_mask, _, _ = noise(recurrent_dropout=0.3)
    got = layer(params, xs, recurrent_dropout=0.3, dropout_key=KEY)[0]
    want = np_lstm(params, np.asarray(xs, np.float64), x_mask, h_mask)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(np.unique(x_mask), [0.0, 1 / 0.7], rtol=1e-6)


def test_recurrent_dropout_masks_have_the_rate():
    x_mask, n = make_noise(
        KEY, state=zero_state(4000, 50), steps=3, input_size=50, recurrent_dropout=0.25, zoneout=0.0
    )
    assert abs(float((x_mask == 0).mean()) - 0.25) < 0.01
    assert abs(float((n.h_mask == 0).mean()) - 0.25) < 0.01


@pytest.mark.parametrize("zoneout", [0.3, (0.2, 0.0), (0.0, 0.4)])
def test_zoneout_in_training_equals_its_equations(zoneout):
    params, xs = setup()
    _, _, keep, n = noise(zoneout=zoneout)
    got = layer(params, xs, zoneout=zoneout, dropout_key=KEY)[0]
    want = np_lstm(params, np.asarray(xs, np.float64), rates=n.zoneout, keep=keep)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


def test_zoneout_at_evaluation_is_the_expectation():
    params, xs = setup()
    got = layer(params, xs, zoneout=(0.2, 0.1))[0]
    want = np_lstm(params, np.asarray(xs, np.float64), rates={"h": 0.2, "c": 0.1})
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


def test_no_key_no_recurrent_dropout():
    params, xs = setup()
    np.testing.assert_array_equal(layer(params, xs, recurrent_dropout=0.5)[0], layer(params, xs)[0])


@pytest.mark.parametrize("kw", [dict(recurrent_dropout=0.3), dict(zoneout=(0.3, 0.2))])
def test_padding_changes_nothing(kw):
    params, xs = setup()
    lengths = jnp.array([7, 4, 1])
    padded = jnp.concatenate([xs, jnp.full((B, T, I), jnp.nan)], axis=1)

    def f(x):
        hs, final = layer(params, x, lengths=lengths, dropout_key=KEY, **kw)
        return hs[:, :T], final

    np.testing.assert_allclose(f(padded)[0], f(xs)[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(f(padded)[1].c, f(xs)[1].c, rtol=1e-6, atol=1e-6)
    grad = lambda x: jax.grad(
        lambda p: layer(p, x, lengths=lengths, dropout_key=KEY, **kw)[0].sum()
    )(params)
    for a, b in zip(jax.tree.leaves(grad(padded)), jax.tree.leaves(grad(xs)), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_gradients_and_remat():
    params, xs = setup()
    kw = dict(recurrent_dropout=0.2, zoneout=0.1, dropout_key=KEY)
    f = lambda remat: jax.grad(lambda p: (layer(p, xs, remat=remat, **kw)[0] ** 2).sum())(params)
    for a, b in zip(jax.tree.leaves(f(True)), jax.tree.leaves(f(False)), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    with jax.enable_x64(True):
        p64 = jax.tree.map(lambda a: a.astype(jnp.float64), params)
        x64 = xs.astype(jnp.float64)
        check_grads(
            lambda p: (layer(p, x64, **kw)[0] ** 2).sum(),
            (p64,),
            order=2,
            modes=("fwd", "rev"),
            atol=1e-5,
            rtol=1e-5,
        )


def test_rules_and_bad_options():
    params, xs = setup()
    with pytest.raises(ValueError, match="recurrent dropout and zoneout change the recurrence"):
        layer(params, xs, zoneout=0.1, implementation="xla")
    with pytest.raises(ValueError, match=r"recurrent_dropout must lie in \[0, 1\); got 1.0"):
        layer(params, xs, recurrent_dropout=1.0, dropout_key=KEY)
    with pytest.raises(ValueError, match=r"zoneout must be a rate or a pair"):
        layer(params, xs, zoneout=(0.1, 0.2, 0.3))
    with pytest.raises(ValueError, match=r"zoneout \(c\) must lie in \[0, 1\)"):
        LSTM(I, H, zoneout=(0.1, -0.5), rngs=nnx.Rngs(0))


def test_stack_and_module():
    params = init_stack_params(jax.random.key(0), I, H, num_layers=2, bidirectional=True)
    xs = jax.random.normal(jax.random.key(1), (B, T, I))
    a = stack(params, xs, recurrent_dropout=0.3, dropout_key=KEY)[0]
    b = stack(params, xs, recurrent_dropout=0.3, dropout_key=jax.random.key(6))[0]
    assert float(jnp.abs(a - b).max()) > 1e-3  # the key drives it
    module = LSTM.from_params(params, recurrent_dropout=0.3, zoneout=0.1)
    np.testing.assert_allclose(
        module(xs, dropout_key=KEY)[0],
        stack(params, xs, recurrent_dropout=0.3, zoneout=0.1, dropout_key=KEY)[0],
        rtol=1e-6,
    )
