"""The copy task across long gaps: gap 100 or 200 (Hochreiter & Schmidhuber 1997;
layout of Arjovsky et al. 2016).

The task of configs/copy.py, whose gap is 50: read 5 symbols of an alphabet of 8,
wait through the gap, then at the delimiter write the symbols back. The loss and
the reported per-symbol accuracy count only the answer steps after the gap;
guessing gives 1/8 = 12.5%. What differs from configs/copy.py is the gap and the
number of steps; its forget bias of 3 is kept (at gap 50, copy.py's docstring says,
1.0 reached 59% where 3 reached 98.1%).

    python train.py --config configs/copy_long.py:gap100 --workdir runs/copy_long_gap100
    python train.py --config configs/copy_long.py:gap200 --workdir runs/copy_long_gap200

No variant is gap200. Another cell: ``--config.model.cell=gru`` (or ``rnn``)
together with ``--config.model.forget_bias=1.0``, since the forget bias is the
LSTM's (any other value with another cell stops the run with an error saying so).

Result: not yet measured on this machine; to measure: python train.py --config
configs/copy_long.py:gap200 --workdir runs/copy_long_gap200 (and :gap100, each also
with --config.model.cell=gru and rnn, --config.model.forget_bias=1.0), then read the
test accuracy in the summary (chance 12.5%; configs/copy.py reaches 98.1% at gap 50).
Wall time, estimated from configs/copy.py (17 steps/s at T = 61 on 2 shared CPU
cores, a step's time about linear in T), not measured: about 10 min for gap100
(T = 111, 6000 steps) and 35 min for gap200 (T = 211, 10000 steps).
Smoke variant (seconds): --config configs/copy_long.py:smoke
"""

import ml_collections

from jlstm.configs import default
from jlstm.train.errors import ConfigError

GAPS = {"gap100": (100, 6000), "gap200": (200, 10000)}  # blank steps, optimizer steps


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    if variant not in ("", "smoke", *GAPS):
        raise ConfigError(f"variant must be one of '', {', '.join(GAPS)}, smoke; got {variant!r}")
    gap, num_steps = GAPS.get(variant, GAPS["gap200"])
    config = default.get_config()
    config.task = "tagging"  # one prediction per step

    config.model.hidden_size = 128  # LSTM units
    config.model.forget_bias = 3.0  # initial forget-gate bias: 3 lets gradients cross the gap
    config.model.bidirectional = False  # read each sequence forwards only
    for key in ("pooling", "attention", "num_heads"):
        del config.model[key]  # a tagger predicts at every step: nothing is pooled

    config.data = ml_collections.ConfigDict()
    config.data.name = "copy"  # the data set (see jlstm.train.tasks)
    config.data.num_symbols = 5  # symbols to remember
    config.data.alphabet = 8  # distinct symbols
    config.data.gap = gap  # blank steps between reading and writing (T = 2 * 5 + gap + 1)
    config.data.batch_size = 64  # fresh sequences per training step
    config.data.eval_batch_size = 500  # sequences per evaluation batch
    config.data.test_size = 1000  # fixed test sequences

    config.optim.name = "adam"  # adam | adamw | sgd
    config.optim.learning_rate = 2e-3  # peak learning rate
    config.optim.warmup_steps = 100  # linear warmup from 0 to the peak
    config.optim.final_lr_fraction = 0.05  # the cosine ends at this fraction of the peak
    config.optim.weight_decay = 0.0  # adamw only

    config.train.num_steps = num_steps  # optimizer updates in all (optim.decay_steps follows)
    config.train.log_every = 100  # steps between train-metric records
    config.train.eval_every = 500  # steps between evaluations on the test set
    config.train.checkpoint_every = 500  # steps between checkpoints

    if variant == "smoke":
        default.smoke(config)
        config.data.num_symbols = 3
        config.data.gap = 6
        config.data.eval_batch_size = 16
        config.data.test_size = 32
    return config
