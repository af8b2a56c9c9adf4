"""Pooling and matching functions against NumPy loops over the real steps only."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jlstm import heads

B, T, D = 4, 6, 4
LENGTHS = np.array([6, 3, 1, 0])


@pytest.fixture
def hs(key):
    return jax.random.normal(key, (B, T, D))


def holes_mask():
    """A general mask with gaps (not right padding) and one empty row."""
    return np.array(
        [
            [1, 1, 1, 1, 1, 1],
            [0, 1, 0, 1, 1, 0],
            [1, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0],
        ],
        bool,
    )


def reference(hs, mask, method, bidirectional=False):
    """Pool each sequence by a loop over its real steps; zeros when it has none."""
    hs = np.asarray(hs, np.float64)
    out = np.zeros((hs.shape[0], hs.shape[-1]))
    for b in range(hs.shape[0]):
        steps = np.flatnonzero(mask[b])
        if steps.size == 0:
            continue
        real = hs[b, steps]
        if method == "mean":
            out[b] = real.mean(0)
        elif method == "max":
            out[b] = real.max(0)
        elif bidirectional:
            half = hs.shape[-1] // 2
            out[b] = np.concatenate([real[-1, :half], real[0, half:]])
        else:
            out[b] = real[-1]
    return out


def lengths_mask(lengths, steps):
    return np.arange(steps)[None, :] < np.asarray(lengths)[:, None]


@pytest.mark.parametrize("method", ["last", "mean", "max"])
@pytest.mark.parametrize("given", ["lengths", "mask", "holes", "none"])
def test_pool_matches_reference(hs, method, given):
    if given == "lengths":
        kwargs, mask = {"lengths": jnp.asarray(LENGTHS)}, lengths_mask(LENGTHS, T)
    elif given == "mask":
        mask = lengths_mask(LENGTHS, T)
        kwargs = {"mask": jnp.asarray(mask)}
    elif given == "holes":
        mask = holes_mask()
        kwargs = {"mask": jnp.asarray(mask)}
    else:
        kwargs, mask = {}, np.ones((B, T), bool)
    out = heads.pool(hs, method, **kwargs)
    np.testing.assert_allclose(out, reference(hs, mask, method), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("given", ["lengths", "holes"])
def test_last_bidirectional_takes_backward_half_at_first_real_step(key, given):
    hs = jax.random.normal(key, (B, T, 2 * D))
    mask = lengths_mask(LENGTHS, T) if given == "lengths" else holes_mask()
    kwargs = {"lengths": jnp.asarray(LENGTHS)} if given == "lengths" else {"mask": mask}
    out = heads.last_hidden(hs, bidirectional=True, **kwargs)
    np.testing.assert_allclose(out, reference(hs, mask, "last", True), rtol=1e-6)


def test_all_hidden_zeroes_padding(hs):
    out = heads.all_hidden(hs, lengths=jnp.asarray(LENGTHS))
    mask = lengths_mask(LENGTHS, T)[..., None]
    np.testing.assert_array_equal(out, np.where(mask, hs, 0.0))


@pytest.mark.parametrize("method", ["last", "mean", "max"])
def test_pooling_ignores_extra_padding(hs, key, method):
    junk = 100.0 * jax.random.normal(jax.random.fold_in(key, 1), (B, 2 * T, D))
    padded = junk.at[:, :T].set(hs)
    lengths = jnp.asarray(LENGTHS)
    # The original steps beyond each length are junk too.
    mask = lengths_mask(LENGTHS, T)[..., None]
    base = jnp.where(mask, hs, junk[:, :T])
    for bidirectional in (False, True) if method == "last" else (False,):
        kw = {"bidirectional": bidirectional} if method == "last" else {}
        a = heads.pool(base, method, lengths=lengths, **kw)
        b = heads.pool(padded, method, lengths=lengths, **kw)
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_leading_batch_axes(key):
    hs = jax.random.normal(key, (2, 3, T, D))
    lengths = jnp.array([[6, 2, 1], [0, 4, 5]])
    flat = heads.mean_pool(hs.reshape(6, T, D), lengths=lengths.reshape(6))
    out = heads.mean_pool(hs, lengths=lengths)
    np.testing.assert_allclose(out.reshape(6, D), flat, rtol=1e-6)
    assert heads.last_hidden(hs, lengths=lengths, bidirectional=False).shape == (2, 3, D)


def test_pooling_under_jit_and_grad(hs):
    lengths = jnp.asarray(LENGTHS)
    f = jax.jit(
        lambda h, n: sum(heads.pool(h, m, lengths=n).sum() for m in ("last", "mean", "max"))
    )
    np.testing.assert_allclose(
        f(hs, lengths),
        sum(heads.pool(hs, m, lengths=lengths).sum() for m in ("last", "mean", "max")),
        rtol=1e-5,
    )
    g = jax.grad(f)(hs, lengths)
    assert np.all(np.isfinite(g))
    # Padded steps get no gradient.
    assert np.all(np.asarray(g)[~lengths_mask(LENGTHS, T)] == 0)


def test_similarities_match_numpy(key):
    ka, kb = jax.random.split(key)
    a, b = jax.random.normal(ka, (B, D)), jax.random.normal(kb, (B, D))
    an, bn = np.asarray(a, np.float64), np.asarray(b, np.float64)
    dot = (an * bn).sum(-1)
    cos = dot / (np.linalg.norm(an, axis=-1) * np.linalg.norm(bn, axis=-1))
    np.testing.assert_allclose(heads.dot_similarity(a, b), dot, rtol=1e-5)
    np.testing.assert_allclose(heads.cosine_similarity(a, b), cos, rtol=1e-5)
    for kind in ("cosine", "dot"):
        np.testing.assert_array_equal(heads.similarity(a, b, kind), heads.similarity(b, a, kind))


def test_cosine_of_zero_vector_is_zero_with_finite_gradient():
    a, b = jnp.zeros((1, 3)), jnp.ones((1, 3))
    assert float(heads.cosine_similarity(a, b)[0]) == 0.0
    g = jax.grad(lambda a: heads.cosine_similarity(a, b).sum())(a)
    assert np.all(np.isfinite(g))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda h: heads.pool(h, "median"), ValueError, r"method must be one of .*'median'"),
        (lambda h: heads.mean_pool(h[0, 0]), ValueError, r"hs must be \(\*batch, T, features\)"),
        (
            lambda h: heads.mean_pool(h, lengths=jnp.array([1, 2])),
            ValueError,
            r"lengths must have shape \(4,\) \(the batch\); got \(2,\)",
        ),
        (
            lambda h: heads.mean_pool(h, lengths=jnp.array([1.0, 2.0, 3.0, 4.0])),
            TypeError,
            "lengths must have an integer dtype",
        ),
        (
            lambda h: heads.max_pool(h, lengths=jnp.array([7, 1, 1, 1])),
            ValueError,
            r"lengths must lie in \[0, T=6\]",
        ),
        (
            lambda h: heads.max_pool(h, mask=jnp.ones((B, T), jnp.int32)),
            TypeError,
            "mask must have dtype bool",
        ),
        (
            lambda h: heads.max_pool(h, mask=jnp.ones((B, T + 1), bool)),
            ValueError,
            r"mask must have shape \(4, 6\)",
        ),
        (
            lambda h: heads.max_pool(h, lengths=jnp.array(LENGTHS), mask=jnp.ones((B, T), bool)),
            ValueError,
            "give lengths or mask, not both",
        ),
        (
            lambda h: heads.last_hidden(h[..., :3], bidirectional=True),
            ValueError,
            "even number of features",
        ),
        (
            lambda h: heads.cosine_similarity(h[:, 0], h[:, 0, :2]),
            ValueError,
            r"a and b must have the same shape .*\(4, 4\) and \(4, 2\)",
        ),
        (
            lambda h: heads.similarity(h[:, 0], h[:, 1], "l2"),
            ValueError,
            r"similarity must be one of \('cosine', 'dot'\); got 'l2'",
        ),
    ],
)
def test_bad_input(hs, call, error, match):
    with pytest.raises(error, match=match):
        call(hs)
