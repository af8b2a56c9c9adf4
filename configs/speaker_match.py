"""Speaker verification on JapaneseVowels: were two utterances spoken by the
same speaker? A Siamese LSTM encodes both and compares them (cosine).

Training pairs come from the 270 training utterances (half same-speaker, half
different), fresh each step; the test pairs only from the 370 test utterances.
Chance is 50%. Every coefficient is z-scored with the training split's statistics.

    python train.py --config configs/speaker_match.py --workdir runs/speaker_match

Result (2 CPU cores, AMD EPYC with AVX2, seed 0): ROC-AUC 0.999 and 97.0%
accuracy on 2000 test pairs (chance 50%) after 800 steps (without the z-scoring:
ROC-AUC 0.990, 95.1%); 27 s wall at 43 steps/s; 39,424 parameters.
Smoke variant (seconds): --config configs/speaker_match.py:smoke
"""

import ml_collections

from jlstm.configs import default
from jlstm.train.errors import ConfigError


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = default.get_config()
    config.task = "matching"  # score pairs of sequences

    config.model.similarity = "cosine"  # cosine (contrastive loss) | dot (logistic loss)

    config.data.batch_size = 64  # pairs per training step
    config.data.eval_batch_size = 250  # pairs per evaluation batch
    config.data.test_pairs = 2000  # fixed test pairs (rounded up to whole batches)

    config.optim.warmup_steps = 40  # linear warmup from 0 to the peak

    config.train.num_steps = 800  # optimizer updates in all (optim.decay_steps follows)
    config.train.eval_every = 200  # steps between evaluations on the test pairs

    if variant == "smoke":
        default.smoke(config)
        config.data.eval_batch_size = 32
        config.data.test_pairs = 40
    elif variant:
        raise ConfigError(f"variant must be '' or 'smoke'; got {variant!r}")
    return config
