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


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0  # root of all randomness: initialisation, data, dropout
    config.task = "tagging"  # one prediction per step

    config.model = ml_collections.ConfigDict()
    config.model.hidden_size = 128  # LSTM units
    config.model.forget_bias = (
        3.0  # initial forget-gate bias: 3 lets gradients cross the gap at first
    )
    config.model.num_layers = 1  # stacked LSTM layers
    config.model.bidirectional = False  # also read each sequence backwards
    config.model.dropout = 0.0  # dropout between LSTM layers

    config.data = ml_collections.ConfigDict()
    config.data.name = "copy"  # the data set (see jlstm.train.tasks)
    config.data.num_symbols = 5  # symbols to remember
    config.data.alphabet = 8  # distinct symbols
    config.data.gap = 50  # blank steps between reading and writing (T = 2 * 5 + 50 + 1)
    config.data.batch_size = 64  # fresh sequences per training step
    config.data.eval_batch_size = 500  # sequences per evaluation batch
    config.data.test_size = 1000  # fixed test sequences

    num_steps = ml_collections.FieldReference(3000)
    config.optim = ml_collections.ConfigDict()
    config.optim.name = "adam"  # adam | adamw | sgd
    config.optim.learning_rate = 2e-3  # peak learning rate
    config.optim.schedule = "warmup_cosine"  # constant | warmup_cosine
    config.optim.warmup_steps = 100  # linear warmup from 0 to the peak
    config.optim.decay_steps = num_steps * 1  # cosine decay ends here: train.num_steps (linked)
    config.optim.final_lr_fraction = 0.05  # the cosine ends at this fraction of the peak
    config.optim.grad_clip_norm = 1.0  # clip the global gradient norm (0: off)
    config.optim.weight_decay = 0.0  # adamw only
    config.optim.momentum = 0.0  # sgd only

    config.train = ml_collections.ConfigDict()
    config.train.num_steps = num_steps  # optimizer updates in all
    config.train.log_every = 50  # steps between train-metric records
    config.train.eval_every = 250  # steps between evaluations on the test set
    config.train.checkpoint_every = 500  # steps between checkpoints
    config.train.keep_checkpoints = 2  # newest checkpoints kept

    if variant == "smoke":  # seconds: a tiny model for tests
        config.model.hidden_size = 8
        config.data.num_symbols = 3
        config.data.gap = 4
        config.data.batch_size = 8
        config.data.eval_batch_size = 16
        config.data.test_size = 32
        num_steps.set(4)
        config.optim.warmup_steps = 1
        config.train.log_every = 2
        config.train.eval_every = 4
        config.train.checkpoint_every = 2
    elif variant:
        raise ValueError(f"variant must be '' or 'smoke'; got {variant!r}")
    return config
