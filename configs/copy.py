"""The copy task (Hochreiter & Schmidhuber 1997; layout of Arjovsky et al. 2016):
read a short random sequence, wait through a long blank gap, then write the
sequence back.

Inputs are one-hot ids: NUM_SYMBOLS symbols from an ALPHABET, GAP blanks, a
delimiter, then blanks while the model answers. The loss and the reported
per-symbol accuracy count only the answer steps after the gap; guessing gives
1/ALPHABET accuracy.

    python train.py --config configs/copy.py --workdir runs/copy

Result (2 shared CPU cores, seed 0), 5 symbols of 8 across a gap of 50 (T = 61):
98.1% per-symbol accuracy after the gap (chance 12.5%) after 3000 steps; 191 s
wall at 17 steps/s with the cores shared with other jobs. The forget bias of 3
matters: with 1.0 it reached 59% after 4000 steps at learning rate 1e-3 and
stayed at chance at 3e-3.
Smoke variant (seconds): --config configs/copy.py:smoke
"""

import ml_collections

from jlstm.configs import default
from jlstm.train.errors import ConfigError


def get_config(variant: str = "") -> ml_collections.ConfigDict:
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
    config.data.gap = 50  # blank steps between reading and writing (T = 2 * 5 + 50 + 1)
    config.data.batch_size = 64  # fresh sequences per training step
    config.data.eval_batch_size = 500  # sequences per evaluation batch
    config.data.test_size = 1000  # fixed test sequences

    config.optim.name = "adam"  # adam | adamw | sgd
    config.optim.learning_rate = 2e-3  # peak learning rate
    config.optim.warmup_steps = 100  # linear warmup from 0 to the peak
    config.optim.final_lr_fraction = 0.05  # the cosine ends at this fraction of the peak
    config.optim.weight_decay = 0.0  # adamw only

    config.train.num_steps = 3000  # optimizer updates in all (optim.decay_steps follows)
    config.train.log_every = 50  # steps between train-metric records
    config.train.eval_every = 250  # steps between evaluations on the test set
    config.train.checkpoint_every = 500  # steps between checkpoints

    if variant == "smoke":
        default.smoke(config)
        config.data.num_symbols = 3
        config.data.gap = 4
        config.data.eval_batch_size = 16
        config.data.test_size = 32
    elif variant:
        raise ConfigError(f"variant must be '' or 'smoke'; got {variant!r}")
    return config
