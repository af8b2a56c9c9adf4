"""A property-based fuzz of the core against a float64 NumPy transcription of the equations.

Random shapes, lengths or masks, state resets, directions, layers, initial states, weight
scales and dtypes, for every cell and every implementation it has. Bounded for
CI (``JLSTM_FUZZ_EXAMPLES``, default 25 examples a test, well under a minute);
for a longer local run: ``JLSTM_FUZZ_EXAMPLES=500 python -m pytest tests/test_fuzz_core.py``.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jlstm import cells, stack
from jlstm.stack import init_stack_params

EXAMPLES = int(os.environ.get("JLSTM_FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def np_step(name, p, state, x):
    """One step of each cell, transcribed from its docstring's equations (float64)."""
    w_x, w_h, b = (np.asarray(a, np.float64) for a in (p.w_x, p.w_h, p.b))
    if name == "lstm":
        h, c = state
        i, f, g, o = np.split(x @ w_x + h @ w_h + b, 4, axis=-1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        return (h, c), h
    (h,) = state
    if name == "gru":
        xr, xz, xn = np.split(x @ w_x + b, 3, axis=-1)
        hr, hz, hn = np.split(h @ w_h, 3, axis=-1)
        r, z = sigmoid(xr + hr), sigmoid(xz + hz)
        n = np.tanh(xn + r * (hn + np.asarray(p.b_hn, np.float64)))
        h = (1 - z) * n + z * h
        return (h,), h
    a = x @ w_x + h @ w_h + b
    h = np.tanh(a) if name == "rnn" else np.maximum(a, 0.0)
    return (h,), h


def np_layer(name, p, xs, state, real, reverse, resets):
    """xs (B, T, I), real, resets (B, T) bool -> hs (B, T, H), final state: hold where not
    real; zero the state before a step where an episode starts (read backwards, an episode
    starts at its last step: the step before a reset)."""
    steps = xs.shape[1]
    hs = np.zeros((*xs.shape[:2], np.shape(state[0])[-1]))
    order = range(steps - 1, -1, -1) if reverse else range(steps)
    for t in order:
        starts = (
            (resets[:, t + 1] if t + 1 < steps else np.zeros(len(xs), bool))
            if reverse
            else resets[:, t]
        )
        state = tuple(np.where(starts[:, None], 0.0, s) for s in state)
        new, y = np_step(name, p, state, xs[:, t])
        m = real[:, t, None]
        state = tuple(np.where(m, n, s) for n, s in zip(new, state, strict=True))
        hs[:, t] = np.where(m, y, 0.0)
    return hs, state


def np_stack(name, params, xs, states, real, resets):
    finals = []
    for depth, directional in enumerate(params):
        outs = []
        for d, p in enumerate(directional):
            state = states[depth * len(directional) + d]
            hs, final = np_layer(name, p, xs, state, real, d == 1, resets)
            outs.append(hs)
            finals.append(final)
        xs = np.concatenate(outs, axis=-1)
    return xs, finals


@st.composite
def problems(draw):
    name = draw(st.sampled_from(["lstm", "gru", "rnn", "rnn_relu"]))
    cell = cells.get(name)
    implementation = draw(st.sampled_from(("reference", *cell.fast_implementations, "auto")))
    batch = draw(st.integers(1, 4))
    steps = draw(st.integers(0, 9))
    return dict(
        name=name,
        implementation=implementation,
        batch=batch,
        steps=steps,
        inputs=draw(st.integers(1, 5)),
        hidden=draw(st.integers(1, 6)),
        layers=draw(st.integers(1, 2)),
        bidirectional=draw(st.booleans()),
        masking=draw(st.sampled_from(["none", "lengths", "mask"])),
        real=draw(
            st.lists(
                st.lists(st.booleans(), min_size=steps, max_size=steps),
                min_size=batch,
                max_size=batch,
            )
        ),
        resets=draw(
            st.none()
            | st.lists(
                st.lists(st.booleans(), min_size=steps, max_size=steps),
                min_size=batch,
                max_size=batch,
            )
        ),
        lengths=draw(st.lists(st.integers(0, steps), min_size=batch, max_size=batch)),
        scale=draw(st.sampled_from([0.5, 1.0, 3.0])),
        with_state=draw(st.booleans()),
        time_major=draw(st.booleans()),
        dtype=draw(st.sampled_from(["float32", "bfloat16"])),
        seed=draw(st.integers(0, 2**16)),
    )


@FUZZ
@given(problems())
def test_core_equals_numpy(case):
    key = jax.random.key(case["seed"])
    k_p, k_x, k_s = jax.random.split(key, 3)
    params = init_stack_params(
        k_p,
        case["inputs"],
        case["hidden"],
        num_layers=case["layers"],
        bidirectional=case["bidirectional"],
        cell=case["name"],
    )
    params = jax.tree.map(lambda a: a * case["scale"], params)
    shape = (case["batch"], case["steps"], case["inputs"])
    xs = jax.random.normal(k_x, shape)
    count = case["layers"] * (2 if case["bidirectional"] else 1)
    zero = cells.get(case["name"]).zero_state(params[0][0], (count, case["batch"]))
    state = None
    if case["with_state"]:
        state = type(zero)(*(jax.random.normal(k_s, a.shape) for a in zero))
    kw = dict(cell=case["name"], implementation=case["implementation"], initial_state=state)
    real = np.ones(shape[:2], bool)
    if case["masking"] == "lengths":
        kw["lengths"] = jnp.array(case["lengths"], jnp.int32)
        real = np.arange(case["steps"])[None, :] < np.array(case["lengths"])[:, None]
    elif case["masking"] == "mask":
        real = np.array(case["real"], bool).reshape(shape[:2])
        kw["mask"] = jnp.asarray(real.T if case["time_major"] else real)
    if case["dtype"] == "bfloat16":
        kw["dtype"] = jnp.bfloat16
    resets = np.zeros(shape[:2], bool)
    if case["resets"] is not None:
        resets = np.array(case["resets"], bool).reshape(shape[:2])
        kw["resets"] = jnp.asarray(resets.T if case["time_major"] else resets)
    given_xs = jnp.swapaxes(xs, 0, 1) if case["time_major"] else xs
    limited = case["implementation"] in ("cpu_kernel", "parallel")  # no bf16, no resets
    if limited and case["steps"] and (case["dtype"] == "bfloat16" or case["resets"] is not None):
        with pytest.raises(ValueError, match="(dtype|float32 only|no state resets)"):
            stack(params, given_xs, time_major=case["time_major"], **kw)
        return
    ys, final = stack(params, given_xs, time_major=case["time_major"], **kw)
    if case["time_major"]:
        ys = jnp.swapaxes(ys, 0, 1)

    states = [tuple(np.asarray(a[k], np.float64) for a in (state or zero)) for k in range(count)]
    want_ys, want_finals = np_stack(
        case["name"], params, np.asarray(xs, np.float64), states, real, resets
    )
    tol = 5e-2 if case["dtype"] == "bfloat16" else 2e-5
    scale = 1.0 + np.abs(want_ys).max(initial=0.0)
    np.testing.assert_allclose(np.asarray(ys, np.float64), want_ys, atol=tol * scale, rtol=tol)
    for field, got in zip(final._fields, final, strict=True):
        want = np.stack([f[final._fields.index(field)] for f in want_finals])
        np.testing.assert_allclose(
            np.asarray(got, np.float64),
            want,
            atol=tol * (1 + np.abs(want).max(initial=0.0)),
            rtol=tol,
        )


@pytest.mark.parametrize("name", ["lstm", "gru", "rnn"])
def test_numpy_transcription_is_not_vacuous(name):
    """The transcription itself moves: a changed weight changes its answer."""
    params = init_stack_params(jax.random.key(0), 2, 3, cell=name)
    xs = np.ones((1, 4, 2))
    zero = cells.get(name).zero_state(params[0][0], (1,))
    states = [tuple(np.asarray(a, np.float64) for a in zero)]
    real, none = np.ones((1, 4), bool), np.zeros((1, 4), bool)
    a, _ = np_stack(name, params, xs, states, real, none)
    moved = ((params[0][0]._replace(w_x=params[0][0].w_x * 2),),)
    b, _ = np_stack(name, moved, xs, states, real, none)
    assert np.abs(a).max() > 0 and np.abs(a - b).max() > 1e-3
