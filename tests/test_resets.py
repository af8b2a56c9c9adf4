"""Per-example state resets: an episode packed into a batch row equals the episode run on its
own, in outputs, final states and gradients, on every implementation that has them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jlstm import init_stack_params, layer, stack
from jlstm.nn import Recurrent

T = 9
# Row 0: episodes [0, 4) and [4, 9); row 1: [0, 2), [2, 7), [7, 9) -- resets before steps.
EPISODES = {0: [(0, 4), (4, 9)], 1: [(0, 2), (2, 7), (7, 9)]}
RESETS = jnp.zeros((2, T), bool).at[0, 4].set(True).at[1, 2].set(True).at[1, 7].set(True)


def setup(cell="lstm"):
    params = init_stack_params(jax.random.key(0), 3, 4, cell=cell)[0][0]
    xs = jax.random.normal(jax.random.key(1), (2, T, 3))
    return params, xs


def packed(params, xs, name, reverse, **kw):
    def loss(p, x):
        hs, final = layer(p, x, resets=RESETS, reverse=reverse, implementation=name, **kw)
        return (jnp.sin(hs) ** 2).sum() + (final[0] ** 2).sum(), (hs, final)

    return jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(params, xs)


def separate(params, xs, reverse, lengths=None):
    """Every episode on its own, from zeros; the row's final state is its last episode's
    (the first one's when read backwards)."""

    def loss(p, x):
        total, hs, finals = 0.0, jnp.zeros((*x.shape[:2], 4)), []
        for row, episodes in EPISODES.items():
            end = T if lengths is None else int(lengths[row])
            for a, e in episodes:
                e = min(e, end)
                if a >= e:
                    continue
                h, final = layer(
                    p, x[row : row + 1, a:e], reverse=reverse, implementation="reference"
                )
                hs = hs.at[row, a:e].set(h[0])
                if (a == 0) if reverse else (e == end):
                    finals.append(final[0][0])
        total = (jnp.sin(hs) ** 2).sum() + (jnp.stack(finals) ** 2).sum()
        return total, hs

    return jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(params, xs)


def close(a, b, tol=2e-5):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=tol, atol=tol)


@pytest.mark.parametrize("name", ["reference", "xla", "auto"])
@pytest.mark.parametrize("reverse", [False, True])
def test_packed_episodes_equal_separate_episodes(name, reverse):
    params, xs = setup()
    ((want_value, want_hs), want_grads) = separate(params, xs, reverse)
    (v, (hs, _)), g = packed(params, xs, name, reverse)
    close(v, want_value)
    close(hs, want_hs)
    close(g, want_grads)


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_other_cells_reset_too(cell):
    params, xs = setup(cell)
    hs, _ = layer(params, xs, resets=RESETS)
    alone, _ = layer(params, xs[:1, 4:])
    close(hs[0, 4:], alone[0])


@pytest.mark.parametrize("name", ["reference", "xla"])
def test_resets_compose_with_lengths(name):
    params, xs = setup()
    lengths = jnp.array([6, 8])
    hs, _ = layer(params, xs, resets=RESETS, lengths=lengths, implementation=name)
    (_, want_hs), _ = separate(params, xs, False, lengths=lengths)
    close(hs, want_hs)
    assert float(jnp.abs(hs[0, 6:]).max()) == 0.0


@pytest.mark.parametrize("name", ["reference", "xla"])
def test_truncated_bptt_over_a_stream_with_resets(name):
    """Two chunks carrying the state equal one call over the whole stream."""
    params, xs = setup()
    whole, final = layer(params, xs, resets=RESETS, implementation=name)
    first, carry = layer(params, xs[:, :5], resets=RESETS[:, :5], implementation=name)
    second, last = layer(
        params, xs[:, 5:], resets=RESETS[:, 5:], initial_state=carry, implementation=name
    )
    close(jnp.concatenate([first, second], axis=1), whole)
    close(last, final)


@pytest.mark.parametrize("name", ["reference", "xla"])
def test_remat_with_resets(name):
    params, xs = setup()
    f = lambda remat: jax.grad(
        lambda p: (layer(p, xs, resets=RESETS, remat=remat, implementation=name)[0] ** 2).sum()
    )(params)
    close(f(True), f(False))


@pytest.mark.parametrize(
    "transform",
    [
        lambda f, b: jax.jvp(f, (b,), (jnp.cos(b),))[1],
        lambda f, b: jax.hessian(f)(b),
        lambda f, b: jax.vmap(lambda s: jax.grad(lambda b: s * f(b))(b))(jnp.arange(1.0, 3.0)),
    ],
    ids=["jvp", "hessian", "vmap_grad"],
)
def test_transformations_with_resets_equal_the_reference(transform):
    params, xs = setup()

    def f(name):
        return lambda b: (
            jnp.sin(layer(params._replace(b=b), xs, resets=RESETS, implementation=name)[0]) ** 2
        ).sum()

    close(transform(f("xla"), params.b), transform(f("reference"), params.b))


def test_the_kernel_has_no_resets_and_auto_takes_the_xla_loops():
    params, xs = setup()
    with pytest.raises(ValueError, match="the kernel has no state resets"):
        layer(params, xs, resets=RESETS, implementation="cpu_kernel")
    text = jax.jit(lambda p: layer(p, xs, resets=RESETS)[0]).lower(params).as_text()
    assert "jlstm_lstm" not in text  # auto: the xla loops, no custom call


def test_stack_and_module_take_resets():
    params = init_stack_params(jax.random.key(0), 3, 4, num_layers=2, bidirectional=True)
    xs = jax.random.normal(jax.random.key(1), (2, T, 3))
    ys, _ = stack(params, xs, resets=RESETS)
    alone, _ = stack(params, xs[:1, 4:])
    close(ys[0, 4:], alone[0])
    module = Recurrent.from_params(params)
    close(module(xs, resets=RESETS)[0], ys)


def test_bad_resets_are_named():
    params, xs = setup()
    with pytest.raises(ValueError, match=r"resets must have shape \(2, 9\)"):
        layer(params, xs, resets=RESETS[:, :5])
    with pytest.raises(TypeError, match="resets must have dtype bool"):
        layer(params, xs, resets=RESETS.astype(jnp.int32))
