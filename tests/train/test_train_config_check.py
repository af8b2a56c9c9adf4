"""Every kind of config error stops before any work, with a message naming the key."""

import jax
import pytest
from flax import nnx
from train_helpers import CONFIGS, finish, load_config, run_train_py

from jlstm.cell import num_params
from jlstm.train import ConfigError, check_config, train_and_evaluate
from jlstm.train.sharding import check_batch_size, make_mesh
from jlstm.train.tasks import make_task


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("variant", ["", "smoke"])
def test_every_shipped_config_is_valid(name, variant):
    check_config(load_config(name, variant))


def test_mnist1d_small_variant_has_the_published_grus_size():
    config = load_config("mnist1d", "small")
    check_config(config)
    task = make_task(config, jax.random.key(0))
    n = num_params(nnx.state(task.model, nnx.Param))
    assert abs(n - 5134) / 5134 < 0.1, n  # the published GRU: 5,134 parameters


def _edit(config, path: str, value=None, *, delete=False):
    """Set (replacing whatever type was there), add, or delete the field at ``path``."""
    *parents, key = path.split(".")
    section = config
    for p in parents:
        section = section[p]
    if key in section:
        del section[key]
    if not delete:
        section[key] = value


@pytest.mark.parametrize(
    "path, value, message",
    [
        # unknown keys, with a hint when one is close
        ("model.polling", "mean", r"config\.model\.polling is not a field.*did you mean 'pooling'"),
        ("train.epochs", 3, r"config\.train\.epochs is not a field"),
        ("data.gap", 3, r"config\.data\.gap is not a field"),  # a copy-task field
        ("colour", "red", r"config\.colour is not a field"),
        # wrong types
        ("model.hidden_size", "64", r"config\.model\.hidden_size must be an int; got str"),
        ("model.hidden_size", 64.0, r"config\.model\.hidden_size must be an int; got float"),
        ("model.bidirectional", 1, r"config\.model\.bidirectional must be a bool"),
        ("train.num_steps", True, r"config\.train\.num_steps must be an int; got bool"),
        ("optim.learning_rate", "1e-3", r"config\.optim\.learning_rate must be a float"),
        # impossible values
        ("optim.learning_rate", -1e-3, r"config\.optim\.learning_rate must be > 0"),
        ("optim.learning_rate", float("nan"), r"config\.optim\.learning_rate must be finite"),
        ("model.hidden_size", 0, r"config\.model\.hidden_size must be >= 1; got 0"),
        ("model.dropout", 1.0, r"config\.model\.dropout must be < 1\.0"),
        ("data.batch_size", -8, r"config\.data\.batch_size must be >= 1"),
        ("data.length", 1, r"config\.data\.length must be >= 2"),
        ("train.keep_checkpoints", 0, r"config\.train\.keep_checkpoints must be >= 1"),
        ("optim.warmup_steps", 10_000, r"config\.optim\.warmup_steps must be < config\.optim"),
        ("seed", -1, r"config\.seed must be >= 0"),
        # unknown names
        ("data.name", "imagenet", r"config\.data\.name must be a known dataset.*'imagenet'"),
        ("model.pooling", "avg", r"config\.model\.pooling must be one of .*; got 'avg'"),
        ("model.attention", "luong", r"config\.model\.attention must be one of"),
        ("optim.name", "rmsprop", r"config\.optim\.name must be one of .*'rmsprop'"),
        ("optim.schedule", "step", r"config\.optim\.schedule must be one of"),
        ("task", "translation", r"config\.task must be one of"),
        # a task the data set cannot do
        ("task", "classification", r"config\.task must be one of 'regression' for the dataset"),
    ],
)
def test_config_errors_name_the_key(path, value, message):
    config = load_config("adding")
    _edit(config, path, value)
    with pytest.raises(ConfigError, match=message):
        check_config(config)


@pytest.mark.parametrize("path", ["optim.momentum", "model.pooling", "data", "seed"])
def test_missing_keys(path):
    config = load_config("adding")
    _edit(config, path, delete=True)
    with pytest.raises(ConfigError, match=rf"config\.{path} is missing"):
        check_config(config)


def test_model_fields_depend_on_the_task():
    config = load_config("charlm")  # a charlm has no pooling
    config.model.pooling = "mean"
    with pytest.raises(ConfigError, match=r"config\.model\.pooling is not a field of a charlm"):
        check_config(config)


@pytest.mark.parametrize(
    "path, value, message",
    [
        ("model.cache_lambda", 1.5, r"config\.model\.cache_lambda must be <= 1\.0; got 1\.5"),
        ("model.cache_theta", -0.5, r"config\.model\.cache_theta must be >= 0\.0; got -0\.5"),
        ("model.cache_size", -1, r"config\.model\.cache_size must be >= 0; got -1"),
        ("data.eval_chunk_length", 0, r"config\.data\.eval_chunk_length must be >= 1; got 0"),
    ],
)
def test_charlm_cache_and_evaluation_fields_are_checked(path, value, message):
    config = load_config("charlm")
    _edit(config, path, value)
    with pytest.raises(ConfigError, match=message):
        check_config(config)


def test_batch_must_split_over_devices():
    check_batch_size(8, make_mesh())
    with pytest.raises(ValueError, match=r"config\.data\.batch_size must be a multiple of .*\(4\)"):
        check_batch_size(6, type("FakeMesh", (), {"size": 4})())


def test_errors_come_before_any_work(tmp_path):
    config = load_config("adding")
    config.optim.learning_rate = -1.0
    with pytest.raises(ConfigError, match="learning_rate"):
        train_and_evaluate(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_cli_reports_config_errors(tmp_path):
    smoke = ("--config", "configs/adding.py:smoke")
    proc = run_train_py(*smoke, "--workdir", str(tmp_path / "a"), "--config.model.hidden_size=0")
    code, _, err = finish(proc)
    assert code == 2, err
    assert "config error: config.model.hidden_size must be >= 1; got 0" in err
    assert not (tmp_path / "a").exists()
    # Unknown keys and wrong types in overrides are caught while the flags are parsed.
    proc = run_train_py(*smoke, "--workdir", str(tmp_path / "b"), "--config.model.hiden_size=8")
    code, _, err = finish(proc)
    assert code == 2, err
    assert "config error: config.model.hiden_size is not a field" in err
    assert "did you mean 'hidden_size'" in err
    proc = run_train_py(*smoke, "--workdir", str(tmp_path / "c"), "--config.optim.learning_rate=x")
    code, _, err = finish(proc)
    assert code != 0 and "learning_rate" in err
