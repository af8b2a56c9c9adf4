"""MNIST-1D (Greydanus & Kobak, ICML 2024): ten digit templates turned into
40-step 1-D signals with shifts, scaling, noise and correlated noise.

Built offline by the ``mnist1d`` package (4000 train, 1000 test).

    python train.py --config configs/mnist1d.py --workdir runs/mnist1d

Result (2 CPU cores, AMD EPYC with AVX2, seed 0): test accuracy 95.1% after
3000 steps; 94 s wall at 41 steps/s; 35,082 parameters. The ``small`` variant
(hidden 24, 5,482 parameters, the size of the published GRU's 5,134): 94.2%;
44 s wall (``--config configs/mnist1d.py:small``).
Published (MNIST-1D README; Greydanus & Kobak, ICML 2024): logistic 32%, MLP
68%, GRU 91% (5,134 parameters), CNN 94%, human 96%.
Smoke variant (seconds): --config configs/mnist1d.py:smoke
"""

import ml_collections

from jlstm.configs import default
from jlstm.train.errors import ConfigError


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = default.get_config()
    config.model.pooling = "last"  # what the head reads: last | mean | max | attention

    config.data.name = "mnist1d"  # the data set (see jlstm.train.tasks)
    config.data.standardize = False  # z-score each feature with the training split's statistics
    config.data.batch_size = 100  # sequences per training step
    config.data.eval_batch_size = 500  # sequences per evaluation batch

    config.optim.learning_rate = 5e-3  # peak learning rate
    config.optim.warmup_steps = 100  # linear warmup from 0 to the peak

    config.train.num_steps = 3000  # optimizer updates in all (optim.decay_steps follows)
    config.train.log_every = 100  # steps between train-metric records
    config.train.eval_every = 250  # steps between evaluations on the test set
    config.train.checkpoint_every = 500  # steps between checkpoints

    if variant == "small":  # the size of the published GRU (5,134 parameters)
        config.model.hidden_size = 24
    elif variant == "smoke":
        default.smoke(config)
    elif variant:
        raise ConfigError(f"variant must be '', 'small' or 'smoke'; got {variant!r}")
    return config
