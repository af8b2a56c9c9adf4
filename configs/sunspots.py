"""Forecasting yearly sunspot numbers (1700-2008, ``statsmodels.datasets``).

From the last WINDOW years predict the next one. The years are split in time
order into train, validation and test (70/15/15%, 1700-1915 / 1916-1961 /
1962-2008); each window belongs to the part of its target year. The series is
standardised with the training years' statistics only. Evaluation during
training is on the validation windows (which chose the settings below); the
test windows are scored once, at the end, in sunspot numbers, next to the
persistence forecast ("next year = this year") on the same windows.

    python train.py --config configs/sunspots.py --workdir runs/sunspots

Result (2 CPU cores, AMD EPYC with AVX2, seed 0): test RMSE 24.6 sunspots
(persistence 29.1), validation RMSE 24.5 (persistence 31.5) after 400 steps;
9 s wall; 4,385 parameters.
Smoke variant (seconds): --config configs/sunspots.py:smoke
"""

import ml_collections


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0  # root of all randomness: initialisation, data order, dropout
    config.task = "regression"  # predict one real value per window

    config.model = ml_collections.ConfigDict()
    config.model.hidden_size = 32  # LSTM units
    config.model.forget_bias = 1.0  # initial forget-gate bias: larger remembers longer at first
    config.model.num_layers = 1  # stacked LSTM layers
    config.model.bidirectional = False  # also read each window backwards
    config.model.dropout = 0.0  # dropout between LSTM layers
    config.model.pooling = "last"  # what the head reads: last | mean | max | attention
    config.model.attention = "additive"  # attention kind, with pooling="attention"
    config.model.num_heads = 1  # attention heads, with pooling="attention"

    config.data = ml_collections.ConfigDict()
    config.data.name = "sunspots"  # the data set (see jlstm.train.tasks)
    config.data.window = 20  # years of input
    config.data.horizon = 1  # forecast this many years after the window
    config.data.batch_size = 32  # windows per training step
    config.data.eval_batch_size = 64  # windows per evaluation batch

    num_steps = ml_collections.FieldReference(400)  # 196 windows: longer overfits (validation)
    config.optim = ml_collections.ConfigDict()
    config.optim.name = "adamw"  # adam | adamw | sgd
    config.optim.learning_rate = 3e-3  # peak learning rate
    config.optim.schedule = "warmup_cosine"  # constant | warmup_cosine
    config.optim.warmup_steps = 20  # linear warmup from 0 to the peak
    config.optim.decay_steps = num_steps * 1  # cosine decay ends here: train.num_steps (linked)
    config.optim.final_lr_fraction = 0.0  # the cosine ends at this fraction of the peak
    config.optim.grad_clip_norm = 1.0  # clip the global gradient norm (0: off)
    config.optim.weight_decay = 1e-2  # adamw only
    config.optim.momentum = 0.0  # sgd only

    config.train = ml_collections.ConfigDict()
    config.train.num_steps = num_steps  # optimizer updates in all
    config.train.log_every = 25  # steps between train-metric records
    config.train.eval_every = 50  # steps between evaluations on the validation windows
    config.train.checkpoint_every = 200  # steps between checkpoints
    config.train.keep_checkpoints = 2  # newest checkpoints kept

    if variant == "smoke":  # seconds: a tiny model for tests
        config.model.hidden_size = 8
        config.data.window = 8
        config.data.batch_size = 8
        num_steps.set(4)
        config.optim.warmup_steps = 1
        config.train.log_every = 2
        config.train.eval_every = 4
        config.train.checkpoint_every = 2
    elif variant:
        raise ValueError(f"variant must be '' or 'smoke'; got {variant!r}")
    return config
