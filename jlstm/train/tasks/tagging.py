"""Per-step prediction: the copy task (recall symbols after a long blank gap)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from jlstm import data, losses
from jlstm.nn import SequenceTagger
from jlstm.train.tasks.base import Task, recurrent_options, split_rows, weighted


def copy_task(config, rngs: nnx.Rngs) -> Task:
    """The copy task: symbols, a gap of blanks, a delimiter, then recall the symbols.

    Inputs are one-hot ids; the loss and accuracy count only the answer steps
    (the ``weights`` of the batch), so ``accuracy`` is per-symbol accuracy after
    the gap.
    """
    c = config.data
    problem = data.CopyTask(
        gap=c.gap, num_symbols=c.num_symbols, alphabet=c.alphabet, seed=config.seed
    )
    vocab, num_tags = problem.vocab_size, c.alphabet + 1  # targets: 0 (blank) .. alphabet
    model = SequenceTagger(
        vocab,
        config.model.hidden_size,
        num_tags,
        rngs=rngs,
        **recurrent_options(config.model),
    )
    test = problem.test_set(c.test_size)
    one_hot = lambda ids: jax.nn.one_hot(ids, vocab, dtype=jnp.float32)  # (B, T, V)

    def loss_fn(model, batch, carry, dropout_key):
        logits = model(one_hot(batch["xs"]), dropout_key=dropout_key)  # (B, T, tags)
        answer = batch["weights"] > 0
        loss = losses.cross_entropy(logits, batch["y"], mask=answer)
        return loss, ({"accuracy": losses.accuracy(logits, batch["y"], mask=answer)}, carry)

    def eval_fn(model, batch, carry):
        logits = model(one_hot(batch["xs"]))
        answer = (batch["weights"] > 0) & batch["weight"][:, None]  # (B, T)
        y = batch["y"]
        return {
            "loss": weighted(losses.cross_entropy(logits, y, mask=answer), answer),
            "accuracy": weighted(losses.accuracy(logits, y, mask=answer), answer),
        }, carry

    length = 2 * c.num_symbols + c.gap + 1
    return Task(
        model=model,
        train_batch=lambda step: problem.train_batch(step, c.batch_size),
        eval_batches=lambda: split_rows(test, c.eval_batch_size),
        loss_fn=loss_fn,
        eval_fn=eval_fn,
        headline="accuracy",
        description=(
            f"copy task: {c.num_symbols} symbols of {c.alphabet}, gap {c.gap} "
            f"(T={length}), fresh batches of {c.batch_size}, {c.test_size} test sequences"
        ),
        baselines={"accuracy": 1.0 / c.alphabet, "loss": math.log(c.alphabet)},
    )
