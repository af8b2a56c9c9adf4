"""torch.nn.LSTM as the outside reference: values, final states and every gradient."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jlstm import LSTMState, init_stack_params, stack
from jlstm.interop.torch import params_from_torch, params_to_torch

torch = pytest.importorskip("torch")

B, T, I, H, LAYERS = 4, 9, 5, 6, 2  # noqa: E741 (the shapes of PEERS.md)
LENGTHS = [9, 6, 3, 1]


def relative_error(ours, theirs):
    theirs = np.asarray(theirs, np.float64)
    return np.abs(np.asarray(ours, np.float64) - theirs).max() / np.abs(theirs).max()


def torch_run(module, x, h0, c0, weights, batch_first):
    """Loss of a packed, variable-length batch; returns outputs, h_n, c_n and gradients."""
    x = torch.tensor(np.asarray(x), requires_grad=True)
    h0 = torch.tensor(np.asarray(h0), requires_grad=True)
    c0 = torch.tensor(np.asarray(c0), requires_grad=True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        x, torch.tensor(LENGTHS), batch_first=batch_first, enforce_sorted=False
    )
    out, (h_n, c_n) = module(packed, (h0, c0))
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=batch_first, total_length=T)
    w_out, w_h, w_c = (torch.tensor(np.asarray(w)) for w in weights)
    loss = (out * w_out).sum() + (h_n * w_h).sum() + (c_n * w_c).sum()
    module.zero_grad()
    loss.backward()
    grads = {name: p.grad.numpy().copy() for name, p in module.named_parameters()}
    grads.update(x=x.grad.numpy(), h0=h0.grad.numpy(), c0=c0.grad.numpy())
    return out.detach().numpy(), h_n.detach().numpy(), c_n.detach().numpy(), grads


def jlstm_run(params, x, h0, c0, weights, batch_first):
    w_out, w_h, w_c = weights

    def loss(params, x, h0, c0):
        out, final = stack(
            params,
            x,
            initial_state=LSTMState(h0, c0),
            lengths=jnp.array(LENGTHS),
            time_major=not batch_first,
        )
        value = (out * w_out).sum() + (final.h * w_h).sum() + (final.c * w_c).sum()
        return value, (out, final)

    grads, (out, final) = jax.grad(loss, argnums=(0, 1, 2, 3), has_aux=True)(params, x, h0, c0)
    return out, final.h, final.c, grads


def torch_names(layer, direction):
    s = f"_l{layer}" + ("_reverse" if direction else "")
    return {
        "w_x": f"weight_ih{s}",
        "w_h": f"weight_hh{s}",
        "b_ih": f"bias_ih{s}",
        "b_hh": f"bias_hh{s}",
    }


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return dict(
        x=rng.normal(size=(B, T, I)).astype(np.float32),
        h0=rng.normal(size=(2 * LAYERS, B, H)).astype(np.float32),
        c0=rng.normal(size=(2 * LAYERS, B, H)).astype(np.float32),
        weights=(
            rng.normal(size=(B, T, 2 * H)).astype(np.float32),
            rng.normal(size=(2 * LAYERS, B, H)).astype(np.float32),
            rng.normal(size=(2 * LAYERS, B, H)).astype(np.float32),
        ),
    )


def check_parity(module, params, data, batch_first):
    x, weights = data["x"], data["weights"]
    if not batch_first:
        x = np.swapaxes(x, 0, 1)
        weights = (np.swapaxes(weights[0], 0, 1), *weights[1:])
    t_out, t_h, t_c, t_grads = torch_run(module, x, data["h0"], data["c0"], weights, batch_first)
    j_out, j_h, j_c, (g_params, g_x, g_h0, g_c0) = jlstm_run(
        params,
        jnp.asarray(x),
        jnp.asarray(data["h0"]),
        jnp.asarray(data["c0"]),
        weights,
        batch_first,
    )
    errors = {
        "output": relative_error(j_out, t_out),
        "h_n": relative_error(j_h, t_h),
        "c_n": relative_error(j_c, t_c),
        "grad x": relative_error(g_x, t_grads["x"]),
        "grad h0": relative_error(g_h0, t_grads["h0"]),
        "grad c0": relative_error(g_c0, t_grads["c0"]),
    }
    for k, directional in enumerate(g_params):
        for d, g in enumerate(directional):
            names = torch_names(k, d)
            errors[names["w_x"]] = relative_error(g.w_x.T, t_grads[names["w_x"]])
            errors[names["w_h"]] = relative_error(g.w_h.T, t_grads[names["w_h"]])
            # Both torch biases receive the same gradient: that of their sum, jlstm's b.
            errors[names["b_ih"]] = relative_error(g.b, t_grads[names["b_ih"]])
            errors[names["b_hh"]] = relative_error(g.b, t_grads[names["b_hh"]])
    assert len(errors) == 6 + 4 * 2 * LAYERS
    worst = max(errors, key=errors.get)
    assert errors[worst] <= 1e-5, f"{worst}: max|jlstm - torch| / max|torch| = {errors[worst]:.2e}"


@pytest.mark.parametrize("batch_first", [True, False])
def test_torch_to_jlstm(data, batch_first):
    torch.manual_seed(0)
    module = torch.nn.LSTM(I, H, num_layers=LAYERS, bidirectional=True, batch_first=batch_first)
    check_parity(module, params_from_torch(module), data, batch_first)


@pytest.mark.parametrize("batch_first", [True, False])
def test_jlstm_to_torch(data, batch_first):
    params = init_stack_params(jax.random.key(3), I, H, num_layers=LAYERS, bidirectional=True)
    module = params_to_torch(params, batch_first=batch_first)
    check_parity(module, params, data, batch_first)


def test_round_trip_is_exact():
    params = init_stack_params(jax.random.key(4), I, H, num_layers=3, bidirectional=True)
    back = params_from_torch(params_to_torch(params))
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(a, b)


def test_state_dict_and_unidirectional():
    torch.manual_seed(1)
    module = torch.nn.LSTM(I, H, num_layers=2, batch_first=True)
    params = params_from_torch(module.state_dict())
    assert len(params) == 2 and len(params[0]) == 1
    np.testing.assert_allclose(
        params[1][0].b, (module.bias_ih_l1 + module.bias_hh_l1).detach().numpy(), rtol=1e-6
    )
    x = np.random.default_rng(2).normal(size=(3, T, I)).astype(np.float32)
    out, _ = module(torch.tensor(x))
    ours, _ = stack(params, jnp.asarray(x))
    assert relative_error(ours, out.detach().numpy()) <= 1e-5


def test_bias_false_module():
    module = torch.nn.LSTM(I, H, bias=False, batch_first=True)
    params = params_from_torch(module)
    np.testing.assert_array_equal(params[0][0].b, 0.0)
    params_to_torch(params, module)  # zero bias loads into a bias-free module


class TestBadInput:
    def test_proj_size_gives_the_projected_cell(self):
        """proj_size > 0 converts (to LSTMPParams; parity in test_lstmp_torch.py)."""
        params = params_from_torch(torch.nn.LSTM(I, H, proj_size=2))
        assert type(params[0][0]).__name__ == "LSTMPParams"

    def test_not_an_lstm(self):
        with pytest.raises(ValueError, match=r"module must be a torch.nn.LSTM.*or the state_dict"):
            params_from_torch({"weight": torch.zeros(3)})

    def test_size_mismatch(self):
        params = init_stack_params(jax.random.key(0), I, H)
        with pytest.raises(ValueError, match=r"\(input_size, hidden_size, num_layers.*got"):
            params_to_torch(params, torch.nn.LSTM(I, H + 1))


def test_importing_jlstm_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, jlstm, jlstm.interop.torch; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
