"""jlstm.inspect: gate traces against a NumPy transcription of each cell's equations and
against the layer; gradient flow and state gradients against finite differences
(float64); the gates.png of the classifier and char-LM reports."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jlstm
from jlstm import cells, inspect
from jlstm.cells import ElmanRNN
from jlstm.train.plots import plot_gate_traces

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
B, T, F, H = 3, 6, 4, 5
LENGTHS = np.array([6, 3, 0])
CELLS = ["lstm", "gru", "rnn", "rnn_relu"]


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def numpy_step(name, p, state, x):
    """One step of the cell's equations in float64 NumPy: (state, traces)."""
    p = {k: np.asarray(v, np.float64) for k, v in p._asdict().items()}
    h = state["h"]
    if name == "lstm":
        a = x @ p["w_x"] + h @ p["w_h"] + p["b"]
        a_i, a_f, a_g, a_o = np.split(a, 4, axis=-1)
        i, f, g, o = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g), sigmoid(a_o)
        c = f * state["c"] + i * g
        h = o * np.tanh(c)
        return {"h": h, "c": c}, {"f": f, "i": i, "g": g, "o": o, "c": c, "h": h}
    if name == "gru":
        x_r, x_z, x_n = np.split(x @ p["w_x"] + p["b"], 3, axis=-1)
        h_r, h_z, h_n = np.split(h @ p["w_h"], 3, axis=-1)
        r, z = sigmoid(x_r + h_r), sigmoid(x_z + h_z)
        n = np.tanh(x_n + r * (h_n + p["b_hn"]))
        h = (1 - z) * n + z * h
        return {"h": h}, {"r": r, "z": z, "n": n, "h": h}
    a = x @ p["w_x"] + h @ p["w_h"] + p["b"]
    h = np.tanh(a) if name == "rnn" else np.maximum(a, 0.0)
    return {"h": h}, {"a": a, "h": h}


def numpy_traces(name, params, xs, lengths, reverse, state0):
    """Each sequence's real steps run on their own (backwards with ``reverse``); zeros at
    padding. Returns name -> (B, T, H)."""
    xs = np.asarray(xs, np.float64)
    out = {}
    for b in range(xs.shape[0]):
        state = {k: np.asarray(v[b], np.float64) for k, v in state0._asdict().items()}
        order = range(lengths[b])
        for t in reversed(order) if reverse else order:
            state, traces = numpy_step(name, params, state, xs[b, t])
            for k, v in traces.items():
                out.setdefault(k, np.zeros((*xs.shape[:2], v.shape[-1])))[b, t] = v
    return out


def setup(name, key, dtype=jnp.float32):
    k_p, k_x, k_s = jax.random.split(key, 3)
    cell = cells.get(name)
    options = {"forget_bias": 1.0} if name == "lstm" else {}
    params = cell.init(k_p, F, H, dtype=dtype, **options)
    xs = jax.random.normal(k_x, (B, T, F), dtype)
    zero = cell.zero_state(params, B)
    state = type(zero)(
        *(
            0.5 * jax.random.normal(k, z.shape, z.dtype)
            for k, z in zip(jax.random.split(k_s, len(zero)), zero, strict=True)
        )
    )
    return cell, params, xs, state


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("name", CELLS)
def test_traces_are_the_equations_and_the_layer(key, name, reverse):
    cell, params, xs, state = setup(name, key)
    lengths = jnp.asarray(LENGTHS)
    traces = inspect.gate_traces(
        params, xs, cell=cell, lengths=lengths, reverse=reverse, initial_state=state
    )
    assert list(traces) == list(inspect.trace_labels(name))
    expected = numpy_traces(name, params, xs, LENGTHS, reverse, state)
    assert set(traces) == set(expected)
    for k in traces:
        assert traces[k].shape == (B, T, H)
        np.testing.assert_allclose(traces[k], expected[k], rtol=1e-5, atol=1e-5, err_msg=k)
    hs, final = jlstm.layer(
        params,
        xs,
        cell=cell,
        implementation="reference",
        lengths=lengths,
        reverse=reverse,
        initial_state=state,
    )
    np.testing.assert_allclose(traces["h"], hs, rtol=1e-6, atol=1e-6)
    if name == "lstm":  # c at the last step processed is the final state (length 0: c_0)
        last = np.where(LENGTHS == 0, -1, 0 if reverse else LENGTHS - 1)
        for b, t in enumerate(last):
            c = state.c[b] if t < 0 else traces["c"][b, t]
            np.testing.assert_allclose(c, final.c[b], rtol=1e-6, atol=1e-6)


def test_lstm_cell_state_at_every_step_is_the_layers_state(key):
    """c_t of the traces equals the final cell state of the layer run over x_1..x_t."""
    _, params, xs, state = setup("lstm", key)
    traces = inspect.gate_traces(params, xs, initial_state=state)
    for t in range(T):
        _, final = jlstm.layer(
            params, xs[:, : t + 1], implementation="reference", initial_state=state
        )
        np.testing.assert_allclose(traces["c"][:, t], final.c, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(traces["h"][:, t], final.h, rtol=1e-6, atol=1e-6)


def test_traces_under_jit_and_with_a_mask(key):
    _, params, xs, _ = setup("lstm", key)
    mask = jnp.asarray(np.arange(T)[None, :] < LENGTHS[:, None])
    eager = inspect.gate_traces(params, xs, lengths=jnp.asarray(LENGTHS))
    traced = jax.jit(inspect.gate_traces, static_argnames=("cell", "reverse"))(
        params, xs, mask=mask
    )
    for k in eager:
        np.testing.assert_allclose(traced[k], eager[k], rtol=1e-6, atol=1e-6)
        assert not np.asarray(eager[k])[~np.asarray(mask)].any()  # zeros at padding


def test_traces_take_any_batch_axes(key):
    _, params, xs, _ = setup("gru", key)
    flat = inspect.gate_traces(params, xs)
    nested = inspect.gate_traces(params, xs.reshape(1, B, T, F))
    single = inspect.gate_traces(params, xs[0])
    assert nested["z"].shape == (1, B, T, H) and single["z"].shape == (T, H)
    np.testing.assert_allclose(nested["z"][0], flat["z"], rtol=1e-6)
    np.testing.assert_allclose(single["z"], flat["z"][0], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", [pytest.param("lstm", marks=pytest.mark.slow), "gru"])
def test_stack_traces_feed_each_layer_the_one_below(key, name):
    params = jlstm.init_stack_params(key, F, H, num_layers=2, bidirectional=True, cell=name)
    xs = jax.random.normal(jax.random.fold_in(key, 1), (B, T, F))
    lengths = jnp.asarray(LENGTHS)
    traces = inspect.stack_traces(params, xs, lengths=lengths)
    assert len(traces) == 2 and all(len(t) == 2 for t in traces)
    ys, _ = jlstm.stack(params, xs, lengths=lengths, implementation="reference")
    top = jnp.concatenate([traces[1][0]["h"], traces[1][1]["h"]], axis=-1)
    np.testing.assert_allclose(top, ys, rtol=1e-5, atol=1e-6)


@dataclasses.dataclass(frozen=True)
class Untraced(ElmanRNN):
    """A cell nobody gave traces to."""

    @property
    def name(self) -> str:
        return "untraced_rnn"


def test_errors_name_the_argument(key):
    _, params, xs, _ = setup("rnn", key)
    with pytest.raises(ValueError, match=r"cell 'untraced_rnn' has no gate traces; cells with"):
        inspect.gate_traces(params, xs, cell=Untraced())
    assert not inspect.has_traces(Untraced()) and inspect.has_traces("rnn")
    with pytest.raises(ValueError, match=r"xs must be \(\*batch, T, 4\) to match params.w_x"):
        inspect.gate_traces(params, xs[..., :2])
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, T=6\]"):
        inspect.gate_traces(params, xs, lengths=jnp.array([7, 1, 1]))
    with pytest.raises(TypeError, match=r"for cell 'gru'"):
        inspect.gate_traces(params, xs, cell="gru")
    with pytest.raises(ValueError, match=r"xs must be \(batch, time, features\)"):
        inspect.gradient_flow(params, xs[0])
    with pytest.raises(ValueError, match=r"labels must include 'h'"):
        inspect.register_traces("untraced_rnn", inspect.rnn_traces, {"a": "a"})


def test_register_traces_adds_a_cell(key, monkeypatch):
    _, params, xs, _ = setup("rnn", key)
    monkeypatch.setitem(inspect.TRACES, "untraced_rnn", inspect.TRACES["rnn"])
    traces = inspect.gate_traces(params, xs, cell=Untraced())
    np.testing.assert_allclose(traces["h"], inspect.gate_traces(params, xs)["h"])


def nudges(a, eps):
    """Every entry of ``a`` moved by +eps and by -eps: (2, a.size, *a.shape)."""
    basis = eps * jnp.eye(a.size, dtype=a.dtype).reshape(a.size, *a.shape)
    return jnp.stack([a[None] + basis, a[None] - basis])


def finite_difference_flow(params, xs, lengths, cell, eps=1e-6):
    """‖∂h_T/∂x_t‖ by central differences of the reference layer's final h, by lag."""

    @jax.jit
    @jax.vmap
    def final_h(xs):
        _, final = jlstm.layer(
            params, xs, cell=cell, lengths=jnp.asarray(lengths), implementation="reference"
        )
        return final.h  # (B, H)

    up, down = nudges(xs, eps)  # (B*T*F, B, T, F) each
    columns = (final_h(up) - final_h(down)) / (2 * eps)  # (B*T*F, B, H): d h_T / d xs[b, t, f]
    columns = np.asarray(columns).reshape(*xs.shape, *columns.shape[1:])  # (B, T, F, B, H)
    b = np.arange(xs.shape[0])
    norms = np.sqrt((columns[b, :, :, b] ** 2).sum(axis=(-2, -1)))  # (B, T): own sequence
    by_lag = np.zeros_like(norms)
    for k, n in enumerate(lengths):
        by_lag[k, :n] = norms[k, :n][::-1]
    return by_lag


@pytest.mark.parametrize("name", ["lstm", "gru", "rnn"])
def test_gradient_flow_against_finite_differences(key, name):
    with jax.enable_x64(True):
        cell, params, xs, _ = setup(name, key, jnp.float64)
        lengths = np.array([6, 4, 1])
        flow = jax.jit(inspect.gradient_flow, static_argnames=("cell", "implementation"))(
            params, xs, cell=cell, lengths=jnp.asarray(lengths)
        )
        expected = finite_difference_flow(params, xs, lengths, cell)
    assert flow.shape == (B, T) and flow.dtype == jnp.float64
    error = np.abs(np.asarray(flow) - expected).max()
    assert error < 1e-8, error
    assert (np.asarray(flow)[1, 4:] == 0).all() and (np.asarray(flow)[2, 1:] == 0).all()


def test_gradient_flow_of_the_fast_path_equals_the_reference(key):
    _, params, xs, _ = setup("lstm", key)
    auto = inspect.gradient_flow(params, xs, lengths=jnp.asarray(LENGTHS))
    ref = inspect.gradient_flow(
        params, xs, lengths=jnp.asarray(LENGTHS), implementation="reference"
    )
    np.testing.assert_allclose(auto, ref, rtol=1e-5, atol=1e-7)


def readout_loss(w_c):
    """A loss of the outputs and of both fields of the final state."""

    def loss(hs, final):
        fields = final.c @ w_c if hasattr(final, "c") else 0.0
        return jnp.sum(jnp.sin(hs)) + jnp.sum(final.h**2) + jnp.sum(fields)

    return loss


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_state_gradients_against_finite_differences(key, name):
    """∂L/∂s_t by central differences: run the layer to step t, nudge the state, run the
    rest of the sequence from there (jlstm.layer's initial_state), take the loss."""
    with jax.enable_x64(True):
        cell, params, xs, state = setup(name, key, jnp.float64)
        w_c = jnp.linspace(-1.0, 1.0, H, dtype=jnp.float64)
        loss_fn = readout_loss(w_c)
        norms = inspect.state_gradient_norms(loss_fn, params, xs, initial_state=state)
        run = lambda xs, s: jlstm.layer(params, xs, implementation="reference", initial_state=s)
        eps, worst = 1e-6, 0.0
        for t in (0, T // 2, T - 1):  # the first step, one in between, the last
            hs_head, s_t = run(xs[:, : t + 1], state)

            @jax.jit
            @jax.vmap
            def loss_from(s, t=t, hs_head=hs_head):
                hs_tail, final = run(xs[:, t + 1 :], s) if t + 1 < T else (hs_head[:, :0], s)
                return loss_fn(jnp.concatenate([hs_head, hs_tail], axis=1), final)

            for field in s_t._fields:
                up, down = nudges(getattr(s_t, field), eps)  # (B*H, B, H) each
                many = lambda a, s_t=s_t, field=field: s_t._replace(
                    **{
                        f: a if f == field else jnp.broadcast_to(v, a.shape)
                        for f, v in s_t._asdict().items()
                    }
                )
                grads = (loss_from(many(up)) - loss_from(many(down))) / (2 * eps)
                expected = np.linalg.norm(np.asarray(grads).reshape(B, H), axis=-1)
                worst = max(worst, np.abs(np.asarray(norms[field][:, t]) - expected).max())
    assert set(norms) == set(state._fields) and norms["h"].shape == (B, T)
    assert worst < 1e-7, worst


def test_state_gradients_are_zero_at_padding(key):
    _, params, xs, _ = setup("lstm", key)
    norms = inspect.state_gradient_norms(
        lambda hs, final: jnp.sum(final.c), params, xs, lengths=jnp.asarray(LENGTHS)
    )
    real = np.arange(T)[None, :] < LENGTHS[:, None]
    assert not np.asarray(norms["c"])[~real].any()
    assert np.asarray(norms["c"])[real].all()


def test_plot_gate_traces_writes_a_png(tmp_path, key):
    _, params, xs, _ = setup("lstm", key)
    traces = inspect.gate_traces(params, xs, lengths=jnp.asarray(LENGTHS))
    path = plot_gate_traces(
        traces,
        LENGTHS,
        tmp_path / "gates.png",
        labels=inspect.trace_labels("lstm"),
        sequence_names=["a", "b", "c"],
        tick_labels=[list("abcdef")] * 3,
        max_units=3,
    )
    assert path.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ValueError, match=r"lengths must be \(3,\); got shape \(2,\)"):
        plot_gate_traces(traces, LENGTHS[:2], tmp_path / "b.png")
    with pytest.raises(ValueError, match=r"traces must all be \(N, T, H\) arrays of one shape"):
        plot_gate_traces({"h": traces["h"], "x": traces["h"][:, :2]}, LENGTHS, tmp_path / "c.png")


def classifier_task(**model):
    from jlstm.configs import default
    from jlstm.train.tasks import make_task

    config = default.get_config("smoke")
    config.model.update(model)
    return make_task(config, jax.random.key(0))


def test_classifier_report_draws_the_first_layers_gates(tmp_path, monkeypatch):
    from jlstm.train.tasks import classification

    task = classifier_task()
    drawn = {}

    def spy(traces, lengths, path, **kw):
        drawn.update(traces=traces, lengths=lengths, **kw)
        return plot_gate_traces(traces, lengths, path, **kw)

    monkeypatch.setattr(classification, "plot_gate_traces", spy)
    out = task.report(task.model, tmp_path)
    assert out == {"files": {"gates": str(tmp_path / "gates.png")}}
    assert (tmp_path / "gates.png").read_bytes()[:8] == PNG_MAGIC
    _, test = classification.load_labelled("japanese_vowels", standardize=True)
    indices = classification.attention_plot_indices(len(test), classification.GATE_PLOT_SEQUENCES)
    batch = test.batch(indices)
    rnn = task.model.encoder.rnn
    expected = inspect.gate_traces(rnn.params[0][0], batch["xs"], lengths=batch["lengths"])
    assert list(drawn["traces"]) == ["f", "i", "g", "o", "c", "h"]
    for k in expected:
        np.testing.assert_allclose(drawn["traces"][k], expected[k], rtol=1e-6)
    np.testing.assert_array_equal(drawn["lengths"], batch["lengths"])
    assert len(drawn["sequence_names"]) == len(indices) == classification.GATE_PLOT_SEQUENCES


@pytest.mark.slow
def test_classifier_report_with_attention_and_without_traces(tmp_path, monkeypatch):
    task = classifier_task(pooling="attention", cell="gru")
    out = task.report(task.model, tmp_path)
    assert set(out["files"]) == {"gates", "attention"}
    monkeypatch.delitem(inspect.TRACES, "gru")
    (tmp_path / "b").mkdir()
    assert classifier_task(cell="gru").report(task.model, tmp_path / "b") == {}
    assert not (tmp_path / "b" / "gates.png").exists()


def test_charlm_report_draws_gates_over_the_text(tmp_path):
    from jlstm.configs import charlm
    from jlstm.train.tasks import make_task

    config = charlm.get_config("smoke")
    config.data.name = "pydoc"
    config.train.sample_chars = 0
    task = make_task(config, jax.random.key(0))
    out = task.report(task.model, tmp_path)
    assert out == {"files": {"gates": str(tmp_path / "gates.png")}}
    assert (tmp_path / "gates.png").read_bytes()[:8] == PNG_MAGIC
    assert not (tmp_path / "sample.txt").exists()
