"""The command line, tried as a new user would: each mistake is one line on stderr that
names what was wrong (exit status 2), never a traceback, and no workdir is made."""

import pytest
from train_helpers import finish, run_train_py

from jlstm.train import ConfigError
from jlstm.train.cli import (
    default_workdir,
    resolve_config,
    run_training,
    shipped_configs,
    with_config_arg,
)
from jlstm.train.errors import DiskFullError, NonFiniteError

SMOKE = ("--config", "configs/adding.py:smoke")


@pytest.mark.parametrize(
    "args, line",
    [
        # a section typo, with the default config and with an explicit one
        (
            ("--config.optm.learning_rate=0.1",),
            "config error: config.optm.learning_rate is not a field of the config; "
            "did you mean 'optim'?",
        ),
        (
            (*SMOKE, "--config.optm.learning_rate=0.1"),
            "config error: config.optm.learning_rate is not a field of the config; "
            "did you mean 'optim'?",
        ),
        # a config file that does not exist
        (
            ("--config=configs/nope.py",),
            "config error: --config configs/nope.py does not exist",
        ),
        # a variant the config file does not have: the ones it has
        (
            ("--config", "configs/adding.py:smok"),
            "config error: configs/adding.py:smok: variant must be '' or 'smoke'; got 'smok'",
        ),
        # the field the user set, not the one linked to it (optim.decay_steps)
        (
            (*SMOKE, "--config.train.num_steps=0"),
            "config error: config.train.num_steps must be >= 1; got 0",
        ),
    ],
)
def test_cli_mistakes_are_one_line(tmp_path, args, line):
    workdir = tmp_path / "run"
    code, _, err = finish(run_train_py("--workdir", str(workdir), *args))
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(line), err
    assert not workdir.exists()


def test_missing_config_lists_the_shipped_ones():
    with pytest.raises(
        ConfigError, match=r"configs shipped with jlstm: adding, .*charlm, .*sunspots"
    ):
        resolve_config("configs/nope.py")


def test_config_paths_fall_back_to_the_shipped_configs(tmp_path, monkeypatch):
    """Outside the repository ``configs/NAME.py`` (or ``NAME``) is the installed copy."""
    monkeypatch.chdir(tmp_path)
    adding = shipped_configs()["adding"]
    assert resolve_config("configs/adding.py:smoke") == f"{adding}:smoke"
    assert resolve_config("adding") == str(adding)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "adding.py").write_text("# the user's own\n")
    assert resolve_config("configs/adding.py:smoke") == "configs/adding.py:smoke"  # theirs first
    with pytest.raises(ConfigError, match="elsewhere/adding.py does not exist"):
        resolve_config("elsewhere/adding.py")


def test_default_config_is_put_first():
    argv = with_config_arg(["train.py", "--config.train.num_steps=3"])
    assert argv[1].startswith("--config=") and argv[1].endswith("default.py")
    assert argv[2] == "--config.train.num_steps=3"  # overrides must follow the config
    assert default_workdir(argv[1].split("=", 1)[1]) == "runs/default"
    explicit = ["train.py", "--config", "configs/adding.py:smoke", "--workdir", "w"]
    assert with_config_arg(explicit) == explicit


@pytest.mark.parametrize(
    "error, code, line",
    [
        (ConfigError("config.x must be 1; got 2"), 2, "config error: config.x must be 1; got 2"),
        (DiskFullError("the disk holding runs/a is full"), 1, "the disk holding runs/a is full"),
        (NonFiniteError("training stopped: the loss ..."), 1, "training stopped: the loss ..."),
    ],
)
def test_a_run_that_stops_on_purpose_is_one_line(monkeypatch, capsys, error, code, line):
    def stop(config, workdir):
        raise error

    monkeypatch.setattr("jlstm.train.train_and_evaluate", stop)
    assert run_training(None, "runs/x") == code
    assert capsys.readouterr().err == line + "\n"
