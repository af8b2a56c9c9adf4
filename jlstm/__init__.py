"""jlstm: an LSTM library for JAX.

The pure-function core (this namespace) imports only JAX: ``cell`` is one time
step, ``layer`` scans it over time, ``stack`` layers it and runs it both ways.
Flax NNX modules live in ``jlstm.nn``, training in ``jlstm.train``.
"""

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
from jlstm.layer import layer
from jlstm.stack import StackParams, init_stack_params, stack

__version__ = "0.1.0"

__all__ = [
    "GateView",
    "LSTMParams",
    "LSTMState",
    "StackParams",
    "cell",
    "from_gate_view",
    "gate_view",
    "init_params",
    "init_stack_params",
    "layer",
    "num_params",
    "stack",
    "zero_state",
]
