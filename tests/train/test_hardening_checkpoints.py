"""Damaged checkpoints: found (checksums), skipped with one line, set aside; the run
resumes from the newest intact one and ends with its final step saved."""

import json
import re
import shutil

import jax
import numpy as np
import pytest
from train_helpers import load_config

from jlstm.train import Checkpointer, train_and_evaluate
from jlstm.train.errors import CheckpointError


def data_files(step_dir):
    """The array-data files of a checkpoint (orbax's ocdbt ``d/`` files)."""
    return [p for p in (step_dir / "state").rglob("*") if p.is_file() and p.parent.name == "d"]


def data_file(step_dir):
    """The largest data file (some may be b-tree nodes that a restore never reads)."""
    return max(data_files(step_dir), key=lambda p: p.stat().st_size)


def flip_byte(step_dir):
    path = data_file(step_dir)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))


def truncate_data(step_dir):
    path = data_file(step_dir)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def zero_data(step_dir):
    path = data_file(step_dir)
    path.write_bytes(bytes(path.stat().st_size))


def truncate_metadata(step_dir):
    path = step_dir / "state" / "_METADATA"
    path.write_bytes(path.read_bytes()[:20])


def delete_state(step_dir):
    shutil.rmtree(step_dir / "state")


def remove_commit_markers(step_dir):
    for marker in step_dir.rglob("commit_success.txt"):
        marker.unlink()
    meta = step_dir / "_CHECKPOINT_METADATA"
    record = json.loads(meta.read_text())
    record.pop("commit_timestamp_nsecs", None)
    meta.write_text(json.dumps(record))


DAMAGE = {
    "flipped byte": (flip_byte, r"state/(.*/)?d/\w+ does not match its checksum"),
    "truncated data file": (truncate_data, r"state/(.*/)?d/\w+ does not match its checksum"),
    "zeroed data file": (zero_data, r"state/(.*/)?d/\w+ does not match its checksum"),
    "truncated _METADATA": (truncate_metadata, r"state/_METADATA does not match its checksum"),
    "deleted state/": (delete_state, r"its state/ directory is missing"),
    "commit markers removed": (remove_commit_markers, r"orbax never marked it complete"),
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished adding:smoke run (checkpoints 3 and 6) and its final state."""
    workdir = tmp_path_factory.mktemp("finished")
    config = load_config("adding")
    train_and_evaluate(config, workdir, progress=False)
    state = Checkpointer(workdir / "checkpoints", max_to_keep=2).restore()
    return workdir, config, jax.tree.map(np.asarray, state)


def copy_run(finished, tmp_path):
    workdir, config, state = finished
    shutil.copytree(workdir, tmp_path / "run")
    return tmp_path / "run", config, state


def test_a_flipped_byte_is_not_restored(finished, tmp_path):
    workdir, _, _ = copy_run(finished, tmp_path)
    flip_byte(workdir / "checkpoints" / "6")
    with pytest.raises(CheckpointError, match=r"checkpoints/6 is damaged: state/.* checksum"):
        Checkpointer(workdir / "checkpoints", max_to_keep=2).restore()


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_last_checkpoint_is_skipped_and_retrained(finished, tmp_path, capsys, damage):
    workdir, config, whole = copy_run(finished, tmp_path)
    spoil, reason = DAMAGE[damage]
    spoil(workdir / "checkpoints" / "6")
    capsys.readouterr()

    summary = train_and_evaluate(config, workdir, progress=False)

    out = capsys.readouterr().out
    skipped = [line for line in out.splitlines() if line.startswith("skipped checkpoint")]
    assert len(skipped) == 1, out
    assert str(workdir / "checkpoints" / "6") in skipped[0]
    assert re.search(reason, skipped[0]), skipped[0]
    assert "resuming from step 3" in skipped[0] and "checkpoints.damaged/6" in skipped[0]
    assert summary["resumed_from"] == 3 and summary["steps"] == 6
    # The final step is saved again, intact, and equal to the uninterrupted run's.
    ckpt = Checkpointer(workdir / "checkpoints", max_to_keep=2)
    assert ckpt.latest_step() == 6
    restored = ckpt.restore()
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), b), restored, whole)
    assert (workdir / "checkpoints.damaged" / "6").is_dir()


def test_all_checkpoints_damaged_starts_afresh(finished, tmp_path, capsys):
    workdir, config, whole = copy_run(finished, tmp_path)
    flip_byte(workdir / "checkpoints" / "6")
    delete_state(workdir / "checkpoints" / "3")
    capsys.readouterr()
    summary = train_and_evaluate(config, workdir, progress=False)
    skipped = [s for s in capsys.readouterr().out.splitlines() if s.startswith("skipped")]
    assert len(skipped) == 2 and all("resuming from step 0 (none is intact)" in s for s in skipped)
    assert summary["resumed_from"] == 0
    restored = Checkpointer(workdir / "checkpoints", max_to_keep=2).restore()
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), b), restored, whole)


def test_an_intact_resume_skips_nothing(finished, tmp_path, capsys):
    workdir, config, _ = copy_run(finished, tmp_path)
    config.train.num_steps = 9
    capsys.readouterr()
    summary = train_and_evaluate(config, workdir, progress=False)
    assert "skipped" not in capsys.readouterr().out
    assert summary["resumed_from"] == 6
    assert Checkpointer(workdir / "checkpoints", max_to_keep=2).all_steps() == [6, 9]


def truncate_all_data(step_dir):
    for path in data_files(step_dir):
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def zero_all_data(step_dir):
    for path in data_files(step_dir):
        path.write_bytes(bytes(path.stat().st_size))


@pytest.mark.parametrize("spoil", [truncate_all_data, zero_all_data, truncate_metadata])
def test_without_checksums_what_orbax_cannot_read_is_skipped_too(finished, tmp_path, capsys, spoil):
    """Checkpoints from before checksums (or killed between the save and its checksums)
    are restored unchecked; one whose files orbax cannot read is skipped all the same."""
    workdir, config, whole = copy_run(finished, tmp_path)
    (workdir / "checkpoints" / "6" / "checksums.json").unlink(missing_ok=True)
    spoil(workdir / "checkpoints" / "6")
    config.train.num_steps = 9  # go on: a finished run with its summary would restore nothing
    capsys.readouterr()
    summary = train_and_evaluate(config, workdir, progress=False)
    skipped = [s for s in capsys.readouterr().out.splitlines() if s.startswith("skipped")]
    assert len(skipped) == 1 and "it cannot be read (" in skipped[0], skipped
    assert summary["resumed_from"] == 3
    assert Checkpointer(workdir / "checkpoints", max_to_keep=2).all_steps() == [6, 9]
