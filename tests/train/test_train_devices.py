"""Data parallel: the same config gives the same loss curve on 1 device and on 4.

The 4-device run is ``train.py`` in a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` (the flag must be set
before JAX starts); the 1-device run is in this process.
"""

import json

import numpy as np
import pytest
from train_helpers import finish, load_config, run_train_py

from jlstm.train import Checkpointer, read_metrics, sharding, train_and_evaluate

LOG_EVERY_STEP = "--config.train.log_every=1"


def losses(workdir):
    return [r["loss"] for r in read_metrics(workdir / "metrics.jsonl") if r["split"] == "train"]


@pytest.mark.parametrize("name", ["adding", "charlm"])
def test_one_device_and_four_devices_agree(tmp_path, name):
    four = tmp_path / "four"
    proc = run_train_py(
        "--config", f"configs/{name}.py:smoke", "--workdir", str(four), LOG_EVERY_STEP, devices=4
    )
    config = load_config(name)
    config.train.log_every = 1
    train_and_evaluate(config, tmp_path / "one", progress=False)
    code, _, err = finish(proc)
    assert code == 0, err
    assert json.loads((four / "summary.json").read_text())["devices"] == 4

    one_curve, four_curve = losses(tmp_path / "one"), losses(four)
    assert len(one_curve) == len(four_curve) == config.train.num_steps
    np.testing.assert_allclose(four_curve, one_curve, rtol=2e-5)
    # ... the same evaluation (for charlm the LSTM state and the cache split over
    # the devices) ...
    one_final = json.loads((tmp_path / "one" / "summary.json").read_text())["final"]
    four_final = json.loads((four / "summary.json").read_text())["final"]
    assert four_final.keys() == one_final.keys()
    for metric, value in one_final.items():
        np.testing.assert_allclose(four_final[metric], value, rtol=1e-4, err_msg=metric)
    # ... and the same parameters at the end.
    one = Checkpointer(tmp_path / "one" / "checkpoints", max_to_keep=5).restore()
    other = Checkpointer(four / "checkpoints", max_to_keep=5).restore()
    for a, b in zip(_leaves(one["params"]), _leaves(other["params"]), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


def _leaves(tree):
    import jax

    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_batch_that_does_not_split_is_refused(tmp_path):
    proc = run_train_py(
        "--config",
        "configs/adding.py:smoke",
        "--workdir",
        str(tmp_path / "w"),
        "--config.data.batch_size=6",
        devices=4,
    )
    code, _, err = finish(proc)
    assert (
        code != 0
        and "config.data.batch_size must be a multiple of the number of devices (4)" in err
    )


def test_two_processes_through_jax_distributed(tmp_path):
    """Two processes of two CPU devices each (gloo collectives) train like one device."""
    import socket

    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        port = sock.getsockname()[1]
    workdir = tmp_path / "multi"
    procs = [
        run_train_py(
            "--config", "configs/adding.py:smoke", "--workdir", str(workdir), LOG_EVERY_STEP,
            "--distributed", f"--coordinator_address=localhost:{port}", "--num_processes=2",
            f"--process_id={i}",
            devices=2,
            env={"JAX_CPU_COLLECTIVES_IMPLEMENTATION": "gloo"},
        )
        for i in range(2)
    ]  # fmt: skip
    config = load_config("adding")
    config.train.log_every = 1
    train_and_evaluate(config, tmp_path / "one", progress=False)
    for proc in procs:
        code, _, err = finish(proc)
        assert code == 0, err[-3000:]
    assert json.loads((workdir / "summary.json").read_text())["devices"] == 4
    np.testing.assert_allclose(losses(workdir), losses(tmp_path / "one"), rtol=2e-5)


def test_queued_steps_on_two_cpu_devices_finish(tmp_path):
    """Without a per-step sync (nothing logged until the end), XLA's in-process CPU
    collectives deadlocked with steps in flight: this run aborted ("Termination
    timeout for all reduce") in about half of the tries at 1000 steps before
    the loop waited for each step on several CPU devices."""
    workdir = tmp_path / "w"
    steps = "2000"
    proc = run_train_py(
        "--config", "configs/charlm.py:smoke", "--workdir", str(workdir),
        f"--config.train.num_steps={steps}", f"--config.train.log_every={steps}",
        f"--config.train.eval_every={steps}", f"--config.train.checkpoint_every={steps}",
        "--config.model.hidden_size=64", "--config.data.batch_size=16",
        devices=2,
    )  # fmt: skip
    code, _, err = finish(proc)
    assert code == 0, err[-3000:]
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["devices"] == 2 and summary["steps"] == 2000


def test_lockstep_only_for_several_cpu_devices():
    import jax

    assert not sharding.needs_lockstep(sharding.make_mesh(jax.devices()[:1]))
