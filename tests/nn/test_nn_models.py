"""Model assemblies: padding, jit patterns, gradients, checkpoints, generation, errors."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx
from nn_cases import CASES, VOCAB, B, F, H, T

from jlstm.attention import AdditiveParams, additive_attention
from jlstm.nn import CharLM, SequenceClassifier, SequenceRegressor, SequenceTagger, SiameseMatcher
from jlstm.stack import stack


def split_apply(case, model):
    """The train-step pattern: nnx.split once, jax.jit a function that nnx.merges."""
    graphdef, state = nnx.split(model)

    @jax.jit
    def apply(state, data, dropout_key=None):
        return case.apply(nnx.merge(graphdef, state), data, dropout_key=dropout_key)

    return state, apply


def test_extra_padding_changes_nothing(case, key):
    model = case.make(nnx.Rngs(0))
    data = case.data(key)
    state, apply = split_apply(case, model)
    out = apply(state, data)
    padded = apply(state, case.padded(data, jax.random.fold_in(key, 1)))
    if case.per_step:
        np.testing.assert_array_equal(padded[:, T:], 0.0)
        padded = padded[:, :T]
        real = np.arange(T)[None] < np.asarray(data["lengths"])[:, None]
        np.testing.assert_array_equal(np.asarray(out)[~real], 0.0)
    np.testing.assert_allclose(padded, out, rtol=1e-5, atol=1e-6)


def test_gradient_reaches_every_parameter(case, key):
    model = case.make(nnx.Rngs(0))
    data = case.data(key)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    out_shape = jax.eval_shape(lambda: case.apply(model, data)).shape
    weights = jax.random.normal(jax.random.fold_in(key, 2), out_shape)

    @jax.jit
    def loss(params, dropout_key):
        out = case.apply(nnx.merge(graphdef, params, rest), data, dropout_key=dropout_key)
        return jnp.sum(out * weights)

    grads = jax.grad(loss)(params, jax.random.key(3))  # with dropout on
    for path, g in nnx.to_flat_state(grads):
        g = np.asarray(g[...])
        assert np.all(np.isfinite(g)), path
        assert np.any(g != 0), f"no gradient reaches {path}"


def test_dropout_key_is_the_only_randomness(key):
    case = CASES["charlm-2layers"]
    model = case.make(nnx.Rngs(0))
    data = case.data(key)
    apply = nnx.jit(case.apply)
    eval_out = apply(model, data)
    np.testing.assert_array_equal(eval_out, apply(model, data))
    k = jax.random.key(5)
    train_out = apply(model, data, dropout_key=k)
    np.testing.assert_array_equal(train_out, apply(model, data, dropout_key=k))
    assert not np.allclose(train_out, eval_out)
    assert not jax.tree.leaves(nnx.state(model, nnx.RngState))


@pytest.mark.parametrize("name", ["charlm-2layers", "siamese-cosine-scale-attention"])
def test_checkpoint_round_trip(name, key, tmp_path, assert_trees_allclose):
    case = CASES[name]
    model = case.make(nnx.Rngs(0))
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp_path / "ckpt", nnx.state(model))
    checkpointer.wait_until_finished()

    fresh = case.make(nnx.Rngs(1))
    abstract = nnx.state(nnx.eval_shape(lambda: case.make(nnx.Rngs(1))))
    nnx.update(fresh, checkpointer.restore(tmp_path / "ckpt", abstract))
    assert_trees_allclose(nnx.state(fresh), nnx.state(model), rtol=0, atol=0)
    state, apply = split_apply(case, model)
    data = case.data(key)
    np.testing.assert_array_equal(apply(nnx.state(fresh), data), apply(state, data))


def test_classifier_is_the_pure_composition(key):
    model = SequenceClassifier(F, H, 3, num_layers=2, pooling="attention", rngs=nnx.Rngs(0))
    data = CASES["classifier-additive-2heads"].data(key)
    logits, weights = model(data["xs"], lengths=data["lengths"], return_attention=True)
    ys, _ = stack(model.encoder.rnn.params, data["xs"], lengths=data["lengths"])
    pool = model.encoder.pooling
    p = AdditiveParams(pool.w[...], pool.b[...], pool.v[...])
    context, expected_weights = additive_attention(p, ys, lengths=data["lengths"])
    lin = model.head.linear
    expected = context @ lin.kernel[...] + lin.bias[...][None]
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(weights, expected_weights, rtol=1e-6)


@pytest.mark.parametrize("similarity", ["cosine", "dot"])
def test_siamese_is_symmetric(similarity, key):
    model = SiameseMatcher(F, H, similarity=similarity, pooling="mean", rngs=nnx.Rngs(0))
    d = CASES["siamese-dot-max"].data(key)

    @nnx.jit
    def both(model, d):
        ab = model(d["xs"], d["xs_b"], lengths_a=d["lengths"], lengths_b=d["lengths_b"])
        ba = model(d["xs_b"], d["xs"], lengths_a=d["lengths_b"], lengths_b=d["lengths"])
        return ab, ba

    ab, ba = both(model, d)
    assert ab.shape == (B,)
    np.testing.assert_allclose(ab, ba, rtol=1e-6, atol=1e-7)


@pytest.fixture
def lm():
    return CharLM(VOCAB, H, embed_dim=3, num_layers=2, rngs=nnx.Rngs(0))


def greedy_by_full_passes(lm, prompt, num_steps):
    """Greedy decoding that re-runs the whole prefix at every step (the slow way)."""
    batch, start = prompt.shape
    buffer = jnp.zeros((batch, start + num_steps), jnp.int32).at[:, :start].set(prompt)

    @nnx.jit
    def next_token(lm, buffer, length):
        logits, _ = lm(buffer, lengths=jnp.full((batch,), length))
        return jnp.argmax(logits[:, length - 1], axis=-1).astype(jnp.int32)

    for s in range(num_steps):
        token = next_token(lm, buffer, jnp.int32(start + s))
        buffer = buffer.at[:, start + s].set(token)
    return buffer[:, start:]


def test_generate_greedy_equals_argmax_of_full_passes(lm, key):
    prompt = jax.random.randint(key, (2, 3), 0, VOCAB)
    expected = greedy_by_full_passes(lm, prompt, 6)
    np.testing.assert_array_equal(lm.generate(prompt, 6, temperature=0.0), expected)
    # Temperature -> 0 samples the argmax too.
    cold = lm.generate(prompt, 6, temperature=1e-6, key=jax.random.key(1))
    np.testing.assert_array_equal(cold, expected)


def test_generate_samples_reproducibly_under_jit(lm):
    generate = nnx.jit(lambda lm, prompt, key: lm.generate(prompt, 12, temperature=1.0, key=key))
    prompt = jnp.array([1, 2])
    a = generate(lm, prompt, jax.random.key(0))
    assert a.shape == (12,) and a.dtype == jnp.int32
    assert np.all((np.asarray(a) >= 0) & (np.asarray(a) < VOCAB))
    np.testing.assert_array_equal(a, generate(lm, prompt, jax.random.key(0)))
    assert lm.generate(prompt, 0, temperature=0.0).shape == (0,)


def test_charlm_state_carries_between_chunks(lm, key):
    tokens = jax.random.randint(key, (2, 8), 0, VOCAB)
    whole, final = lm(tokens)
    first, state = lm(tokens[:, :5], initial_state=lm.initial_state(2))
    second, final2 = lm(tokens[:, 5:], initial_state=state)
    np.testing.assert_allclose(jnp.concatenate([first, second], 1), whole, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(final2.c, final.c, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda: SequenceClassifier(F, H, 2, pooling="median", rngs=nnx.Rngs(0)),
            ValueError,
            r"pooling must be one of \('last', 'mean', 'max', 'attention'\); got 'median'",
        ),
        (
            lambda: SequenceRegressor(
                F, H, 1, pooling="attention", attention="x", rngs=nnx.Rngs(0)
            ),
            ValueError,
            r"attention must be one of \('additive', 'dot'\); got 'x'",
        ),
        (
            lambda: SequenceClassifier(F, H, 2, rngs=nnx.Rngs(0))(jnp.ones((B, T, F + 1))),
            ValueError,
            r"xs must be \(batch, time, 3\) for Recurrent\(in_features=3\); got shape \(3, 5, 4\)",
        ),
        (
            lambda: SequenceClassifier(F, H, 2, pooling="mean", rngs=nnx.Rngs(0))(
                jnp.ones((B, T, F)), return_attention=True
            ),
            ValueError,
            "return_attention=True needs pooling='attention'; this model pools with 'mean'",
        ),
        (
            lambda: SequenceTagger(F, H, 2, output_dropout=1.5, rngs=nnx.Rngs(0)),
            ValueError,
            r"output_dropout must lie in \[0, 1\)",
        ),
        (
            lambda: SiameseMatcher(F, H, rngs=nnx.Rngs(0))(
                jnp.ones((B, T, F)), jnp.ones((2, T, F))
            ),
            ValueError,
            r"xs_a and xs_b must have the same batch shape; got shapes \(3, 5, 3\) and \(2, 5, 3\)",
        ),
        (
            lambda: SiameseMatcher(F, H, similarity="l1", rngs=nnx.Rngs(0)),
            ValueError,
            r"similarity must be one of \('cosine', 'dot'\); got 'l1'",
        ),
        (
            lambda: CharLM(VOCAB, H, rngs=nnx.Rngs(0))(jnp.ones((2, 3))),
            TypeError,
            "tokens must have an integer dtype; got float32",
        ),
        (
            lambda: CharLM(VOCAB, H, rngs=nnx.Rngs(0))(jnp.ones((2, 3, 1), jnp.int32)),
            ValueError,
            r"tokens must be \(batch, time\) token ids; got shape \(2, 3, 1\)",
        ),
        (
            lambda: CharLM(VOCAB, H, rngs=nnx.Rngs(0)).generate(jnp.array([1]), 3),
            ValueError,
            "generate needs a key to sample when temperature > 0",
        ),
        (
            lambda: CharLM(VOCAB, H, rngs=nnx.Rngs(0)).generate(
                jnp.array([1]), 3, temperature=-1.0
            ),
            ValueError,
            "temperature must be >= 0",
        ),
        (
            lambda: CharLM(VOCAB, H, rngs=nnx.Rngs(0)).generate(
                jnp.zeros((1, 0), jnp.int32), 3, temperature=0.0
            ),
            ValueError,
            r"prompt must hold at least one token; got shape \(1, 0\)",
        ),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_bfloat16_matmuls_keep_float32_outputs(key):
    data = CASES["classifier-dot"].data(key)
    make = lambda dtype: SequenceClassifier(
        F, H, 2, pooling="attention", attention="dot", dtype=dtype, rngs=nnx.Rngs(0)
    )
    run = nnx.jit(lambda model: model(data["xs"], lengths=data["lengths"]))
    full, half = run(make(None)), run(make(jnp.bfloat16))
    assert half.dtype == jnp.float32
    np.testing.assert_allclose(half, full, atol=5e-2)


def test_imports_point_one_way():
    """The pure core never imports Flax; jlstm.nn never imports jlstm.train or jlstm.data."""
    code = (
        "import sys; import jlstm.heads, jlstm.attention, jlstm.losses; "
        "assert 'flax' not in sys.modules, 'pure core imported flax'; "
        "import jlstm.nn; "
        "bad = [m for m in sys.modules if m.startswith(('jlstm.train', 'jlstm.data'))]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
