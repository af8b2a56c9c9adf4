"""Attention over hidden states against a NumPy loop over the real steps only."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jlstm import attention

B, T, D, A = 4, 6, 5, 3
LENGTHS = np.array([6, 3, 1, 0])
HOLES = np.array(
    [[1, 1, 1, 1, 1, 1], [0, 1, 0, 1, 1, 0], [1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]], bool
)


@pytest.fixture
def hs(key):
    return jax.random.normal(key, (B, T, D))


def real_steps(given):
    """(kwargs for the function, boolean mask of real steps)."""
    if given == "lengths":
        return {"lengths": jnp.asarray(LENGTHS)}, np.arange(T)[None] < LENGTHS[:, None]
    return {"mask": jnp.asarray(HOLES)}, HOLES


def reference(hs, mask, score_fn, heads):
    """Softmax of each head's scores over the real steps, then the weighted sum of h."""
    hs = np.asarray(hs, np.float64)
    weights = np.zeros((hs.shape[0], heads, hs.shape[1]))
    context = np.zeros((hs.shape[0], heads, hs.shape[2]))
    for b in range(hs.shape[0]):
        steps = np.flatnonzero(mask[b])
        if steps.size == 0:
            continue
        for k in range(heads):
            scores = np.array([score_fn(hs[b, t], k) for t in steps])
            e = np.exp(scores - scores.max())
            weights[b, k, steps] = e / e.sum()
            context[b, k] = (weights[b, k, steps][:, None] * hs[b, steps]).sum(0)
    return context.reshape(hs.shape[0], -1), weights


@pytest.mark.parametrize("num_heads", [None, 2])
@pytest.mark.parametrize("given", ["lengths", "holes"])
def test_additive_matches_reference(hs, key, num_heads, given):
    p = attention.init_additive_params(key, D, A, num_heads=num_heads)
    p = p._replace(b=jax.random.normal(jax.random.fold_in(key, 1), (A,)))
    w, b, v = (np.asarray(x, np.float64) for x in p)
    v2 = v[None] if num_heads is None else v
    kwargs, mask = real_steps(given)
    context, weights = attention.additive_attention(p, hs, **kwargs)
    ref_c, ref_w = reference(hs, mask, lambda h, k: v2[k] @ np.tanh(h @ w + b), v2.shape[0])
    if num_heads is None:
        ref_w = ref_w[:, 0]
    np.testing.assert_allclose(weights, ref_w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(context, ref_c, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("num_heads", [None, 3])
@pytest.mark.parametrize("given", ["lengths", "holes"])
def test_dot_product_matches_reference(hs, key, num_heads, given):
    q = attention.init_query(key, D, num_heads=num_heads)
    q2 = np.asarray(q, np.float64).reshape(-1, D)
    kwargs, mask = real_steps(given)
    context, weights = attention.dot_product_attention(q, hs, **kwargs)
    ref_c, ref_w = reference(hs, mask, lambda h, k: q2[k] @ h / np.sqrt(D), q2.shape[0])
    if num_heads is None:
        ref_w = ref_w[:, 0]
    np.testing.assert_allclose(weights, ref_w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(context, ref_c, rtol=1e-5, atol=1e-6)


@pytest.fixture(params=["additive", "dot", "additive-2", "dot-2"])
def attend_fn(request, key):
    kind, _, heads = request.param.partition("-")
    heads = int(heads) if heads else None
    if kind == "additive":
        p = attention.init_additive_params(key, D, A, num_heads=heads)
        return lambda h, **kw: attention.additive_attention(p, h, **kw)
    q = attention.init_query(key, D, num_heads=heads)
    return lambda h, **kw: attention.dot_product_attention(q, h, **kw)


@pytest.mark.parametrize("given", ["lengths", "holes"])
def test_weights_zero_on_padding_and_sum_to_one(hs, attend_fn, given):
    kwargs, mask = real_steps(given)
    # Large scores at padded steps must not leak in.
    hs = jnp.where(jnp.asarray(mask)[..., None], hs, 1e3 * jnp.ones_like(hs))
    _, weights = attend_fn(hs, **kwargs)
    weights = np.asarray(weights)
    m = np.broadcast_to(mask[:, None] if weights.ndim == 3 else mask, weights.shape)
    assert np.all(weights[~m] == 0.0)
    sums = weights.sum(-1)
    has_real = mask.any(-1)
    np.testing.assert_allclose(sums[has_real], 1.0, rtol=1e-6)
    assert np.all(sums[~has_real] == 0.0)


def test_attention_ignores_extra_padding(hs, attend_fn, key):
    junk = 50.0 * jax.random.normal(jax.random.fold_in(key, 7), (B, 2 * T, D))
    lengths = jnp.asarray(LENGTHS)
    real = (np.arange(T)[None] < LENGTHS[:, None])[..., None]
    base = jnp.where(real, hs, junk[:, :T])
    padded = junk.at[:, :T].set(base)
    c1, w1 = attend_fn(base, lengths=lengths)
    c2, w2 = attend_fn(padded, lengths=lengths)
    np.testing.assert_allclose(c1, c2, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(w1, w2[..., :T], rtol=1e-6, atol=1e-7)
    assert np.all(np.asarray(w2)[..., T:] == 0.0)


def test_gradients_finite_with_empty_sequences(hs, attend_fn):
    lengths = jnp.asarray(LENGTHS)

    def loss(h):
        context, weights = attend_fn(h, lengths=lengths)
        return (context**2).sum() + (weights**2).sum()

    g = jax.jit(jax.grad(loss))(hs)
    assert np.all(np.isfinite(g))
    np.testing.assert_array_equal(np.asarray(g)[3], 0.0)  # the empty sequence


def test_masked_softmax_is_the_softmax_of_the_real_entries(key):
    scores = jax.random.normal(key, (3, 5))
    mask = jnp.array([[1, 1, 0, 1, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], bool)
    out = attention.masked_softmax(scores, mask)
    np.testing.assert_allclose(out[1], jax.nn.softmax(scores[1]), rtol=1e-6)
    np.testing.assert_allclose(
        out[0, np.array([0, 1, 3])], jax.nn.softmax(scores[0, np.array([0, 1, 3])]), rtol=1e-6
    )
    np.testing.assert_array_equal(out[2], 0.0)


def test_bf16_matmuls(hs, key):
    p = attention.init_additive_params(key, D, A)
    c32, w32 = attention.additive_attention(p, hs, lengths=jnp.asarray(LENGTHS))
    c16, w16 = attention.additive_attention(p, hs, lengths=jnp.asarray(LENGTHS), dtype=jnp.bfloat16)
    assert c16.dtype == jnp.float32 and w16.dtype == jnp.float32
    np.testing.assert_allclose(w16, w32, atol=3e-2)


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda p, q, h: attention.additive_attention(p, h[..., :4]),
            r"hs must be \(\*batch, T, 5\) to match params.w \(5, 3\); got shape \(4, 6, 4\)",
        ),
        (
            lambda p, q, h: attention.dot_product_attention(q, h[..., :2]),
            r"hs must be \(\*batch, T, 5\) to match query \(5,\); got shape \(4, 6, 2\)",
        ),
        (
            lambda p, q, h: attention.dot_product_attention(q[None, None], h),
            r"query must be \(D,\) or \(heads, D\); got shape \(1, 1, 5\)",
        ),
        (
            lambda p, q, h: attention.additive_attention(p._replace(v=jnp.ones(4)), h),
            r"params must be AdditiveParams.*v \(4,\)",
        ),
        (
            lambda p, q, h: attention.attend(jnp.ones((4, 7)), h),
            r"scores must be \(4, 6\) or \(4, 'heads', 6\) to match hs \(4, 6, 5\)",
        ),
        (
            lambda p, q, h: attention.dot_product_attention(q, h, lengths=jnp.array([1, 2])),
            r"lengths must have shape \(4,\)",
        ),
        (
            lambda p, q, h: attention.init_additive_params(jax.random.key(0), 5, 0),
            "attention_size must be a positive integer; got 0",
        ),
    ],
)
def test_bad_input(hs, key, call, match):
    p = attention.init_additive_params(key, D, A)
    q = attention.init_query(key, D)
    with pytest.raises(ValueError, match=match):
        call(p, q, hs)
