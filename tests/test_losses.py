"""Masked losses and metrics against NumPy (and PyTorch for the margin loss)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jlstm import losses

B, T, C = 3, 5, 4
LENGTHS = np.array([5, 2, 0])


@pytest.fixture
def logits(key):
    return jax.random.normal(key, (B, T, C))


@pytest.fixture
def labels(key):
    labels = jax.random.randint(jax.random.fold_in(key, 1), (B, T), 0, C)
    real = np.arange(T)[None] < LENGTHS[:, None]
    return jnp.where(real, labels, -1)  # padding holds an invalid label


def real_mask():
    return np.arange(T)[None] < LENGTHS[:, None]


def np_cross_entropy(logits, labels, mask):
    logits = np.asarray(logits, np.float64)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    picked = [-logp[idx][labels[idx]] for idx in zip(*np.nonzero(mask), strict=True)]
    return np.mean(picked) if picked else 0.0


@pytest.mark.parametrize("given", ["lengths", "mask"])
def test_cross_entropy_per_step(logits, labels, given):
    kwargs = {"lengths": jnp.asarray(LENGTHS)} if given == "lengths" else {"mask": real_mask()}
    expected = np_cross_entropy(logits, np.asarray(labels), real_mask())
    np.testing.assert_allclose(losses.cross_entropy(logits, labels, **kwargs), expected, rtol=1e-6)
    np.testing.assert_allclose(
        losses.bits_per_char(logits, labels, **kwargs), expected / math.log(2), rtol=1e-6
    )


def test_cross_entropy_per_example(logits, labels):
    x, y = logits[:, 0], jnp.abs(labels[:, 0])
    expected = np_cross_entropy(x, np.asarray(y), np.ones(B, bool))
    np.testing.assert_allclose(losses.cross_entropy(x, y), expected, rtol=1e-6)
    m = np.array([True, False, True])
    np.testing.assert_allclose(
        losses.cross_entropy(x, y, mask=m), np_cross_entropy(x, np.asarray(y), m), rtol=1e-6
    )


def test_cross_entropy_gradient_is_zero_and_finite_at_padding(logits, labels):
    g = jax.grad(losses.cross_entropy)(logits, labels, lengths=jnp.asarray(LENGTHS))
    assert np.all(np.isfinite(g))
    np.testing.assert_array_equal(np.asarray(g)[~real_mask()], 0.0)


def test_accuracy(logits, labels):
    pred = np.asarray(jnp.argmax(logits, -1))
    expected = (pred == np.asarray(labels))[real_mask()].mean()
    acc = losses.accuracy(logits, labels, lengths=jnp.asarray(LENGTHS))
    np.testing.assert_allclose(acc, expected, rtol=1e-6)


@pytest.mark.parametrize("fn", [losses.cross_entropy, losses.accuracy, losses.bits_per_char])
def test_classification_losses_ignore_extra_padding(logits, labels, key, fn):
    junk = jax.random.normal(jax.random.fold_in(key, 3), (B, 2 * T, C))
    lengths = jnp.asarray(LENGTHS)
    padded = junk.at[:, :T].set(logits)
    padded_labels = jnp.full((B, 2 * T), 2, jnp.int32).at[:, :T].set(labels)
    np.testing.assert_allclose(
        fn(logits, labels, lengths=lengths), fn(padded, padded_labels, lengths=lengths), rtol=1e-6
    )


def test_empty_selection_gives_zero(logits, labels):
    zero = jnp.zeros(B, jnp.int32)
    assert float(losses.cross_entropy(logits, labels, lengths=zero)) == 0.0
    assert float(losses.accuracy(logits, labels, lengths=zero)) == 0.0


@pytest.mark.parametrize("name", ["mse", "mae"])
@pytest.mark.parametrize("given", ["lengths", "mask", "none"])
def test_regression_losses(key, name, given):
    kp, kt = jax.random.split(key)
    pred, target = jax.random.normal(kp, (B, T, 2)), jax.random.normal(kt, (B, T, 2))
    err = np.asarray(pred, np.float64) - np.asarray(target, np.float64)
    err = err**2 if name == "mse" else np.abs(err)
    if given == "none":
        kwargs, expected = {}, err.mean()
    else:
        m = real_mask()
        kwargs = {"lengths": jnp.asarray(LENGTHS)} if given == "lengths" else {"mask": m}
        expected = err[m].mean()
    np.testing.assert_allclose(getattr(losses, name)(pred, target, **kwargs), expected, rtol=1e-6)


def test_contrastive_loss_matches_torch_cosine_embedding_loss(key):
    torch = pytest.importorskip("torch")
    scores = jax.random.uniform(key, (8,), minval=-1.0, maxval=1.0)
    same = jax.random.bernoulli(jax.random.fold_in(key, 1), 0.5, (8,))
    margin = 0.2
    # CosineEmbeddingLoss on unit 2-D vectors whose cosine is exactly `scores`.
    angle = np.arccos(np.asarray(scores, np.float64))
    x1 = torch.tensor(np.stack([np.ones(8), np.zeros(8)], -1))
    x2 = torch.tensor(np.stack([np.cos(angle), np.sin(angle)], -1))
    y = torch.tensor(np.where(np.asarray(same), 1.0, -1.0))
    expected = torch.nn.CosineEmbeddingLoss(margin=margin)(x1, x2, y).item()
    np.testing.assert_allclose(losses.contrastive_loss(scores, same, margin=margin), expected, 1e-5)


def test_logistic_matching_loss(key):
    scores = 3.0 * jax.random.normal(key, (6,))
    same = jnp.array([1, 0, 1, 1, 0, 0])
    s, y = np.asarray(scores, np.float64), np.asarray(same)
    expected = np.mean(np.log1p(np.exp(-s)) * y + np.log1p(np.exp(s)) * (1 - y))
    np.testing.assert_allclose(losses.logistic_matching_loss(scores, same), expected, rtol=1e-5)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda x, y: losses.cross_entropy(x, y[:, :3]),
            ValueError,
            r"labels must have shape \(3, 5\) \(logits \(3, 5, 4\) without the class axis\); "
            r"got shape \(3, 3\)",
        ),
        (
            lambda x, y: losses.accuracy(x, y[..., None]),
            ValueError,
            r"labels must have shape \(3, 5\).*got shape \(3, 5, 1\)",
        ),
        (
            lambda x, y: losses.cross_entropy(x, y.astype(jnp.float32)),
            TypeError,
            "labels must have an integer dtype",
        ),
        (
            lambda x, y: losses.cross_entropy(x[:, 0], y[:, 0], lengths=jnp.array([1, 1, 1])),
            ValueError,
            r"lengths needs labels with a time axis .*got labels of shape \(3,\)",
        ),
        (
            lambda x, y: losses.cross_entropy(x, y, lengths=jnp.array([1, 1])),
            ValueError,
            r"lengths must have shape \(3,\) \(the batch\); got \(2,\)",
        ),
        (
            lambda x, y: losses.mse(x, x[..., :2]),
            ValueError,
            r"target must have shape \(3, 5, 4\) like pred; got shape \(3, 5, 2\)",
        ),
        (
            lambda x, y: losses.mae(x, x, mask=jnp.ones((3, 4), bool)),
            ValueError,
            r"mask must have shape \(3, 5, 4\) or a leading part of it; got \(3, 4\)",
        ),
        (
            lambda x, y: losses.contrastive_loss(x[:, 0, 0], jnp.ones(4, bool)),
            ValueError,
            r"same must have shape \(3,\) like scores; got shape \(4,\)",
        ),
        (
            lambda x, y: losses.logistic_matching_loss(x[:, 0, 0], x[:, 0, 1]),
            TypeError,
            "same must be bool or 0/1 integers",
        ),
    ],
)
def test_bad_input(logits, labels, call, error, match):
    with pytest.raises(error, match=match):
        call(logits, labels)


def _auc_by_pairs(scores, labels):
    """Brute force: over every (positive, negative) pair, 1 if ordered right, 1/2 if tied."""
    pos, neg = scores[labels], scores[~labels]
    diff = pos[:, None] - neg[None, :]
    return ((diff > 0) + 0.5 * (diff == 0)).mean()


@pytest.mark.parametrize("n, levels", [(2, None), (17, None), (200, None), (200, 5), (64, 1)])
def test_roc_auc_matches_a_pairwise_count(n, levels):
    rng = np.random.default_rng(n)
    scores = rng.normal(size=n).astype(np.float32)
    if levels is not None:  # few distinct values: many ties
        scores = np.round(scores * levels / 3) / levels
    labels = np.arange(n) % 2 == 0
    rng.shuffle(labels)
    got = losses.roc_auc(jnp.asarray(scores), jnp.asarray(labels))
    np.testing.assert_allclose(got, _auc_by_pairs(scores, labels), rtol=1e-6)
    jitted = jax.jit(losses.roc_auc)(scores, labels.astype(np.int32))
    np.testing.assert_allclose(jitted, got, rtol=1e-6)


def test_roc_auc_edge_cases():
    labels = jnp.array([0, 0, 1, 1])
    assert float(losses.roc_auc(jnp.array([0.1, 0.2, 0.3, 0.4]), labels)) == 1.0
    assert float(losses.roc_auc(jnp.array([0.4, 0.3, 0.2, 0.1]), labels)) == 0.0
    assert float(losses.roc_auc(jnp.ones(4), labels)) == 0.5
    assert float(losses.roc_auc(jnp.array([0.1, 0.4, 0.35, 0.8]), labels)) == 0.75
    assert math.isnan(float(losses.roc_auc(jnp.ones(3), jnp.ones(3, bool))))
    with pytest.raises(ValueError, match="shape"):
        losses.roc_auc(jnp.ones(4), jnp.ones(3, bool))


def test_roc_auc_matches_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=300), 1).astype(np.float32)
    labels = rng.random(300) < 0.3
    got = losses.roc_auc(jnp.asarray(scores), jnp.asarray(labels))
    np.testing.assert_allclose(got, metrics.roc_auc_score(labels, scores), rtol=1e-6)
