"""``implementation=jlstm.parallel.Parallel(...)``: parallel_scan's options through the layer,
the stack and the NNX modules, and the report of each solve (what the training log shows)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jlstm
from jlstm import implementation
from jlstm.nn import Recurrent
from jlstm.parallel import Parallel, parallel_scan
from jlstm.train.logging import NewtonLog


@pytest.fixture
def problem():
    params = jlstm.init_params(jax.random.key(0), 3, 8)
    xs = jax.random.normal(jax.random.key(1), (2, 40, 3))
    return params, xs, jnp.array([40, 23])


def reported(seen):
    jax.effects_barrier()
    return seen


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        (dict(jacobian="dense"), ValueError, r"jacobian must be one of \('full', 'quasi'\)"),
        (dict(damping=-1.0), ValueError, r"damping must be a finite float >= 0; got -1.0"),
        (dict(tol=0.0), ValueError, r"tol must be a float > 0 or None; got 0.0"),
        (dict(max_iters=-2), ValueError, r"max_iters must be an integer >= 0"),
        (dict(on_failure="ignore"), ValueError, r"on_failure must be one of"),
        (dict(report=3), TypeError, r"report must be a function or None; got 3"),
    ],
)
def test_bad_options_are_named_when_made(options, error, message):
    with pytest.raises(error, match=message):
        Parallel(**options)


def test_an_object_that_is_no_implementation_is_named():
    with pytest.raises(ValueError, match=r"or a jlstm.parallel.Parallel; got 3"):
        jlstm.layer(jlstm.init_params(jax.random.key(0), 3, 8), jnp.ones((1, 4, 3)),
                    implementation=3)  # fmt: skip


def test_it_is_the_parallel_implementation():
    assert implementation.choose(Parallel(jacobian="full"), _call()) == "parallel"
    assert Parallel() == Parallel() and hash(Parallel()) == hash(Parallel())  # a static option


def _call():
    from jlstm.cells import get

    f32 = np.dtype(np.float32)
    return implementation.Call(get("lstm"), 2, 40, 3, 8, (f32,) * 3, f32, f32, "cpu", 1)


@pytest.mark.parametrize("jacobian", ["quasi", "full"])
def test_options_reach_the_solve_and_the_report_sees_it(problem, jacobian):
    params, xs, lengths = problem
    seen = []
    solver = Parallel(jacobian=jacobian, report=seen.append)
    run = jax.jit(lambda p, x: jlstm.layer(p, x, lengths=lengths, implementation=solver))
    hs, final = run(params, xs)
    want_hs, want_final = jlstm.layer(params, xs, lengths=lengths, implementation="reference")
    np.testing.assert_allclose(hs, want_hs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(final.c, want_final.c, rtol=1e-5, atol=1e-6)

    # The report is the solve's own info: the same as parallel_scan's, time-major.
    zeros = jnp.zeros((2, 8))
    mask = jnp.arange(40)[:, None] < lengths[None]
    _, _, info = parallel_scan(params, jnp.swapaxes(xs, 0, 1), zeros, zeros, mask,
                               jacobian=jacobian)  # fmt: skip
    (got,) = reported(seen)
    assert got.states is None
    assert int(got.iterations) == int(info.iterations) > 1
    assert bool(got.converged) and not bool(got.fell_back)
    assert jacobian == "quasi" or int(got.iterations) < 10  # DEER: few Newton steps


def test_a_cap_that_stops_newton_reports_the_fallback_and_keeps_the_answer(problem):
    params, xs, lengths = problem
    seen = []
    solver = Parallel(max_iters=1, report=seen.append)
    hs, _ = jlstm.layer(params, xs, lengths=lengths, implementation=solver)
    want, _ = jlstm.layer(params, xs, lengths=lengths, implementation="reference")
    np.testing.assert_allclose(hs, want, rtol=1e-5, atol=1e-6)
    (got,) = reported(seen)
    assert int(got.iterations) == 1 and not bool(got.converged) and bool(got.fell_back)


def test_raise_on_failure_reaches_the_caller(problem):
    params, xs, _ = problem
    with pytest.raises(RuntimeError, match="parallel_scan did not converge"):
        jlstm.layer(params, xs, implementation=Parallel(max_iters=1, on_failure="raise"))


def test_gradients_under_options_equal_the_reference(problem):
    params, xs, lengths = problem

    def loss(p, implementation):
        hs, final = jlstm.layer(p, xs, lengths=lengths, reverse=True,
                                implementation=implementation)  # fmt: skip
        return (hs**2).sum() + final.c.sum()

    got = jax.grad(loss)(params, Parallel(jacobian="full", damping=0.5))
    want = jax.grad(loss)(params, "reference")
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def test_the_stack_and_the_module_take_it(problem):
    _, xs, lengths = problem
    seen = []
    solver = Parallel(report=seen.append)
    params = jlstm.init_stack_params(jax.random.key(2), 3, 8, num_layers=2, bidirectional=True)
    hs, _ = jlstm.stack(params, xs, lengths=lengths, implementation=solver)
    want, _ = jlstm.stack(params, xs, lengths=lengths, implementation="reference")
    np.testing.assert_allclose(hs, want, rtol=1e-5, atol=1e-6)
    assert len(reported(seen)) == 4  # two layers, two directions: one solve each

    seen.clear()
    model = Recurrent(3, 8, implementation=solver, rngs=nnx.Rngs(0))
    out, _ = nnx.jit(lambda m, x: m(x, lengths=lengths))(model, xs)
    reference = Recurrent(3, 8, implementation="reference", rngs=nnx.Rngs(0))
    np.testing.assert_allclose(out, reference(xs, lengths=lengths)[0], rtol=1e-5, atol=1e-6)
    assert len(reported(seen)) == 1


def test_newton_log_sums_up_the_solves(problem):
    params, xs, lengths = problem
    log = NewtonLog()
    assert log.drain() == {}
    step = jax.jit(
        lambda p, x, cap: jlstm.layer(
            p, x, lengths=lengths, implementation=Parallel(max_iters=cap, report=log)
        )[0].sum(),  # fmt: skip
        static_argnums=2,
    )
    step(params, xs, 100)
    step(params, xs, 100)
    step(params, xs, 1)  # stops unconverged: the sequential answer
    want = []
    for cap in (100, 100, 1):
        seen = []
        jlstm.layer(params, xs, lengths=lengths,
                    implementation=Parallel(max_iters=cap, report=seen.append))  # fmt: skip
        want.append(int(reported(seen)[0].iterations))
    figures = log.drain()
    assert figures == {
        "newton_iterations": pytest.approx(np.mean(want)),
        "newton_iterations_max": max(want),
        "newton_converged": pytest.approx(2 / 3),
        "newton_fell_back": 1,
    }
    assert log.drain() == {}  # drained
