r"""The adding problem across long gaps: T = 200, 500 or 1000 (Hochreiter & Schmidhuber
1997 solved T = 1000 with the first LSTM, whose cell had no forget gate).

The task of configs/adding.py at longer T: two steps are marked, one in each half,
and the target is the sum of their values, so at T = 1000 the first one lies 500 to
1000 steps before the end. Always predicting 1.0 gives a test MSE of about 0.167, the
bar to beat. What differs from configs/adding.py is T, the number of steps and the
forget bias: 3.0 (σ(3) ≈ 0.95), which at initialisation keeps ‖∂h_T/∂x_t‖ from
vanishing across 1000 steps where 1.0 loses about 2.6% of it a step
(benchmarks/gradient_flow.py, benchmarks/gradient_flow.png).

    python train.py --config configs/adding_long.py:T200 --workdir runs/adding_long_T200
    python train.py --config configs/adding_long.py:T500 --workdir runs/adding_long_T500
    python train.py --config configs/adding_long.py:T1000 --workdir runs/adding_long_T1000

No variant is T1000; ``--config.data.length=N`` gives another T (with T1000's
steps). Another cell: ``--config.model.cell=gru`` (or ``rnn``) together with
``--config.model.forget_bias=1.0``, since the forget bias is the LSTM's (any other
value with another cell stops the run with an error saying so):

    python train.py --config configs/adding_long.py:T1000 --config.model.cell=gru \
        --config.model.forget_bias=1.0 --workdir runs/adding_long_T1000_gru

Result: not yet measured on this machine; to measure: python train.py --config
configs/adding_long.py:T1000 --workdir runs/adding_long_T1000 (and :T200, :T500, each
also with --config.model.cell=gru and rnn, --config.model.forget_bias=1.0), then read
the test MSE in the summary (solved: well below 0.167; configs/adding.py reaches
0.0011 at T = 100). Wall time, estimated from configs/adding.py (10.2 steps/s at
T = 100 on 2 CPU cores, a step's time about linear in T), not measured: about 20 min
for T200 (6000 steps), 1.5 h for T500 (10000) and 6 h for T1000 (20000) on 2 CPU
cores.
Smoke variant (seconds): --config configs/adding_long.py:smoke
"""

import ml_collections

from jlstm.configs import default
from jlstm.train.errors import ConfigError

LENGTHS = {"T200": (200, 6000), "T500": (500, 10000), "T1000": (1000, 20000)}  # T, steps


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    if variant not in ("", "smoke", *LENGTHS):
        raise ConfigError(
            f"variant must be one of '', {', '.join(LENGTHS)}, smoke; got {variant!r}"
        )
    length, num_steps = LENGTHS.get(variant, LENGTHS["T1000"])
    config = default.get_config()
    config.task = "regression"  # predict one real value per sequence

    config.model.hidden_size = 128  # LSTM units
    config.model.forget_bias = 3.0  # initial forget-gate bias: 3 keeps gradients across T
    config.model.bidirectional = False  # read each sequence forwards only
    config.model.pooling = "last"  # the head reads the last step: the sum is known there

    config.data = ml_collections.ConfigDict()
    config.data.name = "adding"  # the data set (see jlstm.train.tasks)
    config.data.length = length  # T, the sequence length
    config.data.batch_size = 128  # fresh sequences per training step
    config.data.eval_batch_size = 500  # sequences per evaluation batch
    config.data.test_size = 2000  # fixed test sequences

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
        config.data.length = 20
        config.data.eval_batch_size = 16
        config.data.test_size = 32
    return config
