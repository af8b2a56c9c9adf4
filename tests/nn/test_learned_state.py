"""A learned initial state (Recurrent(learn_initial_state=True)): parameters that start at
zeros, are used when no initial state is given, and receive gradients."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jlstm import stack
from jlstm.nn import LSTM, Recurrent


def test_learned_state_is_the_stacks_initial_state():
    model = LSTM(3, 4, num_layers=2, bidirectional=True, learn_initial_state=True, rngs=nnx.Rngs(0))
    model.learned_state["h"].set_value(jnp.full((4, 4), 0.5))
    model.learned_state["c"].set_value(jnp.full((4, 4), -0.25))
    xs = jax.random.normal(jax.random.key(1), (5, 6, 3))
    ys, final = model(xs, lengths=jnp.array([6, 5, 3, 1, 0]))
    state = model.initial_state(5)
    assert state.h.shape == (4, 5, 4) and float(state.h[2, 3, 1]) == 0.5
    want_ys, want_final = stack(
        model.params, xs, initial_state=state, lengths=jnp.array([6, 5, 3, 1, 0])
    )
    np.testing.assert_allclose(ys, want_ys, rtol=1e-6)
    np.testing.assert_allclose(final.c[:, 4], state.c[:, 4])  # length 0: the initial state


def test_learned_state_gets_gradients_and_starts_at_zero():
    model = Recurrent(3, 4, cell="gru", learn_initial_state=True, rngs=nnx.Rngs(0))
    plain = Recurrent(3, 4, cell="gru", rngs=nnx.Rngs(0))
    xs = jax.random.normal(jax.random.key(1), (2, 5, 3))
    np.testing.assert_allclose(model(xs)[0], plain(xs)[0])  # zeros at first
    grads = nnx.grad(lambda m: (m(xs)[0] ** 2).sum())(model)
    assert float(jnp.abs(grads.learned_state["h"][...]).sum()) > 0
    assert "learned_state" in nnx.state(model, nnx.Param)
