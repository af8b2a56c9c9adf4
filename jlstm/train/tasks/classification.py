"""Sequence classification: a UCR/UEA data set (JapaneseVowels, ...) or MNIST-1D."""

from __future__ import annotations

import numpy as np
from flax import nnx

from jlstm import data, losses
from jlstm.nn import SequenceClassifier
from jlstm.train.errors import ConfigError
from jlstm.train.tasks.base import Task, pad_rows, sequence_model_options, weighted


def load_labelled(name: str) -> tuple[data.SequenceDataset, data.SequenceDataset]:
    """(train, test) SequenceDatasets of a classification data set."""
    if name == "mnist1d":
        return data.load_mnist1d()
    return data.load_ucr(name, split="train"), data.load_ucr(name, split="test")


def classification_task(config, rngs: nnx.Rngs) -> Task:
    train, test = load_labelled(config.data.name)
    if train.num_classes is None:
        raise ConfigError(
            f"config.data.name {config.data.name!r} has no class labels (a regression set?); "
            "config.task 'classification' needs them"
        )
    max_len = max(train.max_length, test.max_length)  # one shape: no recompiles
    batch_size, eval_size, seed = config.data.batch_size, config.data.eval_batch_size, config.seed
    if batch_size > len(train):
        raise ConfigError(
            f"config.data.batch_size must be <= the {len(train)} training sequences; "
            f"got {batch_size}"
        )
    model = SequenceClassifier(
        train.feature_size,
        config.model.hidden_size,
        train.num_classes,
        **sequence_model_options(config.model),
        rngs=rngs,
    )

    def train_batch(step):
        indices = data.batch_indices(len(train), batch_size, step, seed=seed)
        return train.batch(indices, max_len=max_len)

    def eval_batches():
        for batch in data.eval_batches(test, eval_size, max_len=max_len):
            yield pad_rows(batch, eval_size)

    def loss_fn(model, batch, carry, dropout_key):
        logits = model(batch["xs"], lengths=batch["lengths"], dropout_key=dropout_key)
        loss = losses.cross_entropy(logits, batch["y"])
        return loss, ({"accuracy": losses.accuracy(logits, batch["y"])}, carry)

    def eval_fn(model, batch, carry):
        logits = model(batch["xs"], lengths=batch["lengths"])
        y, w = batch["y"], batch["weight"]
        return {
            "loss": weighted(losses.cross_entropy(logits, y, mask=w), w),
            "accuracy": weighted(losses.accuracy(logits, y, mask=w), w),
        }, carry

    majority = np.bincount(test.targets, minlength=train.num_classes).max() / len(test)
    lengths = np.concatenate([train.lengths, test.lengths])
    return Task(
        model=model,
        train_batch=train_batch,
        eval_batches=eval_batches,
        loss_fn=loss_fn,
        eval_fn=eval_fn,
        headline="accuracy",
        description=(
            f"{config.data.name}: {len(train)} train / {len(test)} test sequences, "
            f"{train.feature_size} features, length {lengths.min()}-{lengths.max()}, "
            f"{train.num_classes} classes"
        ),
        baselines={"accuracy": float(majority)},
    )
