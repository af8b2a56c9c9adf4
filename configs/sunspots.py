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

from jlstm.configs import default
from jlstm.train.errors import ConfigError


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = default.get_config()
    config.task = "regression"  # predict one real value per window

    config.model.hidden_size = 32  # LSTM units
    config.model.bidirectional = False  # read each window forwards only
    config.model.pooling = "last"  # the head reads the last year

    config.data = ml_collections.ConfigDict()
    config.data.name = "sunspots"  # the data set (see jlstm.train.tasks)
    config.data.window = 20  # years of input
    config.data.horizon = 1  # forecast this many years after the window
    config.data.batch_size = 32  # windows per training step
    config.data.eval_batch_size = 64  # windows per evaluation batch

    config.optim.warmup_steps = 20  # linear warmup from 0 to the peak

    config.train.num_steps = 400  # 196 windows: longer overfits (validation)
    config.train.eval_every = 50  # steps between evaluations on the validation windows

    if variant == "smoke":
        default.smoke(config)
        config.data.window = 8
    elif variant:
        raise ConfigError(f"variant must be '' or 'smoke'; got {variant!r}")
    return config
