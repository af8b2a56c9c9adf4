"""implementation="cudnn" (jlstm.cudnn): the flat weights, what the call computes, and when
"auto" may pick it.

No GPU is needed. ``jax.experimental.rnn.lstm_ref`` is JAX's reference of what cuDNN
computes from the flat weights, and it runs anywhere: jlstm params -> flat weights ->
``lstm_ref`` must equal ``jlstm.stack``. The ``reference_kernel`` fixture puts it in the
cuDNN call's place (refusing vmap and forward mode, as the cuDNN call does) and lets this
CPU count as a GPU, so the whole "cudnn" path (layouts, lengths of 0, dropout between
layers, the backward under vmap) runs here against implementation="reference". The choice
is a plain function of the call (``impl.choose``); the last tests need a GPU.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import rnn
from test_implementations import custom_calls, lowered

from jlstm import LSTMState, cells, cudnn, init_stack_params, stack
from jlstm import implementation as impl

I, H, L = 3, 5, 3  # noqa: E741
LENGTHS = jnp.array([7, 5, 0, 1, 3, 6])
ON_GPU = jax.default_backend() == "gpu"


def inputs(shape, seed=1):
    return jax.random.normal(jax.random.key(seed), shape)


def noisy_stack(key, bidirectional=True, num_layers=L):
    """Initialised parameters with non-trivial biases (zeros would hide bias bugs)."""
    p = init_stack_params(key, I, H, num_layers=num_layers, bidirectional=bidirectional)
    leaves, tree = jax.tree.flatten(p)
    noise = [0.3 * inputs(a.shape, seed=10 + k) for k, a in enumerate(leaves)]
    return jax.tree.unflatten(tree, [a + n for a, n in zip(leaves, noise, strict=True)])


def state(count, batch):
    return LSTMState(inputs((count, batch, H), seed=2), inputs((count, batch, H), seed=3))


def ref_lstm(x, h0, c0, w, lengths, sizes):
    """``lstm_ref`` on the flat weights: what cuDNN computes, per JAX."""
    weights = rnn.unpack_lstm_weights(w, *sizes)
    return rnn.lstm_ref(x, h0, c0, *weights, lengths, *sizes[:3], 0.0, sizes.bidirectional)


def refuse_transformations():
    if impl.transformations():  # the cuDNN call has no vmap or forward-mode rule
        raise AssertionError(f"the cuDNN call ran under {impl.transformations()}")


def as_a_gpu(monkeypatch):
    """Let this machine's backend count as a GPU, and its platform as cuDNN's."""
    monkeypatch.setattr(impl, "GPUS", (*impl.GPUS, jax.default_backend()))
    monkeypatch.setattr(cudnn, "PLATFORMS", (*cudnn.PLATFORMS, jax.default_backend()))


@pytest.fixture
def reference_kernel(monkeypatch):
    """lstm_ref in the cuDNN call's place, on this machine as a GPU; returns the list of
    the kernel's halves as they were traced, with the layers each runs (("forward", 2))."""
    calls = []

    def forward(x, h0, c0, w, lengths, sizes):
        refuse_transformations()
        calls.append(("forward", sizes.num_layers))
        return ref_lstm(x, h0, c0, w, lengths, sizes), (x, h0, c0, w, lengths)

    def backward(sizes, residuals, cotangents):
        refuse_transformations()
        calls.append(("backward", sizes.num_layers))
        x, h0, c0, w, lengths = residuals
        _, pullback = jax.vjp(lambda *a: ref_lstm(*a, lengths, sizes), x, h0, c0, w)
        return pullback(cotangents)

    monkeypatch.setattr(cudnn, "KERNEL", cudnn.Kernel(forward, backward))
    as_a_gpu(monkeypatch)
    return calls


@pytest.fixture
def opaque_kernel(monkeypatch):
    """Custom calls (never run) in the cuDNN call's place, to see where it is lowered."""

    def forward(x, h0, c0, w, lengths, sizes):
        y = jax.ShapeDtypeStruct((*x.shape[:2], h0.shape[0] // sizes.num_layers * H), x.dtype)
        out = jax.ffi.ffi_call("cudnn_stand_in_forward", (y, h0, c0))(x, h0, c0, w, lengths)
        return out, (x, h0, c0, w, lengths)

    def backward(sizes, residuals, cotangents):
        shapes = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in residuals[:4]]
        return jax.ffi.ffi_call("cudnn_stand_in_backward", shapes)(*residuals, *cotangents)

    monkeypatch.setattr(cudnn, "KERNEL", cudnn.Kernel(forward, backward))
    as_a_gpu(monkeypatch)


def assert_close(actual, desired, rtol=2e-5, atol=2e-6):
    for a, d in zip(jax.tree.leaves(actual), jax.tree.leaves(desired), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(d), rtol=rtol, atol=atol)


def max_error(actual, desired):
    pairs = zip(jax.tree.leaves(actual), jax.tree.leaves(desired), strict=True)
    return max(float(jnp.abs(a - d).max()) for a, d in pairs)


def loss_and_grads(implementation, params, xs, state0, **kw):
    """A loss that touches every output and both final states, with its gradients."""

    def loss(p, x, s):
        ys, final = stack(p, x, initial_state=s, implementation=implementation, **kw)
        return (ys * jnp.sin(ys)).sum() + 0.7 * final.h.sum() - 0.3 * (final.c**2).sum()

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))(params, xs, state0)


# ------------------------------------------------------------------ flat weights


def test_flat_weights_round_trip_is_exact(key):
    params = noisy_stack(key)
    flat = cudnn.to_flat_weights(params)
    assert flat.shape == (rnn.get_num_params_in_lstm(I, H, L, True),)
    back = cudnn.from_flat_weights(flat, I, H, L, True)
    assert jax.tree.structure(back) == jax.tree.structure(params)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(cudnn.to_flat_weights(back)), np.asarray(flat))
    _, _, b_ih, b_hh = rnn.unpack_lstm_weights(flat, I, H, L, True)
    assert all(float(jnp.abs(b_hh[k]).max()) == 0.0 for k in range(2 * L))  # b goes to b_ih
    np.testing.assert_array_equal(np.asarray(b_ih[3]), np.asarray(params[1][1].b))


@pytest.mark.parametrize("bidirectional", [False, True])
def test_lstm_ref_on_the_flat_weights_equals_the_stack(key, bidirectional):
    """3 layers, ragged lengths (lstm_ref needs each >= 1), an initial state: 1e-6."""
    params = noisy_stack(key, bidirectional)
    lengths = jnp.array([7, 5, 1, 3, 6], jnp.int32)
    xs, s0 = inputs((5, 7, I)), state(L * (2 if bidirectional else 1), 5)
    sizes = cudnn.Sizes(I, H, L, bidirectional)
    y, h_n, c_n = ref_lstm(xs, s0.h, s0.c, cudnn.to_flat_weights(params), lengths, sizes)
    ys, final = stack(params, xs, initial_state=s0, lengths=lengths, implementation="reference")
    assert max_error((y, h_n, c_n), (ys, final.h, final.c)) < 1e-6


def test_two_biases_from_elsewhere_are_summed(key):
    """A flat vector with both biases non-zero (PyTorch's convention) is the same LSTM."""
    flat = jax.random.uniform(key, (rnn.get_num_params_in_lstm(I, H, 2, True),), minval=-0.5)
    params = cudnn.from_flat_weights(flat, I, H, 2, True)
    lengths = jnp.array([6, 2, 4], jnp.int32)
    xs, s0 = inputs((3, 6, I)), state(4, 3)
    y, h_n, c_n = ref_lstm(xs, s0.h, s0.c, flat, lengths, cudnn.Sizes(I, H, 2, True))
    ys, final = stack(params, xs, initial_state=s0, lengths=lengths, implementation="reference")
    assert max_error((y, h_n, c_n), (ys, final.h, final.c)) < 1e-6


def test_flat_weights_of_the_wrong_size_say_so():
    count = rnn.get_num_params_in_lstm(I, H, 2, False)
    with pytest.raises(ValueError, match=rf"flat must be \({count},\) for input_size=3.*\(7,\)"):
        cudnn.from_flat_weights(jnp.zeros(7), I, H, 2, False)
    with pytest.raises(TypeError, match="LSTMParams"):
        cudnn.to_flat_weights(init_stack_params(jax.random.key(0), I, H, cell="gru"))


# ------------------------------------------------------------------ the "cudnn" path


@pytest.mark.parametrize("time_major", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_cudnn_equals_reference_values_and_gradients(
    reference_kernel, key, time_major, bidirectional
):
    """Lengths of 0 included: they run with length 1, then take zeros and the initial state."""
    params = noisy_stack(key, bidirectional)
    xs = inputs((6, 7, I))
    xs = jnp.swapaxes(xs, 0, 1) if time_major else xs
    s0 = state(L * (2 if bidirectional else 1), 6)
    kw = dict(lengths=LENGTHS, time_major=time_major)
    fast = loss_and_grads("cudnn", params, xs, s0, **kw)
    assert set(reference_kernel) == {("forward", L), ("backward", L)}  # the whole stack at once
    assert_close(fast, loss_and_grads("reference", params, xs, s0, **kw))
    ys, final = stack(params, xs, initial_state=s0, implementation="cudnn", **kw)
    assert float(jnp.abs(ys[:, 2] if time_major else ys[2]).max()) == 0.0
    np.testing.assert_array_equal(np.asarray(final.c[:, 2]), np.asarray(s0.c[:, 2]))


def test_cudnn_batch_axes_no_lengths_and_no_state(reference_kernel, key):
    params = noisy_stack(key, num_layers=2)
    xs = inputs((2, 3, 4, I))
    fast = stack(params, xs, implementation="cudnn")
    assert fast[0].shape == (2, 3, 4, 2 * H) and fast[1].h.shape == (4, 2, 3, H)
    assert_close(fast, stack(params, xs, implementation="reference"))


def test_dropout_between_layers_draws_the_reference_masks(reference_kernel, key):
    """With dropout every layer is its own call, and the masks are the other paths' own."""
    params, xs, s0 = noisy_stack(key), inputs((6, 7, I)), state(2 * L, 6)
    kw = dict(lengths=LENGTHS, dropout_rate=0.4, dropout_key=jax.random.key(5))
    fast = loss_and_grads("cudnn", params, xs, s0, **kw)
    assert set(reference_kernel) == {("forward", 1), ("backward", 1)}
    assert_close(fast, loss_and_grads("reference", params, xs, s0, **kw))


def test_nan_in_padding_reaches_no_result(reference_kernel, key):
    params, xs, s0 = noisy_stack(key, num_layers=2), inputs((6, 7, I)), state(4, 6)
    padded = (jnp.arange(7)[None, :] >= LENGTHS[:, None])[:, :, None]  # (B, T, 1)
    value, grads = loss_and_grads(
        "cudnn", params, jnp.where(padded, jnp.nan, xs), s0, lengths=LENGTHS
    )
    assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves((value, grads)))
    assert float(jnp.abs(jnp.where(padded, grads[1], 0.0)).max()) == 0.0
    assert_close((value, grads), loss_and_grads("cudnn", params, xs, s0, lengths=LENGTHS))


def test_jacrev_runs_the_backward_under_vmap_on_the_xla_loops(reference_kernel, key):
    """jax.jacrev vmaps the backward pass, which cuDNN cannot batch: the cotangents then
    come from jlstm's XLA loops (the kernel's backward would raise here)."""
    params = noisy_stack(key, num_layers=2)
    xs = inputs((3, 4, I))
    lengths = jnp.array([4, 0, 2])

    def f(implementation):
        return lambda x: stack(params, x, lengths=lengths, implementation=implementation)[0][:, -1]

    assert_close(jax.jacrev(f("cudnn"))(xs), jax.jacrev(f("reference"))(xs))
    assert {half for half, _ in reference_kernel} == {"forward"}  # the backward: XLA's


@pytest.mark.parametrize(
    "transform, seen",
    [
        (lambda f, x: jax.vmap(f)(x[None]), "vmap"),
        (lambda f, x: jax.jvp(f, (x,), (x,)), "forward-mode autodiff"),
        (lambda f, x: jax.jacfwd(f)(x), "forward-mode autodiff and vmap"),
        (lambda f, x: jax.hessian(f)(x), "forward-mode autodiff and vmap"),
    ],
)
def test_explicit_cudnn_under_vmap_or_forward_mode_says_which(
    reference_kernel, key, transform, seen
):
    params = noisy_stack(key, num_layers=1)
    f = lambda x: stack(params, x, lengths=jnp.array([4, 2]), implementation="cudnn")[0].sum()
    with pytest.raises(ValueError, match=f"cannot run this call: it is traced under {seen}"):
        transform(f, inputs((2, 4, I)))
    assert not reference_kernel


@pytest.mark.parametrize(
    "transform",
    [
        lambda f, x: jax.vmap(f)(x[None]),
        lambda f, x: jax.jvp(f, (x,), (x,)),
        lambda f, x: jax.hessian(f)(x),
        lambda f, x: jax.jit(jax.vmap(jax.grad(f)))(x[None]),
    ],
    ids=["vmap", "jvp", "hessian", "jit-vmap-grad"],
)
def test_auto_with_cudnn_on_keeps_todays_path_under_transformations(
    reference_kernel, monkeypatch, key, transform
):
    monkeypatch.setattr(impl, "AUTO_USES_CUDNN", True)
    params = noisy_stack(key, num_layers=2)
    xs = inputs((2, 4, I))

    def f(implementation):
        def loss(x):
            ys, final = stack(params, x, lengths=jnp.array([4, 2]), implementation=implementation)
            return (ys**2).sum() + final.c.sum()

        return loss

    assert_close(transform(f("auto"), xs), transform(f("reference"), xs))
    assert not reference_kernel
    jax.jit(jax.grad(f("auto")))(xs)  # no transformation cuDNN lacks: it runs
    assert {half for half, _ in reference_kernel} == {"forward", "backward"}


def test_auto_stays_off_cudnn_measured_slower_than_xla(reference_kernel, key):
    assert impl.AUTO_USES_CUDNN is False
    stack(noisy_stack(key), inputs((2, 4, I)), lengths=jnp.array([4, 2]))
    assert not reference_kernel


# ------------------------------------------------------------------ what "auto" picks


def gpu_call(**changes):
    base = dict(
        cell=cells.get("lstm"),
        batch=32,
        steps=128,
        input_size=64,
        hidden=128,
        param_dtypes=(np.dtype("float32"),) * 3,
        state_dtype=np.dtype("float32"),
        compute=np.dtype("float32"),
        backend="gpu",
        devices=1,
        whole_stack=True,
        masking="lengths",
    )
    return impl.Call(**{**base, **changes})


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({}, "cudnn"),  # float32, lengths (zero lengths are handled around the call)
        (dict(masking="none"), "cudnn"),
        (dict(backend="cuda"), "cudnn"),
        (dict(masking="mask"), "xla"),
        (dict(resets=True), "xla"),
        (dict(remat=True), "xla"),
        (dict(devices=2), "xla"),
        (dict(transformed=frozenset({"vmap"})), "xla"),
        (dict(transformed=frozenset({"forward-mode autodiff"})), "xla"),
        (dict(compute=np.dtype(jnp.bfloat16)), "xla"),
        (dict(param_dtypes=(np.dtype("float64"),) * 3, state_dtype=np.dtype("float64")), "xla"),
        (dict(whole_stack=False), "xla"),  # a layer on its own
        (dict(backend="tpu"), "xla"),
        (dict(cell=cells.get("gru")), "reference"),
        (dict(noise=True), "reference"),
        (dict(steps=0), "reference"),
    ],
)
def test_auto_on_a_gpu_under_each_condition(monkeypatch, changes, expected):
    monkeypatch.setattr(impl, "AUTO_USES_CUDNN", True)
    assert impl.choose("auto", gpu_call(**changes)) == expected


def test_auto_on_a_gpu_while_cudnn_is_off():
    assert impl.choose("auto", gpu_call()) == "xla"
    assert impl.choose("cudnn", gpu_call()) == "cudnn"


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(backend="cpu"), "runs on a GPU only; this computation runs on 'cpu'"),
        (dict(backend="tpu"), "runs on a GPU only; this computation runs on 'tpu'"),
        (dict(compute=np.dtype(jnp.bfloat16)), "float32 only.*matmuls bfloat16"),
        (dict(param_dtypes=(np.dtype("float64"),) * 3), "float32 only; got parameters float64"),
        (dict(masking="mask"), "lengths=, not a general mask="),
        (dict(resets=True), "no state resets"),
        (dict(remat=True), "remat=True"),
        (dict(devices=4), "with 4 devices"),
        (dict(transformed=frozenset({"vmap"})), "traced under vmap"),
        (dict(whole_stack=False), r"whole stacks.*use jlstm.stack.*Use implementation='xla'"),
        (dict(cell=cells.get("gru")), "'lstm' cell only; got the 'gru' cell"),
        (dict(noise=True), "recurrent dropout and zoneout"),
    ],
)
def test_explicit_cudnn_that_cannot_run_says_why(changes, message):
    with pytest.raises(
        ValueError, match=f"implementation='cudnn' cannot run this call: .*{message}"
    ):
        impl.choose("cudnn", gpu_call(**changes))


def test_a_layer_asked_for_cudnn_is_sent_to_the_stack(key):
    from jlstm import layer

    with pytest.raises(ValueError, match="whole stacks"):
        layer(noisy_stack(key, False, 1)[0][0], inputs((2, 4, I)), implementation="cudnn")


def seen(transform):
    found = []

    def f(x):
        found.append(impl.transformations())
        return jnp.sin(x).sum()

    transform(f, jnp.ones(3))
    return found[0]


@pytest.mark.parametrize(
    "transform, expected",
    [
        (lambda f, x: f(x), set()),
        (lambda f, x: jax.jit(f)(x), set()),
        (lambda f, x: jax.grad(f)(x), set()),
        (lambda f, x: jax.jit(jax.grad(jax.checkpoint(f)))(x), set()),
        (lambda f, x: jax.jacrev(f)(x), set()),  # its vmap is over the backward pass only
        (lambda f, x: jax.vmap(f)(x[None]), {"vmap"}),
        (lambda f, x: jax.vmap(jax.jit(f))(x[None]), {"vmap"}),
        (lambda f, x: jax.jit(jax.vmap(jax.grad(f)))(x[None]), {"vmap"}),
        (lambda f, x: jax.jvp(f, (x,), (x,)), {"forward-mode autodiff"}),
        (lambda f, x: jax.linearize(f, x), {"forward-mode autodiff"}),
        (lambda f, x: jax.hessian(f)(x), {"vmap", "forward-mode autodiff"}),
    ],
)
def test_transformations_read_from_the_trace(transform, expected):
    assert seen(transform) == expected


# ------------------------------------------------------------------ lowering and export


def train_step():
    """A new function each time: jit would reuse a trace made under other monkeypatches."""

    def step(p, x):
        loss = lambda p: (stack(p, x, lengths=jnp.array([5, 2]))[0] ** 2).mean()
        value, grads = jax.value_and_grad(loss)(p)
        return value, jax.tree.map(lambda w, g: w - 0.1 * g, p, grads)

    return step


@pytest.mark.parametrize("platforms", [("cuda",), ("tpu",)])
def test_export_with_cudnn_on_holds_no_custom_call(key, monkeypatch, platforms):
    """Off a GPU "auto" never traces the cuDNN call, even when on: a train step exported
    from here for a GPU or a TPU is XLA's loops only."""
    monkeypatch.setattr(impl, "AUTO_USES_CUDNN", True)
    text = lowered(
        train_step(), noisy_stack(key, num_layers=2), inputs((2, 5, I)), platforms=platforms
    )
    assert ON_GPU or ("stablehlo.while" in text and custom_calls(text) == set())


def test_auto_on_cudnn_lowers_it_for_cudnn_platforms_only(opaque_kernel, key, monkeypatch):
    """Traced where "auto" picks cuDNN, the step lowers to the cuDNN call for its platform
    and to jlstm's loops for any other (a TPU export, say)."""
    monkeypatch.setattr(impl, "AUTO_USES_CUDNN", True)
    args = noisy_stack(key, num_layers=2), inputs((2, 5, I))
    here = custom_calls(lowered(train_step(), *args))
    assert here == {"cudnn_stand_in_forward", "cudnn_stand_in_backward"}
    text = lowered(train_step(), *args, platforms=("tpu",))
    assert "stablehlo.while" in text and custom_calls(text) == set()


def test_the_cudnn_call_lowers_on_a_gpu_only(key, monkeypatch):
    """Off a GPU jaxlib cannot size cuDNN's workspace, so the call cannot even be traced;
    on one it lowers to cuDNN's custom call."""
    monkeypatch.setattr(impl, "GPUS", (*impl.GPUS, jax.default_backend()))
    params, xs = noisy_stack(key, num_layers=2), inputs((2, 5, I))
    grad = jax.grad(lambda p: stack(p, xs, implementation="cudnn")[0].sum())
    if not ON_GPU:
        with pytest.raises(AttributeError, match="compute_rnn_workspace_reserve_space_sizes"):
            lowered(grad, params, platforms=("cuda",))
        return
    assert any("rnn" in name for name in custom_calls(lowered(grad, params)))


@pytest.mark.skipif(not ON_GPU, reason="the cuDNN call needs a GPU")
@pytest.mark.parametrize("bidirectional", [False, True])
def test_cudnn_on_the_gpu_equals_the_reference(key, bidirectional):
    params = noisy_stack(key, bidirectional)
    xs, s0 = inputs((6, 7, I)), state(L * (2 if bidirectional else 1), 6)
    with jax.default_matmul_precision("highest"):
        plain = loss_and_grads("reference", params, xs, s0, lengths=LENGTHS)
    assert_close(loss_and_grads("cudnn", params, xs, s0, lengths=LENGTHS), plain, rtol=1e-4)
