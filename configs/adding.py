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


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0  # root of all randomness: initialisation, data, dropout
    config.task = "regression"  # predict one real value per sequence

    config.model = ml_collections.ConfigDict()
    config.model.hidden_size = 128  # LSTM units
    config.model.forget_bias = 1.0  # initial forget-gate bias: larger remembers longer at first
    config.model.num_layers = 1  # stacked LSTM layers
    config.model.bidirectional = False  # also read each sequence backwards
    config.model.dropout = 0.0  # dropout between LSTM layers
    config.model.pooling = "last"  # what the head reads: last | mean | max | attention
    config.model.attention = "additive"  # attention kind, with pooling="attention"
    config.model.num_heads = 1  # attention heads, with pooling="attention"

    config.data = ml_collections.ConfigDict()
    config.data.name = "adding"  # the data set (see jlstm.train.tasks)
    config.data.length = 100  # T, the sequence length
    config.data.batch_size = 128  # fresh sequences per training step
    config.data.eval_batch_size = 500  # sequences per evaluation batch
    config.data.test_size = 2000  # fixed test sequences

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
        config.data.length = 10
        config.data.batch_size = 8
        config.data.eval_batch_size = 16
        config.data.test_size = 32
        num_steps.set(6)
        config.optim.warmup_steps = 2
        config.train.log_every = 2
        config.train.eval_every = 3
        config.train.checkpoint_every = 3
    elif variant:
        raise ValueError(f"variant must be '' or 'smoke'; got {variant!r}")
    return config
