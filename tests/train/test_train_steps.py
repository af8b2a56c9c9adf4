"""The jitted train and eval steps on the real tasks of every config (smoke size)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from train_helpers import CONFIGS, load_config

from jlstm.train import (
    init_train_state,
    make_eval_step,
    make_optimizer,
    make_task,
    make_train_step,
)
from jlstm.train.steps import step_key


def build(name):
    config = load_config(name)
    config.optim.schedule = "constant"  # warmup would make the first step's rate 0
    task = make_task(config, jax.random.key(0))
    tx = make_optimizer(config.optim)
    graphdef, state = init_train_state(task.model, tx, jax.random.key(1), task.init_carry)
    return config, task, graphdef, state, tx


def as_jax(batch):
    return {k: jnp.asarray(v) for k, v in batch.items()}


@pytest.mark.parametrize("name", CONFIGS)
def test_one_step_changes_every_parameter_leaf(name):
    _, task, graphdef, state, tx = build(name)
    before = jax.tree.map(np.array, state.params)
    train_step = make_train_step(graphdef, task.loss_fn, tx)
    state, metrics = train_step(state, as_jax(task.train_batch(0)))
    assert np.isfinite(float(metrics["loss"])) and float(metrics["grad_norm"]) > 0
    paths = jax.tree_util.tree_flatten_with_path(before)[0]
    after = jax.tree.leaves(state.params)
    unchanged = [
        jax.tree_util.keystr(path)
        for (path, old), new in zip(paths, after, strict=True)
        if np.array_equal(old, np.asarray(new))
    ]
    assert not unchanged, f"{name}: leaves the first step did not change: {unchanged}"
    assert int(state.step) == 1 and int(state.bad_step) == -1


def test_second_step_does_not_recompile():
    _, task, graphdef, state, tx = build("adding")
    train_step = make_train_step(graphdef, task.loss_fn, tx)
    eval_step = make_eval_step(graphdef, task.eval_fn)
    for step in range(3):
        state, _ = train_step(state, as_jax(task.train_batch(step)))
    for batch in task.eval_batches():
        eval_step(state, as_jax(batch), None)
    assert train_step._cache_size() == 1
    assert eval_step._cache_size() == 1


def test_carry_flows_between_steps_and_resets_at_stream_start():
    """Truncated BPTT: the final LSTM state of chunk s is the initial state of chunk s+1."""
    _, task, graphdef, state, tx = build("charlm")
    train_step = make_train_step(graphdef, task.loss_fn, tx)
    assert float(jnp.abs(state.carry.h).sum()) == 0.0
    state, _ = train_step(state, as_jax(task.train_batch(0)))
    carried = jax.tree.map(np.array, state.carry)
    assert np.abs(carried.h).sum() > 0
    # Recompute chunk 1 by hand from the carried state with the updated parameters.
    from flax import nnx

    model = nnx.merge(graphdef, state.params, state.model_state)
    batch = task.train_batch(1)
    fresh = batch["reset"][None, :, None]  # rows that start over at this chunk (staggered)
    assert fresh.any() and not fresh.all()
    initial = jax.tree.map(lambda a: jnp.where(fresh, 0.0, a), state.carry)
    _, expected = model(jnp.asarray(batch["xs"]), initial_state=initial)
    state, _ = train_step(state, as_jax(batch))
    np.testing.assert_allclose(state.carry.h, expected.h, rtol=1e-5, atol=1e-6)
    # Rows flagged as starting over ignore the carried state; the others keep it.
    model = nnx.merge(graphdef, state.params, state.model_state)  # the old arrays were donated
    fresh = np.arange(len(batch["xs"])) % 2 == 0
    reset = {**as_jax(batch), "reset": jnp.asarray(fresh)}
    _, (_, from_reset) = task.loss_fn(model, reset, state.carry, None)
    _, from_zero = model(jnp.asarray(batch["xs"]))
    _, from_carry = model(jnp.asarray(batch["xs"]), initial_state=state.carry)
    expected = np.where(fresh[None, :, None], from_zero.h, from_carry.h)
    np.testing.assert_allclose(from_reset.h, expected, rtol=1e-5, atol=1e-6)
    assert np.abs(np.asarray(from_zero.h) - np.asarray(from_carry.h))[:, ~fresh].max() > 1e-3


def test_charlm_rows_start_over_staggered_every_reset_every_chunks():
    config, task, *_ = build("charlm")
    r = config.data.reset_every
    assert r > 1
    resets = np.stack([task.train_batch(s)["reset"] for s in range(2 * r + 1)])  # (steps, B)
    assert resets[0].all()  # the pass starts
    for k in range(r):  # between, each row once every r chunks, not all rows together
        np.testing.assert_array_equal(resets[1 + k : 1 + k + r].sum(axis=0), 1)
    assert not resets[1:].all(axis=1).any()


def test_charlm_evaluation_mixes_the_cache_into_the_whole_stream():
    """Chunked evaluation, the LSTM state and the cache carried between chunks,
    equals the LSTM and the cache run over each stream in one piece."""
    from flax import nnx

    from jlstm import data
    from jlstm.cache import cache_log_probs, init_cache
    from jlstm.train.loop import evaluate
    from jlstm.train.sharding import make_mesh
    from jlstm.train.tasks.charlm import load_corpus

    config, task, graphdef, state, _ = build("charlm")
    c, m = config.data, config.model
    assert 0 < m.cache_size < 3 * c.eval_chunk_length  # the ring wraps
    metrics = evaluate(make_eval_step(graphdef, task.eval_fn), state, task, make_mesh())

    text = load_corpus(c)
    vocab = data.CharVocab.from_text(text)
    _, val_ids = data.split_text(vocab.encode(text), c.val_fraction)
    chunks = data.num_tbptt_chunks(len(val_ids), c.eval_batch_size, c.eval_chunk_length)
    pieces = [
        data.tbptt_batch(val_ids, c.eval_batch_size, c.eval_chunk_length, k) for k in range(chunks)
    ]
    xs, ys = (np.concatenate(p, axis=1) for p in zip(*pieces, strict=True))  # whole streams
    model = nnx.merge(graphdef, state.params, state.model_state)
    hs, _ = model.hidden_states(jnp.asarray(xs))
    logits = model.head(hs)
    cache = init_cache(m.cache_size, c.eval_batch_size, m.hidden_size)
    log_probs, _ = cache_log_probs(
        cache, hs, jnp.asarray(ys), logits, theta=m.cache_theta, lam=m.cache_lambda
    )
    picked = np.take_along_axis(np.asarray(log_probs), ys[..., None], -1)
    lstm = np.take_along_axis(np.asarray(jax.nn.log_softmax(logits)), ys[..., None], -1)
    np.testing.assert_allclose(metrics["bits_per_char"], -picked.mean() / np.log(2), rtol=1e-5)
    np.testing.assert_allclose(metrics["lstm_bits_per_char"], -lstm.mean() / np.log(2), rtol=1e-5)
    assert metrics["bits_per_char"] != metrics["lstm_bits_per_char"]

    config.model.cache_size = 0  # the LSTM alone: one metric, the same number
    task = make_task(config, jax.random.key(0))
    alone = evaluate(make_eval_step(graphdef, task.eval_fn), state, task, make_mesh())
    assert list(alone) == ["bits_per_char"]
    np.testing.assert_allclose(alone["bits_per_char"], metrics["lstm_bits_per_char"], rtol=1e-6)


def test_non_finite_batch_skips_the_update_and_records_the_step():
    _, task, graphdef, state, tx = build("adding")
    train_step = make_train_step(graphdef, task.loss_fn, tx)
    state, _ = train_step(state, as_jax(task.train_batch(0)))
    good = jax.tree.map(np.array, (state.params, state.opt_state))
    bad = task.train_batch(1)
    bad["xs"][0, 0, 0] = np.nan
    state, metrics = train_step(state, as_jax(bad))
    assert not np.isfinite(float(metrics["loss"]))
    assert int(state.bad_step) == 1 and int(state.step) == 2
    kept = jax.tree.leaves((state.params, state.opt_state))
    for old, new in zip(jax.tree.leaves(good), kept, strict=True):
        np.testing.assert_array_equal(old, np.asarray(new))
    state, _ = train_step(state, as_jax(task.train_batch(2)))
    assert int(state.bad_step) == 1  # the first bad step is kept


def test_per_step_keys_fold_in_the_step():
    key = jax.random.key_data(jax.random.key(3))
    k0, k1 = step_key(key, jnp.int32(0)), step_key(key, jnp.int32(1))
    assert not np.array_equal(jax.random.key_data(k0), jax.random.key_data(k1))
    expected = jax.random.fold_in(jax.random.key(3), 1)
    np.testing.assert_array_equal(jax.random.key_data(k1), jax.random.key_data(expected))


def test_dropout_uses_the_step_key():
    """With dropout on, two steps from the same state differ only through the key."""
    config = load_config("default")
    config.model.num_layers = 2
    config.model.dropout = 0.5
    task = make_task(config, jax.random.key(0))
    tx = make_optimizer(config.optim)
    graphdef, state = init_train_state(task.model, tx, jax.random.key(1))
    train_step = make_train_step(graphdef, task.loss_fn, tx)
    batch = as_jax(task.train_batch(0))
    copy = lambda s: jax.tree.map(jnp.array, s)
    _, m0 = train_step(copy(state), batch)
    _, m0_again = train_step(copy(state), batch)
    _, m1 = train_step(copy(state._replace(step=jnp.int32(1))), batch)
    assert float(m0["loss"]) == float(m0_again["loss"])
    assert float(m0["loss"]) != float(m1["loss"])
