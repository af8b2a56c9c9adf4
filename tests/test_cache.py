"""The continuous cache against a NumPy loop over Grave et al.'s formula."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jlstm.cache import cache_log_probs, init_cache


def reference(hs, targets, logits, mask, *, size, theta, lam):
    """Step by step in float64: p = (1 - λ) softmax(logits) + λ Σ_i softmax_i(θ h_t·h_i) [y_i = v]
    over the real steps i in t - size .. t - 1 (the model alone where there is none)."""
    hs, logits = np.asarray(hs, np.float64), np.asarray(logits, np.float64)
    batch, steps, vocab = logits.shape
    out = np.empty_like(logits)
    for b in range(batch):
        for t in range(steps):
            z = logits[b, t] - logits[b, t].max()
            p = np.exp(z) / np.exp(z).sum()
            window = [i for i in range(max(0, t - size), t) if mask[b, i]]
            if window:
                s = theta * np.array([hs[b, t] @ hs[b, i] for i in window])
                w = np.exp(s - s.max())
                w /= w.sum()
                p_cache = np.zeros(vocab)
                for i, wi in zip(window, w, strict=True):
                    p_cache[targets[b, i]] += wi
                p = (1 - lam) * p + lam * p_cache
            out[b, t] = np.log(p)
    return out


def run_chunks(hs, targets, logits, mask, *, size, theta, lam, chunk):
    cache = init_cache(size, hs.shape[0], hs.shape[2])
    step = jax.jit(
        lambda c, h, y, lg, m: cache_log_probs(c, h, y, lg, theta=theta, lam=lam, mask=m)
    )
    parts = []
    for s in range(0, hs.shape[1], chunk):
        w = slice(s, s + chunk)
        lp, cache = step(cache, hs[:, w], targets[:, w], logits[:, w], mask[:, w])
        parts.append(np.asarray(lp))
    return np.concatenate(parts, axis=1), cache


def case(key, batch=3, steps=23, hidden=5, vocab=7):
    k1, k2, k3 = jax.random.split(key, 3)
    hs = jax.random.normal(k1, (batch, steps, hidden))
    targets = jax.random.randint(k2, (batch, steps), 0, vocab)
    logits = jax.random.normal(k3, (batch, steps, vocab))
    return hs, targets, logits


# Chunks shorter and longer than the cache, dividing it and not: the ring wraps
# at every offset.
@pytest.mark.parametrize("size,chunk", [(6, 4), (6, 1), (5, 23), (4, 7), (30, 5), (8, 8)])
def test_chunked_cache_equals_the_stepwise_formula(key, size, chunk):
    hs, targets, logits = case(key)
    mask = np.ones(targets.shape, bool)
    mask[1, 3:9] = False  # padding in the middle of one stream: never matched
    mask[2, -4:] = False
    expected = reference(hs, targets, logits, mask, size=size, theta=0.7, lam=0.3)
    actual, cache = run_chunks(
        hs, targets, logits, mask, size=size, theta=0.7, lam=0.3, chunk=chunk
    )
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)
    assert int(cache.step) == hs.shape[1]
    # The ring holds the last `size` steps, slot q % size holding step q.
    last = np.arange(max(0, hs.shape[1] - size), hs.shape[1])
    slots = last % size
    np.testing.assert_array_equal(np.asarray(cache.keys)[:, slots], np.asarray(hs)[:, last])
    np.testing.assert_array_equal(np.asarray(cache.targets)[:, slots], np.asarray(targets)[:, last])
    np.testing.assert_array_equal(
        np.asarray(cache.pos)[:, slots], np.where(mask[:, last], last[None], -1)
    )
    empty = np.setdiff1d(np.arange(size), slots)  # slots no step has reached
    np.testing.assert_array_equal(np.asarray(cache.pos)[:, empty], -1)


def test_mixture_is_a_distribution_and_the_first_step_is_the_model_alone(key):
    hs, targets, logits = case(key)
    mask = np.ones(targets.shape, bool)
    log_probs, _ = run_chunks(hs, targets, logits, mask, size=10, theta=2.0, lam=0.6, chunk=23)
    np.testing.assert_allclose(np.exp(log_probs).sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(log_probs[:, 0], jax.nn.log_softmax(logits[:, 0]), rtol=1e-6)
    assert np.abs(log_probs[:, 1:] - np.asarray(jax.nn.log_softmax(logits[:, 1:]))).max() > 0.1


def test_lambda_zero_is_the_model_exactly(key):
    hs, targets, logits = case(key)
    mask = np.ones(targets.shape, bool)
    log_probs, _ = run_chunks(hs, targets, logits, mask, size=10, theta=1.0, lam=0.0, chunk=5)
    np.testing.assert_array_equal(log_probs, np.asarray(jax.nn.log_softmax(logits, axis=-1)))


def test_a_repeated_context_predicts_what_followed_it():
    """A step whose state equals an earlier one's, with theta large, puts the cache's
    mass on the token that followed that step."""
    hs = np.eye(4, dtype=np.float32)[[0, 1, 2, 0]][None]  # step 3 repeats step 0
    targets = np.array([[3, 1, 2, 0]], np.int32)
    logits = np.zeros((1, 4, 5), np.float32)
    step = jax.jit(lambda c: cache_log_probs(c, hs, targets, logits, theta=50.0, lam=1.0))
    log_probs, _ = step(init_cache(8, 1, 4))
    np.testing.assert_allclose(np.exp(log_probs[0, 3]), np.eye(5)[3], atol=1e-6)


def test_bad_arguments_name_what_was_expected(key):
    hs, targets, logits = case(key)
    cache = init_cache(4, 3, 5)
    with pytest.raises(ValueError, match=r"hs must be \(batch, time, hidden\) = \(3, T, 5\)"):
        cache_log_probs(cache, hs[:2], targets, logits, theta=1.0, lam=0.1)
    with pytest.raises(ValueError, match=r"targets must be \(batch, time\)"):
        cache_log_probs(cache, hs, targets[:, :3], logits, theta=1.0, lam=0.1)
    with pytest.raises(ValueError, match=r"logits must be \(batch, time, vocab\)"):
        cache_log_probs(cache, hs, targets, logits[:, :3], theta=1.0, lam=0.1)
    with pytest.raises(ValueError, match=r"lam must be <= 1; got 1.5"):
        cache_log_probs(cache, hs, targets, logits, theta=1.0, lam=1.5)
    with pytest.raises(ValueError, match=r"theta must be >= 0; got -1"):
        cache_log_probs(cache, hs, targets, logits, theta=-1.0, lam=0.1)
    with pytest.raises(ValueError, match=r"size must be a positive integer; got 0"):
        init_cache(0, 3, 5)


def test_works_under_vmap_and_grad(key):
    """Pure: vmapped over a leading axis it equals a loop, and it differentiates."""
    hs, targets, logits = case(key, batch=2, steps=6)
    cache = init_cache(4, 2, 5)

    def f(h, lg):
        return cache_log_probs(cache, h, targets, lg, theta=0.5, lam=0.2)[0]

    stacked = jax.jit(jax.vmap(f))(jnp.stack([hs, 2 * hs]), jnp.stack([logits, logits]))
    np.testing.assert_allclose(stacked[1], jax.jit(f)(2 * hs, logits), rtol=1e-6)

    def loss(h):
        return jnp.take_along_axis(f(h, logits), targets[..., None], -1).sum()

    g = jax.jit(jax.grad(loss))(hs)
    assert np.isfinite(np.asarray(g)).all() and np.abs(np.asarray(g)).max() > 0
