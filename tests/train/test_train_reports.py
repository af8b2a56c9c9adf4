"""What a run shows a person at the end: the char LM's text sample, the attention PNG."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from train_helpers import load_config

from jlstm import data
from jlstm.train import train_and_evaluate
from jlstm.train.plots import plot_attention
from jlstm.train.summary import format_summary
from jlstm.train.tasks import make_task
from jlstm.train.tasks.charlm import GENERATED_MARK, PROMPT_CHARS, load_corpus
from jlstm.train.tasks.classification import ATTENTION_PLOT_SEQUENCES, load_labelled

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def charlm_config(**train):
    config = load_config("charlm")
    config.data.name = "pydoc"  # no install needed
    for k, v in train.items():
        config.train[k] = v
    return config


def greedy_by_full_passes(model, prompt, n):
    """The reference for greedy sampling: rerun the model over the whole text so far,
    take the argmax of the last step's logits, append it; no carried state."""
    tokens = list(np.asarray(prompt))
    for _ in range(n):
        logits, _ = model(jnp.asarray(tokens, jnp.int32)[None])
        tokens.append(int(jnp.argmax(logits[0, -1])))
    return tokens[len(prompt) :]


def test_charlm_sample_continues_the_validation_text(tmp_path):
    config = charlm_config(sample_chars=6, sample_temperature=0.0)
    task = make_task(config, jax.random.key(3))
    out = task.report(task.model, tmp_path)

    text = load_corpus(config.data)
    vocab = data.CharVocab.from_text(text)
    _, val_ids = data.split_text(vocab.encode(text), config.data.val_fraction)
    prompt = val_ids[:PROMPT_CHARS]
    expected = (
        vocab.decode(prompt)
        + GENERATED_MARK
        + vocab.decode(np.array(greedy_by_full_passes(task.model, prompt, 6)))
    )
    assert out["sample"] == expected
    saved = (tmp_path / "sample.txt").read_text()
    assert saved.splitlines()[0].startswith("# 6 characters generated at temperature 0.0")
    assert saved.endswith(expected + "\n")
    assert out["files"] == {
        "sample": str(tmp_path / "sample.txt"),
        "gates": str(tmp_path / "gates.png"),
    }


def test_charlm_sample_is_reproducible_and_can_be_turned_off(tmp_path):
    config = charlm_config(sample_chars=30, sample_temperature=1.0)
    task = make_task(config, jax.random.key(0))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = task.report(task.model, tmp_path / "a")
    second = task.report(task.model, tmp_path / "b")
    assert first["sample"] == second["sample"]
    assert len(first["sample"]) == PROMPT_CHARS + len(GENERATED_MARK) + 30
    off = make_task(charlm_config(sample_chars=0), jax.random.key(0))
    assert off.report(off.model, tmp_path) == {"files": {"gates": str(tmp_path / "gates.png")}}
    assert not (tmp_path / "sample.txt").exists()


def test_charlm_run_prints_and_saves_its_sample(tmp_path):
    summary = train_and_evaluate(charlm_config(), tmp_path, progress=False)
    sample = (tmp_path / "sample.txt").read_text().split("\n", 1)[1].rstrip("\n")
    assert summary["sample"] == sample and len(sample) == PROMPT_CHARS + len(GENERATED_MARK) + 20
    assert summary["files"]["sample"] == str(tmp_path / "sample.txt")
    printed = format_summary(summary)
    assert "sample\n" + sample in printed


def attention_config(pooling):
    config = load_config("japanese_vowels")
    config.model.pooling = pooling
    return config


def test_attention_run_saves_a_png_of_the_weights(tmp_path):
    summary = train_and_evaluate(attention_config("attention"), tmp_path, progress=False)
    path = tmp_path / "attention.png"
    assert summary["files"]["attention"] == str(path)
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_attention_report_draws_the_models_own_weights(tmp_path, monkeypatch):
    config = attention_config("attention")
    task = make_task(config, jax.random.key(0))
    drawn = {}
    monkeypatch.setattr(
        "jlstm.train.tasks.classification.plot_attention",
        lambda weights, lengths, path, **kw: drawn.update(w=weights, n=lengths, **kw) or path,
    )
    task.report(task.model, tmp_path)
    _, test = load_labelled("japanese_vowels", standardize=True)
    indices = np.linspace(0, len(test) - 1, ATTENTION_PLOT_SEQUENCES).round().astype(int)
    batch = test.batch(indices)
    logits, weights = task.model(batch["xs"], lengths=batch["lengths"], return_attention=True)
    assert drawn["indices"] == indices.tolist()
    assert len(set(batch["y"].tolist())) >= 4  # evenly spaced: several speakers show
    np.testing.assert_array_equal(drawn["n"], batch["lengths"])
    np.testing.assert_allclose(drawn["w"], weights, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(drawn["w"]).sum(-1), 1.0, rtol=1e-5)
    assert drawn["labels"] == [test.class_names[k] for k in batch["y"]]
    assert drawn["predictions"] == [test.class_names[k] for k in np.argmax(logits, -1)]


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_no_attention_png_without_attention_pooling(tmp_path, pooling):
    task = make_task(attention_config(pooling), jax.random.key(0))
    assert "attention" not in task.report(task.model, tmp_path).get("files", {})
    assert not (tmp_path / "attention.png").exists()


def test_plot_attention_multi_head_and_bad_shapes(tmp_path):
    weights = np.full((4, 2, 5), 0.2, np.float32)
    path = plot_attention(weights, np.array([5, 4, 3, 1]), tmp_path / "a.png")
    assert path.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ValueError, match=r"weights must be \(N, T\) or \(N, heads, T\)"):
        plot_attention(np.ones(5), np.array([5]), tmp_path / "b.png")
    with pytest.raises(ValueError, match=r"lengths must be \(4,\); got shape \(3,\)"):
        plot_attention(weights, np.array([5, 4, 3]), tmp_path / "c.png")
