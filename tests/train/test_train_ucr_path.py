"""Any UCR/UEA .ts data set trains by path, with no code change."""

import numpy as np
from train_helpers import load_config

from jlstm.train import train_and_evaluate


def write_ts(path, rng, n, name):
    """A toy two-class, 3-channel, variable-length problem: the class is the sign
    of channel 0's level, the other channels are noise."""
    lines = [
        f"@problemName {name}",
        "@timeStamps false",
        "@missing false",
        "@univariate false",
        "@dimensions 3",
        "@equalLength false",
        "@classLabel true up down",
        "@data",
    ]
    for _ in range(n):
        label = rng.integers(2)
        length = rng.integers(5, 13)
        level = 1.0 if label == 0 else -1.0
        channels = [level + 0.3 * rng.standard_normal(length), *rng.standard_normal((2, length))]
        values = ":".join(",".join(f"{v:.4f}" for v in c) for c in channels)
        lines.append(f"{values}:{'up' if label == 0 else 'down'}")
    path.write_text("\n".join(lines) + "\n")


def make_folder(tmp_path):
    folder = tmp_path / "ToySigns"
    folder.mkdir()
    rng = np.random.default_rng(0)
    write_ts(folder / "ToySigns_TRAIN.ts", rng, 48, "ToySigns")
    write_ts(folder / "ToySigns_TEST.ts", rng, 30, "ToySigns")
    return folder


def test_a_ts_folder_trains_by_path(tmp_path):
    """``--config.data.name=PATH`` (a folder NAME/ with NAME_TRAIN.ts, NAME_TEST.ts)."""
    config = load_config("default")
    config.data.name = str(make_folder(tmp_path))
    config.data.eval_batch_size = 32
    config.train.num_steps = 60
    config.train.eval_every = 60
    config.optim.warmup_steps = 5
    config.optim.learning_rate = 1e-2
    summary = train_and_evaluate(config, tmp_path / "run", progress=False)
    assert "48 train / 30 test sequences, 3 features" in summary["data"]
    assert "2 classes" in summary["data"]
    assert summary["final"]["accuracy"] >= 0.9, summary["final"]
