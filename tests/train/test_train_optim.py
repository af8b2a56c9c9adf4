"""make_optimizer / make_schedule: each rule, each schedule, clipping."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from jlstm.train import make_optimizer, make_schedule


def optim_config(**changes):
    base = dict(
        name="adam",
        learning_rate=0.1,
        schedule="constant",
        warmup_steps=0,
        decay_steps=100,
        final_lr_fraction=0.0,
        grad_clip_norm=0.0,
        weight_decay=0.0,
        momentum=0.0,
    )
    return ml_collections.ConfigDict({**base, **changes})


def test_warmup_cosine_schedule_shape():
    s = make_schedule(
        optim_config(
            schedule="warmup_cosine", warmup_steps=10, decay_steps=110, final_lr_fraction=0.1
        )
    )
    values = [float(s(t)) for t in (0, 5, 10, 60, 110, 500)]
    np.testing.assert_allclose(values, [0.0, 0.05, 0.1, 0.055, 0.01, 0.01], rtol=1e-5, atol=1e-7)


def test_constant_schedule():
    s = make_schedule(optim_config(learning_rate=0.3))
    assert float(s(0)) == pytest.approx(0.3) and float(s(10_000)) == pytest.approx(0.3)


def _one_update(config, grads, params):
    tx = make_optimizer(config)
    updates, _ = tx.update(grads, tx.init(params), params)
    return updates


@pytest.mark.parametrize(
    "name, extra, expected",
    [
        # Adam's first step moves every coordinate by -lr * sign(g).
        ("adam", {}, [-0.1, 0.1]),
        # AdamW adds -lr * weight_decay * param.
        ("adamw", {"weight_decay": 0.5}, [-0.1 - 0.1 * 0.5 * 2.0, 0.1 - 0.1 * 0.5 * 2.0]),
        # SGD: -lr * g (momentum only changes later steps).
        ("sgd", {"momentum": 0.9}, [-0.1 * 3.0, 0.1 * 4.0]),
    ],
)
def test_update_rules(name, extra, expected):
    params = {"w": jnp.array([2.0, 2.0])}
    grads = {"w": jnp.array([3.0, -4.0])}
    updates = _one_update(optim_config(name=name, **extra), grads, params)
    np.testing.assert_allclose(updates["w"], expected, rtol=1e-5, atol=1e-5)


def test_sgd_momentum_accumulates():
    tx = make_optimizer(optim_config(name="sgd", momentum=0.5))
    params = {"w": jnp.zeros(1)}
    g = {"w": jnp.ones(1)}
    state = tx.init(params)
    u1, state = tx.update(g, state, params)
    u2, state = tx.update(g, state, params)
    np.testing.assert_allclose([u1["w"][0], u2["w"][0]], [-0.1, -0.15], rtol=1e-6)


def test_global_norm_clipping():
    # |g| = 5 clipped to 1: SGD's update is -lr * g / 5.
    config = optim_config(name="sgd", grad_clip_norm=1.0)
    updates = _one_update(config, {"w": jnp.array([3.0, -4.0])}, {"w": jnp.zeros(2)})
    np.testing.assert_allclose(updates["w"], [-0.1 * 0.6, 0.1 * 0.8], rtol=1e-6)
    assert float(optax.tree.norm(updates)) == pytest.approx(0.1, rel=1e-6)


def test_unknown_names_are_errors():
    with pytest.raises(ValueError, match="config.optim.name"):
        make_optimizer(optim_config(name="rmsprop"))
    with pytest.raises(ValueError, match="config.optim.schedule"):
        make_schedule(optim_config(schedule="linear"))


def test_optimizer_jits():
    tx = make_optimizer(optim_config(schedule="warmup_cosine", warmup_steps=2, grad_clip_norm=1.0))
    params = {"w": jnp.ones(3)}

    @jax.jit
    def step(params, state):
        updates, state = tx.update({"w": jnp.ones(3)}, state, params)
        return optax.apply_updates(params, updates), state

    params, state = step(params, tx.init(params))
    assert params["w"].shape == (3,)
