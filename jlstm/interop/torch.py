"""Weights between ``torch.nn.LSTM``, ``torch.nn.GRU``, ``torch.nn.RNN`` and jlstm, both ways.

PyTorch keeps, per layer ``k`` and direction (suffix ``_reverse`` for the
backward one), ``weight_ih_l{k}`` (G*H, I), ``weight_hh_l{k}`` (G*H, H),
``bias_ih_l{k}`` and ``bias_hh_l{k}`` (G*H,), with G gate blocks in jlstm's
order: G = 4 (i, f, g, o) for the LSTM, 3 (r, z, n) for the GRU, 1 for the
Elman RNN. In every case ``w_x = weight_ih.T`` and ``w_h = weight_hh.T``. The
biases:

=========  ===========================================  ===========================================
module     torch -> jlstm                               jlstm -> torch
=========  ===========================================  ===========================================
LSTM, RNN  ``b = bias_ih + bias_hh``                    ``bias_ih = b``, ``bias_hh = 0``
GRU        ``b = bias_ih + [bias_hh_r, bias_hh_z, 0]``  ``bias_ih = b``, ``bias_hh = [0, 0, b_hn]``
           ``b_hn = bias_hh_n``
=========  ===========================================  ===========================================

(the sums are all the forward pass sees; the GRU's ``bias_hh_n`` sits inside the
reset product, so it stays apart as ``b_hn``). jlstm -> torch -> jlstm is
exact. The parameters' type names the cell (:class:`~jlstm.cells.LSTMParams`,
:class:`~jlstm.cells.GRUParams`, :class:`~jlstm.cells.RNNParams`), except an
RNN's nonlinearity, which the weights do not hold: run a ReLU ``torch.nn.RNN``'s
parameters with ``cell="rnn_relu"`` (:func:`cell_name` gives the cell's name for
any module, "rnn_tanh" for a tanh RNN), and pass ``nonlinearity="relu"`` to
:func:`params_to_torch`.

An LSTM with ``proj_size=P > 0`` is the ``"lstmp"`` cell
(:class:`~jlstm.cells.LSTMPParams`): its ``weight_hh_l{k}`` is (4H, P) and its
projection ``weight_hr_l{k}`` (P, H), so ``w_h = weight_hh.T`` (P, 4H) and
``w_hr = weight_hr.T`` (H, P); the biases as the LSTM's. Its ``h_n`` is
``final.h`` (P units) and its ``c_n`` ``final.c`` (H units).

``batch_first`` does not touch the weights: give jlstm batch-major input for
``batch_first=True`` and ``time_major=True`` input otherwise.

torch is imported only inside these functions: importing jlstm never imports it.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from jlstm.cells import GRUParams, LSTMParams, LSTMPParams, RNNParams
from jlstm.stack import StackParams, stack_shape

# kind -> (parameters' type, gate blocks, the torch class's name)
_KINDS = {
    "lstm": (LSTMParams, 4, "LSTM"),
    "gru": (GRUParams, 3, "GRU"),
    "rnn": (RNNParams, 1, "RNN"),
    "lstmp": (LSTMPParams, 4, "LSTM"),  # torch.nn.LSTM with proj_size > 0
}
_BY_GATES = {gates: kind for kind, (_, gates, _) in _KINDS.items() if kind != "lstmp"}
_BY_TYPE = {params_type: kind for kind, (params_type, _, _) in _KINDS.items()}
# torch.nn.RNNBase.mode -> (kind, nonlinearity)
_MODES = {
    "LSTM": ("lstm", None),
    "GRU": ("gru", None),
    "RNN_TANH": ("rnn", "tanh"),
    "RNN_RELU": ("rnn", "relu"),
}
_NONLINEARITIES = ("tanh", "relu")


def _suffix(layer: int, direction: int) -> str:
    return f"_l{layer}" + ("_reverse" if direction else "")


def _mode(module: Any) -> tuple[str, str | None]:
    """(kind, nonlinearity) of a torch recurrent module, or a ValueError."""
    mode = getattr(module, "mode", None)
    if mode not in _MODES:
        raise ValueError(
            "module must be a torch.nn.LSTM, torch.nn.GRU or torch.nn.RNN; "
            f"got {type(module).__name__}"
        )
    if mode == "LSTM" and getattr(module, "proj_size", 0):
        return "lstmp", None
    return _MODES[mode]


def cell_name(module: Any) -> str:
    """The jlstm cell that runs a torch module's weights, for ``cell=``: "lstm", "gru",
    "rnn_tanh" or "rnn_relu" (torch's ``mode``, lower case), "lstmp" for an LSTM with
    ``proj_size > 0``.

    >>> import torch
    >>> cell_name(torch.nn.RNN(3, 8, nonlinearity="relu")), cell_name(torch.nn.GRU(3, 8))
    ('rnn_relu', 'gru')
    >>> cell_name(torch.nn.LSTM(3, 8, proj_size=2))
    'lstmp'
    """
    kind, nonlinearity = _mode(module)
    return kind if nonlinearity is None else f"rnn_{nonlinearity}"


def _infer_kind(state: dict, kind: str | None) -> str:
    """The kind from the shapes of ``weight_hh_l0`` (G*H, H), checked against ``kind``;
    "lstmp" where the state has a projection ``weight_hr_l0`` (P, H)."""
    rows, cols = tuple(state["weight_hh_l0"].shape)
    if "weight_hr_l0" in state:
        hr = tuple(state["weight_hr_l0"].shape)
        if len(hr) != 2 or hr[0] != cols or rows != 4 * hr[1] or not 0 < cols < hr[1]:
            raise ValueError(
                "weight_hr_l0 must be (proj_size, hidden_size) with 0 < proj_size < hidden_size "
                f"and weight_hh_l0 (4 * hidden_size, proj_size); got weight_hr_l0 {hr} and "
                f"weight_hh_l0 {(rows, cols)}"
            )
        if kind is not None and kind != "lstmp":
            raise ValueError(
                f"kind={kind!r} does not match the weights: weight_hr_l0 {hr} is the projection "
                "of an LSTM with proj_size > 0, kind 'lstmp'"
            )
        return "lstmp"
    inferred = _BY_GATES.get(rows // cols) if cols and rows % cols == 0 else None
    if inferred is None:
        raise ValueError(
            "weight_hh_l0 must be (G * hidden_size, hidden_size) with G = 4 (LSTM), 3 (GRU) "
            f"or 1 (RNN); got shape {(rows, cols)}"
        )
    if kind is not None and kind != inferred:
        raise ValueError(
            f"kind={kind!r} does not match the weights: weight_hh_l0 {(rows, cols)} is "
            f"{inferred!r}'s ({_KINDS[inferred][1]} * hidden_size rows)"
        )
    return inferred


def _params(kind: str, w_ih, w_hh, b_ih, b_hh, dtype, w_hr=None):
    """One layer-direction's jlstm parameters from torch's float64 arrays."""
    if kind == "gru":
        hidden = w_hh.shape[1]
        b = b_ih + np.concatenate([b_hh[: 2 * hidden], np.zeros(hidden)])
        extra = dict(b_hn=jnp.asarray(b_hh[2 * hidden :], dtype))
    else:
        b = b_ih + b_hh
        extra = {} if w_hr is None else dict(w_hr=jnp.asarray(w_hr.T, dtype))
    return _KINDS[kind][0](
        w_x=jnp.asarray(w_ih.T, dtype),
        w_h=jnp.asarray(w_hh.T, dtype),
        b=jnp.asarray(b, dtype),
        **extra,
    )


def _biases(p) -> tuple[np.ndarray, np.ndarray]:
    """(bias_ih, bias_hh) for one layer-direction's jlstm parameters, float64."""
    b = np.asarray(p.b, np.float64)
    if isinstance(p, GRUParams):
        b_hn = np.asarray(p.b_hn, np.float64)
        return b, np.concatenate([np.zeros(b.shape[0] - b_hn.shape[0]), b_hn])
    return b, np.zeros_like(b)


def params_from_torch(module: Any, *, kind: str | None = None, dtype=jnp.float32) -> StackParams:
    """A ``torch.nn.LSTM``, ``GRU`` or ``RNN`` (or its ``state_dict``) -> jlstm stack parameters.

    The kind ("lstm", "gru", "rnn", or "lstmp" for an LSTM with ``proj_size > 0``)
    comes from the module, or for a ``state_dict`` from the shapes (``weight_hh_l0``
    has 4H, 3H or H rows; a ``weight_hr_l0`` is a projection); ``kind=`` states it,
    and must agree. A ReLU RNN's parameters run with ``cell="rnn_relu"``
    (:func:`cell_name`).

    >>> import torch
    >>> params = params_from_torch(torch.nn.LSTM(3, 8, num_layers=2, bidirectional=True))
    >>> len(params), len(params[0]), params[1][1].w_x.shape
    (2, 2, (16, 32))
    >>> params = params_from_torch(torch.nn.GRU(3, 8).state_dict())
    >>> type(params[0][0]).__name__, params[0][0].w_h.shape, params[0][0].b_hn.shape
    ('GRUParams', (8, 24), (8,))
    >>> p = params_from_torch(torch.nn.LSTM(3, 8, proj_size=2))[0][0]
    >>> type(p).__name__, p.w_h.shape, p.w_hr.shape
    ('LSTMPParams', (2, 32), (8, 2))
    """
    if kind is not None and kind not in _KINDS:
        raise ValueError(f"kind must be one of {tuple(_KINDS)} or None; got {kind!r}")
    if hasattr(module, "state_dict"):
        module_kind, _ = _mode(module)
        if kind is not None and kind != module_kind:
            raise ValueError(
                f"kind={kind!r} does not match the module, a torch.nn.{type(module).__name__}"
            )
        state = module.state_dict()
    else:
        state = dict(module)
    if "weight_ih_l0" not in state or "weight_hh_l0" not in state:
        raise ValueError(
            "module must be a torch.nn.LSTM, torch.nn.GRU or torch.nn.RNN, or the state_dict "
            f"of one; got keys {sorted(state)[:4]}"
        )
    kind = _infer_kind(state, kind)

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
            size = w_ih.shape[0]
            b_ih, b_hh = bias(f"bias_ih{s}", size), bias(f"bias_hh{s}", size)
            w_hr = array(f"weight_hr{s}") if kind == "lstmp" else None
            directions.append(_params(kind, w_ih, w_hh, b_ih, b_hh, dtype, w_hr))
        layers.append(tuple(directions))
        k += 1
    params = tuple(layers)
    stack_shape(params)  # consistent sizes, or a clear error
    return params


def params_to_torch(
    params: StackParams,
    module: Any = None,
    *,
    batch_first: bool = True,
    nonlinearity: str | None = None,
) -> Any:
    """jlstm stack parameters -> a torch module holding the same weights.

    The module's class follows the parameters' type: ``torch.nn.LSTM`` for
    :class:`~jlstm.cells.LSTMParams`, ``torch.nn.LSTM(proj_size=P)`` for
    :class:`~jlstm.cells.LSTMPParams`, ``torch.nn.GRU`` for
    :class:`~jlstm.cells.GRUParams`, ``torch.nn.RNN`` with ``nonlinearity``
    ("tanh" unless ``module`` says otherwise) for :class:`~jlstm.cells.RNNParams`.
    Loads into ``module`` when given (its class and sizes must match, and its
    dtype is kept), else builds a new float32 module. Returns the module.

    >>> import jax
    >>> from jlstm import init_stack_params
    >>> lstm = params_to_torch(init_stack_params(jax.random.key(0), 3, 8, num_layers=2))
    >>> lstm.hidden_size, lstm.num_layers, lstm.batch_first
    (8, 2, True)
    >>> rnn = params_to_torch(init_stack_params(jax.random.key(0), 3, 8, cell="rnn"),
    ...                       nonlinearity="relu")
    >>> type(rnn).__name__, rnn.nonlinearity
    ('RNN', 'relu')
    >>> params_to_torch(init_stack_params(jax.random.key(0), 3, 8, cell="lstmp")).proj_size
    4
    """
    import torch

    input_size, hidden, num_layers, directions = stack_shape(params)
    kind = _BY_TYPE.get(type(params[0][0]))
    if kind is None:
        raise TypeError(
            "params must hold LSTMParams, LSTMPParams, GRUParams or RNNParams (the cells "
            "torch has); "
            f"got {type(params[0][0]).__name__}"
        )
    _, _, class_name = _KINDS[kind]
    if nonlinearity is not None and kind != "rnn":
        raise ValueError(
            f"nonlinearity is for RNNParams (torch.nn.RNN); got nonlinearity={nonlinearity!r} "
            f"with {type(params[0][0]).__name__}"
        )
    if nonlinearity is not None and nonlinearity not in _NONLINEARITIES:
        raise ValueError(f"nonlinearity must be one of {_NONLINEARITIES}; got {nonlinearity!r}")
    proj = params[0][0].w_hr.shape[1] if kind == "lstmp" else 0
    if module is None:
        options = dict(
            num_layers=num_layers, bidirectional=directions == 2, batch_first=batch_first
        )
        if kind == "rnn":
            options["nonlinearity"] = nonlinearity or "tanh"
        if kind == "lstmp":
            options["proj_size"] = proj
        module = getattr(torch.nn, class_name)(input_size, hidden, **options)
    module_kind, module_nonlinearity = _mode(module)
    if {module_kind, kind} == {"lstm", "lstmp"}:
        module_kind = kind  # the same class: the sizes check below names proj_size
    if module_kind != kind:
        raise ValueError(
            f"module must be a torch.nn.{class_name} for {type(params[0][0]).__name__}; "
            f"got {type(module).__name__}"
        )
    if nonlinearity is not None and nonlinearity != module_nonlinearity:
        raise ValueError(
            f"nonlinearity={nonlinearity!r} does not match the module's "
            f"nonlinearity={module_nonlinearity!r}"
        )
    if kind in ("lstm", "lstmp"):
        fields = "(input_size, hidden_size, num_layers, bidirectional, proj_size)"
        expected = (input_size, hidden, num_layers, directions == 2, proj)
        got = (
            module.input_size,
            module.hidden_size,
            module.num_layers,
            module.bidirectional,
            module.proj_size,
        )
    else:
        fields = "(input_size, hidden_size, num_layers, bidirectional)"
        expected = (input_size, hidden, num_layers, directions == 2)
        got = (module.input_size, module.hidden_size, module.num_layers, module.bidirectional)
    if got != expected:
        raise ValueError(
            f"module must be a torch.nn.{class_name} with {fields} = {expected}; got {got}"
        )
    state = module.state_dict()
    new = {}
    for k, directional in enumerate(params):
        for d, p in enumerate(directional):
            s = _suffix(k, d)
            ref = state[f"weight_ih{s}"]
            # Through float64, then to the module's dtype: exact for float32 and float64.
            tensor = lambda a, ref=ref: torch.as_tensor(np.asarray(a, np.float64).copy()).to(ref)
            new[f"weight_ih{s}"] = tensor(p.w_x.T)
            new[f"weight_hh{s}"] = tensor(p.w_h.T)
            if kind == "lstmp":
                new[f"weight_hr{s}"] = tensor(p.w_hr.T)
            bias_ih, bias_hh = _biases(p)
            if f"bias_ih{s}" in state:
                new[f"bias_ih{s}"] = tensor(bias_ih)
                new[f"bias_hh{s}"] = tensor(bias_hh)
            elif np.any(bias_ih != 0) or np.any(bias_hh != 0):
                biases = "params.b and params.b_hn are" if kind == "gru" else "params.b is"
                raise ValueError(f"module was built with bias=False but {biases} not zero")
    module.load_state_dict(new)
    return module
