"""torch.nn.GRU and torch.nn.RNN (tanh, relu) as outside references: values, final states,
every gradient, and the weight conversion both ways.

Run with ``-s`` to see the measured errors, max|jlstm - torch| / max|torch| per quantity.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jlstm import GRUParams, HiddenState, RNNParams, init_stack_params, stack
from jlstm.interop.torch import cell_name, params_from_torch, params_to_torch

torch = pytest.importorskip("torch")

B, T, I, H, LAYERS = 4, 9, 5, 6, 2  # noqa: E741 (the shapes of test_torch_parity.py)
LENGTHS = [9, 6, 3, 1]  # ragged, unsorted after the first: enforce_sorted=False
CELLS = ("gru", "rnn_tanh", "rnn_relu")  # jlstm cell names
BIAS_INIT = jax.nn.initializers.normal(0.5)  # non-zero biases, so that their mapping counts


def relative_error(ours, theirs):
    theirs = np.asarray(theirs, np.float64)
    return np.abs(np.asarray(ours, np.float64) - theirs).max() / np.abs(theirs).max()


def torch_module(cell, *, batch_first=True, dtype=None, num_layers=LAYERS, **options):
    if cell == "gru":
        cls = torch.nn.GRU
    else:
        cls = torch.nn.RNN
        options["nonlinearity"] = "relu" if cell == "rnn_relu" else "tanh"
    return cls(
        I,
        H,
        num_layers=num_layers,
        bidirectional=True,
        batch_first=batch_first,
        dtype=dtype,
        **options,
    )


def jlstm_params(cell, key=3, num_layers=LAYERS, dtype=jnp.float32):
    return init_stack_params(
        jax.random.key(key),
        I,
        H,
        num_layers=num_layers,
        bidirectional=True,
        cell=cell,
        bias_init=BIAS_INIT,
        dtype=dtype,
    )


def torch_run(module, x, h0, weights, batch_first):
    """Loss of a packed, variable-length batch; returns outputs, h_n and gradients."""
    x = torch.tensor(x, requires_grad=True)
    h0 = None if h0 is None else torch.tensor(h0, requires_grad=True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        x, torch.tensor(LENGTHS), batch_first=batch_first, enforce_sorted=False
    )
    out, h_n = module(packed, h0)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=batch_first, total_length=T)
    w_out, w_h = (torch.tensor(w) for w in weights)
    loss = (out * w_out).sum() + (h_n * w_h).sum()
    module.zero_grad()
    loss.backward()
    grads = {name: p.grad.numpy().copy() for name, p in module.named_parameters()}
    grads["x"] = x.grad.numpy()
    if h0 is not None:
        grads["h0"] = h0.grad.numpy()
    return out.detach().numpy(), h_n.detach().numpy(), grads


def jlstm_run(params, cell, x, h0, weights, batch_first, implementation):
    w_out, w_h = (jnp.asarray(w) for w in weights)

    def loss(params, x, h0):
        out, final = stack(
            params,
            x,
            cell=cell,
            implementation=implementation,
            initial_state=None if h0 is None else HiddenState(h0),
            lengths=jnp.array(LENGTHS),
            time_major=not batch_first,
        )
        return (out * w_out).sum() + (final.h * w_h).sum(), (out, final)

    x = jnp.asarray(x)
    h0 = None if h0 is None else jnp.asarray(h0)
    grads, (out, final) = jax.grad(loss, argnums=(0, 1, 2), has_aux=True)(params, x, h0)
    return out, final.h, grads


def as_torch_grads(g_params):
    """jlstm's parameter gradients under torch's names, by the chain rule through the
    conversion: torch's biases reach the forward pass only through jlstm's ``b``
    (LSTM, RNN: both biases; GRU: both for r and z, bias_ih for n) and ``b_hn``
    (the n block of the GRU's bias_hh)."""
    grads = {}
    for k, directional in enumerate(g_params):
        for d, g in enumerate(directional):
            s = f"_l{k}" + ("_reverse" if d else "")
            grads[f"weight_ih{s}"] = g.w_x.T
            grads[f"weight_hh{s}"] = g.w_h.T
            grads[f"bias_ih{s}"] = g.b
            if isinstance(g, GRUParams):
                grads[f"bias_hh{s}"] = jnp.concatenate([g.b[: 2 * H], g.b_hn])
            else:
                grads[f"bias_hh{s}"] = g.b
    return grads


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return dict(
        x=rng.normal(size=(B, T, I)).astype(np.float32),
        h0=rng.normal(size=(2 * LAYERS, B, H)).astype(np.float32),
        weights=(
            rng.normal(size=(B, T, 2 * H)).astype(np.float32),
            rng.normal(size=(2 * LAYERS, B, H)).astype(np.float32),
        ),
    )


def parity_errors(
    module, params, cell, data, *, batch_first, initial_state=True, implementation="auto"
):
    """The relative error of every output, final state and gradient, by name."""
    dtype = np.float64 if next(module.parameters()).dtype == torch.float64 else np.float32
    x, (w_out, w_h) = data["x"].astype(dtype), (w.astype(dtype) for w in data["weights"])
    h0 = data["h0"].astype(dtype) if initial_state else None
    if not batch_first:
        x, w_out = np.swapaxes(x, 0, 1), np.swapaxes(w_out, 0, 1)
    t_out, t_h, t_grads = torch_run(module, x, h0, (w_out, w_h), batch_first)
    j_out, j_h, (g_params, g_x, g_h0) = jlstm_run(
        params, cell, x, h0, (w_out, w_h), batch_first, implementation
    )
    steps = np.arange(T)[:, None] if not batch_first else np.arange(T)[None, :]
    lengths = np.array(LENGTHS)[None, :] if not batch_first else np.array(LENGTHS)[:, None]
    padded = steps >= lengths  # (B, T) or (T, B)
    assert np.all(np.asarray(j_out)[padded] == 0), "jlstm's outputs at padded steps are not zero"
    errors = {
        "output": relative_error(j_out, t_out),
        "h_n": relative_error(j_h, t_h),
        "grad x": relative_error(g_x, t_grads.pop("x")),
    }
    if initial_state:
        errors["grad h0"] = relative_error(g_h0, t_grads.pop("h0"))
    ours = as_torch_grads(g_params)
    assert sorted(ours) == sorted(t_grads)  # every torch weight is compared
    assert len(ours) == 4 * 2 * LAYERS
    errors.update({name: relative_error(ours[name], t_grads[name]) for name in t_grads})
    return errors


def summary(errors):
    weights = max(v for k, v in errors.items() if k.startswith(("weight", "bias")))
    inputs = max(v for k, v in errors.items() if k.startswith("grad"))
    return (
        f"output {errors['output']:.1e}, h_n {errors['h_n']:.1e}, "
        f"input grads {inputs:.1e}, weight grads {weights:.1e}"
    )


def check(errors, tolerance, label):
    print(f"\n{label}: {summary(errors)}")
    worst = max(errors, key=errors.get)
    assert errors[worst] <= tolerance, (
        f"{worst}: max|jlstm - torch| / max|torch| = {errors[worst]:.2e}"
    )


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("cell", CELLS)
def test_torch_to_jlstm(cell, batch_first, data):
    torch.manual_seed(0)
    module = torch_module(cell, batch_first=batch_first)
    errors = parity_errors(
        module,
        params_from_torch(module),
        cell_name(module),
        data,
        batch_first=batch_first,
        implementation="reference",
    )
    check(errors, 1e-5, f"{cell} torch -> jlstm, float32, batch_first={batch_first}")


@pytest.mark.parametrize("cell", CELLS)
def test_jlstm_to_torch(cell, data):
    params = jlstm_params(cell)
    nonlinearity = {"gru": None, "rnn_tanh": None, "rnn_relu": "relu"}[cell]
    module = params_to_torch(params, nonlinearity=nonlinearity)
    errors = parity_errors(module, params, cell, data, batch_first=True)
    check(errors, 1e-5, f"{cell} jlstm -> torch, float32")


@pytest.mark.parametrize("cell", CELLS)
def test_zero_initial_state(cell, data):
    torch.manual_seed(1)
    module = torch_module(cell)
    errors = parity_errors(
        module, params_from_torch(module), cell, data, batch_first=True, initial_state=False
    )
    check(errors, 1e-5, f"{cell} no initial state, float32")


@pytest.mark.parametrize("cell", CELLS)
def test_float64(cell, data):
    """In float64 the two libraries agree to rounding: the equations are the same."""
    torch.manual_seed(2)
    module = torch_module(cell, dtype=torch.float64)
    with jax.enable_x64(True):
        params = params_from_torch(module, dtype=jnp.float64)
        errors = parity_errors(
            module, params, cell, data, batch_first=True, implementation="reference"
        )
    check(errors, 1e-12, f"{cell} torch -> jlstm, float64")


def test_cell_rnn_is_torch_tanh_rnn(data):
    """``cell="rnn"`` is the tanh RNN (jlstm.cells' table), torch.nn.RNN's default."""
    torch.manual_seed(0)
    module = torch_module("rnn_tanh")
    errors = parity_errors(module, params_from_torch(module), "rnn", data, batch_first=True)
    check(errors, 1e-5, "rnn (by that name) torch -> jlstm, float32")


@pytest.mark.parametrize("cell", CELLS)
def test_round_trip_is_exact(cell):
    params = jlstm_params(cell, key=4, num_layers=3)
    nonlinearity = "relu" if cell == "rnn_relu" else None
    module = params_to_torch(params, nonlinearity=nonlinearity)
    back = params_from_torch(module)
    assert jax.tree.structure(back) == jax.tree.structure(params)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(a, b)
    # And torch -> jlstm -> torch keeps the weights and what the forward pass sees.
    again = params_to_torch(back, torch_module(cell, num_layers=3))
    for name, tensor in module.state_dict().items():
        np.testing.assert_array_equal(again.state_dict()[name].numpy(), tensor.numpy())


def test_round_trip_float64():
    with jax.enable_x64(True):
        params = jlstm_params("gru", dtype=jnp.float64)
        module = params_to_torch(params, torch_module("gru", dtype=torch.float64))
        back = params_from_torch(module, dtype=jnp.float64)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(params), strict=True):
        assert a.dtype == np.float64
        np.testing.assert_array_equal(a, b)


def test_gru_bias_layout():
    """b = bias_ih + [bias_hh_r, bias_hh_z, 0] and b_hn = bias_hh_n; back: [0, 0, b_hn]."""
    torch.manual_seed(3)
    module = torch.nn.GRU(I, H)
    p = params_from_torch(module)[0][0]
    b_ih, b_hh = (module.bias_ih_l0.detach().numpy(), module.bias_hh_l0.detach().numpy())
    np.testing.assert_allclose(p.b[: 2 * H], (b_ih + b_hh)[: 2 * H], rtol=1e-6)
    np.testing.assert_array_equal(p.b[2 * H :], b_ih[2 * H :])
    np.testing.assert_array_equal(p.b_hn, b_hh[2 * H :])
    back = params_to_torch(((p,),), batch_first=False)
    np.testing.assert_array_equal(back.bias_ih_l0.detach().numpy(), p.b)
    np.testing.assert_array_equal(back.bias_hh_l0.detach().numpy()[: 2 * H], 0.0)
    np.testing.assert_array_equal(back.bias_hh_l0.detach().numpy()[2 * H :], p.b_hn)


@pytest.mark.parametrize("cell", CELLS)
def test_state_dict_kind_from_shapes(cell):
    torch.manual_seed(4)
    module = torch_module(cell)
    kind = "gru" if cell == "gru" else "rnn"
    expected = params_from_torch(module)
    for params in (
        params_from_torch(module.state_dict()),
        params_from_torch(module.state_dict(), kind=kind),
    ):
        assert type(params[0][0]) is (GRUParams if cell == "gru" else RNNParams)
        for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(expected), strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cell", CELLS)
def test_bias_false_module(cell, data):
    module = torch_module(cell, bias=False)
    params = params_from_torch(module)
    for field in ("b", "b_hn") if cell == "gru" else ("b",):
        np.testing.assert_array_equal(getattr(params[0][0], field), 0.0)
    params_to_torch(params, module)  # zero biases load into a bias-free module
    with pytest.raises(ValueError, match="bias=False but params.b"):
        params_to_torch(jlstm_params(cell), module)


def test_cell_name():
    assert cell_name(torch.nn.LSTM(I, H)) == "lstm"
    assert cell_name(torch.nn.GRU(I, H)) == "gru"
    assert cell_name(torch.nn.RNN(I, H)) == "rnn_tanh"
    assert cell_name(torch.nn.RNN(I, H, nonlinearity="relu")) == "rnn_relu"


def test_module_nonlinearity_is_kept():
    params = jlstm_params("rnn_tanh")
    module = params_to_torch(params, torch.nn.RNN(I, H, 2, bidirectional=True, nonlinearity="relu"))
    assert module.nonlinearity == "relu"
    assert params_to_torch(params).nonlinearity == "tanh"


class TestBadInput:
    def test_params_type_and_module_class_differ(self):
        with pytest.raises(
            ValueError, match=r"module must be a torch.nn.GRU for GRUParams; got LSTM"
        ):
            params_to_torch(jlstm_params("gru"), torch.nn.LSTM(I, H, LAYERS, bidirectional=True))

    def test_size_mismatch(self):
        with pytest.raises(ValueError, match=r"\(input_size, hidden_size, num_layers, bidir.*got"):
            params_to_torch(jlstm_params("gru"), torch.nn.GRU(I, H + 1, LAYERS, bidirectional=True))

    def test_nonlinearity_mismatch(self):
        with pytest.raises(ValueError, match="nonlinearity='relu' does not match the module's"):
            params_to_torch(jlstm_params("rnn_tanh"), torch_module("rnn_tanh"), nonlinearity="relu")

    def test_nonlinearity_for_a_gru(self):
        with pytest.raises(ValueError, match="nonlinearity is for RNNParams"):
            params_to_torch(jlstm_params("gru"), nonlinearity="tanh")

    def test_unknown_nonlinearity(self):
        with pytest.raises(ValueError, match="nonlinearity must be one of"):
            params_to_torch(jlstm_params("rnn_tanh"), nonlinearity="sigmoid")

    def test_kind_disagrees_with_module(self):
        with pytest.raises(ValueError, match="kind='lstm' does not match the module"):
            params_from_torch(torch_module("gru"), kind="lstm")

    def test_kind_disagrees_with_shapes(self):
        with pytest.raises(ValueError, match="kind='rnn' does not match the weights"):
            params_from_torch(torch_module("gru").state_dict(), kind="rnn")

    def test_unknown_kind(self):
        with pytest.raises(ValueError, match="kind must be one of"):
            params_from_torch(torch_module("gru"), kind="elman")

    def test_shapes_of_no_cell(self):
        state = {"weight_ih_l0": torch.zeros(12, I), "weight_hh_l0": torch.zeros(12, 6)}
        with pytest.raises(ValueError, match=r"weight_hh_l0 must be \(G \* hidden_size"):
            params_from_torch(state)

    def test_not_a_recurrent_module(self):
        with pytest.raises(ValueError, match="module must be a torch.nn.LSTM, torch.nn.GRU"):
            params_from_torch(torch.nn.Linear(I, H))
