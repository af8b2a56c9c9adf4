"""A run killed with SIGKILL resumes from its last complete checkpoint and ends
exactly where an uninterrupted run ends."""

import signal
import time

import jax
import numpy as np
from train_helpers import finish, load_config, run_train_py

from jlstm.train import Checkpointer, train_and_evaluate

STEPS, EVERY = 800, 10
OVERRIDES = (
    f"--config.train.num_steps={STEPS}",
    f"--config.train.checkpoint_every={EVERY}",
    f"--config.train.log_every={EVERY}",
    "--config.train.eval_every=400",
    "--config.train.keep_checkpoints=3",
)


def complete_steps(directory):
    if not directory.exists():
        return []
    return [
        p for p in directory.iterdir() if p.name.isdigit() and (p / "commit_success.txt").is_file()
    ]


def saving_now(directory):
    return directory.exists() and any("tmp" in p.name for p in directory.iterdir())


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path):
    workdir = tmp_path / "killed"
    checkpoints = workdir / "checkpoints"
    proc = run_train_py(
        "--config", "configs/adding.py:smoke", "--workdir", str(workdir), *OVERRIDES
    )
    # Kill it while it is writing a checkpoint if we catch one, else right after one.
    deadline = time.monotonic() + 120
    first_seen = None
    while proc.poll() is None and time.monotonic() < deadline:
        if complete_steps(checkpoints):
            first_seen = first_seen or time.monotonic()
            if saving_now(checkpoints) or time.monotonic() - first_seen > 0.5:
                break
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    code, _, err = finish(proc)
    assert code == -signal.SIGKILL, f"the run ended before the kill (code {code}): {err[-2000:]}"
    assert not (workdir / "summary.json").exists()

    resumed = run_train_py(
        "--config", "configs/adding.py:smoke", "--workdir", str(workdir), *OVERRIDES
    )
    config = load_config("adding")
    config.train.num_steps = STEPS
    config.train.checkpoint_every = EVERY
    config.train.log_every = EVERY
    config.train.eval_every = 400
    train_and_evaluate(config, tmp_path / "whole", progress=False)
    code, out, err = finish(resumed)
    assert code == 0, err
    assert "resuming" in out and f"steps      {STEPS} (resumed at" in out

    killed = Checkpointer(checkpoints, max_to_keep=3).restore()
    whole = Checkpointer(tmp_path / "whole" / "checkpoints", max_to_keep=3).restore()
    assert int(killed["step"]) == int(whole["step"]) == STEPS
    for a, b in zip(jax.tree.leaves(killed), jax.tree.leaves(whole), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not any("tmp" in p.name for p in checkpoints.iterdir())  # no debris left behind


def test_half_written_checkpoints_are_never_loaded(tmp_path):
    """Debris of a killed save (a temporary directory, a step directory without
    orbax's commit file) is ignored; the last complete checkpoint is restored."""
    config = load_config("adding")
    train_and_evaluate(config, tmp_path, progress=False)
    directory = tmp_path / "checkpoints"
    (directory / "9.orbax-checkpoint-tmp-1234567").mkdir()
    (directory / "9.orbax-checkpoint-tmp-1234567" / "state").mkdir()
    (directory / "12" / "state").mkdir(parents=True)  # a step directory, not committed
    ckpt = Checkpointer(directory, max_to_keep=2)
    assert ckpt.latest_step() == 6
    config.train.num_steps = 8
    summary = train_and_evaluate(config, tmp_path, progress=False)
    assert summary["resumed_from"] == 6 and summary["steps"] == 8
