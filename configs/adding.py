"""The adding problem at T=100 (Hochreiter & Schmidhuber 1997): a regression
that needs memory across the whole sequence.

Each input step carries a uniform value and a marker; exactly two steps are
marked, one in each half, and the target is the sum of the two marked values.
Always predicting 1.0 gives a test MSE of about 0.167.

    python train.py --config configs/adding.py --workdir runs/adding

Result (2 CPU cores, seed 0): test MSE 0.0011 after 3000 steps, below 0.01 from
step 1500 on (after the usual plateau at 0.167 until about step 1100); 302 s
wall at 10.2 steps/s (an earlier run took 490 s at 6.2 steps/s while other jobs
shared the cores); 67,201 parameters.
Smoke variant (seconds): --config configs/adding.py:smoke
"""

import ml_collections

from jlstm.configs import default
from jlstm.train.errors import ConfigError


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = default.get_config()
    config.task = "regression"  # predict one real value per sequence

    config.model.hidden_size = 128  # LSTM units
    config.model.bidirectional = False  # read each sequence forwards only
    config.model.pooling = "last"  # the head reads the last step: the sum is known there

    config.data = ml_collections.ConfigDict()
    config.data.name = "adding"  # the data set (see jlstm.train.tasks)
    config.data.length = 100  # T, the sequence length
    config.data.batch_size = 128  # fresh sequences per training step
    config.data.eval_batch_size = 500  # sequences per evaluation batch
    config.data.test_size = 2000  # fixed test sequences

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
        config.data.length = 10
        config.data.eval_batch_size = 16
        config.data.test_size = 32
        config.train.num_steps = 6
        config.optim.warmup_steps = 2
        config.train.eval_every = 3
        config.train.checkpoint_every = 3
    elif variant:
        raise ConfigError(f"variant must be '' or 'smoke'; got {variant!r}")
    return config
