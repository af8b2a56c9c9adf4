"""A run with ``model.implementation = "parallel"``: the layers are solved by Newton's
method, and the metric log shows how that went (jlstm.train.logging.NewtonLog)."""

import math

from train_helpers import load_config

from jlstm.train import train_and_evaluate
from jlstm.train.logging import read_metrics


def test_newton_iterations_reach_the_metric_log(tmp_path):
    config = load_config("default", "smoke")
    config.model.implementation = "parallel"
    summary = train_and_evaluate(config, tmp_path, progress=False)
    assert math.isfinite(summary["final"][summary["headline"]])
    records = read_metrics(tmp_path / "metrics.jsonl")
    for split in ("train", "eval"):
        logged = [r for r in records if r["split"] == split]
        assert logged, split
        for record in logged:
            assert 1 <= record["newton_iterations"] <= record["newton_iterations_max"] <= 29
            assert record["newton_converged"] == 1.0 and record["newton_fell_back"] == 0


def test_a_sequential_run_logs_no_newton_figures(tmp_path):
    config = load_config("default", "smoke")
    config.model.implementation = "xla"
    train_and_evaluate(config, tmp_path, progress=False)
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert records and not any("newton_iterations" in r for r in records)
