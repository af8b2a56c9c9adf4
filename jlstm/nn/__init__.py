"""Flax NNX modules: thin owners of parameters that call the pure core.

- :class:`RecurrentCell`, :class:`Recurrent` (any cell of :mod:`jlstm.cells`),
  :class:`LSTMCell`, :class:`LSTM`: the recurrence (:mod:`jlstm.stack`).
- :class:`Pooling`, :class:`AttentionPooling`: hidden states -> one vector
  (:mod:`jlstm.heads`, :mod:`jlstm.attention`).
- :class:`ClassificationHead`, :class:`RegressionHead`, :class:`MatchingHead`.
- Assemblies: :class:`SequenceEncoder`, :class:`SequenceClassifier`,
  :class:`SequenceRegressor`, :class:`SequenceTagger`, :class:`SiameseMatcher`,
  :class:`CharLM`.

No module stores a random key: dropout takes ``dropout_key`` at call time.
"""

from jlstm.nn.heads import ClassificationHead, MatchingHead, RegressionHead
from jlstm.nn.models import (
    CharLM,
    SequenceClassifier,
    SequenceEncoder,
    SequenceRegressor,
    SequenceTagger,
    SiameseMatcher,
)
from jlstm.nn.pooling import AttentionPooling, Pooling, make_pooling
from jlstm.nn.recurrent import LSTM, LSTMCell, Recurrent, RecurrentCell

__all__ = [
    "LSTM",
    "AttentionPooling",
    "CharLM",
    "ClassificationHead",
    "LSTMCell",
    "MatchingHead",
    "Pooling",
    "Recurrent",
    "RecurrentCell",
    "RegressionHead",
    "SequenceClassifier",
    "SequenceEncoder",
    "SequenceRegressor",
    "SequenceTagger",
    "SiameseMatcher",
    "make_pooling",
]
