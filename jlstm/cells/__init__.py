"""Recurrent cells: the protocol (:mod:`jlstm.cells.base`) and the registered cells.

==============  =========================================  ===================  ===============
name            cell                                       params               state
==============  =========================================  ===================  ===============
lstm            :class:`LSTM` (the default)                LSTMParams           LSTMState
gru             :class:`GRU` (torch.nn.GRU)                GRUParams            HiddenState
rnn             :class:`ElmanRNN` tanh                     RNNParams            HiddenState
rnn_relu        :class:`ElmanRNN` ReLU                     RNNParams            HiddenState
peephole        :class:`PeepholeLSTM` (Gers 2000)          PeepholeParams       LSTMState
cifg            :class:`CIFG` i = 1 − f (Greff 2017)       CIFGParams           LSTMState
layernorm_lstm  :class:`LayerNormLSTM` (Ba 2016)           LayerNormLSTMParams  LSTMState
lstmp           :class:`LSTMP` projection (Sak 2014)       LSTMPParams          LSTMState (1)
slstm           :class:`SLSTM` σ forget gate (xLSTM 2024)  SLSTMParams          SLSTMState
slstm_exp       :class:`SLSTM` exponential forget gate     SLSTMParams          SLSTMState
==============  =========================================  ===================  ===============

(1) h ``(..., proj_size)``, c ``(..., H)``; the layer's output size is proj_size.
Init options (``cell.init(key, input_size, hidden_size, **options)``, or
``init_stack_params`` / ``jlstm.nn.Recurrent`` keywords): ``forget_bias`` for
the LSTM family and sLSTM, ``proj_size`` for lstmp, ``num_heads`` for slstm.

``jlstm.layer`` and ``jlstm.stack`` pick the cell from the params' type
(``cell=`` overrides it, e.g. ``cell="rnn_relu"``). A new cell is a file
defining a :class:`Cell` subclass and a ``register(...)`` line below.

>>> import jax
>>> params = get("gru").init(jax.random.key(0), 3, 8)
>>> resolve(None, params).name
'gru'
"""

from jlstm.cells.base import Cell, get, names, register, resolve
from jlstm.cells.cifg import CIFG, CIFGParams
from jlstm.cells.gru import GRU, GRUParams, HiddenState
from jlstm.cells.layernorm import LayerNormLSTM, LayerNormLSTMParams
from jlstm.cells.lstm import LSTM, LSTMParams, LSTMState
from jlstm.cells.lstmp import LSTMP, LSTMPParams
from jlstm.cells.peephole import PeepholeLSTM, PeepholeParams
from jlstm.cells.rnn import ElmanRNN, RNNParams
from jlstm.cells.slstm import SLSTM, SLSTMParams, SLSTMState

register(LSTM())
register(GRU())
register(ElmanRNN("tanh"), "rnn_tanh")
register(ElmanRNN("relu"), "rnn_relu")
register(PeepholeLSTM())
register(CIFG())
register(LayerNormLSTM())
register(LSTMP())
register(SLSTM("sigmoid"))
register(SLSTM("exp"))

__all__ = [
    "CIFG",
    "GRU",
    "LSTM",
    "LSTMP",
    "SLSTM",
    "CIFGParams",
    "Cell",
    "ElmanRNN",
    "GRUParams",
    "HiddenState",
    "LSTMPParams",
    "LSTMParams",
    "LSTMState",
    "LayerNormLSTM",
    "LayerNormLSTMParams",
    "PeepholeLSTM",
    "PeepholeParams",
    "RNNParams",
    "SLSTMParams",
    "SLSTMState",
    "get",
    "names",
    "register",
    "resolve",
]
