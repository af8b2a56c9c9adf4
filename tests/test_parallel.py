"""jlstm.parallel: the Newton solve in parallel over time equals the sequential layer.

The reference is ``jlstm.layer`` (time-major, its fast custom-VJP path) for
values and reverse-mode gradients, and a plain ``lax.scan`` over ``jlstm.cell``
for forward-mode derivatives, which the layer's custom VJP does not support.
Every comparison is of whole pytrees, to a tolerance relative to the largest
entry of each leaf: float32 1e-4, float64 1e-9.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jlstm
from jlstm.cell import LSTMParams, LSTMState, cell, init_params
from jlstm.parallel import DEFAULT_TOL, parallel_scan

INPUT = 3


def problem(key, steps, batch, hidden, *, scale=1.0, dtype=jnp.float32):
    """Parameters (recurrent weights times ``scale``, a noisy bias), inputs, initial state."""
    k_p, k_b, k_x, k_h, k_c = jax.random.split(key, 5)
    params = init_params(k_p, INPUT, hidden, dtype=dtype)
    params = params._replace(
        w_h=scale * params.w_h,
        b=params.b + 0.3 * jax.random.normal(k_b, params.b.shape, dtype),
    )
    xs = jax.random.normal(k_x, (steps, batch, INPUT), dtype)
    h0 = 0.5 * jax.random.normal(k_h, (batch, hidden), dtype)
    c0 = jax.random.normal(k_c, (batch, hidden), dtype)
    return params, xs, h0, c0


def lengths_mask(steps, batch):
    """(T, B): the first sequence full, the others shorter, the last one empty."""
    lengths = np.linspace(steps, 0, batch).round().astype(np.int32)
    return jnp.asarray(np.arange(steps)[:, None] < lengths[None, :])


def weights(key, hs_shape, hidden):
    """Random cotangents for hs and the final state, so the loss touches every output."""
    k1, k2, k3 = jax.random.split(key, 3)
    batch = hs_shape[1]
    return (
        jax.random.normal(k1, hs_shape),
        jax.random.normal(k2, (batch, hidden)),
        jax.random.normal(k3, (batch, hidden)),
    )


def loss_and_outputs(run, w):
    """A scalar of every output of ``run(params, xs, h0, c0) -> (hs, final)``, outputs as aux."""

    def loss(params, xs, h0, c0):
        hs, final = run(params, xs, h0, c0)
        dtype = hs.dtype
        value = (w[0].astype(dtype) * hs).sum()
        value += (w[1].astype(dtype) * final.h).sum() + (w[2].astype(dtype) * final.c).sum()
        return value, (hs, final)

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3), has_aux=True))


def sequential(mask, reverse):
    def run(params, xs, h0, c0):
        return jlstm.layer(
            params, xs, initial_state=LSTMState(h0, c0), mask=mask, reverse=reverse, time_major=True
        )

    return run


def parallel(mask, reverse, **options):
    def run(params, xs, h0, c0):
        hs, final, _ = parallel_scan(params, xs, h0, c0, mask, reverse=reverse, **options)
        return hs, final

    return run


def scan_reference(params, xs, h0, c0, mask=None):
    """``lax.scan`` over the cell, differentiated by JAX in both modes."""

    def step(state, inputs):
        x, m = inputs
        new, h = cell(params, state, x)
        if m is None:
            return new, h
        new = LSTMState(*(jnp.where(m[:, None], a, b) for a, b in zip(new, state, strict=True)))
        return new, jnp.where(m[:, None], h, 0.0)

    final, hs = jax.lax.scan(step, LSTMState(h0, c0), (xs, mask))
    return hs, final


def assert_close(actual, desired, rtol):
    """Every leaf within ``rtol`` times the leaf's largest magnitude (at least 1e-3)."""
    for i, (a, d) in enumerate(zip(jax.tree.leaves(actual), jax.tree.leaves(desired), strict=True)):
        a, d = np.asarray(a, np.float64), np.asarray(d, np.float64)
        assert a.shape == d.shape, f"leaf {i}: shape {a.shape} vs {d.shape}"
        scale = max(np.abs(d).max(initial=0.0), 1e-3)
        err = np.abs(a - d).max(initial=0.0) / scale
        assert err <= rtol, f"leaf {i}: relative error {err:.2e} > {rtol:.0e}"


def compare(key, steps, batch, hidden, *, masked, reverse, rtol=1e-4, scale=1.0, **options):
    """Outputs and gradients of parallel_scan against the sequential layer."""
    params, xs, h0, c0 = problem(key, steps, batch, hidden, scale=scale)
    mask = lengths_mask(steps, batch) if masked else None
    w = weights(jax.random.fold_in(key, 1), (steps, batch, hidden), hidden)
    got = loss_and_outputs(parallel(mask, reverse, **options), w)(params, xs, h0, c0)
    want = loss_and_outputs(sequential(mask, reverse), w)(params, xs, h0, c0)
    assert_close(got, want, rtol)


@pytest.mark.parametrize("jacobian", ["quasi", "full"])
@pytest.mark.parametrize("reverse", [False, True])
def test_matches_layer_values_and_gradients(key, jacobian, reverse):
    compare(key, 33, 4, 5, masked=True, reverse=reverse, jacobian=jacobian)


@pytest.mark.slow
@pytest.mark.parametrize("steps", [1, 2, 17, 200])
@pytest.mark.parametrize("hidden", [1, 8, 32])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("jacobian", ["quasi", "full"])
def test_matches_layer_grid(key, steps, hidden, masked, reverse, jacobian):
    compare(key, steps, 3, hidden, masked=masked, reverse=reverse, jacobian=jacobian)


@pytest.mark.parametrize(
    "options", [dict(jacobian="quasi", tangent="dense"), dict(jacobian="full", damping=0.5)]
)
def test_dense_tangent_and_damping_match_layer(key, options):
    compare(key, 20, 2, 4, masked=True, reverse=False, **options)


def test_jvp_matches_forward_mode_of_the_scan(key):
    params, xs, h0, c0 = problem(key, 25, 3, 6)
    mask = lengths_mask(25, 3)
    primals = (params, xs, h0, c0)
    tangents = jax.tree.map(lambda a: jax.random.normal(jax.random.key(7), a.shape), primals)
    run = jax.jit(lambda *a: jax.jvp(parallel(mask, False), a, tangents))
    got = run(*primals)
    want = jax.jit(lambda *a: jax.jvp(lambda *b: scan_reference(*b, mask), a, tangents))(*primals)
    assert_close(got, want, 1e-4)


@pytest.mark.parametrize("jacobian", ["full", pytest.param("quasi", marks=pytest.mark.slow)])
def test_float64_to_1e9(key, jacobian):
    with jax.enable_x64(True):
        params, xs, h0, c0 = problem(key, 30, 3, 5, dtype=jnp.float64)
        mask = lengths_mask(30, 3)
        w = weights(jax.random.key(3), (30, 3, 5), 5)
        got = loss_and_outputs(parallel(mask, True, jacobian=jacobian), w)(params, xs, h0, c0)
        want = loss_and_outputs(sequential(mask, True), w)(params, xs, h0, c0)
        assert_close(got, want, 1e-9)
        assert got[0][1][0].dtype == jnp.float64


def test_hessian_float64(key):
    """Forward over reverse through the custom JVP equals the same of the plain scan."""
    with jax.enable_x64(True):
        params, xs, h0, c0 = problem(key, 6, 2, 3, dtype=jnp.float64)
        mask = lengths_mask(6, 2)

        def loss(run):
            def f(h0, c0):
                hs, final = run(params, xs, h0, c0)
                return (hs**2).sum() + (final.c**3).sum()

            return jax.jit(jax.hessian(f, argnums=(0, 1)))

        got = loss(parallel(mask, False, jacobian="full"))(h0, c0)
        want = loss(lambda *a: scan_reference(*a, mask))(h0, c0)
        assert_close(got, want, 1e-9)


@pytest.mark.slow
def test_second_order_check_grads_float64(key):
    """jvp of the jvp rule and its transpose: check_grads to order 2 in both modes."""
    with jax.enable_x64(True):
        params, xs, h0, c0 = problem(key, 6, 2, 3, dtype=jnp.float64)

        def f(w_h, xs):
            hs, final, _ = parallel_scan(params._replace(w_h=w_h), xs, h0, c0, jacobian="full")
            return (hs**2).sum() + final.c.sum()

        check_grads(f, (params.w_h, xs), order=2, modes=("fwd", "rev"), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize(
    "jacobian, damping",
    [
        ("quasi", 0.0),
        ("full", 0.5),
        pytest.param("full", 0.0, marks=pytest.mark.slow),
        pytest.param("quasi", 2.0, marks=pytest.mark.slow),
    ],
)
def test_large_recurrent_weights_never_give_a_wrong_answer(key, jacobian, damping):
    """Converged or fell back, as info says; the answer is the sequential one either way."""
    for scale in (1.0, 3.0, 10.0):  # traced: one compilation for the three
        params, xs, h0, c0 = problem(key, 64, 2, 8, scale=scale)
        hs, final, info = _jit_scan(params, xs, h0, c0, jacobian=jacobian, damping=damping)
        want = jlstm.layer(params, xs, initial_state=LSTMState(h0, c0), time_major=True)
        assert_close((hs, final), want, 1e-4)
        assert bool(info.converged) != bool(info.fell_back)
        if info.converged:
            assert float(info.residual) <= DEFAULT_TOL[np.dtype(np.float32)]
        elif scale == 1.0:
            raise AssertionError(f"no convergence at scale 1: {info}")


def test_damping_converges_where_newton_overflows(key):
    """Undamped DEER's products of Jacobians overflow; λ = 0.5 keeps them bounded."""
    params, xs, h0, c0 = problem(jax.random.key(0), 200, 2, 16, scale=3.0)
    h0, c0 = jnp.zeros_like(h0), jnp.zeros_like(c0)
    _, _, newton = _jit_scan(params, xs, h0, c0, jacobian="full", max_iters=200)
    _, _, damped = _jit_scan(params, xs, h0, c0, jacobian="full", damping=0.5, max_iters=200)
    assert not newton.converged and newton.fell_back and not np.isfinite(newton.residual)
    assert damped.converged and not damped.fell_back


_jit_scan = jax.jit(
    parallel_scan, static_argnames=("jacobian", "damping", "max_iters", "tol", "on_failure")
)


def test_jit_and_vmap_over_an_extra_batch_axis(key):
    params, xs, h0, c0 = problem(key, 16, 2, 4)
    xs2 = jnp.stack([xs, 2 * xs, -xs])  # (3, T, B, I)
    hs, final, info = jax.jit(jax.vmap(lambda x: parallel_scan(params, x, h0, c0)))(xs2)
    assert info.converged.shape == (3,) and bool(info.converged.all())
    for n in range(3):
        want = jlstm.layer(params, xs2[n], initial_state=LSTMState(h0, c0), time_major=True)
        assert_close((hs[n], LSTMState(final.h[n], final.c[n])), want, 1e-4)


def test_warm_start_from_the_solution_takes_no_iterations(key):
    params, xs, h0, c0 = problem(key, 40, 2, 6)
    mask = lengths_mask(40, 2)
    hs, _, info = _jit_scan(params, xs, h0, c0, mask)
    assert int(info.iterations) > 2
    again, _, warm = _jit_scan(params, xs, h0, c0, mask, init=info.states)
    assert int(warm.iterations) == 0 and bool(warm.converged)
    np.testing.assert_array_equal(again, hs)
    # A nearby problem (the next training step) starts closer than the held initial state.
    nearby = params._replace(w_h=params.w_h * 1.01)
    _, _, cold = _jit_scan(nearby, xs, h0, c0, mask)
    _, _, warm = _jit_scan(nearby, xs, h0, c0, mask, init=info.states)
    assert int(warm.iterations) < int(cold.iterations)


def test_on_failure_raise(key):
    params, xs, h0, c0 = problem(key, 30, 2, 4)
    with pytest.raises(RuntimeError, match="did not converge: 1 iterations"):
        parallel_scan(params, xs, h0, c0, max_iters=1, on_failure="raise")
    run = jax.jit(lambda x: parallel_scan(params, x, h0, c0, max_iters=1, on_failure="raise")[0])
    with pytest.raises(jax.errors.JaxRuntimeError, match="did not converge"):
        jax.block_until_ready(run(xs))
    # Converged: no error, and the same answer as the default.
    hs, _, info = parallel_scan(params, xs, h0, c0, on_failure="raise")
    assert bool(info.converged) and not bool(info.fell_back)


def test_nan_input_counts_as_not_converged(key):
    params, xs, h0, c0 = problem(key, 8, 2, 4)
    hs, _, info = parallel_scan(params, xs.at[3, 0, 0].set(jnp.nan), h0, c0)
    assert not bool(info.converged) and bool(info.fell_back)
    assert np.isnan(np.asarray(hs[3:, 0])).all() and np.isfinite(np.asarray(hs[:, 1])).all()


def test_empty_and_single_step(key):
    params, xs, h0, c0 = problem(key, 1, 2, 4)
    hs, final, info = parallel_scan(params, xs[:0], h0, c0)
    assert hs.shape == (0, 2, 4) and int(info.iterations) == 0
    np.testing.assert_array_equal(final.c, c0)
    hs, final, info = parallel_scan(params, xs, h0, c0, jacobian="full")
    want = jlstm.layer(params, xs, initial_state=LSTMState(h0, c0), time_major=True)
    assert_close((hs, final), want, 1e-6)
    assert int(info.iterations) == 1


@pytest.mark.parametrize(
    "change, error, match",
    [
        (dict(xs=jnp.zeros((5, 2))), ValueError, r"xs must be \(T, B, 3\)"),
        (dict(h0=jnp.zeros((2, 5))), ValueError, r"h0 must be \(2, 4\)"),
        (dict(mask=jnp.ones((5, 2), jnp.int32)), TypeError, "mask must have dtype bool"),
        (dict(mask=jnp.ones((2, 5), bool)), ValueError, r"mask must be \(5, 2\)"),
        (dict(jacobian="diag"), ValueError, "jacobian must be one of"),
        (dict(damping=-1.0), ValueError, "damping must be"),
        (dict(on_failure="ignore"), ValueError, "on_failure must be one of"),
        (dict(tangent="fast"), ValueError, "tangent must be one of"),
        (dict(init=LSTMState(jnp.zeros((5, 2, 3)), jnp.zeros((5, 2, 3)))), ValueError, "init.h"),
        (dict(max_iters=2.5), ValueError, "max_iters must be"),
    ],
)
def test_bad_arguments(change, error, match):
    params = init_params(jax.random.key(0), INPUT, 4)
    args = dict(params=params, xs=jnp.zeros((5, 2, INPUT)), h0=jnp.zeros((2, 4)))
    args.update(c0=jnp.zeros((2, 4)), mask=None)
    args.update(change)
    with pytest.raises(error, match=match):
        parallel_scan(**args)


def test_bfloat16_params_are_refused():
    params = jax.tree.map(lambda a: a.astype(jnp.bfloat16), init_params(jax.random.key(0), 3, 4))
    with pytest.raises(TypeError, match="float32 or all float64"):
        parallel_scan(
            LSTMParams(*params), jnp.zeros((2, 1, 3)), jnp.zeros((1, 4)), jnp.zeros((1, 4))
        )
