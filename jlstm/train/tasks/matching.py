"""Matching pairs of sequences: do two recordings share a class (e.g. the same speaker)?

Pairs are drawn from a labelled data set: half of each batch from one class,
half from two different classes, a pure function of ``(seed, step)``. The
test pairs come from the test set only.

Besides accuracy, evaluation reports ``roc_auc`` over all test pairs at once
(not a mean over batches): the evaluation carry collects every batch's scores,
and the last batch scores them all (the other batches count for nothing).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jlstm import losses
from jlstm.nn import SiameseMatcher
from jlstm.train.tasks.base import Task, sequence_model_options, split_rows, weighted
from jlstm.train.tasks.classification import load_labelled

_TRAIN, _TEST = 0, 1


def draw_pairs(labels: np.ndarray, n: int, rng: np.random.Generator):
    """``n`` index pairs, the first ``n // 2`` same-class, the rest different-class.

    Shapes:
      labels: (N,) ints -> a: (n,), b: (n,), same: (n,) bool
    """
    labels = np.asarray(labels)
    by_class = [np.flatnonzero(labels == k) for k in np.unique(labels)]
    by_class = [members for members in by_class if len(members) >= 2]
    n_same = n // 2
    cls = rng.integers(len(by_class), size=n_same)
    a_same = np.array([rng.choice(by_class[k], 2, replace=False) for k in cls]).reshape(-1, 2)
    a = rng.integers(len(labels), size=n - n_same)
    b = rng.integers(len(labels), size=n - n_same)
    clash = labels[a] == labels[b]
    while clash.any():  # redraw until the classes differ
        b[clash] = rng.integers(len(labels), size=int(clash.sum()))
        clash = labels[a] == labels[b]
    first = np.concatenate([a_same[:, 0], a])
    second = np.concatenate([a_same[:, 1], b])
    same = np.arange(n) < n_same
    return first, second, same


def matching_task(config, rngs: nnx.Rngs) -> Task:
    c = config.data
    train, test = load_labelled(c.name, standardize=c.standardize)
    max_len = max(train.max_length, test.max_length)
    cosine = config.model.similarity == "cosine"
    model = SiameseMatcher(
        train.feature_size,
        config.model.hidden_size,
        similarity=config.model.similarity,
        **sequence_model_options(config.model),
        rngs=rngs,
    )

    def pairs(ds, a, b, same):
        first, second = ds.batch(a, max_len=max_len), ds.batch(b, max_len=max_len)
        return {
            "xs_a": first["xs"],
            "lengths_a": first["lengths"],
            "xs_b": second["xs"],
            "lengths_b": second["lengths"],
            "same": same,
        }

    def train_batch(step):
        rng = np.random.default_rng([config.seed, _TRAIN, step])
        return pairs(train, *draw_pairs(train.targets, c.batch_size, rng))

    # Whole eval batches only (the pair losses take no mask): round the count up.
    n_test = -(-c.test_pairs // c.eval_batch_size) * c.eval_batch_size
    test_rng = np.random.default_rng([config.seed, _TEST])
    test_pairs = pairs(test, *draw_pairs(test.targets, n_test, test_rng))

    def scores_of(model, batch, dropout_key=None):
        return model(
            batch["xs_a"],
            batch["xs_b"],
            lengths_a=batch["lengths_a"],
            lengths_b=batch["lengths_b"],
            dropout_key=dropout_key,
        )

    def loss_of(scores, same):
        if cosine:
            return losses.contrastive_loss(scores, same)
        return losses.logistic_matching_loss(scores, same)

    threshold = 0.5 if cosine else 0.0  # between the two targets of the loss

    def loss_fn(model, batch, carry, dropout_key):
        scores = scores_of(model, batch, dropout_key)
        correct = (scores > threshold) == batch["same"]
        loss = loss_of(scores, batch["same"])
        return loss, ({"accuracy": jnp.mean(correct.astype(jnp.float32))}, carry)

    n_batches = n_test // c.eval_batch_size
    # Every test score so far and which batch comes next, for the whole-set ROC-AUC.
    eval_carry = {
        "scores": np.zeros(n_test, np.float32),
        "same": np.zeros(n_test, bool),
        "batch": np.zeros((), np.int32),
    }

    def eval_fn(model, batch, carry):
        scores, same, w = scores_of(model, batch), batch["same"], batch["weight"]
        accuracy = jnp.mean(((scores > threshold) == same).astype(jnp.float32))
        start = carry["batch"] * c.eval_batch_size
        carry = {
            "scores": jax.lax.dynamic_update_slice(
                carry["scores"], scores.astype(jnp.float32), (start,)
            ),
            "same": jax.lax.dynamic_update_slice(carry["same"], same, (start,)),
            "batch": carry["batch"] + 1,
        }
        last = carry["batch"] == n_batches  # all scores in: only this batch counts
        auc = jnp.where(last, losses.roc_auc(carry["scores"], carry["same"]), 0.0)
        return {
            "loss": weighted(loss_of(scores, same), w),
            "accuracy": weighted(accuracy, w),
            "roc_auc": (auc, last.astype(jnp.int32)),  # 0 (not NaN) where it counts for nothing
        }, carry

    return Task(
        model=model,
        train_batch=train_batch,
        eval_batches=lambda: split_rows(test_pairs, c.eval_batch_size),
        loss_fn=loss_fn,
        eval_fn=eval_fn,
        headline="accuracy",
        description=(
            f"{c.name} pairs (same class or not): {len(train)} train sequences, "
            f"{n_test} test pairs from {len(test)} test sequences, half matching"
        ),
        baselines={"accuracy": 0.5, "roc_auc": 0.5},
        eval_carry=eval_carry,
    )
