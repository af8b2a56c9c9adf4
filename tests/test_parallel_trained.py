"""implementation="parallel" on trained weights and real inputs: the LSTM stack of a model
trained by configs/japanese_vowels.py (2 bidirectional layers, H = 64) on 64 sequences of
the JapaneseVowels test split, equal to the sequential layers in outputs, final states and
gradients. tests/fixtures/make_trained_lstm.py made the weights and kept the inputs."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jlstm
from jlstm.cell import LSTMParams
from jlstm.parallel import Parallel

FIXTURE = Path(__file__).parent / "fixtures" / "japanese_vowels_lstm.npz"


def trained():
    saved = np.load(FIXTURE)
    layers = []
    for layer in range(2):
        directions = []
        for direction in range(2):
            fields = (saved[f"stack/{layer}/{direction}/{f}"] for f in LSTMParams._fields)
            directions.append(LSTMParams(*map(jnp.asarray, fields)))
        layers.append(tuple(directions))
    return tuple(layers), jnp.asarray(saved["inputs"]), jnp.asarray(saved["lengths"])


def test_the_fixture_is_a_trained_stack():
    params, xs, lengths = trained()
    assert xs.shape == (64, 29, 12) and int(lengths.min()) >= 7 and int(lengths.max()) == 29
    initial = jlstm.init_stack_params(jax.random.key(0), 12, 64, num_layers=2,
                                      bidirectional=True)  # fmt: skip
    for got, fresh in zip(jax.tree.leaves(params), jax.tree.leaves(initial), strict=True):
        assert got.shape == fresh.shape
    # Training moved the forget biases away from their initial 1.0 (by 0.033 on average).
    assert float(jnp.abs(params[0][0].b[64:128] - 1.0).mean()) > 0.01


def assert_parallel_equals_sequential(model, params, xs, **options):
    """``model(params, xs, implementation=...) -> (hs, final)`` (jlstm.layer or jlstm.stack)
    with ``Parallel(**options)`` against "reference": outputs, final c and every gradient
    to 1e-4, and every solve converged without the fallback."""
    seen = []
    solver = Parallel(report=seen.append, **options)

    def loss(params, xs, implementation):
        hs, final = model(params, xs, implementation=implementation)
        return jnp.sum(jnp.tanh(hs) ** 2) + jnp.sum(final.c**2)

    run = jax.jit(lambda p, impl: model(p, xs, implementation=impl), static_argnums=1)
    (hs, final), (want_hs, want_final) = run(params, solver), run(params, "reference")
    scale = float(jnp.abs(want_hs).max())
    np.testing.assert_allclose(hs, want_hs, rtol=1e-4, atol=1e-4 * scale)
    np.testing.assert_allclose(final.c, want_final.c, rtol=1e-4, atol=1e-4)

    grads = jax.jit(jax.grad(loss, argnums=(0, 1)), static_argnums=2)
    got, want = grads(params, xs, solver), grads(params, xs, "reference")
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4 * float(jnp.abs(w).max()))

    jax.effects_barrier()
    assert seen and all(bool(info.converged) and not bool(info.fell_back) for info in seen)


@pytest.mark.parametrize(("jacobian", "rows"), [("quasi", 64), ("full", 16)])
def test_parallel_equals_sequential_on_trained_weights(jacobian, rows):
    """The dense Jacobians (2H x 2H a step and row) on 16 sequences: on all 64 the same."""
    params, xs, lengths = trained()
    lengths = lengths[:rows]
    stack = lambda p, x, **kw: jlstm.stack(p, x, lengths=lengths, **kw)
    assert_parallel_equals_sequential(stack, params, xs[:rows], jacobian=jacobian)


def test_parallel_equals_sequential_on_a_trained_character_lm():
    """configs/charlm.py's LSTM (H = 384) after 2000 updates, on 4 x 100 embedded characters
    of held-out plays (tests/fixtures/charlm_lstm.npz, the weights rounded to float16)."""
    saved = np.load(FIXTURE.with_name("charlm_lstm.npz"))
    params = LSTMParams(
        *(jnp.asarray(saved[f"stack/0/0/{f}"], jnp.float32) for f in LSTMParams._fields)
    )
    xs = jnp.asarray(saved["inputs"], jnp.float32)
    assert xs.shape == (4, 100, 64) and params.w_h.shape == (384, 1536)
    assert_parallel_equals_sequential(jlstm.layer, params, xs)
