"""Sequence regression: the adding problem, and sunspot forecasting."""

from __future__ import annotations

import math

import numpy as np
from flax import nnx

from jlstm import data, losses
from jlstm.nn import SequenceRegressor
from jlstm.train.errors import ConfigError
from jlstm.train.tasks.base import Task, sequence_model_options, split_rows, weighted

SUNSPOT_SPLIT = (0.7, 0.15, 0.15)  # train, validation, test: fractions of the years, in order


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

    The years are split in time order into train, validation and test (70/15/15 %);
    a window belongs to the part its target year is in (its inputs may reach back
    into the part before: those years are known when the forecast is made). The
    series is standardised with the training years' statistics only. Evaluation
    during training is on the validation windows; the test windows are evaluated
    once, at the end.
    """
    c = config.data
    series = data.load_sunspots()
    train_years, val_years, _ = data.chronological_split(series, SUNSPOT_SPLIT)
    scale = data.Standardizer.fit(train_years)
    xs, ys = data.make_windows(scale.transform(series), c.window, c.horizon)
    target_year = np.arange(len(xs)) + c.window + c.horizon - 1  # index of each target
    part = np.searchsorted(
        [len(train_years), len(train_years) + len(val_years)], target_year, side="right"
    )  # 0 train, 1 validation, 2 test

    def windows(k):
        chosen = part == k
        lengths = np.full(int(chosen.sum()), c.window, np.int32)
        return {"xs": xs[chosen], "lengths": lengths, "y": ys[chosen]}

    train, val, test = (windows(k) for k in range(3))
    n = len(train["xs"])
    if c.batch_size > n:
        raise ConfigError(
            f"config.data.batch_size must be <= the {n} training windows; got {c.batch_size}"
        )

    def train_batch(step):
        idx = data.batch_indices(n, c.batch_size, step, seed=config.seed)
        return {k: v[idx] for k, v in train.items()}

    def finish(metrics):  # back to sunspot numbers
        out = dict(metrics)
        for prefix in ("", "test_"):
            if f"{prefix}mse" in metrics:
                out[f"{prefix}rmse_sunspots"] = math.sqrt(metrics[f"{prefix}mse"]) * scale.std
        return out

    persistence = lambda w: data.persistence_baseline(w["xs"], w["y"]) * scale.std
    return Task(
        model=_regressor(config, 1, 1, rngs),
        train_batch=train_batch,
        eval_batches=lambda: split_rows(val, c.eval_batch_size),
        test_batches=lambda: split_rows(test, c.eval_batch_size),
        loss_fn=_loss_fn,
        eval_fn=_eval_fn,
        headline="test_rmse_sunspots",
        description=(
            f"yearly sunspots 1700-2008: {n} train / {len(val['xs'])} validation / "
            f"{len(test['xs'])} test windows of {c.window} years, forecasting "
            f"{c.horizon} year(s) ahead"
        ),
        # "next year = this year", on the same windows
        baselines={"rmse_sunspots": persistence(val), "test_rmse_sunspots": persistence(test)},
        finish=finish,
    )
