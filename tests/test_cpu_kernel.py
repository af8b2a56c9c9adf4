"""The CPU kernels (jlstm._cpu_kernel) against the lax.scan loops they replace.

Both get the same scaled weights and inputs; every output, the forward's
saved gates and states and the backward's gate gradients included, must agree
to float tolerance over shapes that exercise the kernels' edges: a hidden size that is
not a whole number of SIMD vectors, a batch that is not a whole number of
register tiles, one row, one step, and enough panels and rows that both
threads share a step's work.
"""

import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jlstm import _cpu_kernel, _fused, init_params, layer

needs_kernel = pytest.mark.skipif(
    shutil.which(os.environ.get("CXX", "c++")) is None,
    reason="no C++ compiler: the kernels cannot be built here",
)


def packed(saved):
    """The forward's saved (gates, c, h) with the gates as one (T, B, 4H) array.

    The kernels save them so; the scan without the kernels as four (T, B, H).
    """
    gates, cs, hs = saved
    if isinstance(gates, tuple):
        gates = jnp.concatenate(gates, axis=-1)
    return gates, cs, hs


def forwards(batch, steps, inputs, hidden, *, reverse, masked, save, seed=0):
    """(kernel outputs, scan outputs) for one random problem, saved gates packed."""
    keys = jax.random.split(jax.random.key(seed), 5)
    params = init_params(keys[0], inputs, hidden)
    params = params._replace(b=0.5 * jax.random.normal(keys[1], params.b.shape))
    xs = jax.random.normal(keys[2], (steps, batch, inputs))
    h0 = 0.5 * jax.random.normal(keys[3], (batch, hidden))
    c0 = 2.0 * h0
    mask = jax.random.uniform(keys[4], (steps, batch)) < 0.7 if masked else None
    config = _fused._Config(reverse=reverse, compute=np.dtype(jnp.float32), unroll=1, segment=0)

    def run(kernel):
        def f(params, xs, h0, c0, mask):
            hs, h, c, saved = _fused._forward(
                params, xs, h0, c0, mask, config._replace(kernel=kernel), save=save
            )
            return hs, h, c, None if saved is None else packed(saved)

        return jax.jit(f)(params, xs, h0, c0, mask)

    return run(True), run(False)


@needs_kernel
@pytest.mark.parametrize("batch, steps, inputs, hidden", [(5, 7, 3, 20), (13, 6, 40, 64)])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("save", [False, True])
@pytest.mark.parametrize("kernel", [True, False])  # False: the scan that stands in off the CPU
def test_batch_major_io_equals_time_major(batch, steps, inputs, hidden, masked, save, kernel):
    """xs (B, T, I) in and hs (B, T, H) out, read and written as they lie."""
    keys = jax.random.split(jax.random.key(3), 4)
    params = init_params(keys[0], inputs, hidden)
    xs = jax.random.normal(keys[1], (steps, batch, inputs))
    h0 = c0 = 0.5 * jax.random.normal(keys[2], (batch, hidden))
    mask = jax.random.uniform(keys[3], (steps, batch)) < 0.7 if masked else None
    config = _fused._Config(
        reverse=False, compute=np.dtype(jnp.float32), unroll=1, segment=0, kernel=kernel
    )

    def run(x, batch_major):
        def f(params, xs, h0, c0, mask):
            return _fused._forward(
                params, xs, h0, c0, mask, config._replace(batch_major=batch_major), save=save
            )

        return jax.jit(f)(params, x, h0, c0, mask)

    (hs, h, c, saved), want = run(jnp.swapaxes(xs, 0, 1), True), run(xs, False)
    assert hs.shape == (batch, steps, hidden)
    np.testing.assert_array_equal(np.asarray(hs), np.swapaxes(np.asarray(want[0]), 0, 1))
    for g, w in zip(jax.tree.leaves((h, c, saved)), jax.tree.leaves(want[1:]), strict=True):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w))


@needs_kernel
def test_layer_hands_the_kernel_batch_major_inputs():
    """Batch-first layer calls reach the kernels without a transposing copy."""
    params = init_params(jax.random.key(0), 3, 20)
    xs = jnp.ones((4, 6, 3))
    text = jax.jit(lambda p, x: layer(p, x)[0]).lower(params, xs).as_text()
    assert "jlstm_lstm_forward" in text and "batch_major = true" in text
    text = jax.jit(lambda p, x: layer(p, x, time_major=True)[0]).lower(params, xs).as_text()
    assert "batch_major = false" in text


@pytest.mark.parametrize("masked", [False, True])
def test_scan_saves_either_gate_layout(masked):
    """The scan that stands in for the kernels off the CPU saves the gates packed."""
    keys = jax.random.split(jax.random.key(2), 4)
    params = init_params(keys[0], 5, 20)
    xs = jax.random.normal(keys[1], (6, 3, 5))
    h0 = c0 = jnp.zeros((3, 20))
    mask = jax.random.uniform(keys[2], (6, 3)) < 0.7 if masked else None
    config = _fused._Config(reverse=False, compute=np.dtype(jnp.float32), unroll=1, segment=0)
    w, b = _fused._scaled_weights(params, config, jnp.float32)

    def saved(kernel):
        scan = _fused._forward_scan(
            params, xs, h0, c0, mask, w, b, config=config._replace(kernel=kernel), save=True
        )
        return scan[3]

    four, one = saved(False), saved(True)
    assert isinstance(four[_fused._G], tuple) and one[_fused._G].shape == (6, 3, 80)
    for g, w in zip(packed(four), one, strict=True):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w))


@needs_kernel
def test_kernel_builds_and_registers():
    assert _cpu_kernel.usable()


@needs_kernel
@pytest.mark.parametrize(
    "batch, steps, inputs, hidden",
    [
        (1, 1, 1, 1),  # the smallest: one lane of one panel
        (5, 7, 3, 20),  # H = 16 + 4: a partial panel; B: a partial tile
        (13, 6, 40, 64),  # whole panels, several tiles, two threads
        (32, 4, 9, 130),  # many panels, a 2-unit tail
    ],
)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("save", [False, True])
def test_kernel_equals_scan(batch, steps, inputs, hidden, reverse, masked, save):
    got, want = forwards(batch, steps, inputs, hidden, reverse=reverse, masked=masked, save=save)
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=2e-5, atol=2e-6)


@needs_kernel
@pytest.mark.parametrize(
    "batch, steps, hidden",
    [(1, 1, 1), (5, 7, 20), (13, 6, 64), (7, 3, 130)],  # partial and whole panels, tiles
)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_backward_kernel_equals_scan(batch, steps, hidden, reverse, masked):
    keys = jax.random.split(jax.random.key(1), 6)
    params = init_params(keys[0], 3, hidden)
    normal = lambda k, shape, scale=1.0: scale * jax.random.normal(k, shape)
    (_, _, _, saved), _ = forwards(batch, steps, 3, hidden, reverse=reverse, masked=True, save=True)
    dys = normal(keys[1], (steps, batch, hidden))
    dh, dc, c0 = (normal(k, (batch, hidden), 0.5) for k in keys[2:5])
    mask = jax.random.uniform(keys[5], (steps, batch)) < 0.7 if masked else None
    config = _fused._Config(reverse=reverse, compute=np.dtype(jnp.float32), unroll=1, segment=0)

    gates, cs, hs = saved
    before = np.array(gates)  # a copy, to check the kernel left the caller's buffer alone
    four = (tuple(jnp.split(gates, 4, axis=-1)), cs, hs)  # the scan's own layout

    def run(kernel, saved):
        def f(params, saved, dys, dh, dc, c0, mask):
            return _fused._backward_scan(
                params, saved, dys, dh, dc, c0, mask, config._replace(kernel=kernel)
            )

        return jax.jit(f)(params, saved, dys, dh, dc, c0, mask)

    # The kernel writes dG over its operand's buffer: XLA must copy the
    # caller's gates first, so `saved` is still intact for the scans after it.
    got, want = run(True, saved), run(False, four)
    packed_scan = run(False, saved)  # the scan off the CPU, reading packed gates
    for g, w, p in zip(got, want, packed_scan, strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=2e-5, atol=2e-6)
        np.testing.assert_allclose(np.asarray(p), np.asarray(w), rtol=2e-5, atol=2e-6)
    np.testing.assert_array_equal(np.asarray(gates), before)


@needs_kernel
def test_masked_steps_hold_the_state_and_output_zero():
    (hs, h, c, saved), _ = forwards(3, 5, 4, 18, reverse=False, masked=True, save=True)
    _, cs, h_all = saved
    mask = np.asarray(jax.random.uniform(jax.random.split(jax.random.key(0), 5)[4], (5, 3)) < 0.7)
    hs = np.asarray(hs)
    assert (hs[~mask] == 0).all()
    for t in range(1, 5):
        held = ~mask[t]
        np.testing.assert_array_equal(np.asarray(cs)[t, held], np.asarray(cs)[t - 1, held])
        np.testing.assert_array_equal(np.asarray(h_all)[t, held], np.asarray(h_all)[t - 1, held])
    np.testing.assert_array_equal(np.asarray(h), np.asarray(h_all)[-1])
    np.testing.assert_array_equal(np.asarray(c), np.asarray(cs)[-1])


@needs_kernel
def test_nan_propagates_like_the_scan():
    params = init_params(jax.random.key(0), 3, 20)
    xs = jnp.ones((2, 4, 3)).at[1, 2, 0].set(jnp.nan)
    grad = jax.grad(lambda p, x: layer(p, x)[0].sum(), argnums=(0, 1))
    hs = layer(params, xs)[0]
    assert np.isnan(hs[1, 2:]).all() and np.isfinite(hs[0]).all() and np.isfinite(hs[1, :2]).all()
    assert all(np.isnan(g).any() for g in jax.tree.leaves(grad(params, xs)))


@needs_kernel
@pytest.mark.parametrize("masked", [False, True])
def test_reverse_over_reverse_takes_the_scans_derivatives(monkeypatch, masked):
    params = init_params(jax.random.key(0), 3, 20)
    xs = jax.random.normal(jax.random.key(1), (2, 6, 3))
    lengths = jnp.array([6, 4]) if masked else None

    def hvp(p):  # a Hessian-vector product of a scalar loss: grad of grad
        loss = lambda p: (layer(p, xs, lengths=lengths)[0] ** 2).sum()
        inner = lambda p: jax.tree.map(jnp.vdot, jax.grad(loss)(p), params)
        return jax.grad(lambda p: sum(jax.tree.leaves(inner(p))))(p)

    first_order = jax.jit(jax.grad(lambda p: (layer(p, xs, lengths=lengths)[0] ** 2).sum()))
    assert "jlstm_lstm_backward" in first_order.lower(params).as_text()  # the kernel is on
    got = jax.jit(hvp)(params)  # a custom call alone has no derivative: this would raise
    monkeypatch.setenv("JLSTM_CPU_KERNEL", "0")
    want = jax.jit(hvp)(params)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=2e-5, atol=2e-5)


@needs_kernel
def test_narrow_builds_leave_large_steps_to_xla(monkeypatch):
    small, large = (32, 64, 128), (64, 128, 256)  # S1: 3.1 M multiply-adds a step; S2: 25 M
    monkeypatch.setattr(_cpu_kernel, "_vector_lanes", lambda: 16)  # AVX-512
    assert _cpu_kernel.usable(*small) and _cpu_kernel.usable(*large)
    monkeypatch.setattr(_cpu_kernel, "_vector_lanes", lambda: 8)  # AVX2
    assert _cpu_kernel.usable(*small) and not _cpu_kernel.usable(*large)
    params = init_params(jax.random.key(0), 128, 256)
    text = jax.jit(lambda p, x: layer(p, x)[0]).lower(params, jnp.ones((64, 3, 128))).as_text()
    assert "jlstm_lstm_forward" not in text


@needs_kernel
def test_layer_lowers_to_the_kernel_and_the_switch_turns_it_off(monkeypatch):
    params = init_params(jax.random.key(0), 3, 8)
    xs = jnp.ones((2, 5, 3))

    def lowered():
        return jax.jit(lambda p, x: layer(p, x)[0]).lower(params, xs).as_text()

    assert "jlstm_lstm_forward" in lowered()
    monkeypatch.setenv("JLSTM_CPU_KERNEL", "0")
    assert "jlstm_lstm_forward" not in lowered()


@needs_kernel
def test_vmap_over_the_kernel():
    params = init_params(jax.random.key(0), 3, 17)
    xs = jax.random.normal(jax.random.key(1), (4, 2, 6, 3))  # vmapped axis first
    run = jax.vmap(lambda x: layer(params, x, lengths=jnp.array([6, 3]))[0])
    want = jnp.stack([layer(params, x, lengths=jnp.array([6, 3]))[0] for x in xs])
    np.testing.assert_allclose(np.asarray(run(xs)), np.asarray(want), rtol=1e-6, atol=1e-7)


def test_build_failure_warns_and_falls_back(monkeypatch, tmp_path):
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("JLSTM_CACHE_DIR", str(tmp_path))
    caches = (_cpu_kernel._registered, _cpu_kernel._library)
    for cache in caches:
        cache.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="no C.. compiler"):
            assert not _cpu_kernel.usable()
        params = init_params(jax.random.key(0), 3, 8)
        text = jax.jit(lambda p, x: layer(p, x)[0]).lower(params, jnp.ones((2, 5, 3))).as_text()
        assert "jlstm_lstm_forward" not in text and "while" in text
    finally:
        for cache in caches:
            cache.cache_clear()
