"""Sequence regression: the adding problem, and sunspot forecasting."""

from __future__ import annotations

import math

import numpy as np
from flax import nnx

from jlstm import data, losses
from jlstm.nn import SequenceRegressor
from jlstm.train.errors import ConfigError
from jlstm.train.tasks.base import Task, sequence_model_options, split_rows, weighted


def _regressor(config, in_features: int, out_features: int, rngs: nnx.Rngs):
    return SequenceRegressor(
        in_features,
        config.model.hidden_size,
        out_features,
        **sequence_model_options(config.model),
        rngs=rngs,
    )


def _loss_fn(model, batch, carry, dropout_key):
    pred = model(batch["xs"], lengths=batch["lengths"], dropout_key=dropout_key)
    loss = losses.mse(pred, batch["y"])
    return loss, ({"mse": loss, "mae": losses.mae(pred, batch["y"])}, carry)


def _eval_fn(model, batch, carry):
    pred = model(batch["xs"], lengths=batch["lengths"])
    y, w = batch["y"], batch["weight"]
    return {
        "mse": weighted(losses.mse(pred, y, mask=w), w),
        "mae": weighted(losses.mae(pred, y, mask=w), w),
    }, carry


def adding_task(config, rngs: nnx.Rngs) -> Task:
    """The adding problem: sum the two marked values of a length-T sequence."""
    c = config.data
    problem = data.AddingTask(length=c.length, seed=config.seed)
    test = problem.test_set(c.test_size)
    return Task(
        model=_regressor(config, problem.input_size, 1, rngs),
        train_batch=lambda step: problem.train_batch(step, c.batch_size),
        eval_batches=lambda: split_rows(test, c.eval_batch_size),
        loss_fn=_loss_fn,
        eval_fn=_eval_fn,
        headline="mse",
        description=(
            f"adding problem, T={c.length}: fresh batches of {c.batch_size} each step, "
            f"{c.test_size} test sequences"
        ),
        baselines={"mse": float(np.mean((test["y"] - 1.0) ** 2))},  # always predict 1.0
    )


def sunspots_task(config, rngs: nnx.Rngs) -> Task:
    """Forecast the yearly sunspot number ``horizon`` years after a ``window``-year input.

    The series is split in time order (80% train, 20% test), standardised with the
    training part's statistics, and cut into windows within each part.
    """
    c = config.data
    train_series, test_series = data.chronological_split(data.load_sunspots(), (0.8, 0.2))
    scale = data.Standardizer.fit(train_series)
    train_x, train_y = data.make_windows(scale.transform(train_series), c.window, c.horizon)
    test_x, test_y = data.make_windows(scale.transform(test_series), c.window, c.horizon)
    n = len(train_x)
    if c.batch_size > n:
        raise ConfigError(
            f"config.data.batch_size must be <= the {n} training windows; got {c.batch_size}"
        )
    lengths = lambda k: np.full(k, c.window, np.int32)
    test = {"xs": test_x, "lengths": lengths(len(test_x)), "y": test_y}

    def train_batch(step):
        idx = data.batch_indices(n, c.batch_size, step, seed=config.seed)
        return {"xs": train_x[idx], "lengths": lengths(len(idx)), "y": train_y[idx]}

    def finish(metrics):  # back to sunspot numbers
        return {**metrics, "rmse_sunspots": math.sqrt(metrics["mse"]) * scale.std}

    persistence = data.persistence_baseline(test_x, test_y) * scale.std
    return Task(
        model=_regressor(config, 1, 1, rngs),
        train_batch=train_batch,
        eval_batches=lambda: split_rows(test, c.eval_batch_size),
        loss_fn=_loss_fn,
        eval_fn=_eval_fn,
        headline="rmse_sunspots",
        description=(
            f"yearly sunspots 1700-2008: {n} train / {len(test_x)} test windows of "
            f"{c.window} years, forecasting {c.horizon} year(s) ahead"
        ),
        baselines={"rmse_sunspots": persistence},  # "next year = this year"
        finish=finish,
    )
