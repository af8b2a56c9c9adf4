"""The LSTM family's cells (peephole, cifg, layernorm_lstm, lstmp, slstm, slstm_exp) in the
engine: each against an independent NumPy transcription of its equations (values, and
gradients against float64 finite differences of the transcription), padding invariance,
``jax.test_util.check_grads``, a transformation grid against a Python loop over the step,
bidirectional stacks and ``jlstm.nn.Recurrent``, and the bad options.

Run with ``-s`` to see the measured errors against NumPy.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.test_util import check_grads

from jlstm import LSTMState, cells, init_stack_params, layer, stack
from jlstm.cells import (
    CIFG,
    LSTMP,
    SLSTM,
    LayerNormLSTM,
    LSTMPParams,
    PeepholeLSTM,
    PeepholeParams,
    SLSTMParams,
    SLSTMState,
)
from jlstm.nn import Recurrent

B, T, I, H = 3, 5, 3, 4  # noqa: E741
P, HEADS = 2, 2  # lstmp's projection, slstm's heads
LENGTHS = np.array([5, 3, 0])
CELLS = ("peephole", "cifg", "layernorm_lstm", "lstmp", "slstm", "slstm_exp")
OPTIONS = {"lstmp": dict(proj_size=P), "slstm": dict(num_heads=HEADS)}
OPTIONS["slstm_exp"] = OPTIONS["slstm"]


# Cases beyond the first of each kind are slow (CI runs them): the reverse direction, the
# hessian, check_grads, float64 values, and stacks of cells whose state is plain (h, c).
REVERSE = [False, pytest.param(True, marks=pytest.mark.slow)]


def slow_but(*names):
    return [n if n in names else pytest.param(n, marks=pytest.mark.slow) for n in CELLS]


def out_size(name):
    return P if name == "lstmp" else H


# --- parameters and data ------------------------------------------------------------------


def make_params(name, key=0, dtype=jnp.float32, scale=0.3):
    """A cell's initial parameters with noise on every leaf, so that zero peepholes, unit
    gains and zero biases do not hide a term of the equations."""
    params = cells.get(name).init(jax.random.key(key), I, H, dtype=dtype, **OPTIONS.get(name, {}))
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(key + 100), len(leaves))
    noisy = [
        a + scale * jax.random.normal(k, a.shape, dtype) for a, k in zip(leaves, keys, strict=True)
    ]
    params = jax.tree.unflatten(tree, noisy)
    if name.startswith("slstm"):  # spread the exponential gates' inputs, both max branches
        spread = 2.0 * jax.random.normal(jax.random.key(key + 7), params.b.shape, dtype)
        params = params._replace(b=params.b + spread)
    return params


def make_xs(key=1, steps=T, dtype=jnp.float32):
    return jax.random.normal(jax.random.key(key), (B, steps, I), dtype)


def loss(ys, final):
    """A scalar that reads every output and every field of the final state, nonlinearly."""
    return (jnp.sin(ys) ** 2).sum() + sum((jnp.tanh(a) ** 2).sum() for a in final)


# --- the NumPy transcriptions -------------------------------------------------------------


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def gates_of(p, blocks, h, x):
    """The equations' W z_t + b per gate, z_t = [h_{t-1}; x_t], W = [w_h; w_x]^T by blocks."""
    z = np.concatenate([h, x], axis=-1)
    w = np.concatenate([p["w_h"], p["w_x"]], axis=0)  # (H_in + I, G * H)
    hidden = w.shape[1] // blocks
    return [z @ w[:, k * hidden : (k + 1) * hidden] + p["b"][k * hidden : (k + 1) * hidden]
            for k in range(blocks)]  # fmt: skip


def np_peephole(p, state, x):
    h, c = state
    a_i, a_f, a_g, a_o = gates_of(p, 4, h, x)
    i = sigmoid(a_i + p["p_i"] * c)
    f = sigmoid(a_f + p["p_f"] * c)
    c = f * c + i * np.tanh(a_g)
    o = sigmoid(a_o + p["p_o"] * c)
    h = o * np.tanh(c)
    return (h, c), h


def np_cifg(p, state, x):
    h, c = state
    a_f, a_g, a_o = gates_of(p, 3, h, x)
    f = sigmoid(a_f)
    c = f * c + (1.0 - f) * np.tanh(a_g)
    h = sigmoid(a_o) * np.tanh(c)
    return (h, c), h


def np_layer_norm(a, gain, bias, eps=1e-5):
    mu = a.mean(-1, keepdims=True)
    sigma = np.sqrt(((a - mu) ** 2).mean(-1, keepdims=True) + eps)
    return gain * (a - mu) / sigma + bias


def np_layernorm_lstm(p, state, x):
    h, c = state
    a = (
        np_layer_norm(h @ p["w_h"], p["gain_h"], 0.0)
        + np_layer_norm(x @ p["w_x"], p["gain_x"], 0.0)
        + p["b"]
    )
    a_i, a_f, a_g, a_o = np.split(a, 4, axis=-1)
    c = sigmoid(a_f) * c + sigmoid(a_i) * np.tanh(a_g)
    h = sigmoid(a_o) * np.tanh(np_layer_norm(c, p["gain_c"], p["bias_c"]))
    return (h, c), h


def np_lstmp(p, state, x):
    r, c = state  # r = the projected h_{t-1}, (P,)
    a_i, a_f, a_g, a_o = gates_of(p, 4, r, x)
    c = sigmoid(a_f) * c + sigmoid(a_i) * np.tanh(a_g)
    r = (sigmoid(a_o) * np.tanh(c)) @ p["w_hr"]
    return (r, c), r


def dense_recurrent(w_h):
    """The block-diagonal R (H, 4H) of sLSTM's per-head blocks, gate-major columns."""
    heads, d, _ = w_h.shape
    hidden = heads * d
    r = np.zeros((hidden, 4 * hidden))
    for k in range(heads):
        for g in range(4):
            r[k * d : (k + 1) * d, g * hidden + k * d : g * hidden + (k + 1) * d] = w_h[k][
                :, g * d : (g + 1) * d
            ]
    return r


def slstm_preactivations(p, h, x, forget):
    a = x @ p["w_x"] + h @ dense_recurrent(p["w_h"]) + p["b"]
    ti, tf, tz, to = np.split(a, 4, axis=-1)
    log_f = -np.logaddexp(0.0, -tf) if forget == "sigmoid" else tf  # log σ(f̃) or f̃
    return ti, log_f, np.tanh(tz), sigmoid(to)


def np_slstm(forget):
    """The paper's stabilised update; the zero state (n = 0) has m_{t-1} = -inf."""

    def step(p, state, x):
        h, c, n, m = state
        log_i, log_f, z, o = slstm_preactivations(p, h, x, forget)
        m_prev = np.where(n == 0, -np.inf, m)
        m = np.maximum(log_f + m_prev, log_i)
        i = np.exp(log_i - m)
        f = np.exp(log_f + m_prev - m)
        c = f * c + i * z
        n = f * n + i
        h = o * c / n
        return (h, c, n, m), h

    return step


def np_slstm_unstabilised(forget):
    """The paper's equations before stabilisation: c_t = f c + i z, n_t = f n + i."""

    def step(p, state, x):
        h, c, n = state
        log_i, log_f, z, o = slstm_preactivations(p, h, x, forget)
        i, f = np.exp(log_i), np.exp(log_f)
        c = f * c + i * z
        n = f * n + i
        return (o * c / n, c, n), o * c / n

    return step


NUMPY_STEPS = {
    "peephole": np_peephole,
    "cifg": np_cifg,
    "layernorm_lstm": np_layernorm_lstm,
    "lstmp": np_lstmp,
    "slstm": np_slstm("sigmoid"),
    "slstm_exp": np_slstm("exp"),
}


def np_zero_state(name):
    if name == "lstmp":
        return (np.zeros(P), np.zeros(H))
    return tuple(np.zeros(H) for _ in range(4 if name.startswith("slstm") else 2))


def np_run(step, zero, params, xs, lengths, reverse=False):
    """Each sequence on its own real steps only (reversed for ``reverse``), float64:
    ys (B, T, out) with zeros at padding, and the final state's fields (B, ...)."""
    p = {k: np.asarray(v, np.float64) for k, v in params._asdict().items()}
    xs = np.asarray(xs, np.float64)
    ys, finals = [], []
    for b, length in enumerate(lengths):
        order = range(length - 1, -1, -1) if reverse else range(length)
        state, row = zero, np.zeros((xs.shape[1], zero[0].shape[-1]))
        for t in order:
            state, row[t] = step(p, state, xs[b, t])
        ys.append(row)
        finals.append(state)
    return np.stack(ys), tuple(np.stack(f) for f in zip(*finals, strict=True))


def np_loss(name, params, xs, lengths):
    ys, final = np_run(NUMPY_STEPS[name], np_zero_state(name), params, xs, lengths)
    return (np.sin(ys) ** 2).sum() + sum((np.tanh(a) ** 2).sum() for a in final)


# --- against NumPy --------------------------------------------------------------------------


def max_errors(actual, desired):
    actual, desired = np.asarray(actual, np.float64), np.asarray(desired, np.float64)
    err = np.abs(actual - desired)
    return err.max(), err.max() / max(np.abs(desired).max(), 1e-300)


@pytest.mark.parametrize("reverse", REVERSE)
@pytest.mark.parametrize("name", CELLS)
def test_matches_numpy(name, reverse):
    """Outputs and every field of the final state, float32 against float64 NumPy."""
    params, xs = make_params(name), make_xs()
    ys, final = layer(params, xs, cell=name, lengths=jnp.asarray(LENGTHS), reverse=reverse)
    n_ys, n_final = np_run(NUMPY_STEPS[name], np_zero_state(name), params, xs, LENGTHS, reverse)
    assert ys.shape == (B, T, out_size(name)) and final._fields == type(final)._fields
    errors = {"ys": max_errors(ys, n_ys)}
    errors.update(
        {f: max_errors(a, d) for f, a, d in zip(final._fields, final, n_final, strict=True)}
    )
    worst_abs = max(e[0] for e in errors.values())
    worst_rel = max(e[1] for e in errors.values())
    print(f"\n{name} reverse={reverse} vs NumPy: max abs {worst_abs:.1e}, max rel {worst_rel:.1e}")
    for field, (abs_err, rel_err) in errors.items():
        assert abs_err <= 2e-5 or rel_err <= 2e-6, f"{field}: abs {abs_err:.2e} rel {rel_err:.2e}"


@pytest.mark.slow
@pytest.mark.parametrize("name", CELLS)
def test_float64_matches_numpy(name):
    with jax.enable_x64(True):
        params, xs = make_params(name, dtype=jnp.float64), make_xs(dtype=jnp.float64)
        ys, final = layer(params, xs, cell=name, lengths=jnp.asarray(LENGTHS))
    n_ys, n_final = np_run(NUMPY_STEPS[name], np_zero_state(name), params, xs, LENGTHS)
    for a, d in zip((ys, *final), (n_ys, *n_final), strict=True):
        assert a.dtype == np.float64
        np.testing.assert_allclose(a, d, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("name", CELLS)
def test_gradient_matches_numpy_finite_differences(name):
    """jax.grad's directional derivatives equal central differences of the NumPy
    transcription, in float64, along random directions through every parameter and xs."""
    with jax.enable_x64(True):
        params, xs = make_params(name, dtype=jnp.float64), make_xs(dtype=jnp.float64)

        def f(params, xs):
            return loss(*layer(params, xs, cell=name, lengths=jnp.asarray(LENGTHS)))

        g_params, g_xs = jax.grad(f, argnums=(0, 1))(params, xs)
    rng = np.random.default_rng(0)
    eps = 1e-6
    worst = 0.0
    for _ in range(3):
        v_params = jax.tree.map(lambda a: rng.normal(size=a.shape), params)
        v_xs = rng.normal(size=xs.shape)
        moved = [
            np_loss(
                name,
                jax.tree.map(lambda a, v, s=s: np.asarray(a) + s * eps * v, params, v_params),
                np.asarray(xs) + s * eps * v_xs,
                LENGTHS,
            )
            for s in (1.0, -1.0)
        ]
        numeric = (moved[0] - moved[1]) / (2 * eps)
        analytic = sum(
            float(np.vdot(g, v))
            for g, v in zip(jax.tree.leaves(g_params), jax.tree.leaves(v_params), strict=True)
        ) + float(np.vdot(g_xs, v_xs))
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)
        worst = max(worst, abs(analytic - numeric) / abs(numeric))
    print(f"\n{name} gradient vs NumPy central differences: max rel {worst:.1e}")


@pytest.mark.parametrize("forget", ["sigmoid", "exp"])
def test_slstm_stabiliser_does_not_change_h(forget):
    """The stabilised and the unstabilised equations give the same h_t; jlstm equals both."""
    name = "slstm" if forget == "sigmoid" else "slstm_exp"
    params, xs = make_params(name), make_xs()
    ys, _ = layer(params, xs, cell=name)
    lengths = np.full(B, T)
    stable, _ = np_run(np_slstm(forget), np_zero_state(name), params, xs, lengths)
    zero = tuple(np.zeros(H) for _ in range(3))
    plain, _ = np_run(np_slstm_unstabilised(forget), zero, params, xs, lengths)
    np.testing.assert_allclose(stable, plain, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ys, plain, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("name", ["slstm", pytest.param("slstm_exp", marks=pytest.mark.slow)])
def test_slstm_extreme_gates_stay_finite(name):
    """Input-gate pre-activations of ±300 (exp overflows float32 beyond ~88) and a large
    forget pre-activation: the stabiliser keeps every value and gradient finite, n_t >= 1."""
    params, xs = make_params(name), make_xs()
    sign = jnp.where(jnp.arange(H) % 2 == 0, 300.0, -300.0)
    b = params.b.at[:H].add(sign).at[H : 2 * H].add(50.0)
    params = params._replace(b=b)
    ys, final = layer(params, xs, cell=name, lengths=jnp.asarray(LENGTHS))
    assert all(bool(jnp.isfinite(a).all()) for a in (ys, *final))
    assert bool((final.n[LENGTHS > 0] >= 1).all())
    grads = jax.grad(lambda p: loss(*layer(p, xs, cell=name, lengths=jnp.asarray(LENGTHS))))(params)
    assert all(bool(jnp.isfinite(g).all()) for g in grads)


def test_peephole_with_zero_peepholes_is_the_lstm():
    """A fresh peephole cell (peepholes at zero) computes exactly the LSTM."""
    peep = PeepholeLSTM().init(jax.random.key(0), I, H)
    lstm = cells.LSTMParams(peep.w_x, peep.w_h, peep.b)
    xs = make_xs()
    for a, d in zip(
        jax.tree.leaves(layer(peep, xs, lengths=jnp.asarray(LENGTHS))),
        jax.tree.leaves(layer(lstm, xs, lengths=jnp.asarray(LENGTHS), implementation="reference")),
        strict=True,
    ):
        np.testing.assert_array_equal(a, d)


def test_initialisation():
    lstm = cells.get("lstm").init(jax.random.key(0), I, H)
    peep = cells.get("peephole").init(
        jax.random.key(0), I, H, peephole_init=jax.nn.initializers.ones
    )
    np.testing.assert_array_equal(peep.p_f, 1.0)
    cifg = cells.get("cifg").init(jax.random.key(0), I, H, forget_bias=2.0)
    np.testing.assert_array_equal(cifg.b, np.r_[np.full(H, 2.0), np.zeros(2 * H)])
    ln = cells.get("layernorm_lstm").init(jax.random.key(0), I, H)
    np.testing.assert_array_equal(ln.b, lstm.b)  # the LSTM's forget bias in the f block
    for gain in (ln.gain_x, ln.gain_h, ln.gain_c):
        np.testing.assert_array_equal(gain, 1.0)
    np.testing.assert_array_equal(ln.bias_c, 0.0)
    assert cells.get("lstmp").init(jax.random.key(0), I, 8).w_hr.shape == (8, 4)  # P = H // 2
    s = cells.get("slstm").init(jax.random.key(0), I, H, num_heads=HEADS)
    assert s.w_h.shape == (HEADS, H // HEADS, 4 * H // HEADS) and s.num_heads == HEADS
    np.testing.assert_array_equal(s.b, lstm.b)


def test_registered():
    assert set(CELLS) <= set(cells.names())
    for name in CELLS:
        params = make_params(name)
        assert cells.resolve(name, params).name == name
    assert cells.resolve(None, make_params("slstm_exp")).name == "slstm"  # the params' default
    assert cells.get("slstm_exp") == SLSTM("exp")


# --- padding invariance ----------------------------------------------------------------------


@pytest.mark.parametrize("reverse", REVERSE)
@pytest.mark.parametrize("name", CELLS)
def test_padding_invariance(name, reverse):
    """The same sequences padded to T and to 2T (with noise in the padding): the same outputs
    at the real steps, zeros after, the same final state and the same gradients."""
    params, xs = make_params(name), make_xs()
    noise = 5.0 * jax.random.normal(jax.random.key(9), xs.shape)
    long = jnp.concatenate([xs, noise], axis=1)  # (B, 2T, I)
    lengths = jnp.asarray(LENGTHS)

    def run(params, xs):
        ys, final = layer(params, xs, cell=name, lengths=lengths, reverse=reverse)
        return loss(ys[:, :T], final), (ys, final)

    grad = jax.grad(run, argnums=(0, 1), has_aux=True)
    (g_p, g_x), (ys, final) = grad(params, xs)
    (g_p2, g_x2), (ys2, final2) = grad(params, long)
    np.testing.assert_allclose(ys2[:, :T], ys, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(ys2[:, T:], 0.0)
    for a, b in zip((*final2, *g_p2), (*final, *g_p), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g_x2[:, :T], g_x, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(g_x2[:, T:], 0.0)


# --- check_grads -----------------------------------------------------------------------------


@pytest.mark.slow  # about 10 s a cell: second-order transforms of both directions compile
@pytest.mark.parametrize("name", CELLS)
def test_check_grads(name):
    """Order 2, forward and reverse mode, float64, with ragged lengths, reverse and xs.

    eps=1e-5 rather than the default 1e-4: layer norm's 1/σ gives the loss a large third
    derivative, and the central differences' error (∝ eps²) is 6e-5 at 1e-4."""
    with jax.enable_x64(True):
        params, xs = make_params(name, dtype=jnp.float64), make_xs(dtype=jnp.float64)

        @jax.jit
        def f(params, xs):
            forward = layer(params, xs, cell=name, lengths=jnp.asarray(LENGTHS))
            backward = layer(params, xs, cell=name, lengths=jnp.asarray(LENGTHS), reverse=True)
            return loss(*forward) + loss(*backward)

        check_grads(f, (params, xs), order=2, modes=("fwd", "rev"), eps=1e-5)


# --- the transformation grid against a Python loop over the step --------------------------


def python_loop(name, params, xs, lengths):
    """The step in a Python loop, holding the state where t >= lengths: no lax.scan."""
    cell = cells.get(name)
    state = cell.zero_state(params, xs.shape[0])
    ys = []
    for t in range(xs.shape[1]):
        new, y = cell.step(params, state, xs[:, t])
        real = (t < lengths)[:, None]
        state = type(state)(*(jnp.where(real, a, b) for a, b in zip(new, state, strict=True)))
        ys.append(jnp.where(real, y, jnp.zeros_like(y)))
    return jnp.stack(ys, axis=1), state


def engine(name, params, xs, lengths):
    return layer(params, xs, cell=name, lengths=lengths)  # implementation="auto"


GRID = {
    "jit": lambda f, p, x, ls: jax.jit(f)(p, x, ls),
    "grad": lambda f, p, x, ls: jax.grad(lambda p, x: loss(*f(p, x, ls)), argnums=(0, 1))(p, x),
    "vmap_batch": lambda f, p, x, ls: jax.vmap(lambda xi, li: f(p, xi[None], li[None]))(x, ls),
    "jvp": lambda f, p, x, ls: jax.jvp(
        lambda b, x: f(p._replace(b=b), x, ls), (p.b, x), (jnp.cos(p.b), jnp.sin(x))
    ),
    "hessian": lambda f, p, x, ls: jax.hessian(lambda b: loss(*f(p._replace(b=b), x, ls)))(p.b),
}


@pytest.mark.parametrize(
    "transform",
    [t if t != "hessian" else pytest.param(t, marks=pytest.mark.slow) for t in GRID],
)
@pytest.mark.parametrize("name", CELLS)
def test_transformation_grid(name, transform):
    params, xs, lengths = make_params(name), make_xs(), jnp.asarray(LENGTHS)
    actual = GRID[transform](functools.partial(engine, name), params, xs, lengths)
    desired = GRID[transform](functools.partial(python_loop, name), params, xs, lengths)
    leaves_a, leaves_d = jax.tree.leaves(actual), jax.tree.leaves(desired)
    assert len(leaves_a) == len(leaves_d) and leaves_a
    for a, d in zip(leaves_a, leaves_d, strict=True):
        assert a.shape == d.shape
        np.testing.assert_allclose(a, d, rtol=2e-5, atol=2e-5)
    assert max(float(jnp.abs(d).max()) for d in leaves_d) > 0


# --- stacks, NNX, dtypes ---------------------------------------------------------------------


@pytest.mark.parametrize("name", slow_but("lstmp"))
def test_bidirectional_stack_and_recurrent(name):
    options = OPTIONS.get(name, {})
    params = init_stack_params(
        jax.random.key(0), I, H, num_layers=2, bidirectional=True, cell=name, **options
    )
    out = out_size(name)
    assert params[1][0].w_x.shape[0] == 2 * out  # the next layer reads D * output_size
    xs, lengths = make_xs(), jnp.asarray(LENGTHS)
    ys, final = stack(params, xs, lengths=lengths, cell=name)
    assert ys.shape == (B, T, 2 * out)
    np.testing.assert_array_equal(ys[1, 3:], 0.0)
    zero = cells.get(name).zero_state(params[0][0], (4, B))
    assert [a.shape for a in final] == [a.shape for a in zero]
    # Layer 0's backward direction is the reverse layer, its final state the stack's entry 1.
    back, back_final = layer(params[0][1], xs, cell=name, lengths=lengths, reverse=True)
    for a, b in zip(final, back_final, strict=True):
        np.testing.assert_allclose(a[1], b, rtol=1e-6, atol=1e-7)
    # The same parameters in the NNX module, and a module built by name.
    module = Recurrent.from_params(params, cell=name)
    ys_m, final_m = module(xs, lengths=lengths, initial_state=module.initial_state(B))
    np.testing.assert_allclose(ys_m, ys, rtol=1e-6, atol=1e-7)
    for a, b in zip(final_m, final, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    fresh = Recurrent(
        I, H, cell=name, num_layers=2, bidirectional=True, rngs=nnx.Rngs(0), **options
    )
    assert fresh.out_features == 2 * out
    ys_f, _ = fresh(xs, lengths=lengths)
    assert ys_f.shape == (B, T, 2 * out) and bool(jnp.isfinite(ys_f).all())


@pytest.mark.slow
@pytest.mark.parametrize("name", CELLS)
def test_bfloat16_matmuls(name):
    """dtype=bfloat16 runs the matmuls in bfloat16; the state and outputs stay float32."""
    params, xs = make_params(name), make_xs()
    ys, final = layer(params, xs, cell=name, dtype=jnp.bfloat16)
    ref, _ = layer(params, xs, cell=name)
    assert ys.dtype == jnp.float32 and all(a.dtype == jnp.float32 for a in final)
    np.testing.assert_allclose(ys, ref, atol=0.1)


def test_lstmp_initial_state_sizes():
    params = make_params("lstmp")
    state = LSTMState(jnp.ones((B, P)), jnp.ones((B, H)))
    ys, final = layer(params, make_xs(), initial_state=state)
    assert ys.shape == (B, T, P) and final.h.shape == (B, P) and final.c.shape == (B, H)
    with pytest.raises(ValueError, match=r"initial_state.h must have shape \(3, 2\)"):
        layer(params, make_xs(), initial_state=LSTMState(jnp.ones((B, H)), jnp.ones((B, H))))


# --- bad options -----------------------------------------------------------------------------


class TestBadOptions:
    def test_proj_size_not_below_hidden_size(self):
        with pytest.raises(ValueError, match=r"proj_size must be smaller than hidden_size \(4\)"):
            LSTMP().init(jax.random.key(0), I, H, proj_size=H)
        with pytest.raises(ValueError, match="proj_size must be a positive integer; got 0"):
            LSTMP().init(jax.random.key(0), I, H, proj_size=0)
        with pytest.raises(ValueError, match="proj_size must be smaller than hidden_size"):
            Recurrent(I, H, cell="lstmp", proj_size=5, rngs=nnx.Rngs(0))

    def test_num_heads_must_divide_hidden_size(self):
        with pytest.raises(
            ValueError, match=r"num_heads must divide hidden_size \(4\); got num_heads=3"
        ):
            SLSTM().init(jax.random.key(0), I, H, num_heads=3)
        with pytest.raises(ValueError, match="num_heads must be a positive integer"):
            init_stack_params(jax.random.key(0), I, H, cell="slstm", num_heads=0)

    def test_unknown_forget_mode(self):
        with pytest.raises(ValueError, match=r"forget must be one of \('sigmoid', 'exp'\)"):
            SLSTM(forget="tanh")

    def test_eps(self):
        with pytest.raises(ValueError, match="eps must be a positive number; got 0"):
            LayerNormLSTM(eps=0)

    def test_option_of_another_cell(self):
        with pytest.raises(TypeError, match="num_heads"):
            CIFG().init(jax.random.key(0), I, H, num_heads=2)

    @pytest.mark.parametrize(
        "name, field, shape, message",
        [
            ("peephole", "p_o", (H + 1,), r"params.p_o must be \(4,\); got shape \(5,\)"),
            ("cifg", "w_h", (H, 4 * H), r"params.w_h must be \(hidden_size, 3 \* hidden_size\)"),
            ("layernorm_lstm", "gain_x", (H,), r"params.gain_x must be \(16,\); got shape"),
            ("layernorm_lstm", "bias_c", (4 * H,), r"params.bias_c must be \(4,\); got shape"),
            ("lstmp", "w_h", (H, 4 * H), r"params.w_h must be \(2, 16\) to match w_hr"),
            ("lstmp", "w_hr", (P, H), r"params.w_hr must be \(hidden_size, proj_size\) with"),
            ("slstm", "w_h", (H, 4 * H), r"params.w_h must be \(num_heads, head_size, 4 \*"),
            ("slstm", "b", (H,), r"params.b must be \(16,\) to match w_h"),
        ],
    )
    def test_params_shapes(self, name, field, shape, message):
        params = make_params(name)._replace(**{field: jnp.zeros(shape)})
        with pytest.raises(ValueError, match=message):
            layer(params, make_xs(), cell=name)

    def test_params_type(self):
        with pytest.raises(TypeError, match="params must be a PeepholeParams for cell 'peephole'"):
            layer(make_params("cifg"), make_xs(), cell="peephole")
        with pytest.raises(TypeError, match="must be an LSTMPParams; got PeepholeParams"):
            LSTMP().sizes(make_params("peephole"))
        assert isinstance(make_params("peephole"), PeepholeParams)
        assert isinstance(make_params("lstmp"), LSTMPParams)

    def test_state_type(self):
        params = make_params("slstm")
        assert isinstance(cells.get("slstm").zero_state(params, B), SLSTMState)
        with pytest.raises(TypeError, match=r"initial_state must be an? SLSTMState .*\('h', 'c'"):
            layer(params, make_xs(), initial_state=LSTMState(jnp.zeros((B, H)), jnp.zeros((B, H))))
        assert isinstance(params, SLSTMParams)
