"""The LSTM cell (kept at this path for existing imports): see :mod:`jlstm.cells.lstm`."""

from jlstm.cells.base import matmul, num_params, state_dtype
from jlstm.cells.lstm import (
    GATE_ORDER,
    GateView,
    LSTMParams,
    LSTMState,
    cell,
    check_params,
    from_gate_view,
    gate_view,
    gates_to_state,
    init_params,
    zero_state,
)

__all__ = [
    "GATE_ORDER",
    "GateView",
    "LSTMParams",
    "LSTMState",
    "cell",
    "check_params",
    "from_gate_view",
    "gate_view",
    "gates_to_state",
    "init_params",
    "matmul",
    "num_params",
    "state_dtype",
    "zero_state",
]
