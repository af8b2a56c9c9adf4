"""The fast path (jlstm._fused: custom VJP) against the plain path (autodiff of lax.scan).

Both run the same layer on the same parameters; values and gradients must
agree to float tolerance with and without lengths/mask, reversed,
bidirectional (through jlstm.stack), with remat, and within a bound in
bfloat16.
"""

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jlstm import LSTMState, _fused, init_params, layer
from jlstm.layer import _scan_reference
from jlstm.stack import init_stack_params, stack

INPUT = 3
IN_PLACE = "contracting_dims = [0, 1] x [0, 1]"  # the in-place weight gradients, as lowered


@contextlib.contextmanager
def plain_path():
    """Switch the fast path off (read at trace time)."""
    _fused.ENABLED = False
    try:
        yield
    finally:
        _fused.ENABLED = True


def inputs(shape, seed=1):
    return jax.random.normal(jax.random.key(seed), shape)


def noisy_params(key, input_size, hidden):
    """Initialised parameters with a non-trivial bias (zeros would hide bias bugs)."""
    p = init_params(key, input_size, hidden)
    return p._replace(b=p.b + 0.3 * inputs(p.b.shape, seed=7))


def holes_mask(batch, steps):
    """Right padding plus held steps in the middle: the general mask."""
    lengths = np.linspace(0, steps, batch).round().astype(int)
    mask = np.arange(steps)[None, :] < lengths[:, None]
    if steps > 2:
        mask[-1, 1] = False  # a hole inside the last (longest) sequence
    return jnp.asarray(mask)


def loss_and_grads(run, params, xs, state):
    """A loss that touches every output: all hs and both final states, with weights."""
    weights = inputs((2,), seed=11)

    def loss(p, x, h0, c0):
        hs, final = run(p, x, LSTMState(h0, c0))
        return (
            (hs * jnp.sin(hs)).sum() + weights[0] * final.h.sum() + weights[1] * (final.c**2).sum()
        )

    value, grads = jax.value_and_grad(loss, argnums=(0, 1, 2, 3))(params, xs, state.h, state.c)
    return value, grads


def assert_close(actual, desired, rtol=2e-5, atol=2e-6):
    for a, d in zip(jax.tree.leaves(actual), jax.tree.leaves(desired), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(d), rtol=rtol, atol=atol)


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("steps", [1, 9])
@pytest.mark.parametrize("hidden", [1, 6])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("masking", ["none", "lengths", "holes"])
def test_fast_equals_plain_values_and_gradients(key, batch, steps, hidden, reverse, masking):
    params = noisy_params(key, INPUT, hidden)
    xs = inputs((batch, steps, INPUT))
    state = LSTMState(*inputs((2, batch, hidden), seed=2))
    kwargs = dict(reverse=reverse)
    if masking == "lengths":
        kwargs["lengths"] = jnp.asarray(np.linspace(0, steps, batch).round().astype(np.int32))
    elif masking == "holes":
        kwargs["mask"] = holes_mask(batch, steps)

    def run(p, x, s):
        return layer(p, x, initial_state=s, **kwargs)

    fast = jax.jit(lambda *a: loss_and_grads(run, *a))(params, xs, state)
    with plain_path():
        plain = jax.jit(lambda *a: loss_and_grads(run, *a))(params, xs, state)
    assert_close(fast, plain)
    assert_close(run(params, xs, state), plain_outputs(run, params, xs, state))


@pytest.mark.parametrize("reverse", [False, True])
def test_wide_input_forward(key, reverse):
    """Inputs at least _SPLIT_INPUT wide take the two-product forward when no gradient is taken."""
    size = _fused._SPLIT_INPUT
    params = noisy_params(key, size, 4)
    xs = inputs((3, 6, size))
    state = LSTMState(*inputs((2, 3, 4), seed=2))
    mask = holes_mask(3, 6)

    def run(p, x, s):
        return layer(p, x, initial_state=s, mask=mask, reverse=reverse)

    assert_close(jax.jit(run)(params, xs, state), plain_outputs(run, params, xs, state))
    fast = jax.jit(lambda *a: loss_and_grads(run, *a))(params, xs, state)
    with plain_path():
        plain = jax.jit(lambda *a: loss_and_grads(run, *a))(params, xs, state)
    assert_close(fast, plain)


def plain_outputs(run, params, xs, state):
    with plain_path():
        return jax.jit(run)(params, xs, state)


def test_fast_path_is_the_one_that_runs(key):
    """Guard against silently comparing the plain path with itself."""
    params = init_params(key, INPUT, 4)
    xs = inputs((2, 5, INPUT))
    text = str(jax.make_jaxpr(lambda p: layer(p, xs)[0])(params))
    assert "custom_vjp_call" in text
    with plain_path():
        text = str(jax.make_jaxpr(lambda p: layer(p, xs)[0])(params))
    assert "custom_vjp_call" not in text


def test_direct_call_matches_scan_reference(key):
    """_fused.fused_scan against layer._scan_reference, time-major and flat, side by side."""
    params = noisy_params(key, INPUT, 5)
    xs = inputs((6, 3, INPUT))  # (T, B, I)
    state = LSTMState(*inputs((2, 3, 5), seed=3))
    mask = holes_mask(3, 6).T  # (T, B)
    for reverse in (False, True):
        kw = dict(reverse=reverse, unroll=1, remat=False, dtype=None)
        fast = _fused.fused_scan(params, xs, state, mask, **kw)
        ref = _scan_reference(params, xs, state, mask, **kw)
        assert_close(fast, ref)


@pytest.mark.parametrize("masking", ["none", "lengths"])
def test_bidirectional_stack(key, masking):
    params = init_stack_params(key, INPUT, 5, num_layers=2, bidirectional=True)
    xs = inputs((4, 8, INPUT))
    lengths = jnp.array([8, 5, 1, 0]) if masking == "lengths" else None
    initial = LSTMState(*inputs((2, 4, 4, 5), seed=4))  # (layers * directions, B, H)

    def loss(p, x, h0, c0):
        ys, final = stack(p, x, lengths=lengths, initial_state=LSTMState(h0, c0))
        return (ys**2).sum() + final.h.sum() + (final.c**3).sum()

    grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3)))
    fast = grad(params, xs, initial.h, initial.c)
    with plain_path():
        plain = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3)))(
            params, xs, initial.h, initial.c
        )
    assert_close(fast, plain)


@pytest.mark.parametrize("steps", [1, 7, 16, 23])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("masking", ["none", "holes"])
def test_remat_equals_no_remat(key, steps, reverse, masking):
    """Checkpointing every k ~ sqrt(T) steps (with a padded last segment) changes nothing."""
    params = noisy_params(key, INPUT, 4)
    xs = inputs((3, steps, INPUT))
    state = LSTMState(*inputs((2, 3, 4), seed=5))
    mask = holes_mask(3, steps) if masking == "holes" else None

    def run(remat):
        return lambda p, x, s: layer(p, x, initial_state=s, mask=mask, reverse=reverse, remat=remat)

    with_remat = jax.jit(lambda *a: loss_and_grads(run(True), *a))(params, xs, state)
    without = jax.jit(lambda *a: loss_and_grads(run(False), *a))(params, xs, state)
    assert_close(with_remat, without)
    with plain_path():
        plain = jax.jit(lambda *a: loss_and_grads(run(True), *a))(params, xs, state)
    assert_close(with_remat, plain)


def test_remat_keeps_only_segment_states(key):
    """remat=True on a long sequence needs far less temporary memory than remat=False."""
    params = init_params(key, INPUT, 16)
    xs = jnp.zeros((2, 4096, INPUT))

    def temp_bytes(remat):
        grad = jax.jit(jax.grad(lambda p, x: layer(p, x, remat=remat)[0].sum(), argnums=(0, 1)))
        stats = grad.lower(params, xs).compile().memory_analysis()
        return stats.temp_size_in_bytes

    assert temp_bytes(True) < temp_bytes(False) / 4


def test_bfloat16_error_is_bounded(key):
    params = noisy_params(key, 16, 32)
    xs = inputs((8, 40, 16))
    lengths = jnp.array([40, 33, 20, 10, 5, 1, 0, 40])

    def results(dtype):
        def loss(p, x):
            hs, final = layer(p, x, lengths=lengths, dtype=dtype)
            return (hs**2).sum() + final.c.sum()

        hs = jax.jit(lambda p, x: layer(p, x, lengths=lengths, dtype=dtype)[0])(params, xs)
        return hs, jax.jit(jax.grad(loss, argnums=(0, 1)))(params, xs)

    h32, g32 = results(None)
    h16, g16 = results(jnp.bfloat16)
    assert h16.dtype == jnp.float32  # outputs stay float32
    assert float(jnp.abs(h16 - h32).max()) < 2e-2
    for a, b in zip(jax.tree.leaves(g16), jax.tree.leaves(g32), strict=True):
        assert a.dtype == b.dtype == jnp.float32
        assert float(jnp.abs(a - b).max()) < 3e-2 * float(jnp.abs(b).max())


def test_bfloat16_fast_equals_bfloat16_plain(key):
    """The bf16 fast path rounds where the plain bf16 path rounds (same matmul inputs)."""
    params = noisy_params(key, 8, 16)
    xs = inputs((4, 12, 8))

    def loss(p, x):
        return (layer(p, x, dtype=jnp.bfloat16)[0] ** 2).sum()

    fast = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(params, xs)
    with plain_path():
        plain = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(params, xs)
    # Forward values: the same bf16 products; gradients: bf16 products in a different order.
    assert_close(fast[0], plain[0], rtol=1e-4)
    assert_close(fast[1], plain[1], rtol=2e-2, atol=2e-2)


def test_vmap_of_fast_path(key):
    params = noisy_params(key, INPUT, 4)
    xs = inputs((5, 6, INPUT))
    lengths = jnp.array([6, 4, 3, 1, 0])

    def loss(p, x, n):
        return (layer(p, x[None], lengths=n[None])[0] ** 2).sum()

    per_sequence = jax.vmap(jax.grad(loss), in_axes=(None, 0, 0))(params, xs, lengths)
    batched = jax.grad(lambda p: (layer(p, xs, lengths=lengths)[0] ** 2).sum())(params)
    assert_close(jax.tree.map(lambda g: g.sum(0), per_sequence), batched, rtol=1e-4, atol=1e-5)


def test_second_order_float64(key):
    """The custom backward is itself differentiable (reverse over reverse)."""
    params32, xs32, mask = noisy_params(key, INPUT, 3), inputs((2, 4, INPUT)), holes_mask(2, 4)
    with jax.enable_x64(True):
        params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params32)
        xs = jnp.asarray(xs32, jnp.float64)

        def f(p, x):
            hs, final = layer(p, x, mask=mask)
            return (hs**2).sum() + final.c.sum()

        assert _fused.supported(params, xs, LSTMState(xs[:, 0, :3], xs[:, 0, :3]), None)
        check_grads(f, (params, xs), order=2, modes=("rev",), atol=1e-6, rtol=1e-6)


def test_unsupported_inputs_fall_back(key):
    """Mixed parameter dtypes and empty inputs run the plain path and still work."""
    params = init_params(key, INPUT, 4)
    mixed = params._replace(b=params.b.astype(jnp.bfloat16))
    state = LSTMState(jnp.zeros((2, 4)), jnp.zeros((2, 4)))
    assert not _fused.supported(mixed, jnp.zeros((5, 2, INPUT)), state, None)
    assert not _fused.supported(params, jnp.zeros((0, 2, INPUT)), state, None)
    hs, final = layer(params, jnp.zeros((2, 0, INPUT)))
    assert hs.shape == (2, 0, 4) and final.h.shape == (2, 4)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("masking", ["none", "holes"])
@pytest.mark.parametrize("remat", [False, True])
def test_batch_in_place_form_equals_plain(key, monkeypatch, reverse, masking, remat):
    """The weight-gradient form used when several devices are present (the (T, B)
    axes contracted unreshaped) gives the plain path's values and gradients."""
    monkeypatch.setattr(jax, "device_count", lambda *_: 2)  # read when the layer is traced
    params = noisy_params(key, INPUT, 5)
    xs = inputs((4, 9, INPUT))
    state = LSTMState(*inputs((2, 4, 5), seed=3))
    mask = holes_mask(4, 9) if masking == "holes" else None

    def run(p, x, s):
        return layer(p, x, initial_state=s, mask=mask, reverse=reverse, remat=remat)

    fast_fn = jax.jit(lambda *a: loss_and_grads(run, *a))
    text = fast_fn.lower(params, xs, state).as_text()
    assert IN_PLACE in text  # the in-place form is the one traced
    fast = fast_fn(params, xs, state)
    with plain_path():
        plain = jax.jit(lambda *a: loss_and_grads(run, *a))(params, xs, state)
    assert_close(fast, plain)


def test_wide_hidden_takes_in_place_form_on_one_device(key, monkeypatch):
    """From H = _IN_PLACE_HIDDEN the in-place form runs on one device too; below it
    the reshaped form runs. Both give the same gradients. (Against the plain
    path, test_batch_in_place_form_equals_plain covers the in-place form: at
    H = 512 both forms differ from the plain path by the same float32 rounding
    of the 515-term products, just above that test's tolerance.)"""
    hidden = _fused._IN_PLACE_HIDDEN
    params = noisy_params(key, INPUT, hidden)
    xs = inputs((2, 3, INPUT))
    state = LSTMState(*inputs((2, 2, hidden), seed=4))

    def grads_fn():
        run = lambda p, x, s: layer(p, x, initial_state=s)  # noqa: E731
        return jax.jit(lambda *a: loss_and_grads(run, *a))

    wide = grads_fn()
    assert IN_PLACE in wide.lower(params, xs, state).as_text()
    monkeypatch.setattr(_fused, "_IN_PLACE_HIDDEN", hidden + 1)  # read when traced
    reshaped = grads_fn()
    assert IN_PLACE not in reshaped.lower(params, xs, state).as_text()
    assert_close(wide(params, xs, state), reshaped(params, xs, state))
