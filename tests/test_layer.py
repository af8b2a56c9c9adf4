"""The scanned layer against a Python loop over the cell; lengths, mask, reverse; bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jlstm import LSTMState, cell, init_params, layer, zero_state

INPUT, HIDDEN = 3, 5


@pytest.fixture
def params(key):
    return init_params(key, INPUT, HIDDEN)


def inputs(shape, seed=1):
    return jax.random.normal(jax.random.key(seed), shape)


def loop_reference(params, xs, state, reverse=False):
    """One unpadded sequence, stepped by a Python loop over `cell`. xs: (T, I)."""
    order = range(xs.shape[0])[::-1] if reverse else range(xs.shape[0])
    hs = [None] * xs.shape[0]
    for t in order:
        state, hs[t] = cell(params, state, xs[t])
    hs = jnp.stack(hs) if hs else jnp.zeros((0, params.hidden_size))
    return hs, state


def padded_reference(params, xs, lengths, reverse=False):
    """Each sequence of a right-padded batch on its own, zeros at padding."""
    batch, steps, _ = xs.shape
    out = np.zeros((batch, steps, params.hidden_size), np.float32)
    finals = []
    for b in range(batch):
        n = int(lengths[b])
        hs, final = loop_reference(params, xs[b, :n], zero_state((), params.hidden_size), reverse)
        out[b, :n] = hs
        finals.append(final)
    return out, LSTMState(*(jnp.stack(parts) for parts in zip(*finals, strict=True)))


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("steps", [1, 9])
@pytest.mark.parametrize("hidden", [1, 16])
@pytest.mark.parametrize("reverse", [False, True])
def test_layer_matches_python_loop(key, batch, steps, hidden, reverse):
    params = init_params(key, INPUT, hidden)
    xs = inputs((batch, steps, INPUT))
    state = LSTMState(*inputs((2, batch, hidden), seed=2))
    hs, final = layer(params, xs, initial_state=state, reverse=reverse)
    ref_hs, ref_final = jax.vmap(
        lambda x, h, c: loop_reference(params, x, LSTMState(h, c), reverse)
    )(xs, state.h, state.c)
    np.testing.assert_allclose(hs, ref_hs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(final.h, ref_final.h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(final.c, ref_final.c, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("reverse", [False, True])
def test_bfloat16_close_to_float32(params, reverse):
    xs = inputs((4, 12, INPUT))
    lengths = jnp.array([12, 7, 1, 0])
    hs32, final32 = layer(params, xs, lengths=lengths, reverse=reverse)
    hs16, final16 = layer(params, xs, lengths=lengths, reverse=reverse, dtype=jnp.bfloat16)
    assert hs16.dtype == jnp.float32 and final16.c.dtype == jnp.float32
    np.testing.assert_allclose(hs16, hs32, atol=3e-2)
    np.testing.assert_allclose(final16.c, final32.c, atol=5e-2)
    np.testing.assert_array_equal(hs16[1, 7:], 0.0)


def test_reverse_equals_flipped_sequence(params):
    xs = inputs((3, 8, INPUT))
    hs, final = layer(params, xs, reverse=True)
    flipped_hs, flipped_final = layer(params, xs[:, ::-1])
    np.testing.assert_allclose(hs, flipped_hs[:, ::-1], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(final.c, flipped_final.c, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("reverse", [False, True])
def test_lengths_equal_each_unpadded_sequence(params, reverse):
    xs = inputs((5, 7, INPUT))
    lengths = jnp.array([7, 3, 1, 0, 6])
    hs, final = layer(params, xs, lengths=lengths, reverse=reverse)
    ref_hs, ref_final = padded_reference(params, xs, lengths, reverse)
    np.testing.assert_allclose(hs, ref_hs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(final.h, ref_final.h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(final.c, ref_final.c, rtol=1e-5, atol=1e-6)
    for b, n in enumerate(lengths):
        np.testing.assert_array_equal(hs[b, n:], 0.0)  # exactly zero at padding


def test_length_zero_returns_initial_state(params):
    xs = inputs((2, 4, INPUT))
    state = LSTMState(*inputs((2, 2, HIDDEN), seed=3))
    hs, final = layer(params, xs, initial_state=state, lengths=jnp.array([0, 4]))
    np.testing.assert_array_equal(final.h[0], state.h[0])
    np.testing.assert_array_equal(final.c[0], state.c[0])
    np.testing.assert_array_equal(hs[0], 0.0)
    full_hs, full_final = layer(params, xs, initial_state=state)
    np.testing.assert_allclose(hs[1], full_hs[1], rtol=1e-6)
    np.testing.assert_allclose(final.c[1], full_final.c[1], rtol=1e-6)


@pytest.mark.parametrize("reverse", [False, True])
def test_padding_invariance_values_and_gradients(params, reverse):
    """The same sequences padded to T and to 2T: same outputs, final state and gradients."""
    steps = 6
    xs = inputs((3, steps, INPUT))
    lengths = jnp.array([6, 4, 2])
    padded = jnp.concatenate([xs, inputs((3, steps, INPUT), seed=9)], axis=1)  # junk padding

    def loss(p, x):
        hs, final = layer(p, x, lengths=lengths, reverse=reverse)
        return (hs**2).sum() + (final.h * final.c).sum()

    hs_t, final_t = layer(params, xs, lengths=lengths, reverse=reverse)
    hs_2t, final_2t = layer(params, padded, lengths=lengths, reverse=reverse)
    np.testing.assert_allclose(hs_2t[:, :steps], hs_t, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(hs_2t[:, steps:], 0.0)
    for a, b in zip(final_2t, final_t, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)

    gp_t, gx_t = jax.grad(loss, argnums=(0, 1))(params, xs)
    gp_2t, gx_2t = jax.grad(loss, argnums=(0, 1))(params, padded)
    for a, b in zip(gp_2t, gp_t, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gx_2t[:, :steps], gx_t, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(gx_2t[:, steps:], 0.0)


def test_mask_holds_state_where_false(params):
    xs = inputs((2, 6, INPUT))
    mask = jnp.array(
        [[True, False, True, True, False, True], [False, True, True, False, False, False]]
    )
    hs, final = layer(params, xs, mask=mask)
    for b in range(2):
        real = np.flatnonzero(mask[b])
        ref_hs, ref_final = loop_reference(params, xs[b, real], zero_state((), HIDDEN))
        np.testing.assert_allclose(hs[b, real], ref_hs, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(hs[b, ~np.asarray(mask[b])], 0.0)
        np.testing.assert_allclose(final.c[b], ref_final.c, rtol=1e-5, atol=1e-6)


def test_mask_from_lengths_equals_lengths(params):
    xs = inputs((3, 5, INPUT))
    lengths = jnp.array([5, 2, 0])
    mask = jnp.arange(5)[None, :] < lengths[:, None]
    for reverse in (False, True):
        a = layer(params, xs, lengths=lengths, reverse=reverse)
        b = layer(params, xs, mask=mask, reverse=reverse)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
            np.testing.assert_array_equal(x, y)


def test_time_major_equals_batch_major(params):
    xs = inputs((3, 5, INPUT))
    lengths = jnp.array([5, 2, 3])
    hs, final = layer(params, xs, lengths=lengths)
    hs_tm, final_tm = layer(params, jnp.swapaxes(xs, 0, 1), lengths=lengths, time_major=True)
    np.testing.assert_allclose(jnp.swapaxes(hs_tm, 0, 1), hs, rtol=1e-6)
    np.testing.assert_allclose(final_tm.c, final.c, rtol=1e-6)
    mask = jnp.arange(5)[:, None] < lengths[None, :]  # (T, B)
    hs_mask, _ = layer(params, jnp.swapaxes(xs, 0, 1), mask=mask, time_major=True)
    np.testing.assert_allclose(hs_mask, hs_tm, rtol=1e-6)


def test_leading_batch_dims_and_unbatched(params):
    xs = inputs((2, 3, 5, INPUT))
    lengths = jnp.array([[5, 1, 0], [2, 3, 4]])
    hs, final = layer(params, xs, lengths=lengths)
    flat_hs, flat_final = layer(params, xs.reshape(6, 5, INPUT), lengths=lengths.reshape(6))
    np.testing.assert_allclose(hs.reshape(6, 5, HIDDEN), flat_hs, rtol=1e-6)
    np.testing.assert_allclose(final.h.reshape(6, HIDDEN), flat_final.h, rtol=1e-6)
    one_hs, one_final = layer(params, xs[0, 0])  # (T, I): no batch axis at all
    np.testing.assert_allclose(one_hs, flat_hs[0], rtol=1e-5, atol=1e-7)  # B=1 vs B=6 matmul
    assert one_final.h.shape == (HIDDEN,)


@pytest.mark.parametrize("option", [{"unroll": 3}, {"remat": True}])
def test_unroll_and_remat_change_nothing(params, option):
    xs = inputs((2, 7, INPUT))
    lengths = jnp.array([7, 4])

    def loss(p, x, **kw):
        hs, final = layer(p, x, lengths=lengths, **kw)
        return (hs**2).sum() + final.c.sum()

    np.testing.assert_allclose(loss(params, xs, **option), loss(params, xs), rtol=1e-6)
    for a, b in zip(jax.grad(loss)(params, xs, **option), jax.grad(loss)(params, xs), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_jit_grad_vmap_compose(params):
    xs = inputs((4, 6, INPUT))
    lengths = jnp.array([6, 5, 2, 1])

    def loss(p, x, n):
        return layer(p, x, lengths=n)[0].sum()

    eager = loss(params, xs, lengths)
    np.testing.assert_allclose(jax.jit(loss)(params, xs, lengths), eager, rtol=1e-5)
    # vmap over the batch of single (T, I) sequences equals the batched call.
    per_seq = jax.vmap(lambda x, n: layer(params, x[None], lengths=n[None])[0][0])(xs, lengths)
    np.testing.assert_allclose(per_seq, layer(params, xs, lengths=lengths)[0], rtol=1e-6)
    grads = jax.jit(jax.grad(loss))(params, xs, lengths)
    assert all(float(jnp.abs(g).sum()) > 0 for g in grads)


def test_check_grads_float64(params):
    with jax.enable_x64(True):
        p64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        xs = jnp.asarray(inputs((2, 4, INPUT)), jnp.float64)
        lengths = jnp.array([4, 2])

        def f(p, x):
            hs, final = layer(p, x, lengths=lengths, reverse=True)
            return hs.sum() + (final.c**2).sum()

        assert f(p64, xs).dtype == jnp.float64
        check_grads(f, (p64, xs), order=2, modes=("rev",), atol=1e-6, rtol=1e-6)


def test_traced_once_per_shape(params):
    traces = []

    @jax.jit
    def run(p, x, n):
        traces.append(1)
        return layer(p, x, lengths=n)[0]

    xs = inputs((2, 5, INPUT))
    run(params, xs, jnp.array([5, 3]))
    run(params, xs * 2, jnp.array([1, 2]))
    assert len(traces) == 1


def test_long_sequence_compiles_to_a_loop(params, monkeypatch):
    def lowered_text():
        run = jax.jit(lambda p, x: layer(p, x)[0])
        return run.lower(params, jnp.zeros((1, 20000, INPUT))).as_text()

    monkeypatch.setenv("JLSTM_CPU_KERNEL", "0")  # the lax.scan forward
    text = lowered_text()
    assert "while" in text
    assert len(text) < 200_000  # no unrolled copy of the step per time step
    monkeypatch.setenv("JLSTM_CPU_KERNEL", "1")  # one custom call where the CPU kernel builds
    text = lowered_text()
    assert "while" in text or "jlstm_lstm_forward" in text
    assert len(text) < 200_000


class TestBadInput:
    def test_xs_rank_one(self, params):
        with pytest.raises(ValueError, match=r"xs must be \(\*batch, T, 3\).*got shape \(3,\)"):
            layer(params, jnp.zeros(3))

    def test_input_size_mismatch(self, params):
        with pytest.raises(
            ValueError, match=r"to match params.w_x \(3, 20\); got shape \(2, 4, 7\)"
        ):
            layer(params, jnp.zeros((2, 4, 7)))

    def test_time_major_message(self, params):
        with pytest.raises(ValueError, match=r"xs must be \(T, \*batch, 3\)"):
            layer(params, jnp.zeros((2, 4, 7)), time_major=True)

    def test_lengths_shape(self, params):
        with pytest.raises(ValueError, match=r"lengths must have shape \(2,\).*got \(3,\)"):
            layer(params, jnp.zeros((2, 4, 3)), lengths=jnp.array([1, 2, 3]))

    def test_lengths_dtype(self, params):
        with pytest.raises(TypeError, match="lengths must have an integer dtype; got float32"):
            layer(params, jnp.zeros((2, 4, 3)), lengths=jnp.array([1.0, 2.0]))

    @pytest.mark.parametrize("bad", [[5, 1], [-1, 2]])
    def test_lengths_values_when_concrete(self, params, bad):
        with pytest.raises(ValueError, match=r"lengths must lie in \[0, T=4\]"):
            layer(params, jnp.zeros((2, 4, 3)), lengths=jnp.array(bad))

    def test_lengths_values_under_jit_clip(self, params):
        """Documented: under jit, lengths above T act as T and below 0 as 0."""
        xs = inputs((2, 4, INPUT))
        run = jax.jit(lambda n: layer(params, xs, lengths=n))
        clipped = layer(params, xs, lengths=jnp.array([4, 0]))
        for a, b in zip(
            jax.tree.leaves(run(jnp.array([9, -3]))), jax.tree.leaves(clipped), strict=True
        ):
            np.testing.assert_array_equal(a, b)

    def test_mask_shape(self, params):
        with pytest.raises(ValueError, match=r"mask must have shape \(2, 4\).*got \(4, 2\)"):
            layer(params, jnp.zeros((2, 4, 3)), mask=jnp.ones((4, 2), bool))

    def test_mask_dtype(self, params):
        with pytest.raises(TypeError, match="mask must have dtype bool; got int32"):
            layer(params, jnp.zeros((2, 4, 3)), mask=jnp.ones((2, 4), jnp.int32))

    def test_lengths_and_mask(self, params):
        with pytest.raises(ValueError, match="give lengths or mask, not both"):
            layer(
                params, jnp.zeros((2, 4, 3)), lengths=jnp.array([1, 2]), mask=jnp.ones((2, 4), bool)
            )

    def test_initial_state_shape(self, params):
        bad = LSTMState(jnp.zeros((2, 5)), jnp.zeros((3, 5)))
        with pytest.raises(
            ValueError, match=r"initial_state.c must have shape \(2, 5\).*got \(3, 5\)"
        ):
            layer(params, jnp.zeros((2, 4, 3)), initial_state=bad)

    def test_initial_state_type(self, params):
        with pytest.raises(
            TypeError,
            match=r"initial_state must be an LSTMState \(the lstm cell.s state.*; got tuple",
        ):
            layer(params, jnp.zeros((2, 4, 3)), initial_state=(jnp.zeros((2, 5)),) * 2)

    def test_inconsistent_params(self, params):
        with pytest.raises(ValueError, match=r"params.b must be \(20,\)"):
            layer(params._replace(b=jnp.zeros(8)), jnp.zeros((2, 4, 3)))

    def test_unroll(self, params):
        with pytest.raises(ValueError, match="unroll must be a positive integer; got 0"):
            layer(params, jnp.zeros((2, 4, 3)), unroll=0)
