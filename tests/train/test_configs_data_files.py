"""The config check and the loaders agree on the files ``config.data`` names: what
the check accepts loads, what would not load stops in the check, naming the key."""

import re

import jax
import pytest
from train_helpers import CONFIGS, REPO, finish, load_config, run_train_py

from jlstm.train import ConfigError, check_config
from jlstm.train.tasks import make_task

TS = """\
@problemName Toy
@univariate true
@classLabel true a b
@data
"""


def ucr_folder(tmp_path, name="Toy", splits=("TRAIN", "TEST")):
    folder = tmp_path / name
    folder.mkdir()
    rows = [f"{i % 3},{i % 5},{i % 7},{i % 2}:{'ab'[i % 2]}" for i in range(12)]
    for split in splits:
        (folder / f"{name}_{split}.ts").write_text(TS + "\n".join(rows) + "\n")
    return folder


def classifier(name):
    config = load_config("default")
    config.data.name = str(name)
    config.data.eval_batch_size = 8
    return config


def test_a_ucr_folder_passes_the_check_and_loads(tmp_path):
    config = classifier(ucr_folder(tmp_path))
    check_config(config)
    assert "12 train / 12 test sequences" in make_task(config, jax.random.key(0)).description


@pytest.mark.parametrize("split", ["TRAIN", "TEST"])
def test_a_single_ts_file_is_refused_with_its_folder(tmp_path, split):
    folder = ucr_folder(tmp_path)
    config = classifier(folder / f"Toy_{split}.ts")
    message = rf"config\.data\.name must be .* both splits.*did you mean its folder '{folder}'"
    with pytest.raises(ConfigError, match=message):
        check_config(config)


def test_a_stray_ts_file_is_refused(tmp_path):
    (tmp_path / "mine.ts").write_text(TS)
    with pytest.raises(ConfigError, match=r"put it in a folder NAME/ as NAME_TRAIN\.ts"):
        check_config(classifier(tmp_path / "mine.ts"))


def test_a_folder_needs_both_splits(tmp_path):
    folder = ucr_folder(tmp_path, splits=("TRAIN",))
    with pytest.raises(ConfigError, match=r"config\.data\.name .*Toy_TEST\.ts does not exist"):
        check_config(classifier(folder))
    with pytest.raises(ConfigError, match=r"config\.data\.name .*does not exist"):
        check_config(classifier(tmp_path / "missing" / "Nope"))


def text_config(tmp_path, **data):
    config = load_config("charlm")
    for k, v in data.items():
        config.data[k] = v
    return config


def test_a_text_file_by_data_path(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("to be or not to be, that is the question. " * 120)
    config = text_config(tmp_path, name="text", path=str(path))
    check_config(config)
    assert make_task(config, jax.random.key(0)).description.startswith("text: ")


@pytest.mark.parametrize(
    "data, message",
    [
        ({"name": "text", "path": ""}, r"config\.data\.path must be an existing text file"),
        ({"name": "text", "path": "/no/such.txt"}, r"config\.data\.path must be an existing"),
        ({"path": "corpus.txt"}, r"config\.data\.path is read only with config\.data\.name 'text'"),
    ],
)
def test_data_path_mistakes(tmp_path, data, message):
    with pytest.raises(ConfigError, match=message):
        check_config(text_config(tmp_path, **data))


@pytest.mark.parametrize("name", CONFIGS)
def test_overrides_in_config_docstrings_are_fields(name):
    """Every ``--config.SECTION.FIELD`` a config's docstring shows is a field of it."""
    doc = (REPO / "configs" / f"{name}.py").read_text().split('"""')[1]
    fields = load_config(name, "").to_dict()
    for key in re.findall(r"--config\.([a-z_]+)\.([a-z_]+)", doc):
        assert key[1] in fields[key[0]], f"--config.{'.'.join(key)} in configs/{name}.py"


@pytest.mark.slow
def test_the_documented_text_command_runs(tmp_path):
    """configs/charlm.py: ``--config.data.name=text --config.data.path=FILE``."""
    path = tmp_path / "corpus.txt"
    path.write_text("to be or not to be, that is the question. " * 120)
    proc = run_train_py(
        "--config", "configs/charlm.py:smoke", "--workdir", str(tmp_path / "run"),
        "--config.data.name=text", f"--config.data.path={path}",
    )  # fmt: skip
    code, out, err = finish(proc)
    assert code == 0, err
    assert "data       text: " in out
