"""Recurrent cells: the protocol (:mod:`jlstm.cells.base`) and the registered cells.

========  ===============================  =================  ===============
name      cell                             params             state
========  ===============================  =================  ===============
lstm      :class:`LSTM` (the default)      :class:`LSTMParams`  :class:`LSTMState`
gru       :class:`GRU` (torch.nn.GRU)      :class:`GRUParams`   :class:`HiddenState`
rnn       :class:`ElmanRNN` tanh           :class:`RNNParams`   :class:`HiddenState`
rnn_relu  :class:`ElmanRNN` ReLU           :class:`RNNParams`   :class:`HiddenState`
========  ===============================  =================  ===============

``jlstm.layer`` and ``jlstm.stack`` pick the cell from the params' type
(``cell=`` overrides it, e.g. ``cell="rnn_relu"``). A new cell is a file
defining a :class:`Cell` subclass and a ``register(...)`` line below.

>>> import jax
>>> params = get("gru").init(jax.random.key(0), 3, 8)
>>> resolve(None, params).name
'gru'
"""

from jlstm.cells.base import Cell, get, names, register, resolve
from jlstm.cells.gru import GRU, GRUParams, HiddenState
from jlstm.cells.lstm import LSTM, LSTMParams, LSTMState
from jlstm.cells.rnn import ElmanRNN, RNNParams

register(LSTM())
register(GRU())
register(ElmanRNN("tanh"), "rnn_tanh")
register(ElmanRNN("relu"), "rnn_relu")

__all__ = [
    "GRU",
    "LSTM",
    "Cell",
    "ElmanRNN",
    "GRUParams",
    "HiddenState",
    "LSTMParams",
    "LSTMState",
    "RNNParams",
    "get",
    "names",
    "register",
    "resolve",
]
