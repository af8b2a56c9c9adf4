"""jlstm: recurrent networks for JAX, the LSTM first.

The pure-function core (this namespace) imports only JAX: a *cell* is one time
step (:mod:`jlstm.cells`: the LSTM, a GRU, Elman RNNs), ``layer`` scans it over
time, ``stack`` layers it and runs it both ways; ``implementation=`` chooses
the loop (:mod:`jlstm.implementation`). Flax NNX modules live in ``jlstm.nn``,
training in ``jlstm.train``.
"""

from jlstm import cells
from jlstm.cell import (
    GateView,
    LSTMParams,
    LSTMState,
    cell,
    from_gate_view,
    gate_view,
    init_params,
    num_params,
    zero_state,
)
from jlstm.cells import GRUParams, HiddenState, RNNParams
from jlstm.layer import layer
from jlstm.stack import StackParams, init_stack_params, stack

__version__ = "0.2.0"

__all__ = [
    "GRUParams",
    "GateView",
    "HiddenState",
    "LSTMParams",
    "LSTMState",
    "RNNParams",
    "StackParams",
    "cell",
    "cells",
    "from_gate_view",
    "gate_view",
    "init_params",
    "init_stack_params",
    "layer",
    "num_params",
    "stack",
    "zero_state",
]
