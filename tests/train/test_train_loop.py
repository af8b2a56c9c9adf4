"""train_and_evaluate: files, resume = uninterrupted, the non-finite guard."""

import dataclasses
import json

import jax
import numpy as np
import pytest
from train_helpers import load_config

from jlstm.train import Checkpointer, NonFiniteError, read_metrics, train_and_evaluate
from jlstm.train import loop as loop_lib


class Interrupted(Exception):
    pass


def patch_task(monkeypatch, edit_batch):
    """Make every task built by the loop pass its training batches through ``edit_batch``."""
    real = loop_lib.make_task

    def make_task(config, key):
        task = real(config, key)
        return dataclasses.replace(
            task, train_batch=lambda step: edit_batch(step, task.train_batch)
        )

    monkeypatch.setattr(loop_lib, "make_task", make_task)


def final_state(workdir, step=None):
    return Checkpointer(workdir / "checkpoints", max_to_keep=10).restore(step=step)


def assert_same(a, b):
    jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), a, b)


def records(workdir):
    drop = ("steps_per_sec",)
    return [
        {k: v for k, v in r.items() if k not in drop}
        for r in read_metrics(workdir / "metrics.jsonl")
    ]


def test_run_writes_its_files(tmp_path):
    summary = train_and_evaluate(load_config("adding"), tmp_path, progress=False)
    for name in ("config.json", "metrics.jsonl", "curves.png", "summary.txt", "summary.json"):
        assert (tmp_path / name).is_file(), name
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Checkpointer(tmp_path / "checkpoints", max_to_keep=2).all_steps() == [3, 6]
    recs = read_metrics(tmp_path / "metrics.jsonl")
    train = [r for r in recs if r["split"] == "train"]
    evals = [r for r in recs if r["split"] == "eval"]
    assert [r["step"] for r in train] == [2, 4, 6] and [r["step"] for r in evals] == [3, 6]
    assert all({"loss", "grad_norm", "learning_rate", "steps_per_sec"} <= set(r) for r in train)
    assert summary["final"]["mse"] == pytest.approx(evals[-1]["mse"])
    assert summary["num_params"] > 0 and summary["steps"] == 6
    assert json.loads((tmp_path / "summary.json").read_text())["headline"] == "mse"
    text = (tmp_path / "summary.txt").read_text()
    assert "mse" in text and "parameters" in text and "steps/s" in text


@pytest.mark.parametrize("name", ["adding", "charlm"])
def test_resume_equals_uninterrupted(tmp_path, monkeypatch, name):
    config = load_config(name)
    train_and_evaluate(config, tmp_path / "whole", progress=False)

    stop_at = config.train.checkpoint_every + 1  # one step past a checkpoint

    def stop(step, batch):
        if step == stop_at:
            raise Interrupted
        return batch(step)

    with monkeypatch.context() as m:
        patch_task(m, stop)
        with pytest.raises(Interrupted):
            train_and_evaluate(config, tmp_path / "parts", progress=False)
    assert final_state(tmp_path / "parts")["step"] == config.train.checkpoint_every
    summary = train_and_evaluate(config, tmp_path / "parts", progress=False)
    assert summary["resumed_from"] == config.train.checkpoint_every

    whole, parts = final_state(tmp_path / "whole"), final_state(tmp_path / "parts")
    assert int(whole["step"]) == int(parts["step"]) == config.train.num_steps
    assert_same(parts, whole)  # parameters, optimizer state, RNG, carried LSTM state
    # The log reads as one run: the same records at the same steps, the same
    # evaluations (a train record straddling the restart averages fewer steps).
    parts_log, whole_log = records(tmp_path / "parts"), records(tmp_path / "whole")
    assert [(r["step"], r["split"]) for r in parts_log] == [
        (r["step"], r["split"]) for r in whole_log
    ]
    evals = lambda log: [r for r in log if r["split"] == "eval"]
    assert evals(parts_log) == evals(whole_log)


def test_rerun_of_a_finished_run_trains_nothing(tmp_path):
    config = load_config("adding")
    first = train_and_evaluate(config, tmp_path, progress=False)
    again = train_and_evaluate(config, tmp_path, progress=False)
    assert again["resumed_from"] == config.train.num_steps
    assert again["final"] == pytest.approx(first["final"])
    assert len([r for r in read_metrics(tmp_path / "metrics.jsonl") if r["split"] == "eval"]) == 2


def test_nan_in_the_data_stops_cleanly(tmp_path, monkeypatch):
    config = load_config("adding")
    config.train.num_steps = 12
    config.train.keep_checkpoints = 10
    train_and_evaluate(config, tmp_path / "clean", progress=False)

    def poison(step, batch):
        b = batch(step)
        if step == 4:  # the 5th update
            b["xs"][1, 2, 0] = np.nan
        return b

    patch_task(monkeypatch, poison)
    with pytest.raises(NonFiniteError) as info:
        train_and_evaluate(config, tmp_path / "bad", progress=False)
    message = str(info.value)
    assert "not finite at step 5" in message
    assert str(tmp_path / "bad" / "checkpoints" / "3") in message and "(step 3)" in message
    ckpt = Checkpointer(tmp_path / "bad" / "checkpoints", max_to_keep=10)
    assert ckpt.all_steps() == [3]  # nothing written after the bad step
    assert_same(final_state(tmp_path / "bad", 3), final_state(tmp_path / "clean", 3))
    logged = [r for r in read_metrics(tmp_path / "bad" / "metrics.jsonl") if r["split"] == "train"]
    assert logged[-1]["step"] == 6 and logged[-1]["loss"] == "nan"


def test_nan_before_any_checkpoint_says_so(tmp_path, monkeypatch):
    def poison(step, batch):
        b = batch(step)
        b["y"][:] = np.inf
        return b

    patch_task(monkeypatch, poison)
    with pytest.raises(NonFiniteError, match=r"step 1 .*no checkpoint had been written yet"):
        train_and_evaluate(load_config("adding"), tmp_path, progress=False)
