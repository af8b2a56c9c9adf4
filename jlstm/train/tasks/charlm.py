"""Character-level language modelling with truncated backpropagation through time.

The training text is laid out as ``batch_size`` parallel rows, each a
contiguous stretch of the corpus; step ``s`` trains on chunk ``s`` of
``chunk_length`` columns (:func:`jlstm.data.tbptt_batch`). The LSTM state at
the end of a chunk is carried into the next one, with ``stop_gradient`` in
between: gradients flow through ``chunk_length`` steps, the state through the
whole stream. At the start of each pass over the text the state resets to
zeros, and with ``data.reset_every = R`` each row also starts over every R
chunks, the rows staggered (:func:`jlstm.data.stream_resets` says why). The
chunk and the resets are pure functions of the step, and the carried state is
in the checkpoint, so a resumed run continues exactly.

Evaluation reads the validation text as ``eval_batch_size`` streams in chunks
of ``eval_chunk_length``, the state carried throughout (the chunk length
changes the speed only). With ``model.cache_size > 0`` the model's prediction
is mixed with a continuous cache over its last ``cache_size`` hidden states
(:mod:`jlstm.cache`; nothing is trained): ``bits_per_char`` is then the
mixture's and ``lstm_bits_per_char`` the LSTM's alone. Training and the
generated sample use the LSTM alone.
"""

from __future__ import annotations

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import PartitionSpec

from jlstm import data, inspect, losses
from jlstm.cache import CacheState, cache_log_probs, init_cache
from jlstm.nn import CharLM
from jlstm.train.errors import ConfigError
from jlstm.train.plots import plot_gate_traces
from jlstm.train.sharding import DATA_AXIS
from jlstm.train.tasks.base import Task, recurrent_options

PROMPT_CHARS = 40  # the sample continues this many characters of the validation text
SAMPLE_KEY = 0x5A  # folded into the seed's key for the sample: a fixed, separate stream
GENERATED_MARK = "[generated:]"  # between the prompt and the generated text of the sample
GATE_PLOT_SEQUENCES = 2  # stretches of the validation text drawn in gates.png
GATE_PLOT_CHARS = 48  # characters in each
SHOWN_AS = {"\n": "\\n", "\t": "\\t", " ": "␣"}  # gates.png's tick labels for blanks


def gate_plot_starts(n: int) -> np.ndarray:
    """Where gates.png's stretches of a text of ``n`` characters start: evenly spaced."""
    last = max(n - GATE_PLOT_CHARS, 0)
    return np.unique(np.linspace(0, last, GATE_PLOT_SEQUENCES).round().astype(int))


def load_corpus(c) -> str:
    """The text named by ``config.data`` (``name``, ``path``), cut to ``max_chars`` if > 0."""
    text = data.load_text(c.path) if c.name == "text" else data.load_dataset(c.name)
    return text[: c.max_chars] if c.max_chars > 0 else text


def charlm_task(config, rngs: nnx.Rngs) -> Task:
    c = config.data
    text = load_corpus(c)
    vocab = data.CharVocab.from_text(text)
    train_ids, val_ids = data.split_text(vocab.encode(text), c.val_fraction)
    for part, ids, rows, length in (
        ("training", train_ids, "batch_size", "chunk_length"),
        ("validation", val_ids, "eval_batch_size", "eval_chunk_length"),
    ):
        if len(ids) <= c[rows] * c[length]:
            raise ConfigError(
                f"config.data.{rows} * config.data.{length} ({c[rows]} * {c[length]}) "
                f"must be < the {len(ids):,} {part} characters"
            )
    train_chunks = data.num_tbptt_chunks(len(train_ids), c.batch_size, c.chunk_length)
    val_chunks = data.num_tbptt_chunks(len(val_ids), c.eval_batch_size, c.eval_chunk_length)
    m = config.model
    model = CharLM(
        vocab.size,
        m.hidden_size,
        embed_dim=m.embed_dim,
        rngs=rngs,
        **recurrent_options(m),
    )

    def train_batch(step):
        xs, ys = data.tbptt_batch(train_ids, c.batch_size, c.chunk_length, step)
        reset = data.stream_resets(step, train_chunks, c.batch_size, c.reset_every)
        return {"xs": xs, "y": ys, "reset": reset}

    def eval_batches():
        for k in range(val_chunks):
            xs, ys = data.tbptt_batch(val_ids, c.eval_batch_size, c.eval_chunk_length, k)
            yield {"xs": xs, "y": ys, "weight": np.ones(c.eval_batch_size, bool)}

    def loss_fn(model, batch, carry, dropout_key):
        # Truncation: the carried state enters as a constant (no gradient flows
        # back into the previous chunk); in the rows that start over it is zeros.
        fresh = batch["reset"][None, :, None]  # (layers, batch, hidden) like the carry
        carry = jax.tree.map(
            lambda a: jax.lax.stop_gradient(jnp.where(fresh, jnp.zeros_like(a), a)), carry
        )
        logits, final = model(batch["xs"], initial_state=carry, dropout_key=dropout_key)
        loss = losses.cross_entropy(logits, batch["y"])
        return loss, ({"bits_per_char": loss / math.log(2.0)}, final)

    def eval_fn(model, batch, carry):
        ys, count = batch["y"], batch["y"].size
        if not m.cache_size:
            logits, final = model(batch["xs"], initial_state=carry)
            return {"bits_per_char": (losses.bits_per_char(logits, ys), count)}, final
        state, cache = carry
        hs, final = model.hidden_states(batch["xs"], initial_state=state)
        logits = model.head(hs)
        log_probs, cache = cache_log_probs(
            cache, hs, ys, logits, theta=m.cache_theta, lam=m.cache_lambda
        )
        metrics = {  # log_probs are normalised, so they serve as logits
            "bits_per_char": (losses.bits_per_char(log_probs, ys), count),
            "lstm_bits_per_char": (losses.bits_per_char(logits, ys), count),
        }
        return metrics, (final, cache)

    def report(model, workdir):
        """``gates.png``: the first layer's gates and states over GATE_PLOT_SEQUENCES
        stretches of the validation text, each read from the zero state, for a cell
        with traces (:mod:`jlstm.inspect`). A sample, when ``config.train.sample_chars``
        is not 0: that many characters generated after the validation text's first
        PROMPT_CHARS; prompt, GENERATED_MARK and generation go to the summary and to
        ``sample.txt``."""
        out = {"files": {}}
        rnn = model.rnn
        if inspect.has_traces(rnn.cell):
            starts = gate_plot_starts(len(val_ids))
            length = min(GATE_PLOT_CHARS, len(val_ids))
            tokens = np.stack([val_ids[s : s + length] for s in starts])  # (N, length)
            traces = inspect.gate_traces(rnn.params[0][0], model.embed(jnp.asarray(tokens)))
            chars = [[SHOWN_AS.get(ch, ch) for ch in vocab.decode(row)] for row in tokens]
            path = plot_gate_traces(
                traces,
                np.full(len(tokens), length),
                Path(workdir) / "gates.png",
                labels=inspect.trace_labels(rnn.cell),
                sequence_names=[f"validation characters {s}-{s + length - 1}" for s in starts],
                tick_labels=chars,
                title=f"{c.name}: {rnn.cell.name} layer 1, gates and states over the text",
            )
            out["files"]["gates"] = str(path)
        n = config.train.sample_chars
        if n:
            prompt = val_ids[:PROMPT_CHARS]
            key = jax.random.fold_in(jax.random.key(config.seed), SAMPLE_KEY)
            tokens = model.generate(
                jnp.asarray(prompt), n, temperature=config.train.sample_temperature, key=key
            )
            text = vocab.decode(prompt) + GENERATED_MARK + vocab.decode(np.asarray(tokens))
            path = Path(workdir) / "sample.txt"
            path.write_text(
                f"# {n} characters generated at temperature {config.train.sample_temperature} "
                f"after the first {len(prompt)} characters of the validation text "
                f"(they follow {GENERATED_MARK})\n{text}\n",
                encoding="utf-8",
            )
            out["files"]["sample"] = str(path)
            out["sample"] = text
        return out if out["files"] else {}

    carry_spec = PartitionSpec(None, DATA_AXIS)  # (layers, batch, hidden)
    eval_carry, eval_carry_spec, cached = model.initial_state(c.eval_batch_size), None, ""
    if m.cache_size:
        eval_carry = (eval_carry, init_cache(m.cache_size, c.eval_batch_size, m.hidden_size))
        split = PartitionSpec(DATA_AXIS)  # (batch, size, ...)
        cache_spec = CacheState(keys=split, targets=split, pos=split, step=PartitionSpec())
        eval_carry_spec = (carry_spec, cache_spec)
        cached = (
            f"; evaluated with a cache of {m.cache_size} steps (theta {m.cache_theta}, "
            f"lambda {m.cache_lambda})"
        )
    return Task(
        model=model,
        train_batch=train_batch,
        eval_batches=eval_batches,
        loss_fn=loss_fn,
        eval_fn=eval_fn,
        headline="bits_per_char",
        description=(
            f"{c.name}: {len(train_ids):,} train / {len(val_ids):,} validation characters, "
            f"{vocab.size} symbols; {c.batch_size} streams, chunks of {c.chunk_length} "
            f"({train_chunks} chunks a pass){cached}"
        ),
        baselines={"bits_per_char": math.log2(vocab.size)},  # uniform guessing
        init_carry=model.initial_state(c.batch_size),
        eval_carry=eval_carry,
        carry_spec=carry_spec,
        eval_carry_spec=eval_carry_spec,
        report=report,
    )
