"""configs/adding_long.py and configs/copy_long.py: every variant loads and passes the
config check for every cell, says what it measures, and its smoke variant trains."""

import math

import jax
import pytest
from train_helpers import REPO, finish, load_config, run_train_py

from jlstm.train import ConfigError, check_config, train_and_evaluate
from jlstm.train.tasks import make_task

VARIANTS = {  # config -> variant -> what its task's description says
    "adding_long": {"": "T=1000", "T200": "T=200", "T500": "T=500", "T1000": "T=1000"},
    "copy_long": {"": "gap 200", "gap100": "gap 100", "gap200": "gap 200"},
}
CELLS = ["lstm", "gru", "rnn"]
CASES = [(name, v) for name, variants in VARIANTS.items() for v in [*variants, "smoke"]]


def with_cell(config, cell):
    """The documented override: another cell, and the LSTM's forget bias set back."""
    config.model.cell = cell
    if cell != "lstm":
        config.model.forget_bias = 1.0
    return config


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(("name", "variant"), CASES)
def test_every_variant_passes_the_check_for_every_cell(name, variant, cell):
    check_config(with_cell(load_config(name, variant), cell))


@pytest.mark.parametrize(("name", "variant"), [c for c in CASES if c[1] != "smoke"])
def test_variants_set_the_gap(name, variant):
    config = load_config(name, variant)
    assert config.model.forget_bias == 3.0 and config.optim.grad_clip_norm > 0
    task = make_task(config, jax.random.key(0))
    assert VARIANTS[name][variant] in task.description


@pytest.mark.parametrize("cell", ["gru", "rnn"])
@pytest.mark.parametrize("name", VARIANTS)
def test_another_cell_builds_and_needs_the_forget_bias_back(name, cell):
    config = load_config(name, "smoke")
    make_task(with_cell(config, cell), jax.random.key(0))
    config.model.forget_bias = 3.0
    with pytest.raises(ConfigError, match=r"config.model.forget_bias sets the LSTM's forget"):
        make_task(config, jax.random.key(0))


@pytest.mark.parametrize("name", VARIANTS)
def test_unknown_variant_is_a_config_error(name):
    with pytest.raises(ConfigError, match=r"variant must be one of ''.*smoke; got 'T9'"):
        load_config(name, "T9")


@pytest.mark.parametrize("name", VARIANTS)
def test_docstring_gives_the_commands_and_an_honest_result(name):
    doc = (REPO / "configs" / f"{name}.py").read_text().split('"""')[1]
    assert "Result: not yet measured on this machine; to measure: python train.py" in doc
    for variant in VARIANTS[name]:
        if variant:
            assert f"python train.py --config configs/{name}.py:{variant}" in doc
    assert "--config.model.cell=gru" in doc and "--config.model.forget_bias=1.0" in doc
    assert "Wall time" in doc and f"configs/{name}.py:smoke" in doc


@pytest.mark.parametrize(
    "cell", ["lstm", *(pytest.param(c, marks=pytest.mark.slow) for c in ["gru", "rnn"])]
)
@pytest.mark.parametrize("name", VARIANTS)
def test_smoke_variant_trains(tmp_path, name, cell):
    config = with_cell(load_config(name, "smoke"), cell)
    summary = train_and_evaluate(config, tmp_path, progress=False)
    assert summary["steps"] == config.train.num_steps
    assert math.isfinite(summary["final"][summary["headline"]])


@pytest.mark.slow
@pytest.mark.parametrize("name", VARIANTS)
def test_the_cli_runs_the_smoke_variant(tmp_path, name):
    workdir = tmp_path / "run"
    code, out, err = finish(
        run_train_py("--config", f"configs/{name}.py:smoke", "--workdir", str(workdir))
    )
    assert code == 0, err
    assert (workdir / "summary.json").is_file()
