"""config.model's options of the LSTM family (proj_size, cell_heads, layernorm_eps,
forget_bias) reach the cell that has them, and are errors, naming the field, elsewhere."""

import jax
import pytest
from flax import nnx
from train_helpers import load_config

from jlstm.train import ConfigError, check_config
from jlstm.train.tasks import make_task
from jlstm.train.tasks.base import recurrent_options


def smoke(cell, **fields):
    config = load_config("japanese_vowels", "smoke")
    config.model.cell = cell
    for key, value in fields.items():
        config.model[key] = value
    return config


def test_proj_size_reaches_the_lstmp_cell_and_its_parameters():
    config = smoke("lstmp", hidden_size=8, proj_size=3)
    check_config(config)
    assert recurrent_options(config.model)["proj_size"] == 3
    task = make_task(config, jax.random.key(0))
    leaves = {tuple(leaf.shape) for leaf in jax.tree.leaves(nnx.state(task.model, nnx.Param))}
    assert (8, 3) in leaves  # w_hr: (hidden_size, proj_size)
    assert "proj_size" not in recurrent_options(smoke("lstmp").model)  # 0: the cell's default


def test_cell_heads_reach_the_slstm_cell():
    options = recurrent_options(smoke("slstm", hidden_size=8, cell_heads=2).model)
    assert options["num_heads"] == 2


def test_layernorm_eps_makes_the_cell_with_it():
    options = recurrent_options(smoke("layernorm_lstm", layernorm_eps=1e-3).model)
    assert options["cell"].name == "layernorm_lstm" and options["cell"].eps == 1e-3


def test_forget_bias_reaches_every_cell_with_a_forget_gate():
    for cell in ("lstm", "peephole", "cifg", "layernorm_lstm", "lstmp", "slstm"):
        assert recurrent_options(smoke(cell, forget_bias=2.0).model)["forget_bias"] == 2.0


@pytest.mark.parametrize(
    ("cell", "field", "value", "message"),
    [
        ("gru", "proj_size", 3, r"config.model.proj_size sets the projection size of "
         r"cell='lstmp'; the 'gru' cell has none \(got proj_size=3; leave it at 0\)"),
        ("lstm", "cell_heads", 2, r"config.model.cell_heads sets the heads of cell='slstm'"),
        ("lstm", "layernorm_eps", 1e-3, r"config.model.layernorm_eps sets the epsilon"),
        ("rnn", "forget_bias", 3.0, r"config.model.forget_bias sets the LSTM's forget gate"),
    ],
)  # fmt: skip
def test_an_option_of_another_cell_is_an_error_naming_the_field(cell, field, value, message):
    with pytest.raises(ConfigError, match=message):
        recurrent_options(smoke(cell, **{field: value}).model)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("proj_size", -1, r"config.model.proj_size must be >= 0; got -1"),
        ("cell_heads", 0, r"config.model.cell_heads must be >= 1; got 0"),
        ("layernorm_eps", 0.0, r"config.model.layernorm_eps must be > 0.0; got 0.0"),
    ],
)
def test_out_of_range_options_fail_the_check(field, value, message):
    with pytest.raises(ConfigError, match=message):
        check_config(smoke("lstm", **{field: value}))


def test_a_proj_size_the_cell_rejects_says_so():
    config = smoke("lstmp", hidden_size=8, proj_size=8)
    with pytest.raises(ValueError, match=r"proj_size must be smaller than hidden_size \(8\)"):
        make_task(config, jax.random.key(0))
