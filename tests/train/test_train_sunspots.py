"""The sunspots task: a chronological train/validation/test split, statistics from the
training years only, and the test windows scored once at the end."""

import math

import jax
import numpy as np
from train_helpers import load_config

from jlstm.data import load_sunspots
from jlstm.train import train_and_evaluate
from jlstm.train.tasks import make_task


def windows_by_hand(series, window, first, last):
    """Every window whose target year index lies in [first, last), and its target."""
    xs = [series[t - window : t] for t in range(max(first, window), last)]
    ys = [series[t] for t in range(max(first, window), last)]
    return np.array(xs)[:, :, None], np.array(ys)[:, None]


def test_split_windows_and_scaling_come_from_the_years_in_order():
    config = load_config("sunspots", "")
    task = make_task(config, jax.random.key(0))
    series = np.asarray(load_sunspots(), np.float64)
    w = config.data.window
    train_years = series[:216]  # 70% of 309 years: 1700-1915
    z = (series - train_years.mean()) / train_years.std()
    val = list(task.eval_batches())
    test = list(task.test_batches())
    for batches, (first, last) in ((val, (216, 262)), (test, (262, 309))):
        xs = np.concatenate([b["xs"][b["weight"]] for b in batches])
        ys = np.concatenate([b["y"][b["weight"]] for b in batches])
        ref_x, ref_y = windows_by_hand(z, w, first, last)
        np.testing.assert_allclose(xs, ref_x, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ys, ref_y, rtol=1e-5, atol=1e-6)
    persistence = math.sqrt(np.mean((series[261:308] - series[262:309]) ** 2))
    np.testing.assert_allclose(task.baselines["test_rmse_sunspots"], persistence, rtol=1e-5)
    assert "196 train / 46 validation / 47 test windows" in task.description


def test_test_metrics_are_reported_once_beside_the_validation_ones(tmp_path):
    summary = train_and_evaluate(load_config("sunspots"), tmp_path, progress=False)
    final = summary["final"]
    assert summary["headline"] == "test_rmse_sunspots"
    std = np.asarray(load_sunspots(), np.float64)[:216].std()
    for prefix in ("", "test_"):
        expected = math.sqrt(final[f"{prefix}mse"]) * std
        np.testing.assert_allclose(final[f"{prefix}rmse_sunspots"], expected, rtol=1e-6)
    assert final["test_mse"] != final["mse"]  # two different sets of windows
    evals = [
        line for line in (tmp_path / "metrics.jsonl").read_text().splitlines() if "eval" in line
    ]
    assert evals and all("test_" not in line for line in evals)  # test stays out of the log
