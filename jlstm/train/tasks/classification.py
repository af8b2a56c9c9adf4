"""Sequence classification: a UCR/UEA data set (JapaneseVowels, ...) or MNIST-1D."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from flax import nnx

from jlstm import data, inspect, losses
from jlstm.nn import SequenceClassifier
from jlstm.train.errors import ConfigError
from jlstm.train.plots import plot_attention, plot_gate_traces
from jlstm.train.tasks.base import Task, pad_rows, sequence_model_options, weighted

ATTENTION_PLOT_SEQUENCES = 6  # test sequences drawn in attention.png
GATE_PLOT_SEQUENCES = 3  # test sequences drawn in gates.png


def attention_plot_indices(n: int, k: int = ATTENTION_PLOT_SEQUENCES) -> np.ndarray:
    """The test sequences attention.png shows: up to ``k``, evenly spaced."""
    k = min(k, n)
    return np.unique(np.linspace(0, n - 1, k).round().astype(int))


def load_labelled(
    name: str, *, standardize: bool = False
) -> tuple[data.SequenceDataset, data.SequenceDataset]:
    """(train, test) SequenceDatasets of a classification data set; with
    ``standardize``, every feature z-scored with the training split's statistics."""
    if name == "mnist1d":
        train, test = data.load_mnist1d()
    else:
        train, test = data.load_ucr(name, split="train"), data.load_ucr(name, split="test")
    return data.standardize_features(train, test) if standardize else (train, test)


def classification_task(config, rngs: nnx.Rngs) -> Task:
    train, test = load_labelled(config.data.name, standardize=config.data.standardize)
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

    def report(model, workdir):
        """PNGs of a few test sequences, evenly spaced through the test set (so several
        classes show): ``gates.png``, the first layer's gates and states over time
        (forward direction), for a cell with traces (:mod:`jlstm.inspect`); with
        attention pooling ``attention.png``, the weights over time."""
        names = test.class_names
        label = (lambda k: names[k]) if names is not None else (lambda k: k)
        files = {}
        rnn = model.encoder.rnn
        if inspect.has_traces(rnn.cell):
            indices = attention_plot_indices(len(test), GATE_PLOT_SEQUENCES)
            batch = test.batch(indices)
            logits = model(batch["xs"], lengths=batch["lengths"])
            traces = inspect.gate_traces(
                rnn.params[0][0], batch["xs"], cell=rnn.cell, lengths=batch["lengths"]
            )
            predicted = np.asarray(logits).argmax(-1)
            files["gates"] = str(
                plot_gate_traces(
                    traces,
                    batch["lengths"],
                    Path(workdir) / "gates.png",
                    labels=inspect.trace_labels(rnn.cell),
                    sequence_names=[
                        f"test sequence {i}: label {label(y)}, predicted {label(p)}"
                        for i, y, p in zip(indices, batch["y"], predicted, strict=True)
                    ],
                    title=(
                        f"{config.data.name}: {rnn.cell.name} layer 1"
                        f"{' (forward)' if rnn.bidirectional else ''}, gates and states over time"
                    ),
                )
            )
        if config.model.pooling == "attention":
            indices = attention_plot_indices(len(test))
            batch = test.batch(indices)
            logits, weights = model(batch["xs"], lengths=batch["lengths"], return_attention=True)
            path = plot_attention(
                weights,
                batch["lengths"],
                Path(workdir) / "attention.png",
                indices=indices.tolist(),
                labels=[label(k) for k in batch["y"]],
                predictions=[label(k) for k in np.asarray(logits).argmax(-1)],
                title=f"{config.data.name}: attention weights over time, test sequences",
            )
            files["attention"] = str(path)
        return {"files": files} if files else {}

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
        report=report,
    )
