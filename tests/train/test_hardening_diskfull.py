"""A disk that fills up during a save: one line naming the workdir and its free space;
the earlier checkpoints stay intact and the run resumes once there is room.

The workdir lies on a small tmpfs (needs root and ``mount``; skipped elsewhere),
filled up just before the save of the last step: a real ENOSPC from orbax's writes.
"""

import os
import subprocess

import pytest
from train_helpers import load_config

from jlstm.train import Checkpointer, train_and_evaluate
from jlstm.train import checkpoint as checkpoint_lib
from jlstm.train.errors import DiskFullError


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)])
    if done.returncode != 0:
        pytest.skip("mount -t tmpfs failed here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(directory):
    """Write into ``directory`` until the disk is full; return the filler file."""
    filler = directory / "filler"
    # Unbuffered: a buffered file keeps the bytes a short write left over and raises
    # ENOSPC again when it is closed, out of here.
    with filler.open("wb", buffering=0) as f:
        try:
            while f.write(b"\0" * 65536):
                pass
        except OSError:
            pass
    return filler


@pytest.mark.slow
def test_disk_full_during_a_save_is_one_line(small_disk, monkeypatch):
    workdir = small_disk / "run"
    config = load_config("adding")
    config.train.num_steps = 3
    train_and_evaluate(config, workdir, progress=False)  # checkpoint 3

    real_save = checkpoint_lib.Checkpointer.save
    filled = []

    def save_on_a_full_disk(self, step, state):
        filled.append(fill(small_disk))
        return real_save(self, step, state)

    monkeypatch.setattr(checkpoint_lib.Checkpointer, "save", save_on_a_full_disk)
    config.train.num_steps = 6
    with pytest.raises(DiskFullError) as info:
        train_and_evaluate(config, workdir, progress=False)
    message = str(info.value)
    assert "\n" not in message, message
    assert message.startswith(f"no space left on the device of workdir {workdir} (")
    assert " free of 16.0 MiB) while saving checkpoint 6 " in message
    assert "(the checkpoints of steps 3 are intact)" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__  # one line

    monkeypatch.undo()
    filled[0].unlink()  # room again: the same command resumes from step 3
    assert Checkpointer(workdir / "checkpoints", max_to_keep=2).restore()["step"] == 3
    summary = train_and_evaluate(config, workdir, progress=False)
    assert summary["resumed_from"] == 3 and summary["steps"] == 6
