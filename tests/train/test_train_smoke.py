"""The smoke variant of every config in configs/ runs end to end; the CLI works."""

import json
import math

import pytest
from train_helpers import CONFIGS, finish, load_config, run_train_py

from jlstm.train import train_and_evaluate


@pytest.mark.parametrize("name", CONFIGS)
def test_smoke_variant_runs_end_to_end(tmp_path, name):
    config = load_config(name)
    summary = train_and_evaluate(config, tmp_path, progress=False)
    head = summary["final"][summary["headline"]]
    assert math.isfinite(head), summary
    assert summary["steps"] == config.train.num_steps
    for name_ in ("metrics.jsonl", "curves.png", "summary.txt", "summary.json", "config.json"):
        assert (tmp_path / name_).is_file()


def test_cli_trains_and_prints_a_summary(tmp_path):
    workdir = tmp_path / "run"
    proc = run_train_py("--config", "configs/adding.py:smoke", "--workdir", str(workdir))
    code, out, err = finish(proc)
    assert code == 0, err
    assert "result     mse = " in out and "parameters" in out and str(workdir) in out
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["devices"] == 1


def test_cli_with_no_config_runs_the_default(tmp_path):
    """``python train.py`` reads configs/default.py (here cut to 40 steps)."""
    workdir = tmp_path / "default"
    proc = run_train_py("--workdir", str(workdir), "--config.train.num_steps=40")
    code, out, err = finish(proc)
    assert code == 0, err
    saved = json.loads((workdir / "config.json").read_text())
    assert saved["data"]["name"] == load_config("default", "")["data"]["name"]
    assert saved["train"]["num_steps"] == 40 and saved["optim"]["decay_steps"] == 40


@pytest.mark.filterwarnings("ignore:the load_module:DeprecationWarning")  # ml_collections
def test_default_workdir_names():
    import importlib.util

    from train_helpers import REPO

    spec = importlib.util.spec_from_file_location("train_cli", REPO / "train.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    assert cli.default_workdir("configs/default.py") == "runs/default"
    assert cli.default_workdir("configs/adding.py:smoke") == "runs/adding_smoke"


@pytest.mark.parametrize("name", CONFIGS)
def test_config_docstring_gives_command_and_result(name):
    from train_helpers import REPO

    text = (REPO / "configs" / f"{name}.py").read_text()
    doc = text.split('"""')[1]
    assert "python train.py" in doc and "Result" in doc and "RESULT_PENDING" not in doc
    assert ":smoke" in doc
