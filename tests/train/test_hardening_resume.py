"""A changed config on resume: a new structure is an error naming the fields, fewer
steps than were done is an error, other changes are a note; nothing saved is
changed before the resume is known to be valid. A finished workdir reruns in no time."""

import json
import shutil

import pytest
from train_helpers import load_config

from jlstm.train import loop as loop_lib
from jlstm.train import train_and_evaluate
from jlstm.train.errors import ResumeError


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished adding:smoke run (checkpoints at 3 and 6)."""
    workdir = tmp_path_factory.mktemp("finished")
    train_and_evaluate(load_config("adding"), workdir, progress=False)
    return workdir


def snapshot(workdir):
    """Every file of the workdir (but the lock) with its bytes."""
    return {
        p.relative_to(workdir).as_posix(): p.read_bytes()
        for p in sorted(workdir.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


STRUCTURAL = [
    ("model", "hidden_size", 16),
    ("model", "num_layers", 2),
    ("model", "bidirectional", True),
    ("model", "pooling", "attention"),
    ("optim", "name", "sgd"),
]


@pytest.mark.parametrize("section, field, value", STRUCTURAL)
def test_a_structural_change_is_an_error_naming_the_field(finished, section, field, value):
    config = load_config("adding")
    config.train.num_steps = 9
    config[section][field] = value
    before = snapshot(finished)
    with pytest.raises(ResumeError) as info:
        train_and_evaluate(config, finished, progress=False)
    message = str(info.value)
    assert f"{section}.{field}: " in message and "Changed since that run" in message
    assert "checkpoints/6" in message and "in the checkpoint" in message
    assert f"pass a new --workdir or delete {finished}" in message
    assert "\n" not in message and len(message) < 1500
    assert snapshot(finished) == before  # config.json, metrics, checkpoints: untouched


def test_fewer_steps_than_were_done_is_an_error(finished):
    config = load_config("adding")
    config.train.num_steps = 4
    before = snapshot(finished)
    with pytest.raises(ResumeError, match=r"config.train.num_steps must be >= 6, .*; got 4"):
        train_and_evaluate(config, finished, progress=False)
    assert snapshot(finished) == before


def test_other_changes_are_a_note(finished, tmp_path, capsys):
    workdir = tmp_path / "run"
    shutil.copytree(finished, workdir)
    config = load_config("adding")
    config.train.num_steps = 9
    config.optim.learning_rate = 1e-3
    capsys.readouterr()
    summary = train_and_evaluate(config, workdir, progress=False)
    out = capsys.readouterr().out
    assert "note: the config differs from the run being resumed: " in out
    assert "optim.learning_rate: 0.002 -> 0.001" in out and "train.num_steps: 6 -> 9" in out
    assert summary["resumed_from"] == 6 and summary["steps"] == 9


def test_rerunning_a_finished_workdir_runs_nothing(finished, monkeypatch, capsys):
    saved = (finished / "summary.json").read_text()
    monkeypatch.setattr(loop_lib, "make_task", lambda *a: pytest.fail("the rerun built a task"))
    capsys.readouterr()
    summary = train_and_evaluate(load_config("adding"), finished, progress=False)
    out = capsys.readouterr().out
    assert f"{finished} is complete" in out and "the saved summary follows" in out
    assert summary["resumed_from"] == summary["steps"] == 6
    assert summary["steps_per_sec"] is None and summary["wall_s"] < 5
    assert summary["final"] == json.loads(saved)["final"]
    assert (finished / "summary.json").read_text() == saved  # nothing rewritten
