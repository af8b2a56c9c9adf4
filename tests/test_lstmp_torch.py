"""torch.nn.LSTM(proj_size=P) as the outside reference for the "lstmp" cell: outputs,
h_n (P units), c_n (H units) and every gradient, and the weight conversion both ways.

Run with ``-s`` to see the measured errors, max|jlstm - torch| / max|torch| per quantity.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jlstm import LSTMState, init_stack_params, stack
from jlstm.cells import LSTMPParams
from jlstm.interop.torch import cell_name, params_from_torch, params_to_torch

torch = pytest.importorskip("torch")

B, T, I, H, P, LAYERS = 4, 9, 5, 6, 3, 2  # noqa: E741
LENGTHS = [9, 6, 3, 1]  # ragged, unsorted after the first: enforce_sorted=False
BIAS_INIT = jax.nn.initializers.normal(0.5)  # non-zero biases, so that their mapping counts


def relative_error(ours, theirs):
    theirs = np.asarray(theirs, np.float64)
    return np.abs(np.asarray(ours, np.float64) - theirs).max() / np.abs(theirs).max()


def torch_module(*, batch_first=True, dtype=None, num_layers=LAYERS, **options):
    return torch.nn.LSTM(
        I,
        H,
        num_layers=num_layers,
        bidirectional=True,
        batch_first=batch_first,
        proj_size=P,
        dtype=dtype,
        **options,
    )


def jlstm_params(key=3, num_layers=LAYERS, dtype=jnp.float32):
    return init_stack_params(
        jax.random.key(key),
        I,
        H,
        num_layers=num_layers,
        bidirectional=True,
        cell="lstmp",
        proj_size=P,
        bias_init=BIAS_INIT,
        dtype=dtype,
    )


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return dict(
        x=rng.normal(size=(B, T, I)),
        h0=rng.normal(size=(2 * LAYERS, B, P)),
        c0=rng.normal(size=(2 * LAYERS, B, H)),
        weights=(
            rng.normal(size=(B, T, 2 * P)),
            rng.normal(size=(2 * LAYERS, B, P)),
            rng.normal(size=(2 * LAYERS, B, H)),
        ),
    )


def torch_run(module, x, h0, c0, weights, batch_first):
    """Loss of a packed, variable-length batch; returns outputs, h_n, c_n and gradients."""
    x = torch.tensor(x, requires_grad=True)
    h0 = torch.tensor(h0, requires_grad=True)
    c0 = torch.tensor(c0, requires_grad=True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        x, torch.tensor(LENGTHS), batch_first=batch_first, enforce_sorted=False
    )
    out, (h_n, c_n) = module(packed, (h0, c0))
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=batch_first, total_length=T)
    w_out, w_h, w_c = (torch.tensor(w) for w in weights)
    loss = (out * w_out).sum() + (h_n * w_h).sum() + (c_n * w_c).sum()
    module.zero_grad()
    loss.backward()
    grads = {name: p.grad.numpy().copy() for name, p in module.named_parameters()}
    grads.update(x=x.grad.numpy(), h0=h0.grad.numpy(), c0=c0.grad.numpy())
    return out.detach().numpy(), h_n.detach().numpy(), c_n.detach().numpy(), grads


def jlstm_run(params, x, h0, c0, weights, batch_first, implementation):
    w_out, w_h, w_c = (jnp.asarray(w) for w in weights)

    def loss(params, x, h0, c0):
        out, final = stack(
            params,
            x,
            cell="lstmp",
            implementation=implementation,
            initial_state=LSTMState(h0, c0),
            lengths=jnp.array(LENGTHS),
            time_major=not batch_first,
        )
        value = (out * w_out).sum() + (final.h * w_h).sum() + (final.c * w_c).sum()
        return value, (out, final)

    args = (params, jnp.asarray(x), jnp.asarray(h0), jnp.asarray(c0))
    grads, (out, final) = jax.grad(loss, argnums=(0, 1, 2, 3), has_aux=True)(*args)
    return out, final.h, final.c, grads


def parity_errors(module, params, data, *, batch_first, implementation="auto"):
    """The relative error of every output, final state and gradient, by name."""
    dtype = np.float64 if next(module.parameters()).dtype == torch.float64 else np.float32
    x, h0, c0 = (data[k].astype(dtype) for k in ("x", "h0", "c0"))
    w_out, w_h, w_c = (w.astype(dtype) for w in data["weights"])
    if not batch_first:
        x, w_out = np.swapaxes(x, 0, 1), np.swapaxes(w_out, 0, 1)
    weights = (w_out, w_h, w_c)
    t_out, t_h, t_c, t_grads = torch_run(module, x, h0, c0, weights, batch_first)
    j_out, j_h, j_c, (g_params, g_x, g_h0, g_c0) = jlstm_run(
        params, x, h0, c0, weights, batch_first, implementation
    )
    assert j_out.shape == t_out.shape and j_h.shape == (2 * LAYERS, B, P)
    assert j_c.shape == (2 * LAYERS, B, H)
    errors = {
        "output": relative_error(j_out, t_out),
        "h_n": relative_error(j_h, t_h),
        "c_n": relative_error(j_c, t_c),
        "grad x": relative_error(g_x, t_grads.pop("x")),
        "grad h0": relative_error(g_h0, t_grads.pop("h0")),
        "grad c0": relative_error(g_c0, t_grads.pop("c0")),
    }
    ours = {}
    for k, directional in enumerate(g_params):
        for d, g in enumerate(directional):
            s = f"_l{k}" + ("_reverse" if d else "")
            ours[f"weight_ih{s}"] = g.w_x.T
            ours[f"weight_hh{s}"] = g.w_h.T
            ours[f"weight_hr{s}"] = g.w_hr.T
            # Both torch biases receive the same gradient: that of their sum, jlstm's b.
            ours[f"bias_ih{s}"] = g.b
            ours[f"bias_hh{s}"] = g.b
    assert sorted(ours) == sorted(t_grads)  # every torch weight is compared
    assert len(ours) == 5 * 2 * LAYERS
    errors.update({name: relative_error(ours[name], t_grads[name]) for name in t_grads})
    return errors


def check(errors, tolerance, label):
    weights = max(v for k, v in errors.items() if k.startswith(("weight", "bias")))
    inputs = max(v for k, v in errors.items() if k.startswith("grad"))
    print(
        f"\n{label}: output {errors['output']:.1e}, h_n {errors['h_n']:.1e}, "
        f"c_n {errors['c_n']:.1e}, input grads {inputs:.1e}, weight grads {weights:.1e}"
    )
    worst = max(errors, key=errors.get)
    assert errors[worst] <= tolerance, (
        f"{worst}: max|jlstm - torch| / max|torch| = {errors[worst]:.2e}"
    )


@pytest.mark.parametrize("batch_first", [True, False])
def test_torch_to_jlstm(data, batch_first):
    torch.manual_seed(0)
    module = torch_module(batch_first=batch_first)
    params = params_from_torch(module)
    assert type(params[0][0]) is LSTMPParams and cell_name(module) == "lstmp"
    assert params[1][0].w_x.shape == (2 * P, 4 * H)  # the next layer reads D * P features
    errors = parity_errors(module, params, data, batch_first=batch_first)
    check(errors, 1e-5, f"lstmp torch -> jlstm, float32, batch_first={batch_first}")


def test_jlstm_to_torch(data):
    params = jlstm_params()
    module = params_to_torch(params)
    assert module.proj_size == P and module.hidden_size == H
    errors = parity_errors(module, params, data, batch_first=True)
    check(errors, 1e-5, "lstmp jlstm -> torch, float32")


def test_float64(data):
    """In float64 the two libraries agree to rounding: the equations are the same."""
    torch.manual_seed(2)
    module = torch_module(dtype=torch.float64)
    with jax.enable_x64(True):
        params = params_from_torch(module, dtype=jnp.float64)
        errors = parity_errors(module, params, data, batch_first=True)
    check(errors, 1e-12, "lstmp torch -> jlstm, float64")


def test_round_trip_is_exact():
    params = jlstm_params(key=4, num_layers=3)
    module = params_to_torch(params)
    back = params_from_torch(module)
    assert jax.tree.structure(back) == jax.tree.structure(params)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(a, b)
    again = params_to_torch(back, torch_module(num_layers=3))
    for name, tensor in module.state_dict().items():
        np.testing.assert_array_equal(again.state_dict()[name].numpy(), tensor.numpy())


def test_state_dict_kind_from_shapes():
    torch.manual_seed(4)
    module = torch_module()
    expected = params_from_torch(module)
    for params in (
        params_from_torch(module.state_dict()),
        params_from_torch(module.state_dict(), kind="lstmp"),
    ):
        assert type(params[0][0]) is LSTMPParams
        for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(expected), strict=True):
            np.testing.assert_array_equal(a, b)


def test_bias_false_module():
    module = torch_module(bias=False)
    params = params_from_torch(module)
    np.testing.assert_array_equal(params[0][0].b, 0.0)
    params_to_torch(params, module)  # zero biases load into a bias-free module
    with pytest.raises(ValueError, match="bias=False but params.b"):
        params_to_torch(jlstm_params(), module)


class TestBadInput:
    def test_proj_size_mismatch(self):
        with pytest.raises(ValueError, match=r"proj_size\) = \(5, 6, 2, True, 3\); got"):
            params_to_torch(jlstm_params(), torch.nn.LSTM(I, H, LAYERS, bidirectional=True))
        plain = init_stack_params(jax.random.key(0), I, H, num_layers=LAYERS, bidirectional=True)
        with pytest.raises(ValueError, match=r"proj_size\) = \(5, 6, 2, True, 0\); got"):
            params_to_torch(plain, torch_module())

    def test_kind_disagrees_with_shapes(self):
        with pytest.raises(ValueError, match="kind='lstm' does not match the weights"):
            params_from_torch(torch_module().state_dict(), kind="lstm")

    def test_kind_disagrees_with_module(self):
        with pytest.raises(ValueError, match="kind='lstm' does not match the module"):
            params_from_torch(torch_module(), kind="lstm")

    def test_projection_of_no_lstm(self):
        state = dict(torch_module(num_layers=1).state_dict())
        state["weight_hr_l0"] = torch.zeros(P + 1, H)
        with pytest.raises(ValueError, match=r"weight_hr_l0 must be \(proj_size, hidden_size\)"):
            params_from_torch(state)
