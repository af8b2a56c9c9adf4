"""Every implementation of the layer against the reference (``lax.scan`` over the cell,
differentiated by JAX), and the choice among them (jlstm.implementation).

The grid of JAX transformations is in test_transformations.py; this file holds
the options (lengths, masks, reverse, remat, bidirectional, dtypes, shapes),
the selection rules and what each implementation lowers to.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jlstm import LSTMState, cells, init_params, layer
from jlstm import implementation as impl
from jlstm.fused import kernel
from jlstm.stack import init_stack_params, stack

INPUT = 3
FAST = ("xla", "cpu_kernel")
SAFE_TARGETS = {"Sharding", "SPMDFullToShardShape", "SPMDShardToFullShape"}


def custom_calls(text: str) -> set[str]:
    """The custom-call targets in a lowered module's text (other than sharding marks)."""
    return set(re.findall(r"stablehlo\.custom_call @(\w+)", text)) - SAFE_TARGETS


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

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3)))(params, xs, state.h, state.c)


def assert_close(actual, desired, rtol=2e-5, atol=2e-6):
    for a, d in zip(jax.tree.leaves(actual), jax.tree.leaves(desired), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(d), rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", FAST)
@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("steps", [1, 9])
@pytest.mark.parametrize("hidden", [1, 6])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("masking", [None, "lengths", "mask"])
def test_equals_reference_values_and_gradients(key, name, batch, steps, hidden, reverse, masking):
    params = noisy_params(key, INPUT, hidden)
    xs = inputs((batch, steps, INPUT))
    state = LSTMState(inputs((batch, hidden), seed=2), inputs((batch, hidden), seed=3))
    kw = {"reverse": reverse}
    if masking == "lengths":
        kw["lengths"] = jnp.asarray(np.linspace(0, steps, batch).round().astype(int))
    elif masking == "mask":
        kw["mask"] = holes_mask(batch, steps)

    def run(implementation):
        return lambda p, x, s: layer(p, x, initial_state=s, implementation=implementation, **kw)

    assert_close(
        loss_and_grads(run(name), params, xs, state),
        loss_and_grads(run("reference"), params, xs, state),
    )


@pytest.mark.parametrize("name", FAST)
@pytest.mark.parametrize("reverse", [False, True])
def test_wide_input_forward(key, name, reverse):
    """Inputs from SPLIT_INPUT features take the forward's two-product form."""
    from jlstm.fused.loops import SPLIT_INPUT

    params = noisy_params(key, SPLIT_INPUT, 8)
    xs = inputs((3, 7, SPLIT_INPUT))
    kw = dict(lengths=jnp.array([7, 4, 0]), reverse=reverse)
    fast = jax.jit(lambda p, x: layer(p, x, implementation=name, **kw))(params, xs)
    plain = jax.jit(lambda p, x: layer(p, x, implementation="reference", **kw))(params, xs)
    assert_close(fast, plain)


@pytest.mark.parametrize("name", ("reference", *FAST))
@pytest.mark.parametrize("masking", [None, "mask"])
def test_bidirectional_stack(key, name, masking):
    params = init_stack_params(key, INPUT, 5, num_layers=2, bidirectional=True)
    xs = inputs((4, 8, INPUT))
    mask = holes_mask(4, 8) if masking else None

    def loss(p, x, implementation):
        ys, final = stack(p, x, mask=mask, implementation=implementation)
        return (ys * jnp.cos(ys)).sum() + (final.h * final.c).sum()

    fast = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)), static_argnums=2)(params, xs, name)
    plain = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)), static_argnums=2)(
        params, xs, "reference"
    )
    assert_close(fast, plain)


@pytest.mark.parametrize("name", ("reference", *FAST))
@pytest.mark.parametrize("steps", [1, 7, 16])
@pytest.mark.parametrize("reverse", [False, True])
def test_remat_equals_no_remat(key, name, steps, reverse):
    params = noisy_params(key, INPUT, 4)
    xs = inputs((3, steps, INPUT))
    lengths = jnp.array([steps, steps // 2, 0])
    state = LSTMState(inputs((3, 4), seed=2), inputs((3, 4), seed=3))

    def run(remat):
        return lambda p, x, s: layer(
            p,
            x,
            initial_state=s,
            lengths=lengths,
            reverse=reverse,
            remat=remat,
            implementation=name,
        )

    assert_close(
        loss_and_grads(run(True), params, xs, state), loss_and_grads(run(False), params, xs, state)
    )


def test_remat_keeps_only_stretch_states(key):
    """remat=True: the backward's saved memory grows like sqrt(T), not T (XLA's count)."""
    params = noisy_params(key, 8, 32)

    def temp_bytes(steps, remat):
        xs = inputs((4, steps, 8))
        grad = jax.jit(jax.grad(lambda p: layer(p, xs, remat=remat)[0].sum()))
        return grad.lower(params).compile().memory_analysis().temp_size_in_bytes

    full, rematted = temp_bytes(1024, False), temp_bytes(1024, True)
    assert rematted < full / 4, (rematted, full)


@pytest.mark.parametrize("name", ("reference", *FAST))
def test_nan_in_padding_reaches_no_result(key, name):
    """Padding is a promise: garbage (NaN) in padded steps changes no output or gradient."""
    params = noisy_params(key, INPUT, 4)
    xs = inputs((2, 5, INPUT)).at[1, 3:].set(jnp.nan)
    lengths = jnp.array([5, 3])

    def loss(p, x):
        hs, final = layer(p, x, lengths=lengths, implementation=name)
        return hs.sum() + final.c.sum()

    value, (gp, gx) = jax.value_and_grad(loss, argnums=(0, 1))(params, xs)
    clean = jax.value_and_grad(loss, argnums=(0, 1))(params, xs.at[1, 3:].set(0.0))
    assert np.isfinite(float(value))
    assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(gp))
    assert bool(jnp.isfinite(gx).all()) and float(jnp.abs(gx[1, 3:]).max()) == 0.0
    assert_close((value, gp), (clean[0], clean[1][0]))


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


def test_bfloat16_fast_equals_bfloat16_reference(key):
    """The bf16 fast path rounds where the bf16 reference rounds (same matmul inputs)."""
    params = noisy_params(key, 8, 16)
    xs = inputs((4, 12, 8))

    def results(name):
        def loss(p, x):
            return (layer(p, x, dtype=jnp.bfloat16, implementation=name)[0] ** 2).sum()

        return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(params, xs)

    fast, plain = results("xla"), results("reference")
    assert_close(fast[0], plain[0], rtol=1e-4)
    assert_close(fast[1], plain[1], rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("name", ("reference", *FAST))
def test_bfloat16_initial_state_keeps_a_float32_state(key, name):
    params = noisy_params(key, INPUT, 4)
    xs = inputs((2, 6, INPUT))
    state = LSTMState(inputs((2, 4), seed=2), inputs((2, 4), seed=3))
    low = LSTMState(state.h.astype(jnp.bfloat16), state.c.astype(jnp.float16))
    hs, final = layer(params, xs, initial_state=low, implementation=name)
    assert hs.dtype == final.h.dtype == final.c.dtype == jnp.float32
    cast = LSTMState(*(a.astype(jnp.float32) for a in low))
    assert_close((hs, final), layer(params, xs, initial_state=cast, implementation=name))


@pytest.mark.parametrize("name", ("reference", "xla"))
def test_second_order_float64(key, name):
    """Derivatives of every order, float64, against finite differences."""
    params32, xs32, mask = noisy_params(key, INPUT, 3), inputs((2, 4, INPUT)), holes_mask(2, 4)
    with jax.enable_x64(True):
        params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params32)
        xs = jnp.asarray(xs32, jnp.float64)

        def f(p, x):
            hs, final = layer(p, x, mask=mask, implementation=name)
            return (hs**2).sum() + final.c.sum()

        check_grads(f, (params, xs), order=2, modes=("fwd", "rev"), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("masking", [False, True])
def test_batch_in_place_form_equals_reference(key, monkeypatch, reverse, masking):
    """The all-steps products contracting (T, B) in place (used with several devices and
    from H = IN_PLACE_HIDDEN) give the same gradients as the reference."""
    from jlstm.fused import layer as fused

    monkeypatch.setattr(fused, "IN_PLACE_HIDDEN", 1)  # read when traced
    fused._layer_fn.cache_clear()
    params = noisy_params(key, INPUT, 5)
    xs = inputs((3, 6, INPUT))
    state = LSTMState(inputs((3, 5), seed=2), inputs((3, 5), seed=3))
    kw = dict(reverse=reverse, mask=holes_mask(3, 6) if masking else None)

    def run(name):
        return lambda p, x, s: layer(p, x, initial_state=s, implementation=name, **kw)

    hlo = jax.jit(jax.grad(lambda p: layer(p, xs, implementation="xla", **kw)[0].sum()))
    assert "contracting_dims = [0, 1] x [0, 1]" in hlo.lower(params).as_text()
    assert_close(
        loss_and_grads(run("xla"), params, xs, state),
        loss_and_grads(run("reference"), params, xs, state),
    )


# ------------------------------------------------------------------ what runs where


def call(**changes):
    base = dict(
        cell=cells.get("lstm"),
        batch=32,
        steps=128,
        input_size=64,
        hidden=128,
        param_dtypes=(np.dtype("float32"),) * 3,
        state_dtype=np.dtype("float32"),
        compute=np.dtype("float32"),
        backend="cpu",
        devices=1,
    )
    return impl.Call(**{**base, **changes})


def test_auto_picks_the_kernel_on_the_cpu_only(monkeypatch):
    monkeypatch.setattr(kernel, "unavailable", lambda: None)
    monkeypatch.setattr(kernel, "faster", lambda *shape: True)
    assert impl.choose("auto", call()) == "cpu_kernel"
    assert impl.choose("auto", call(backend="gpu")) == "xla"
    assert impl.choose("auto", call(backend="tpu")) == "xla"
    assert impl.choose("auto", call(devices=4)) == "xla"
    assert impl.choose("auto", call(compute=np.dtype(jnp.bfloat16))) == "xla"
    assert (
        impl.choose(
            "auto", call(param_dtypes=(np.dtype("float64"),) * 3, state_dtype=np.dtype("float64"))
        )
        == "xla"
    )
    assert impl.choose("auto", call(steps=0)) == "reference"  # no loop to run
    assert impl.choose("cpu_kernel", call(batch=0)) == "reference"
    assert impl.choose("auto", call(cell=cells.get("gru"))) == "reference"
    monkeypatch.setattr(kernel, "faster", lambda *shape: False)  # a shape XLA wins
    assert impl.choose("auto", call()) == "xla"
    monkeypatch.setattr(kernel, "unavailable", lambda: "no compiler")
    monkeypatch.setattr(kernel, "faster", lambda *shape: True)
    assert impl.choose("auto", call()) == "xla"


def test_auto_never_builds_the_kernel_off_the_cpu(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the kernel was built")

    monkeypatch.setattr(kernel, "build", fail)
    monkeypatch.setattr(kernel, "library", fail)
    for backend in ("gpu", "tpu", "cuda"):
        assert impl.choose("auto", call(backend=backend)) == "xla"


@pytest.mark.parametrize(
    "name, changes, message",
    [
        (
            "cpu_kernel",
            dict(backend="gpu"),
            "runs on the CPU backend only; this computation runs "
            "on 'gpu'.*Use implementation='xla'",
        ),
        ("cpu_kernel", dict(compute=np.dtype(jnp.bfloat16)), "float32 only"),
        ("cpu_kernel", dict(devices=2), "with 2 devices"),
        ("xla", dict(cell=cells.get("gru")), "the 'gru' cell has no 'xla' implementation"),
        ("xla", dict(param_dtypes=(np.dtype("float32"), np.dtype("float16"))), "one dtype"),
        ("nope", {}, r"implementation must be one of \('auto'"),
    ],
)
def test_explicit_choices_that_cannot_run_say_why(name, changes, message):
    with pytest.raises(ValueError, match=message):
        impl.choose(name, call(**changes))


def test_kernel_class_rules(monkeypatch):
    monkeypatch.setattr(kernel, "cpu_class", lambda: "narrow")
    assert kernel.faster(32, 64, 128) and not kernel.faster(256, 256, 512)
    monkeypatch.setattr(kernel, "cpu_class", lambda: "avx512")
    assert kernel.faster(32, 64, 128) and kernel.faster(256, 256, 512)


def lowered(fn, *args, platforms=None):
    if platforms is None:
        return jax.jit(fn).lower(*args).as_text()
    return jax.export.export(jax.jit(fn), platforms=platforms)(*args).mlir_module()


@pytest.mark.skipif(kernel.unavailable() is not None, reason="the CPU kernel cannot be built")
def test_cpu_kernel_lowers_to_the_kernel_and_xla_does_not(key, monkeypatch):
    params = noisy_params(key, INPUT, 4)
    xs = inputs((2, 5, INPUT))

    def grad(name):
        return jax.grad(lambda p: layer(p, xs, implementation=name)[0].sum())

    assert custom_calls(lowered(grad("cpu_kernel"), params)) == {
        "jlstm_lstm_forward_saving",
        "jlstm_lstm_backward",
    }
    assert custom_calls(lowered(grad("xla"), params)) == set()
    monkeypatch.setenv("JLSTM_CPU_KERNEL", "0")
    assert impl.choose("auto", call()) == "xla"


@pytest.mark.parametrize("platforms", [("cpu",), ("cuda",), ("tpu",), ("cpu", "cuda")])
def test_export_of_a_train_step_holds_no_custom_call(key, platforms):
    """jax.export works on the default path: the CPU kernel is not serialised (the loops
    lower to lax.scan for export), and no other platform ever sees it."""
    params = init_stack_params(key, INPUT, 4, num_layers=2, bidirectional=True)
    xs, lengths = inputs((2, 5, INPUT)), jnp.array([5, 2])

    def step(p, x):
        loss = lambda p: (stack(p, x, lengths=lengths)[0] ** 2).mean()
        value, grads = jax.value_and_grad(loss)(p)
        return value, jax.tree.map(lambda w, g: w - 0.1 * g, p, grads)

    text = lowered(step, params, xs, platforms=platforms)
    assert "stablehlo.while" in text and custom_calls(text) == set()


def test_exported_step_runs_and_equals_the_jitted_one(key):
    params = noisy_params(key, INPUT, 4)
    xs = inputs((2, 5, INPUT))
    f = lambda p, x: jax.grad(lambda p: (layer(p, x, lengths=jnp.array([5, 3]))[0] ** 2).sum())(p)
    exported = jax.export.export(jax.jit(f), platforms=("cpu",))(params, xs)
    assert_close(exported.call(params, xs), jax.jit(f)(params, xs))


@pytest.mark.parametrize("reverse", [False, True])
def test_parallel_equals_reference(key, reverse):
    """implementation='parallel' (Newton over the trajectory) is exact, and auto never picks
    it."""
    params = noisy_params(key, INPUT, 4)
    xs = inputs((3, 12, INPUT))
    kw = dict(lengths=jnp.array([12, 5, 0]), reverse=reverse)

    def f(name):
        return lambda b: (
            jnp.sin(layer(params._replace(b=b), xs, implementation=name, **kw)[0]) ** 2
        ).sum()

    assert_close(
        jax.value_and_grad(f("parallel"))(params.b),
        jax.value_and_grad(f("reference"))(params.b),
        rtol=1e-4,
        atol=1e-5,
    )
    assert_close(
        jax.jvp(f("parallel"), (params.b,), (jnp.cos(params.b),)),
        jax.jvp(f("reference"), (params.b,), (jnp.cos(params.b),)),
        rtol=1e-4,
        atol=1e-5,
    )
    assert impl.choose("auto", call()) != "parallel"


def test_auto_takes_the_reference_scan_at_large_steps_on_amx(monkeypatch):
    monkeypatch.setattr(kernel, "unavailable", lambda: None)
    monkeypatch.setattr(kernel, "cpu_class", lambda: "avx512-amx")
    s4 = dict(batch=256, steps=64, input_size=256, hidden=512)
    assert impl.choose("auto", call(**s4)) == "reference"  # measured fastest there
    assert impl.choose("auto", call()) == "cpu_kernel"  # S1
    assert impl.choose("auto", call(backend="gpu", **s4)) == "xla"
    monkeypatch.setattr(kernel, "cpu_class", lambda: "avx512")
    assert impl.choose("auto", call(**s4)) == "cpu_kernel"
