"""The default experiment: who is speaking? JapaneseVowels (UCR/UEA archive).

Nine male speakers each utter the Japanese vowels /ae/; every utterance is a
sequence of 7-29 frames of 12 LPC cepstrum coefficients. The LSTM reads the
variable-length sequence and names the speaker (9 classes; 270 train, 370
test utterances). Every coefficient is z-scored with the training split's mean
and standard deviation. The data ships inside jlstm, so this runs on a fresh machine.

    python train.py                      # = --config configs/default.py --workdir runs/default

Result (2 CPU cores, AMD EPYC with AVX2, seed 0): test accuracy 97.6% (majority
class 23.8%; 96.5% without the z-scoring) after 600 steps; 15 s wall at 110
steps/s; 40,585 parameters.
Published (Fawaz et al. 2019 / Karim et al. 2019): FCN 99.3%, ResNet 99.2%, MLSTM-FCN 100%.
Smoke variant (seconds): --config configs/default.py:smoke

The shared defaults: every other config starts from ``default.get_config()`` and
changes only what differs (its smoke variant from :func:`smoke`).
"""

import ml_collections

from jlstm.train.errors import ConfigError


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0  # root of all randomness: initialisation, data order, dropout
    config.task = "classification"  # one class per sequence

    config.model = ml_collections.ConfigDict()
    config.model.cell = "lstm"  # the recurrent cell: lstm | gru | rnn | rnn_relu (jlstm.cells)
    config.model.implementation = "auto"  # which loop runs it (jlstm.implementation)
    config.model.hidden_size = 64  # LSTM units
    config.model.forget_bias = 1.0  # LSTM's initial forget-gate bias: larger remembers longer
    config.model.num_layers = 1  # stacked LSTM layers
    config.model.bidirectional = True  # also read each sequence backwards
    config.model.dropout = 0.0  # dropout between LSTM layers
    config.model.recurrent_dropout = 0.0  # variational dropout on x_t and h_{t-1} (Gal 2016)
    config.model.zoneout = 0.0  # units of h and c keep their previous value (Krueger 2017)
    config.model.learn_initial_state = False  # h_0 (and c_0) as parameters
    # The LSTM family's own options (each only with its cell; the defaults mean "none set"):
    config.model.proj_size = 0  # cell="lstmp": h's size P < hidden_size (0: hidden_size // 2)
    config.model.cell_heads = 1  # cell="slstm" | "slstm_exp": block-diagonal recurrent heads
    config.model.layernorm_eps = 1e-5  # cell="layernorm_lstm": the layer norms' epsilon
    config.model.pooling = "mean"  # what the head reads: last | mean | max | attention
    config.model.attention = "additive"  # attention kind, with pooling="attention"
    config.model.num_heads = 1  # attention heads, with pooling="attention"

    config.data = ml_collections.ConfigDict()
    config.data.name = "japanese_vowels"  # UCR/UEA name or folder NAME/ of NAME_{TRAIN,TEST}.ts
    config.data.standardize = True  # z-score each feature with the training split's statistics
    config.data.batch_size = 30  # sequences per training step (270 = 9 batches an epoch)
    config.data.eval_batch_size = 128  # sequences per evaluation batch

    num_steps = ml_collections.FieldReference(600)
    config.optim = ml_collections.ConfigDict()
    config.optim.name = "adamw"  # adam | adamw | sgd
    config.optim.learning_rate = 3e-3  # peak learning rate
    config.optim.schedule = "warmup_cosine"  # constant | warmup_cosine
    config.optim.warmup_steps = 30  # linear warmup from 0 to the peak
    config.optim.decay_steps = num_steps * 1  # cosine decay ends here: train.num_steps (linked)
    config.optim.final_lr_fraction = 0.0  # the cosine ends at this fraction of the peak
    config.optim.grad_clip_norm = 1.0  # clip the global gradient norm (0: off)
    config.optim.weight_decay = 1e-2  # adamw only
    config.optim.momentum = 0.0  # sgd only

    config.train = ml_collections.ConfigDict()
    config.train.num_steps = num_steps  # optimizer updates in all
    config.train.log_every = 25  # steps between train-metric records
    config.train.eval_every = 100  # steps between evaluations on the test set
    config.train.checkpoint_every = 200  # steps between checkpoints
    config.train.keep_checkpoints = 2  # newest checkpoints kept
    # On: every run is in `tensorboard --logdir runs/` (tensorboardX is a light dependency)
    config.train.tensorboard = True  # also write the metrics as TensorBoard event files

    if variant == "smoke":
        smoke(config)
        config.data.eval_batch_size = 200
    elif variant:
        raise ConfigError(f"variant must be '' or 'smoke'; got {variant!r}")
    return config


def smoke(config: ml_collections.ConfigDict) -> None:
    """What every ``:smoke`` variant shares (seconds, for tests): a tiny model, a few steps."""
    config.model.hidden_size = 8
    config.data.batch_size = 8
    config.train.num_steps = 4  # optim.decay_steps follows (linked)
    config.optim.warmup_steps = 1
    config.train.log_every = 2
    config.train.eval_every = 4
    config.train.checkpoint_every = 2
