"""JapaneseVowels speaker identification (UCR/UEA archive), tuned from the default.

Nine male speakers each utter the Japanese vowels /ae/; every utterance is a
sequence of 7-29 frames of 12 LPC cepstrum coefficients; name the speaker (9
classes; 270 train, 370 test utterances). Against configs/default.py (97.6%):
two stacked bidirectional LSTM layers, dropout 0.3 between them, 1000 steps.
Every coefficient is z-scored with the training split's statistics (without
that: 97.6 / 97.0 / 96.5% on seeds 0 / 1 / 2).

    python train.py --config configs/japanese_vowels.py --workdir runs/japanese_vowels

Result (2 CPU cores, AMD EPYC with AVX2): test accuracy 97.3% (seed 0; seeds 1,
2: 97.8%, 97.6%; majority class 23.8%) after 1000 steps; 32-47 s wall at about
60 steps/s; 139,401 parameters. Pooling (seed 0) mean / last / max / attention:
97.3 / 98.4 / 97.8 / 97.6%; with ``--config.model.pooling=attention`` the run
also saves ``attention.png``, the weights over time of six test sequences.
Published (Fawaz et al. 2019): echo-state network 96.5%, FCN 99.3%.
Smoke variant (seconds): --config configs/japanese_vowels.py:smoke
"""

import ml_collections

from jlstm.configs import default
from jlstm.train.errors import ConfigError


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = default.get_config()
    config.model.num_layers = 2  # stacked LSTM layers
    config.model.dropout = 0.3  # dropout between LSTM layers
    config.train.num_steps = 1000  # optimizer updates in all (optim.decay_steps follows)

    if variant == "smoke":
        default.smoke(config)
        config.data.eval_batch_size = 200
    elif variant:
        raise ConfigError(f"variant must be '' or 'smoke'; got {variant!r}")
    return config
