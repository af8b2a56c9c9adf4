"""Weights between ``torch.nn.LSTM`` and jlstm, both ways.

PyTorch keeps, per layer ``k`` and direction (suffix ``_reverse`` for the
backward one), ``weight_ih_l{k}`` (4H, I), ``weight_hh_l{k}`` (4H, H),
``bias_ih_l{k}`` and ``bias_hh_l{k}`` (4H,), gate blocks in the order i, f, g, o
— jlstm's order. So ``w_x = weight_ih.T``, ``w_h = weight_hh.T`` and
``b = bias_ih + bias_hh``; going back, ``bias_ih = b`` and ``bias_hh = 0``
(the sum is all the forward pass sees). ``batch_first`` does not touch the
weights: give jlstm batch-major input for ``batch_first=True`` and
``time_major=True`` input otherwise.

torch is imported only inside these functions: importing jlstm never imports it.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from jlstm.cell import LSTMParams
from jlstm.stack import StackParams, stack_shape


def _suffix(layer: int, direction: int) -> str:
    return f"_l{layer}" + ("_reverse" if direction else "")


def params_from_torch(module: Any, *, dtype=jnp.float32) -> StackParams:
    """A ``torch.nn.LSTM`` (or its ``state_dict``) -> jlstm stack parameters.

    >>> import torch
    >>> params = params_from_torch(torch.nn.LSTM(3, 8, num_layers=2, bidirectional=True))
    >>> len(params), len(params[0]), params[1][1].w_x.shape
    (2, 2, (16, 32))
    """
    if hasattr(module, "state_dict"):
        if getattr(module, "proj_size", 0):
            raise NotImplementedError(
                f"torch.nn.LSTM with proj_size > 0 is not supported yet; got proj_size="
                f"{module.proj_size}"
            )
        state = module.state_dict()
    else:
        state = dict(module)
    if any(name.startswith("weight_hr") for name in state):
        raise NotImplementedError("torch.nn.LSTM with proj_size > 0 is not supported yet")
    if "weight_ih_l0" not in state:
        raise ValueError(
            f"module must be a torch.nn.LSTM or its state_dict; got keys {sorted(state)[:4]}"
        )

    def array(name):
        return np.asarray(state[name].detach().cpu().numpy(), np.float64)

    def bias(name, size):
        return array(name) if name in state else np.zeros(size)

    layers = []
    k = 0
    while f"weight_ih_l{k}" in state:
        directions = []
        for d in (0, 1):
            s = _suffix(k, d)
            if f"weight_ih{s}" not in state:
                continue
            w_ih, w_hh = array(f"weight_ih{s}"), array(f"weight_hh{s}")
            b = bias(f"bias_ih{s}", w_ih.shape[0]) + bias(f"bias_hh{s}", w_ih.shape[0])
            directions.append(
                LSTMParams(
                    w_x=jnp.asarray(w_ih.T, dtype),
                    w_h=jnp.asarray(w_hh.T, dtype),
                    b=jnp.asarray(b, dtype),
                )
            )
        layers.append(tuple(directions))
        k += 1
    params = tuple(layers)
    stack_shape(params)  # consistent sizes, or a clear error
    return params


def params_to_torch(params: StackParams, module: Any = None, *, batch_first: bool = True) -> Any:
    """jlstm stack parameters -> a ``torch.nn.LSTM`` holding the same weights.

    Loads into ``module`` when given (its sizes must match), else builds a new
    float32 ``torch.nn.LSTM``. Returns the module.

    >>> import jax
    >>> from jlstm import init_stack_params
    >>> lstm = params_to_torch(init_stack_params(jax.random.key(0), 3, 8, num_layers=2))
    >>> lstm.hidden_size, lstm.num_layers, lstm.batch_first
    (8, 2, True)
    """
    import torch

    input_size, hidden, num_layers, directions = stack_shape(params)
    if module is None:
        module = torch.nn.LSTM(
            input_size,
            hidden,
            num_layers=num_layers,
            bidirectional=directions == 2,
            batch_first=batch_first,
        )
    expected = (input_size, hidden, num_layers, directions == 2, 0)
    got = (
        module.input_size,
        module.hidden_size,
        module.num_layers,
        module.bidirectional,
        module.proj_size,
    )
    if got != expected:
        raise ValueError(
            "module must be a torch.nn.LSTM with (input_size, hidden_size, num_layers, "
            f"bidirectional, proj_size) = {expected}; got {got}"
        )
    state = module.state_dict()
    new = {}
    for k, directional in enumerate(params):
        for d, p in enumerate(directional):
            s = _suffix(k, d)
            ref = state[f"weight_ih{s}"]
            tensor = lambda a, ref=ref: torch.as_tensor(np.asarray(a, np.float32).copy()).to(ref)
            new[f"weight_ih{s}"] = tensor(p.w_x.T)
            new[f"weight_hh{s}"] = tensor(p.w_h.T)
            if f"bias_ih{s}" in state:
                new[f"bias_ih{s}"] = tensor(p.b)
                new[f"bias_hh{s}"] = tensor(np.zeros_like(p.b))
            elif np.any(np.asarray(p.b) != 0):
                raise ValueError("module was built with bias=False but params.b is not zero")
    module.load_state_dict(new)
    return module
