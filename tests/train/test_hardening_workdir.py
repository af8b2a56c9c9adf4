"""One run per workdir: a second one stops at once naming the holder's PID; the lock
goes with its process however it ends; a workdir that is a file is named."""

import os
import signal
import subprocess
import sys
import time

import pytest
from train_helpers import finish, load_config, run_train_py

from jlstm.train import read_metrics, train_and_evaluate
from jlstm.train.errors import ResumeError, WorkdirError
from jlstm.train.workdir import LOCK_FILE, WorkdirLock

HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, f"{os.getpid()}\\n".encode())
print("locked", flush=True)
time.sleep(120)
"""


def hold_lock(workdir):
    """A process that holds ``workdir``'s lock the way a run does."""
    workdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(workdir / LOCK_FILE)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


@pytest.mark.slow
def test_a_held_workdir_stops_a_second_run_and_a_dead_holder_does_not(tmp_path):
    workdir = tmp_path / "run"
    holder = hold_lock(workdir)
    try:
        started = time.monotonic()
        with pytest.raises(WorkdirError, match=rf"in use by another run \(PID {holder.pid}, "):
            train_and_evaluate(load_config("adding"), workdir, progress=False)
        assert time.monotonic() - started < 5  # at once: no data, no model, no compile
        assert sorted(p.name for p in workdir.iterdir()) == [LOCK_FILE]  # nothing written
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The dead holder's PID is still in the file, but its lock went with it.
    assert (workdir / LOCK_FILE).read_text().strip() == str(holder.pid)
    summary = train_and_evaluate(load_config("adding"), workdir, progress=False)
    assert summary["steps"] == 6
    assert (workdir / LOCK_FILE).read_text() == ""  # released on exit


def test_the_lock_is_released_when_the_run_fails(tmp_path):
    config = load_config("adding")
    config.train.num_steps = 3
    train_and_evaluate(config, tmp_path, progress=False)
    config.train.num_steps = 6
    config.model.hidden_size = 4  # raised while the lock is held
    with pytest.raises(ResumeError):
        train_and_evaluate(config, tmp_path, progress=False)
    with WorkdirLock(tmp_path):  # free again
        assert (tmp_path / LOCK_FILE).read_text().strip() == str(os.getpid())


def test_a_workdir_that_is_a_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("mine\n")
    with pytest.raises(WorkdirError, match=rf"workdir {path} is a file; expected a directory"):
        train_and_evaluate(load_config("adding"), path, progress=False)
    with pytest.raises(WorkdirError, match=rf"{path} is a file, not a directory"):
        train_and_evaluate(load_config("adding"), path / "run", progress=False)
    assert path.read_text() == "mine\n"


@pytest.mark.slow
def test_two_train_py_on_one_workdir(tmp_path):
    """The second command stops at once with one line naming the first one's PID; the
    first one runs on and logs every metric once."""
    workdir = tmp_path / "run"
    args = ("--config", "configs/adding.py:smoke", "--workdir", str(workdir))
    first = run_train_py(*args, "--config.train.num_steps=300", "--config.train.log_every=10")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and first.poll() is None:
        if (workdir / "metrics.jsonl").exists():  # the first one is training
            break
        time.sleep(0.05)
    assert first.poll() is None, "the first run ended before the second one started"
    second = run_train_py(*args, "--config.model.hidden_size=4")
    code, out, err = finish(second)
    assert code != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert f"workdir {workdir} is in use by another run (PID {first.pid}," in lines[0]
    code, out, err = finish(first)
    assert code == 0, err
    records = [(r["step"], r["split"]) for r in read_metrics(workdir / "metrics.jsonl")]
    assert len(records) == len(set(records))  # every record once
    assert len([r for r in records if r[1] == "train"]) == 30
