"""The char LM's sample, as the end of a run prints it and sample.txt keeps it, marks
where the prompt (the validation text's start) ends and the generated text begins."""

import jax
from train_helpers import load_config

from jlstm import data
from jlstm.train.summary import format_summary
from jlstm.train.tasks import make_task
from jlstm.train.tasks.charlm import GENERATED_MARK, PROMPT_CHARS, load_corpus


def test_sample_marks_where_generation_starts(tmp_path):
    config = load_config("charlm")
    config.data.name = "pydoc"  # no install needed
    config.train.sample_chars = 12
    task = make_task(config, jax.random.key(0))
    out = task.report(task.model, tmp_path)

    text = load_corpus(config.data)
    assert GENERATED_MARK not in text  # the mark cannot be read as part of the text
    vocab = data.CharVocab.from_text(text)
    _, val_ids = data.split_text(vocab.encode(text), config.data.val_fraction)
    prompt, generated = out["sample"].split(GENERATED_MARK)
    assert prompt == vocab.decode(val_ids[:PROMPT_CHARS])
    assert len(generated) == 12

    header, saved = (tmp_path / "sample.txt").read_text(encoding="utf-8").split("\n", 1)
    assert f"(they follow {GENERATED_MARK})" in header
    assert saved == out["sample"] + "\n"
    summary = {
        "workdir": str(tmp_path), "data": task.description, "steps": 0, "resumed_from": 0,
        "final": {"bits_per_char": 1.0}, "headline": "bits_per_char", "baselines": {},
        "num_params": 1, "devices": 1, "wall_s": 0.0, "steps_per_sec": None,
        "files": out["files"], "sample": out["sample"],
    }  # fmt: skip
    assert f"{prompt}{GENERATED_MARK}{generated}" in format_summary(summary)
