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


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0  # root of all randomness: initialisation, data order, dropout
    config.task = "classification"  # one class per sequence

    config.model = ml_collections.ConfigDict()
    config.model.hidden_size = 64  # LSTM units
    config.model.forget_bias = 1.0  # initial forget-gate bias: larger remembers longer at first
    config.model.num_layers = 1  # stacked LSTM layers
    config.model.bidirectional = True  # also read each sequence backwards
    config.model.dropout = 0.0  # dropout between LSTM layers
    config.model.pooling = "last"  # what the head reads: last | mean | max | attention
    config.model.attention = "additive"  # attention kind, with pooling="attention"
    config.model.num_heads = 1  # attention heads, with pooling="attention"

    config.data = ml_collections.ConfigDict()
    config.data.name = "mnist1d"  # the data set (see jlstm.train.tasks)
    config.data.standardize = False  # z-score each feature with the training split's statistics
    config.data.batch_size = 100  # sequences per training step
    config.data.eval_batch_size = 500  # sequences per evaluation batch

    num_steps = ml_collections.FieldReference(3000)
    config.optim = ml_collections.ConfigDict()
    config.optim.name = "adamw"  # adam | adamw | sgd
    config.optim.learning_rate = 5e-3  # peak learning rate
    config.optim.schedule = "warmup_cosine"  # constant | warmup_cosine
    config.optim.warmup_steps = 100  # linear warmup from 0 to the peak
    config.optim.decay_steps = num_steps * 1  # cosine decay ends here: train.num_steps (linked)
    config.optim.final_lr_fraction = 0.0  # the cosine ends at this fraction of the peak
    config.optim.grad_clip_norm = 1.0  # clip the global gradient norm (0: off)
    config.optim.weight_decay = 1e-2  # adamw only
    config.optim.momentum = 0.0  # sgd only

    config.train = ml_collections.ConfigDict()
    config.train.num_steps = num_steps  # optimizer updates in all
    config.train.log_every = 100  # steps between train-metric records
    config.train.eval_every = 250  # steps between evaluations on the test set
    config.train.checkpoint_every = 500  # steps between checkpoints
    config.train.keep_checkpoints = 2  # newest checkpoints kept

    if variant == "small":  # the size of the published GRU (5,134 parameters)
        config.model.hidden_size = 24
    elif variant == "smoke":  # seconds: a tiny model for tests
        config.model.hidden_size = 8
        config.data.batch_size = 8
        config.data.eval_batch_size = 500
        num_steps.set(4)
        config.optim.warmup_steps = 1
        config.train.log_every = 2
        config.train.eval_every = 4
        config.train.checkpoint_every = 2
    elif variant:
        raise ValueError(f"variant must be '', 'small' or 'smoke'; got {variant!r}")
    return config
